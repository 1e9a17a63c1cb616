"""Which archive files a time window needs, found by listing the archive itself.

    plan = plan_files("https://data.ris.ripe.net", ["rrc00"], start, end)
    plan.files["rrc00"]   # the last RIB dump at or before `start`, then the update files up to `end`
    plan.gaps             # every expected file that is not there, never silently skipped

An archive is a local folder or an http(s) root laid out like the public archives (see
:mod:`transitwatch.sources.collectors`), ``"public"`` for the public RIS and RouteViews servers, or a
BGPKIT broker (``"bgpkit"`` or ``"bgpkit:<broker URL>"``). Web servers are listed through their
Apache or nginx index pages, only the month folders the window needs.

The state at the window start needs the RIB dump before it and the updates between the two, so a
window [start, end) gets, per collector, that RIB and every update file whose interval intersects
[RIB time, end). ``end`` is exclusive, as in "the state at ``end``".
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from transitwatch.mrt.io import is_url
from transitwatch.sources.collectors import (
    HOUR,
    RIS_ROOT,
    ROUTEVIEWS_ROOT,
    FileKind,
    collector_info,
    expected_path,
    looks_like_collector,
    month_folder,
    month_folder_candidates,
    month_starts,
    parse_file_name,
)
from transitwatch.sources.download import USER_AGENT, Backoff, DownloadError, Gap, fetch_text
from transitwatch.timeutil import iso

__all__ = [
    "ArchiveError",
    "ArchiveFile",
    "ArchivePlan",
    "Gap",
    "is_remote",
    "parse_bgpkit_response",
    "plan_files",
]

#: How far before the window start to look for a RIB dump (3 RIS dumps, 12 RouteViews dumps).
DEFAULT_RIB_LOOKBACK = 24 * HOUR
BGPKIT_BROKER = "https://api.bgpkit.com/v3/broker"


class ArchiveError(Exception):
    """The archive cannot be used at all (not a folder, not reachable, or refused the request)."""


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One MRT file of an archive. ``time`` is the nominal time in its name (epoch seconds).

    ``duration`` is the time an update file covers (0 for a RIB dump). ``path`` is relative to the
    archive root (``rrc00/2017.10/updates.20171001.0800.gz``) and ``location`` is where to read it
    (a local path or a URL). ``size`` in bytes, when the listing showed it (approximate on web pages).
    """

    collector: str
    kind: FileKind
    time: int
    duration: int
    location: str
    path: str
    size: int | None = field(default=None, compare=False)

    @property
    def end(self) -> int:
        return self.time + self.duration


@dataclass
class ArchivePlan:
    """The files a window needs, per collector in reading order (RIB first), and what is missing."""

    archive: str
    start: int
    end: int
    files: dict[str, list[ArchiveFile]]
    gaps: list[Gap]

    def all_files(self) -> list[ArchiveFile]:
        return [f for files in self.files.values() for f in files]

    def summary(self) -> str:
        lines = [f"{self.archive}: {iso(self.start)} to {iso(self.end)}"]
        for name, files in self.files.items():
            ribs = [f for f in files if f.kind == "rib"]
            updates = [f for f in files if f.kind == "updates"]
            rib = f"RIB {iso(ribs[0].time)}" if ribs else "no RIB"
            upd = f"{len(updates)} update files"
            if updates:
                upd += f" from {iso(updates[0].time)} to {iso(updates[-1].end)}"
            lines.append(f"  {name}: {rib}, {upd}")
        lines.append(f"  {len(self.gaps)} gaps" if self.gaps else "  no gaps")
        lines.extend(f"    {gap}" for gap in self.gaps)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "archive": self.archive,
            "start": iso(self.start),
            "end": iso(self.end),
            "files": [
                {
                    "collector": f.collector,
                    "kind": f.kind,
                    "time": iso(f.time),
                    "duration": f.duration,
                    "location": f.location,
                    "size": f.size,
                }
                for f in self.all_files()
            ],
            "gaps": [g.to_dict() for g in self.gaps],
        }


def plan_files(
    archive: str,
    collectors: list[str] | None,
    start: int,
    end: int,
    *,
    rib_lookback: int = DEFAULT_RIB_LOOKBACK,
    client: httpx.Client | None = None,
    backoff: Backoff | None = None,
) -> ArchivePlan:
    """The files needed for [start, end) per collector, and the gaps. ``collectors=None``: all found."""
    if end <= start:
        raise ValueError(f"the window ends ({iso(end)}) before it starts ({iso(start)})")
    lo = start - rib_lookback
    with _open_source(archive, client, backoff or Backoff(retries=3)) as source:
        names = collectors if collectors else source.collectors(lo, end)
        files: dict[str, list[ArchiveFile]] = {}
        gaps: list[Gap] = []
        for name in names:
            listing = source.listing(name, lo, end)
            files[name], collector_gaps = _select(name, listing, start, end, rib_lookback)
            gaps.extend(collector_gaps)
    return ArchivePlan(archive, start, end, files, gaps)


# --- choosing files from a listing -------------------------------------------------------------


@dataclass
class _Listing:
    """Every RIB and update file of one collector in the months of interest."""

    files: list[ArchiveFile] = field(default_factory=list)
    folders: dict[str, str] = field(default_factory=dict)  # month -> where its files were found
    unlisted: dict[str, str] = field(default_factory=dict)  # month -> why it could not be listed
    default_folder: Callable[[str], str] = str  # month -> where its files would be


def _select(
    name: str, listing: _Listing, start: int, end: int, lookback: int
) -> tuple[list[ArchiveFile], list[Gap]]:
    if not listing.folders and not listing.unlisted:
        detail = f"no files of {name} in the archive for these months"
        return [], [
            Gap(name, "rib", start - lookback, start, "missing", detail),
            Gap(name, "updates", start, end, "missing", detail),
        ]
    unique = {(f.kind, f.time): f for f in listing.files}  # a file may be listed in two places
    ribs = sorted((f for f in unique.values() if f.kind == "rib"), key=lambda f: f.time)
    all_updates = sorted((f for f in unique.values() if f.kind == "updates"), key=lambda f: f.time)
    interval = _update_interval(all_updates, collector_info(name).update_interval)
    gaps: list[Gap] = []
    usable = [f for f in ribs if start - lookback <= f.time <= start]
    rib = usable[-1] if usable else None
    if rib is None:
        detail = f"no RIB dump in the {lookback // HOUR} h before the window start"
        later = [f for f in ribs if f.time > start]
        if later:
            detail += f" (the first one after it is {iso(later[0].time)})"
        reason = "unlisted" if _months_unlisted(listing, start - lookback, start) else "missing"
        gaps.append(Gap(name, "rib", start - lookback, start, reason, detail))
    since = rib.time if rib else start
    updates = [
        replace(f, duration=interval) for f in all_updates if f.time < end and f.time + interval > since
    ]
    gaps.extend(_update_gaps(name, listing, updates, since, end, interval))
    return ([rib] if rib else []) + updates, gaps


def _update_interval(updates: list[ArchiveFile], default: int) -> int:
    """The usual spacing of the update files (RIS wrote one every 15 minutes before 2003)."""
    steps = Counter(b.time - a.time for a, b in pairwise(updates) if b.time > a.time)
    return steps.most_common(1)[0][0] if steps else default


def _months_unlisted(listing: _Listing, lo: int, hi: int) -> bool:
    return any(month_folder(m) in listing.unlisted for m in month_starts(lo, hi))


def _update_gaps(
    name: str, listing: _Listing, updates: list[ArchiveFile], since: int, end: int, interval: int
) -> list[Gap]:
    """A gap for each run of interval slots in [since, end) that no update file starts in."""
    project = collector_info(name).project
    starts = [f.time for f in updates]
    runs: list[tuple[str, list[int]]] = []  # (reason, slot times)
    slot = since - since % interval
    while slot < end:
        i = bisect.bisect_left(starts, slot)
        if not (i < len(starts) and starts[i] < slot + interval):
            reason = "unlisted" if month_folder(slot) in listing.unlisted else "missing"
            if runs and runs[-1][0] == reason and runs[-1][1][-1] == slot - interval:
                runs[-1][1].append(slot)
            else:
                runs.append((reason, [slot]))
        slot += interval
    gaps = []
    for reason, slots in runs:
        if reason == "unlisted":
            detail = listing.unlisted[month_folder(slots[0])]
        else:
            detail = f"{len(slots)} update file{'s' if len(slots) > 1 else ''} not in the archive"
        locations = tuple(
            expected_path(
                listing.folders.get(month_folder(t)) or listing.default_folder(month_folder(t)),
                project,
                "updates",
                t,
            )
            for t in slots
        )
        gaps.append(Gap(name, "updates", slots[0], slots[-1] + interval, reason, detail, locations))
    return gaps


# --- sources: folders (local or web) and the BGPKIT broker ------------------------------------


class _Source(Protocol):
    def collectors(self, lo: int, hi: int) -> list[str]: ...

    def listing(self, name: str, lo: int, hi: int) -> _Listing: ...


def is_remote(archive: str) -> bool:
    """An http(s) root, the public archives or a BGPKIT broker (else a local folder)."""
    return is_url(archive) or archive == "public" or archive == "bgpkit" or archive.startswith("bgpkit:")


@contextmanager
def _open_source(archive: str, client: httpx.Client | None, backoff: Backoff) -> Iterator[_Source]:
    if not is_remote(archive):
        if not os.path.isdir(archive):
            raise ArchiveError(f"{archive}: not a folder (nor an http(s) URL, 'public' or 'bgpkit')")
        yield _FolderArchive(_LocalLister(Path(archive)))
        return
    own_client = client is None
    http = client or httpx.Client(timeout=60.0, follow_redirects=True, headers={"User-Agent": USER_AGENT})
    try:
        if archive == "bgpkit" or archive.startswith("bgpkit:"):
            yield _BgpkitBroker(archive.partition(":")[2] or BGPKIT_BROKER, http, backoff)
        elif archive == "public":
            yield _PublicArchives(http, backoff)
        else:
            yield _FolderArchive(_HttpLister(archive, http, backoff))
    finally:
        if own_client:
            http.close()


@dataclass
class FolderEntries:
    """What a folder (or an index page) lists."""

    dirs: set[str]
    files: dict[str, int | None]  # name -> size, when the listing shows it


class _Lister(Protocol):
    def location(self, rel: str) -> str: ...

    def entries(self, rel: str) -> FolderEntries | None: ...


class _LocalLister:
    def __init__(self, root: Path) -> None:
        self.root = root

    def location(self, rel: str) -> str:
        return str(self.root / rel) if rel else str(self.root)

    def entries(self, rel: str) -> FolderEntries | None:
        try:
            with os.scandir(self.location(rel)) as it:
                found = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return None
        dirs = {e.name for e in found if e.is_dir()}
        files: dict[str, int | None] = {e.name: e.stat().st_size for e in found if e.is_file()}
        return FolderEntries(dirs, files)


class _HttpLister:
    def __init__(self, root: str, client: httpx.Client, backoff: Backoff) -> None:
        self.root = root.rstrip("/")
        self.client = client
        self.backoff = backoff

    def location(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def entries(self, rel: str) -> FolderEntries | None:
        url = self.location(rel) + "/"
        page = fetch_text(self.client, url, self.backoff)
        return None if page is None else parse_index_page(page, url)


class _FolderArchive:
    """An archive root holding collector folders, on disk or on a web server."""

    def __init__(self, lister: _Lister) -> None:
        self.lister = lister

    def collectors(self, lo: int, hi: int) -> list[str]:
        try:
            root = self.lister.entries("")
        except DownloadError as exc:
            raise ArchiveError(f"cannot list the archive root: {exc}") from exc
        if root is None:
            raise ArchiveError(f"{self.lister.location('')}: not found")
        names = {d for d in root.dirs if looks_like_collector(d)}
        if "bgpdata" in root.dirs:  # the legacy home of route-views2
            names.add("route-views2")
        return sorted(names)

    def listing(self, name: str, lo: int, hi: int) -> _Listing:
        def default_folder(month: str) -> str:
            return self.lister.location(month_folder_candidates(name, month)[0])

        out = _Listing(default_folder=default_folder)
        for first in month_starts(lo, hi):
            month = month_folder(first)
            try:
                self._list_month(name, month_folder_candidates(name, month), out)
            except DownloadError as exc:
                out.unlisted[month] = str(exc)
        return out

    def _list_month(self, name: str, candidates: list[str], out: _Listing) -> None:
        """The files of the first candidate folder of a month that exists."""
        for rel in candidates:
            entries = self.lister.entries(rel)
            if entries is None:
                continue
            out.folders[rel.rpartition("/")[2]] = self.lister.location(rel)
            folders = [(rel, entries)]
            for sub in ("RIBS", "UPDATES"):  # RouteViews keeps the two kinds apart
                if sub in entries.dirs and (sub_entries := self.lister.entries(f"{rel}/{sub}")) is not None:
                    folders.append((f"{rel}/{sub}", sub_entries))
            for folder, found in folders:
                for file_name, size in found.files.items():
                    parsed = parse_file_name(file_name)
                    if parsed is None:
                        continue
                    kind, ts = parsed
                    path = f"{folder}/{file_name}"
                    interval = collector_info(name).update_interval if kind == "updates" else 0
                    out.files.append(
                        ArchiveFile(name, kind, ts, interval, self.lister.location(path), path, size)
                    )
            return


class _PublicArchives:
    """The public RIS and RouteViews web servers, each collector on its own project's server."""

    def __init__(self, client: httpx.Client, backoff: Backoff) -> None:
        self.ris = _FolderArchive(_HttpLister(RIS_ROOT, client, backoff))
        self.routeviews = _FolderArchive(_HttpLister(ROUTEVIEWS_ROOT, client, backoff))

    def collectors(self, lo: int, hi: int) -> list[str]:
        raise ArchiveError("name the collectors to read from the public archives (e.g. rrc00,route-views2)")

    def listing(self, name: str, lo: int, hi: int) -> _Listing:
        archive = self.ris if collector_info(name).project == "ris" else self.routeviews
        return archive.listing(name, lo, hi)


# --- web server index pages --------------------------------------------------------------------

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)$")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class _IndexParser(HTMLParser):
    """Links of an index page, each with the text that follows it on its line or table row."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, list[str]]] = []
        self._in_link = False
        self._row_open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append((href, []))
                self._in_link = self._row_open = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_link = False
        elif tag == "tr":
            self._row_open = False

    def handle_data(self, data: str) -> None:
        if not self.links or self._in_link or not self._row_open:
            return
        after = self.links[-1][1]
        line, newline, _ = data.partition("\n")
        after.append(line)
        if newline and "".join(after).strip():
            self._row_open = False  # the line of a <pre> listing ends here


def parse_index_page(page: str, url: str) -> FolderEntries:
    """Folders and files listed by an Apache or nginx index page at ``url`` (which ends with ``/``).

    Only links to direct children count (not sort links, parents or other sites). File sizes are
    read from the rest of the line when shown (``142K``, ``1.2M`` or bytes).
    """
    parser = _IndexParser()
    parser.feed(page)
    base = urlsplit(url)
    dirs: set[str] = set()
    files: dict[str, int | None] = {}
    for href, after in parser.links:
        target = urlsplit(urljoin(url, href))
        if (target.scheme, target.netloc) != (base.scheme, base.netloc) or target.query:
            continue
        if not target.path.startswith(base.path) or target.path == base.path:
            continue
        rest = unquote(target.path[len(base.path) :])
        name = rest.rstrip("/")
        if not name or "/" in name or name in (".", ".."):
            continue
        if rest.endswith("/"):
            dirs.add(name)
        else:
            files[name] = _size("".join(after))
    return FolderEntries(dirs, files)


def _size(text: str) -> int | None:
    tokens = text.split()
    m = _SIZE_RE.match(tokens[-1]) if tokens else None
    return int(float(m.group(1)) * _UNITS[m.group(2)]) if m else None


# --- the BGPKIT broker -------------------------------------------------------------------------


class _BgpkitBroker:
    """Archive files from the BGPKIT broker's search API (``GET {broker}/search``, version 3).

    The broker indexes the public archives, so its answers point at their URLs; gaps still come
    from the expected file names, as the broker only knows what exists.
    """

    PAGE_SIZE = 1000

    def __init__(self, url: str, client: httpx.Client, backoff: Backoff) -> None:
        self.url = url.rstrip("/")
        self.client = client
        self.backoff = backoff
        self._found: dict[str, list[ArchiveFile]] | None = None  # all collectors, when asked for all

    def collectors(self, lo: int, hi: int) -> list[str]:
        files = self._search(lo, hi, None)
        self._found = {}
        for f in files:
            self._found.setdefault(f.collector, []).append(f)
        return sorted(self._found)

    def listing(self, name: str, lo: int, hi: int) -> _Listing:
        files = self._found.get(name, []) if self._found is not None else self._search(lo, hi, name)
        base = collector_info(name).base_url
        out = _Listing(files=files, default_folder=lambda month: f"{base}/{month}")
        for first in month_starts(lo, hi):
            out.folders.setdefault(month_folder(first), f"{base}/{month_folder(first)}")
        return out

    def _search(self, lo: int, hi: int, collector: str | None) -> list[ArchiveFile]:
        found: list[ArchiveFile] = []
        page = 1
        while True:
            params: dict[str, str | int] = {
                "ts_start": lo,
                "ts_end": hi,
                "page": page,
                "page_size": self.PAGE_SIZE,
            }
            if collector:
                params["collector_id"] = collector
            url = f"{self.url}/search?{httpx.QueryParams(params)}"
            try:
                text = fetch_text(self.client, url, self.backoff)
            except DownloadError as exc:
                raise ArchiveError(f"the broker did not answer: {exc}") from exc
            if text is None:
                raise ArchiveError(f"{self.url}/search: not found (is this a BGPKIT broker v3 URL?)")
            items, page_size = _parse_broker_answer(text)
            found.extend(items)
            # the server may cap the page size below what was asked for
            if not items or len(items) < min(page_size or self.PAGE_SIZE, self.PAGE_SIZE):
                return found
            page += 1


def parse_bgpkit_response(text: str) -> list[ArchiveFile]:
    """Archive files from a BGPKIT broker search answer.

    The answer is ``{"count", "page", "page_size", "error", "data": [item, ...], "meta"}`` with items
    ``{"ts_start", "ts_end", "collector_id", "data_type", "url", "rough_size", "exact_size"}``; times
    are UTC without a zone (``2021-10-04T15:30:00``; older versions add ``+00:00``), ``data_type`` is
    ``rib`` or ``updates`` (``update`` in older versions).
    """
    return _parse_broker_answer(text)[0]


def _parse_broker_answer(text: str) -> tuple[list[ArchiveFile], int | None]:
    """The files of one answer and the page size the broker used."""
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise ArchiveError(f"the broker's answer is not JSON: {exc}") from exc
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
        raise ArchiveError("the broker's answer has no data list")
    if answer.get("error"):
        raise ArchiveError(f"the broker says: {answer['error']}")
    files = []
    for item in answer["data"]:
        try:
            files.append(_broker_item(item))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(f"unexpected broker item {item!r}: {exc}") from exc
    page_size = answer.get("page_size")
    return files, page_size if isinstance(page_size, int) else None


def _broker_item(item: dict[str, Any]) -> ArchiveFile:
    if item["data_type"] not in ("rib", "update", "updates"):
        raise ValueError(f"unknown data_type {item['data_type']!r}")
    kind: FileKind = "rib" if item["data_type"] == "rib" else "updates"
    begin, finish = _broker_time(item["ts_start"]), _broker_time(item["ts_end"])
    url = str(item["url"])
    size = item.get("exact_size") or item.get("rough_size") or None
    duration = finish - begin if kind == "updates" else 0
    path = urlsplit(url).path.lstrip("/")
    return ArchiveFile(str(item["collector_id"]), kind, begin, duration, url, path, size)


def _broker_time(value: object) -> int:
    if isinstance(value, int | float):
        return int(value)
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())
