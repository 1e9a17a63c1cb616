"""The public route collectors, how their archives are laid out, and how to recognise them in paths.

Two layouts, relative to an archive root (``https://data.ris.ripe.net``, ``https://archive.routeviews.org``
or a local copy of either):

- RIPE RIS: ``rrc00/2017.10/bview.20171001.0800.gz`` and ``rrc00/2017.10/updates.20171001.0800.gz``
- RouteViews: ``route-views.linx/bgpdata/2017.10/RIBS/rib.20171001.0800.bz2`` and
  ``.../UPDATES/updates.20171001.0800.bz2``; route-views2, the oldest collector, lives directly under
  the root (``bgpdata/2017.10/...``), and copies often put it under ``route-views2/bgpdata/`` instead.

A file is named after the start of the interval it covers: ``updates.20171001.0800`` holds the
updates from 08:00:00 up to the next file.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Project = Literal["ris", "routeviews"]
FileKind = Literal["rib", "updates"]

HOUR = 3600
MINUTE = 60

RIS_ROOT = "https://data.ris.ripe.net"
ROUTEVIEWS_ROOT = "https://archive.routeviews.org"


@dataclass(frozen=True, slots=True)
class Collector:
    """One public collector: where its files are and how often it writes them."""

    name: str
    project: Project
    base_url: str  # the folder that holds the YYYY.MM month folders
    rib_interval: int  # seconds between RIB dumps
    update_interval: int  # seconds each update file covers


def _ris(number: int) -> Collector:
    name = f"rrc{number:02d}"
    return Collector(name, "ris", f"{RIS_ROOT}/{name}", 8 * HOUR, 5 * MINUTE)


def _routeviews(name: str) -> Collector:
    return Collector(name, "routeviews", f"{ROUTEVIEWS_ROOT}/{name}/bgpdata", 2 * HOUR, 15 * MINUTE)


# rrc17 was never published; rrc02, rrc08 and rrc09 are retired but their archives remain.
_RIS_NUMBERS = [n for n in range(27) if n != 17]

_ROUTEVIEWS_NAMES = [
    "route-views3",
    "route-views4",
    "route-views5",
    "route-views6",
    "route-views7",
    "route-views8",
    "route-views.amsix",
    "route-views.bdix",
    "route-views.bknix",
    "route-views.chicago",
    "route-views.chile",
    "route-views.eqix",
    "route-views.flix",
    "route-views.fortaleza",
    "route-views.gixa",
    "route-views.gorex",
    "route-views.isc",
    "route-views.jinx",
    "route-views.kixp",
    "route-views.linx",
    "route-views.mwix",
    "route-views.napafrica",
    "route-views.nwax",
    "route-views.ny",
    "route-views.perth",
    "route-views.peru",
    "route-views.phoix",
    "route-views.rio",
    "route-views.saopaulo",
    "route-views2.saopaulo",
    "route-views.sfmix",
    "route-views.sg",
    "route-views.siex",
    "route-views.soxrs",
    "route-views.sydney",
    "route-views.telxatl",
    "route-views.uaeix",
    "route-views.wide",
    # the newer collectors are named after their exchange and airport code
    "amsix.ams",
    "cix.atl",
    "crix.sjo",
    "decix.jhb",
    "interlan.otp",
    "iraq-ixp.bgw",
    "kinx.icn",
    "namex.fco",
    "pacwave.lax",
    "pit.scl",
    "pitmx.qro",
]

#: Every public collector by name.
COLLECTORS: dict[str, Collector] = {
    c.name: c
    for c in [
        *(_ris(n) for n in _RIS_NUMBERS),
        # route-views2's files live under the archive root, not under a folder of its own
        Collector("route-views2", "routeviews", f"{ROUTEVIEWS_ROOT}/bgpdata", 2 * HOUR, 15 * MINUTE),
        *(_routeviews(n) for n in _ROUTEVIEWS_NAMES),
    ]
}

_RIS_NAME_RE = re.compile(r"^rrc\d\d$")
_ROUTEVIEWS_NAME_RE = re.compile(r"^route-views[\w.\-]*$")


def collector_info(name: str) -> Collector:
    """The table entry for ``name``; names not in the table get their project's usual intervals.

    A name is RIS when it looks like ``rrcNN`` and RouteViews otherwise, so a local archive may hold
    collectors the table does not know yet.
    """
    if name in COLLECTORS:
        return COLLECTORS[name]
    if _RIS_NAME_RE.match(name):
        return Collector(name, "ris", f"{RIS_ROOT}/{name}", 8 * HOUR, 5 * MINUTE)
    return _routeviews(name)


def looks_like_collector(name: str) -> bool:
    """Is a folder name the name of a collector (known, ``rrcNN`` or ``route-views...``)?"""
    return name in COLLECTORS or bool(_RIS_NAME_RE.match(name) or _ROUTEVIEWS_NAME_RE.match(name))


def month_folder(ts: int) -> str:
    """``2017.10``: the month folder that holds the files named after time ``ts``."""
    return time.strftime("%Y.%m", time.gmtime(ts))


def month_starts(start: int, end: int) -> list[int]:
    """The first second of every month that overlaps [start, end]."""
    year, month = time.gmtime(start)[:2]
    out: list[int] = []
    while True:
        first = calendar.timegm((year, month, 1, 0, 0, 0))
        if first > end:
            return out
        out.append(first)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def month_folder_candidates(name: str, month: str) -> list[str]:
    """Where collector ``name`` keeps month ``month`` relative to an archive root, most likely first."""
    info = collector_info(name)
    if info.project == "ris":
        return [f"{name}/{month}"]
    paths = [f"{name}/bgpdata/{month}"]
    if name == "route-views2":
        paths.append(f"bgpdata/{month}")
    return paths


_FILE_RE = re.compile(r"^(bview|rib|updates)\.(\d{8})\.(\d{4})\.(gz|bz2)$")


def parse_file_name(file_name: str) -> tuple[FileKind, int] | None:
    """``("rib", 1506844800)`` from ``bview.20171001.0800.gz`` or ``rib.20171001.0800.bz2``."""
    m = _FILE_RE.match(file_name)
    if not m:
        return None
    day, hhmm = m.group(2), m.group(3)
    try:
        when = datetime(int(day[:4]), int(day[4:6]), int(day[6:]), int(hhmm[:2]), int(hhmm[2:]), tzinfo=UTC)
    except ValueError:  # e.g. 20171032
        return None
    return ("updates" if m.group(1) == "updates" else "rib"), int(when.timestamp())


def expected_path(folder: str, project: Project, kind: FileKind, ts: int) -> str:
    """The path of the file of ``kind`` named after ``ts`` inside a month folder path ``folder``."""
    stamp = time.strftime("%Y%m%d.%H%M", time.gmtime(ts))
    if project == "ris":
        return f"{folder}/{'bview' if kind == 'rib' else 'updates'}.{stamp}.gz"
    sub = "RIBS/rib" if kind == "rib" else "UPDATES/updates"
    return f"{folder}/{sub}.{stamp}.bz2"


_COLLECTOR_RE = re.compile(r"(?:^|[/\\])(rrc\d\d|route-views[\w.\-]*?)(?:[/\\]|$)")
_LEGACY_RV2_RE = re.compile(r"(?:^|[/\\])bgpdata[/\\]\d{4}\.\d\d(?:[/\\]|$)")


def guess_collector(path: str) -> str | None:
    """``rrc00`` or ``route-views2`` from an archive path such as ``.../rrc00/2017.10/updates...``."""
    m = _COLLECTOR_RE.search(path)
    if m:
        return m.group(1)
    parts = re.split(r"[/\\]", path)
    for part in parts:
        if part in COLLECTORS:
            return part
    # route-views2 is the only collector whose month folders sit in a top-level bgpdata/
    if _LEGACY_RV2_RE.search(path):
        return "route-views2"
    return None
