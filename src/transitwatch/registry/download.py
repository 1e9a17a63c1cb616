"""Download the RIRs' delegated-extended files and RIPE's asn.txt into the cache, safely.

Each file is fetched to a temporary file beside its destination and renamed over it only once it is
complete and parses, so a reader never sees a partial or broken file under the real name, and a failed
download keeps the previous copy. Transient failures (connection errors, timeouts, 429 and 5xx) are
retried with exponential backoff. A previous copy makes the request conditional (``If-None-Match`` with
the stored ETag, ``If-Modified-Since`` with the stored Last-Modified or the file's mtime); a 304 keeps it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import filecmp
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from transitwatch import __version__
from transitwatch.registry.delegations import parse_delegated_file
from transitwatch.registry.names import ASN_NAMES_FILE, parse_as_names_file

OFFICIAL_URLS: dict[str, str] = {
    "delegated-afrinic-extended-latest": "https://ftp.afrinic.net/pub/stats/afrinic/delegated-afrinic-extended-latest",
    "delegated-apnic-extended-latest": "https://ftp.apnic.net/stats/apnic/delegated-apnic-extended-latest",
    "delegated-arin-extended-latest": "https://ftp.arin.net/pub/stats/arin/delegated-arin-extended-latest",
    "delegated-lacnic-extended-latest": "https://ftp.lacnic.net/pub/stats/lacnic/delegated-lacnic-extended-latest",
    "delegated-ripencc-extended-latest": "https://ftp.ripe.net/pub/stats/ripencc/delegated-ripencc-extended-latest",
    ASN_NAMES_FILE: "https://ftp.ripe.net/ripe/asnames/asn.txt",
}
"""File name in the registry directory -> where it is published."""

STATE_FILE = ".download-state.json"
"""Per-file ETag/Last-Modified/URL of the last good download, beside the files (dot-named: never loaded)."""

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# asn.txt lines that do not parse, as a share of all lines, above which a download is judged not asn.txt
# (an HTML error page served with 200, say); the real file has none.
_MAX_BAD_NAME_LINES = 0.01


def registry_urls(base_urls: str | Mapping[str, str] | None = None) -> dict[str, str]:
    """The download table, file name -> URL.

    ``None``: :data:`OFFICIAL_URLS`. A string: a mirror holding every file flat, ``BASE/<file name>``.
    A mapping: exactly those file names and URLs (the registry directory gets only those files).
    """
    if base_urls is None:
        return dict(OFFICIAL_URLS)
    if isinstance(base_urls, str):
        base = base_urls.rstrip("/")
        return {name: f"{base}/{name}" for name in OFFICIAL_URLS}
    for name in base_urls:
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            raise ValueError(f"{name!r} is not a plain file name for the registry directory")
    return dict(base_urls)


@dataclass(frozen=True, slots=True)
class FileResult:
    """What happened to one file: ``updated``, ``unchanged`` (304 or same bytes) or ``failed`` (old copy
    kept, if any). ``reason`` says why it failed; ``attempts`` counts requests made."""

    name: str
    url: str
    status: str
    reason: str | None = None
    size: int | None = None
    attempts: int = 0


@dataclass(slots=True)
class UpdateReport:
    """One :class:`FileResult` per file, in download-table order, and the directory written to."""

    registry_dir: Path
    files: list[FileResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return all(f.status != "failed" for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "registry_dir": str(self.registry_dir),
            "ok": self.ok,
            "files": [asdict(f) for f in self.files],
        }


class _DownloadError(Exception):
    """A failure of one attempt; ``transient`` ones are retried."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


def _validate(name: str, path: Path) -> str | None:
    """Why the downloaded file at ``path`` must not replace ``name``, or None if it is sound."""
    if name == ASN_NAMES_FILE:
        names = parse_as_names_file(path)
        if not names.by_asn:
            return "no 'ASN NAME, CC' lines"
        if len(names.issues) > _MAX_BAD_NAME_LINES * names.lines:
            return f"{len(names.issues)} of {names.lines} lines are not 'ASN NAME, CC' lines"
        return None
    problems = parse_delegated_file(path).problems()
    return "; ".join(problems) if problems else None


def _load_state(registry_dir: Path) -> dict[str, dict[str, str]]:
    try:
        state = json.loads((registry_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _save_state(registry_dir: Path, state: Mapping[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=registry_dir, prefix=f"{STATE_FILE}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1, sort_keys=True)
        os.replace(tmp, registry_dir / STATE_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _conditional_headers(dest: Path, url: str, saved: Mapping[str, str]) -> dict[str, str]:
    if not dest.is_file():
        return {}
    headers: dict[str, str] = {}
    # An ETag only means something to the server that issued it; a date works across mirrors.
    if saved.get("etag") and saved.get("url") == url:
        headers["If-None-Match"] = saved["etag"]
    mtime = dt.datetime.fromtimestamp(dest.stat().st_mtime, tz=dt.UTC)
    since = saved.get("last_modified") or email.utils.format_datetime(mtime, usegmt=True)
    headers["If-Modified-Since"] = since
    return headers


def _fetch_once(client: httpx.Client, url: str, headers: Mapping[str, str], tmp_path: Path) -> httpx.Response:
    """One GET streamed into ``tmp_path``; returns the response (body already written for a 200)."""
    try:
        with client.stream("GET", url, headers=dict(headers)) as response:
            if response.status_code == 304:
                return response
            if response.status_code != 200:
                raise _DownloadError(
                    f"HTTP {response.status_code} {response.reason_phrase}".strip(),
                    transient=response.status_code in TRANSIENT_STATUS,
                )
            with tmp_path.open("wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            return response
    except httpx.TransportError as exc:  # connect/read errors, timeouts, a body cut short
        raise _DownloadError(f"{type(exc).__name__}: {exc}", transient=True) from exc
    except httpx.HTTPError as exc:  # e.g. too many redirects, an invalid URL: retrying will not help
        raise _DownloadError(f"{type(exc).__name__}: {exc}", transient=False) from exc


def _update_one(
    client: httpx.Client,
    name: str,
    url: str,
    registry_dir: Path,
    state: dict[str, dict[str, str]],
    attempts: int,
    backoff: float,
    sleep: Callable[[float], None],
) -> FileResult:
    dest = registry_dir / name
    headers = _conditional_headers(dest, url, state.get(name, {}))
    fd, tmp = tempfile.mkstemp(dir=registry_dir, prefix=f".{name}.", suffix=".part")
    os.close(fd)
    tmp_path = Path(tmp)
    made = 0
    try:
        while True:
            made += 1
            try:
                response = _fetch_once(client, url, headers, tmp_path)
                break
            except _DownloadError as exc:
                if not exc.transient or made >= attempts:
                    return FileResult(name, url, "failed", str(exc), attempts=made)
                sleep(backoff * 2 ** (made - 1))
        if response.status_code == 304:
            if not dest.is_file():
                return FileResult(
                    name, url, "failed", "HTTP 304 Not Modified with no copy kept", attempts=made
                )
            return FileResult(name, url, "unchanged", size=dest.stat().st_size, attempts=made)
        problem = _validate(name, tmp_path)
        if problem is not None:
            return FileResult(name, url, "failed", f"rejected download: {problem}", attempts=made)
        size = tmp_path.stat().st_size
        new_state = {"url": url}
        if etag := response.headers.get("etag"):
            new_state["etag"] = etag
        if last_modified := response.headers.get("last-modified"):
            new_state["last_modified"] = last_modified
            with contextlib.suppress(TypeError, ValueError, OverflowError):
                stamp = email.utils.parsedate_to_datetime(last_modified).timestamp()
                os.utime(tmp_path, (stamp, stamp))
        # mkstemp makes the file owner-only; give it the old copy's mode (or the usual 0644) instead.
        os.chmod(tmp_path, dest.stat().st_mode & 0o777 if dest.is_file() else 0o644)
        unchanged = dest.is_file() and filecmp.cmp(tmp_path, dest, shallow=False)
        if not unchanged:
            os.replace(tmp_path, dest)
        # Recorded only once the copy on disk matches it, or a later 304 would pin a stale file.
        state[name] = new_state
        return FileResult(name, url, "unchanged" if unchanged else "updated", size=size, attempts=made)
    except OSError as exc:  # the local side: disk full, permissions; the old copy is still in place
        return FileResult(name, url, "failed", f"cannot write {dest}: {exc}", attempts=made)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def update_registry(
    cache_dir: str | Path,
    base_urls: str | Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
    *,
    attempts: int = 4,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> UpdateReport:
    """Download every registry file into ``<cache_dir>/registry`` and report file by file.

    ``base_urls`` is as :func:`registry_urls` takes it. ``client`` is used as given and not closed (its
    own timeouts and proxies apply); without one, a client following redirects is made for the run.
    Transient failures are tried ``attempts`` times in all, waiting ``backoff``, 2x, 4x... seconds
    (through ``sleep``) between tries. Never raises for a failed download: that file is reported
    ``failed`` and its previous copy kept.
    """
    registry_dir = Path(cache_dir) / "registry"
    registry_dir.mkdir(parents=True, exist_ok=True)
    report = UpdateReport(registry_dir)
    state = _load_state(registry_dir)
    own_client = client is None
    http = client or httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(60.0, connect=15.0),
        headers={"User-Agent": f"transitwatch/{__version__} (registry update)"},
    )
    try:
        for name, url in registry_urls(base_urls).items():
            result = _update_one(http, name, url, registry_dir, state, attempts, backoff, sleep)
            report.files.append(result)
            if result.status != "failed":
                _save_state(registry_dir, state)
    finally:
        if own_client:
            http.close()
    return report
