"""Fetching archive files into a local cache: parallel, retried, resumed, verified, size-bounded.

    with Downloader("~/.cache/transitwatch", max_cache_bytes=20 * 2**30) as dl:
        result = dl.fetch(plan.all_files())
    result.paths      # {ArchiveFile: local path} for every file it got, in request order
    result.gaps       # one Gap per file it could not get, with the reason

A file counts only once it is complete: it is written to ``<name>.part``, its length is checked against
the server's and its gzip or bzip2 stream must reach its end marker (checked while it arrives); only
then is it renamed to its real name. The cache mirrors the archive layout (``rrc00/2017.10/...``), so
the cache folder is itself an archive that :func:`transitwatch.sources.archive.plan_files` can read.
"""

from __future__ import annotations

import bz2
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
from isal import isal_zlib

from transitwatch import __version__
from transitwatch.mrt.io import BZIP2_MAGIC, GZIP_MAGIC, is_url
from transitwatch.progress import wanted as progress_wanted
from transitwatch.sources.collectors import FileKind
from transitwatch.timeutil import iso

if TYPE_CHECKING:
    from transitwatch.sources.archive import ArchiveFile

USER_AGENT = f"transitwatch/{__version__} (+https://github.com/transitwatch)"


@dataclass(frozen=True, slots=True)
class Gap:
    """Data an analysis will lack: ``kind`` files of ``collector`` for [start, end).

    ``reason`` is a short code: ``missing`` (not in the archive), ``unlisted`` (its folder could not
    be listed), ``not-found`` (HTTP 404/410), ``failed`` (gave up after retries or a refusal),
    ``corrupt`` (never arrived complete) or ``offline`` (not in the cache in offline mode).
    ``locations`` are the files that would have filled it, when known.
    """

    collector: str
    kind: FileKind
    start: int
    end: int
    reason: str
    detail: str = ""
    locations: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.collector} {self.kind} {iso(self.start)} to {iso(self.end)}: {self.reason}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_dict(self) -> dict[str, Any]:
        """For JSON output: which collector, which interval, why, and the files that would fill it."""
        return {
            "collector": self.collector,
            "kind": self.kind,
            "start": iso(self.start),
            "end": iso(self.end),
            "reason": self.reason,
            "detail": self.detail,
            "locations": list(self.locations),
        }


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter. ``sleep`` and ``jitter`` are injectable so tests need not wait."""

    retries: int = 5
    base: float = 0.5
    cap: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based): half fixed, half random."""
        ceiling = min(self.cap, self.base * 2**retry)
        wait = ceiling / 2 + ceiling / 2 * self.jitter()
        if retry_after is not None:  # the server said how long; never beyond our own cap
            wait = max(wait, min(retry_after, self.cap))
        return wait


class DownloadError(Exception):
    """A request failed for good (after retries, or with a status that retrying will not change)."""


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _NotFound(Exception):
    pass


class _Refused(Exception):
    pass


class CorruptData(Exception):
    """The bytes are not a complete gzip or bzip2 stream (or not the compression the name says)."""


def _is_transient_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def fetch_text(client: httpx.Client, url: str, backoff: Backoff) -> str | None:
    """The body of a small page (a directory index, a JSON answer); ``None`` on 404/410.

    Retried like file downloads; raises :class:`DownloadError` once the retries are spent.
    """
    last = ""
    for attempt in range(backoff.retries + 1):
        retry_after = None
        try:
            resp = client.get(url)
            if resp.status_code in (404, 410):
                return None
            if resp.status_code == 200:
                return resp.text
            if not _is_transient_status(resp.status_code):
                raise DownloadError(f"{url}: HTTP {resp.status_code}")
            last, retry_after = f"HTTP {resp.status_code}", _retry_after(resp)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if attempt < backoff.retries:
            backoff.sleep(backoff.delay(attempt, retry_after))
    raise DownloadError(f"{url}: {last} (after {backoff.retries + 1} attempts)")


# bz2 raises OSError; ISA-L its own error class (which its type stubs declare as an instance)
_DECOMPRESS_ERRORS = (OSError, cast(type[Exception], isal_zlib.error))


class StreamCheck:
    """Fed a file's bytes in order, tells whether its gzip or bzip2 stream(s) end properly.

    Catches the failures a length check cannot: a body cut short by a server that never said how
    long it was, or an error page served with status 200 in place of the file.
    """

    def __init__(self, name: str) -> None:
        self._expect = "gzip" if name.endswith(".gz") else "bzip2" if name.endswith(".bz2") else None
        self._head = b""
        self._kind: str | None = None
        self._dec: Any = None
        self._at_boundary = False  # the last stream ended and no new one has started

    def feed(self, data: bytes) -> None:
        if self._kind is None:
            self._head += data
            if len(self._head) < 3:
                return
            data, self._head = self._head, b""
            self._kind = self._sniff(data)
        if self._kind == "plain":
            return
        while data:
            if self._dec is None:
                self._dec = self._new_decoder()
                self._at_boundary = False
            try:
                self._dec.decompress(data)
            except _DECOMPRESS_ERRORS as exc:
                raise CorruptData(f"corrupt {self._kind} data: {exc}") from exc
            if not self._dec.eof:
                return
            data = self._dec.unused_data
            self._dec = None
            self._at_boundary = True
            magic = GZIP_MAGIC if self._kind == "gzip" else BZIP2_MAGIC
            if data and not magic.startswith(data[: len(magic)]):
                raise CorruptData(f"{len(data)} bytes of garbage after the {self._kind} stream")

    def finish(self) -> None:
        """Raise unless every stream that started also ended."""
        if self._kind is None:
            self._kind = self._sniff(self._head)
        if self._kind != "plain" and not self._at_boundary:
            raise CorruptData(f"the {self._kind} stream ends before its end marker")

    def _sniff(self, head: bytes) -> str:
        kind = "gzip" if head.startswith(GZIP_MAGIC) else "bzip2" if head.startswith(BZIP2_MAGIC) else "plain"
        if self._expect and kind != self._expect:
            raise CorruptData(f"expected {self._expect} data, got {head[:16]!r}")
        return kind

    def _new_decoder(self) -> Any:
        if self._kind == "bzip2":
            return bz2.BZ2Decompressor()
        return isal_zlib.decompressobj(wbits=31)  # ISA-L: about twice zlib's speed


class CacheIndex:
    """When each cached file was last used, in SQLite so that updates are atomic (also across processes)."""

    FILE_NAME = ".transitwatch-cache.sqlite"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # one connection shared by the download threads (under the lock), kept open because
        # closing the last connection checkpoints the write-ahead log (an fsync per use)
        self._conn = sqlite3.connect(root / self.FILE_NAME, timeout=30, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # a lost last touch after a crash is harmless
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, last_used INTEGER)"
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """The connection, inside one transaction (committed at the end, rolled back on error)."""
        with self._lock, self._conn:
            yield self._conn

    def touch(self, path: str, size: int) -> None:
        """Record a use of ``path`` (relative to the cache root) now."""
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO files VALUES (?, ?, ?) ON CONFLICT(path) DO UPDATE SET size=?, last_used=?",
                (path, size, time.time_ns(), size, time.time_ns()),
            )

    def total_bytes(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT COALESCE(SUM(size), 0) FROM files").fetchone()[0])

    def last_used(self) -> list[str]:
        """Cached paths, least recently used first."""
        with self._connect() as conn:
            return [row[0] for row in conn.execute("SELECT path FROM files ORDER BY last_used, path")]

    def evict(self, limit: int, keep: set[str]) -> tuple[list[str], int]:
        """Delete least recently used files, except ``keep``, until the cache holds at most ``limit``
        bytes. Returns the evicted paths and the bytes still held."""
        evicted = []
        with self._connect() as conn:
            rows = conn.execute("SELECT path, size FROM files ORDER BY last_used, path").fetchall()
            total = sum(size for _, size in rows)
            for path, size in rows:
                if total <= limit:
                    break
                if path in keep:
                    continue
                with suppress(FileNotFoundError):
                    (self.root / path).unlink()
                conn.execute("DELETE FROM files WHERE path = ?", (path,))
                total -= size
                evicted.append(path)
        return evicted, total


@dataclass
class FetchResult:
    """What :meth:`Downloader.fetch` got: local paths in request order, and a gap for each file it did not."""

    paths: dict[ArchiveFile, str] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    downloaded: int = 0  # files fetched over the network in this run
    cache_hits: int = 0
    bytes_downloaded: int = 0
    evicted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.gaps


class _Progress:
    """A rich progress bar of bytes with rate and ETA; does nothing when disabled."""

    def __init__(self, enabled: bool, files: int, expected_bytes: int) -> None:
        self._bar: Any = None
        self._lock = threading.Lock()
        self._files_done = 0
        self._files = files
        if not enabled or files == 0:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._bar.add_task(self._description(), total=expected_bytes or None)

    def _description(self) -> str:
        return f"downloading {self._files_done}/{self._files} files"

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def expect(self, nbytes: int) -> None:
        if self._bar is not None and nbytes:
            with self._lock:
                total = self._bar.tasks[0].total or 0
                self._bar.update(self._task, total=total + nbytes)

    def advance(self, nbytes: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, nbytes)

    def file_done(self) -> None:
        if self._bar is not None:
            with self._lock:
                self._files_done += 1
                self._bar.update(self._task, description=self._description())


class _FileProgress:
    """One file's share of the bar (the bytes shown always equal the bytes in its ``.part`` file),
    and the bytes it took from the network over all attempts."""

    def __init__(self, bar: _Progress, expected: int) -> None:
        self._bar = bar
        self._expected = expected
        self.shown = 0
        self.received = 0

    def expect(self, total: int) -> None:
        self._bar.expect(total - self._expected)
        self._expected = total

    def add(self, nbytes: int) -> None:
        self.shown += nbytes
        self._bar.advance(nbytes)

    def restart(self) -> None:
        self._bar.advance(-self.shown)
        self.shown = 0


class Downloader:
    """Fetches archive files into ``cache_dir``; see the module documentation.

    ``retries`` counts the attempts after the first for 5xx answers, timeouts and broken
    connections (a 404 is a gap at once); ``backoff``, when given, replaces it and sets the waits.
    ``timeout`` is per network operation (connect, each read). ``max_cache_bytes`` bounds the cache:
    least recently used files go first, never one that the current fetch uses. ``offline`` uses the
    cache alone. ``progress`` defaults to "stderr is a terminal".
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        max_workers: int = 4,
        retries: int = 5,
        timeout: float = 60.0,
        max_cache_bytes: int | None = None,
        offline: bool = False,
        *,
        backoff: Backoff | None = None,
        progress: bool | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir).expanduser()
        self.max_workers = max(1, max_workers)
        self.backoff = backoff if backoff is not None else Backoff(retries=retries)
        self.max_cache_bytes = max_cache_bytes
        self.offline = offline
        self.progress = progress_wanted(progress)
        self.index = CacheIndex(self.cache_dir)
        self._evict_lock = threading.Lock()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            limits=httpx.Limits(max_connections=self.max_workers, max_keepalive_connections=self.max_workers),
        )

    def close(self) -> None:
        self._client.close()
        self.index.close()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cache_path(self, file: ArchiveFile) -> Path:
        """Where ``file`` lives in the cache: the archive's own layout under ``cache_dir``."""
        parts = Path(file.path).parts
        if not parts or Path(file.path).is_absolute() or ".." in parts:
            raise ValueError(f"unsafe archive path {file.path!r}")
        return self.cache_dir.joinpath(*parts)

    def fetch(self, files: Iterable[ArchiveFile]) -> FetchResult:
        """Local paths for every file it could get and a gap (with the reason) for every other."""
        files = list(dict.fromkeys(files))
        result = FetchResult()
        got: dict[ArchiveFile, str] = {}
        to_download: list[ArchiveFile] = []
        keep = {f.path for f in files if is_url(f.location)}
        for f in files:
            if not is_url(f.location):  # a local archive: nothing to fetch
                if os.path.isfile(f.location):
                    got[f] = f.location
                else:
                    result.gaps.append(_gap(f, "missing", "no such file"))
                continue
            dest = self.cache_path(f)
            if dest.is_file():
                self.index.touch(f.path, dest.stat().st_size)
                got[f] = str(dest)
                result.cache_hits += 1
            elif self.offline:
                result.gaps.append(_gap(f, "offline", "not in the cache"))
            else:
                to_download.append(f)

        expected = sum(f.size or 0 for f in to_download)
        with _Progress(self.progress, len(to_download), expected) as bar:
            workers = min(self.max_workers, len(to_download)) or 1
            with ThreadPoolExecutor(workers, thread_name_prefix="transitwatch-download") as pool:
                outcomes = pool.map(lambda f: self._download(f, bar, keep, result), to_download)
                for f, (path, gap) in zip(to_download, outcomes, strict=True):
                    if path is not None:
                        got[f] = path
                    if gap is not None:
                        result.gaps.append(gap)
        result.paths = {f: got[f] for f in files if f in got}
        result.gaps.sort(key=lambda g: (g.collector, g.start, g.kind))
        return result

    def _download(
        self, file: ArchiveFile, bar: _Progress, keep: set[str], result: FetchResult
    ) -> tuple[str | None, Gap | None]:
        try:
            return self._download_with_retries(file, bar, keep, result)
        finally:
            bar.file_done()

    def _download_with_retries(
        self, file: ArchiveFile, bar: _Progress, keep: set[str], result: FetchResult
    ) -> tuple[str | None, Gap | None]:
        dest = self.cache_path(file)
        part = dest.with_name(dest.name + ".part")
        last_error = ""
        retry_after: float | None = None
        shown = _FileProgress(bar, file.size or 0)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            for attempt in range(self.backoff.retries + 1):
                if attempt:
                    self.backoff.sleep(self.backoff.delay(attempt - 1, retry_after))
                try:
                    self._transfer(file, part, shown)
                except _NotFound as exc:
                    part.unlink(missing_ok=True)
                    return None, _gap(file, "not-found", str(exc))
                except _Refused as exc:
                    part.unlink(missing_ok=True)
                    return None, _gap(file, "failed", str(exc))
                except _Transient as exc:
                    last_error, retry_after = str(exc), exc.retry_after
                    continue
                except CorruptData as exc:  # start again from scratch: the bytes we have are wrong
                    part.unlink(missing_ok=True)
                    shown.restart()
                    last_error, retry_after = f"corrupt: {exc}", None
                    continue
                os.replace(part, dest)
                self._added(file, dest, shown.received, keep, result)
                return str(dest), None
        except OSError as exc:  # the cache disk, not the network
            return None, _gap(file, "failed", f"{type(exc).__name__}: {exc}")
        # the .part file stays: a later run resumes it, and it is never used under the real name
        reason = "corrupt" if last_error.startswith("corrupt") else "failed"
        return None, _gap(file, reason, f"{last_error} (after {self.backoff.retries + 1} attempts)")

    def _added(
        self, file: ArchiveFile, dest: Path, received: int, keep: set[str], result: FetchResult
    ) -> None:
        self.index.touch(file.path, dest.stat().st_size)
        with self._evict_lock:
            result.downloaded += 1
            result.bytes_downloaded += received
            if self.max_cache_bytes is None:
                return
            evicted, held = self.index.evict(self.max_cache_bytes, keep)
            result.evicted.extend(evicted)
            if held > self.max_cache_bytes:
                note = (
                    f"the cache holds {held} bytes, over its limit of {self.max_cache_bytes}: "
                    "the files of this fetch are never evicted"
                )
                if note not in result.notes[-1:]:
                    result.notes.append(note)

    def _transfer(self, file: ArchiveFile, part: Path, shown: _FileProgress) -> None:
        """One attempt: resume or start ``part``, stream the body into it and check it."""
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        check = StreamCheck(Path(file.path).name)
        try:
            with self._client.stream("GET", file.location, headers=headers) as resp:
                status = resp.status_code
                if status in (404, 410):
                    raise _NotFound(f"HTTP {status}")
                if status == 416 and offset:
                    total = _content_range_total(resp.headers.get("Content-Range", ""))
                    if total == offset:  # the partial file was complete already
                        _feed_file(check, part)
                        check.finish()
                        return
                    part.unlink()
                    shown.restart()
                    raise _Transient("HTTP 416 for the resumed range; starting again")
                if _is_transient_status(status):
                    raise _Transient(f"HTTP {status}", _retry_after(resp))
                if status == 206 and offset:
                    start, total = _content_range(resp.headers.get("Content-Range", ""))
                    if start != offset:
                        part.unlink()
                        shown.restart()
                        raise _Transient(f"asked for bytes from {offset}, got them from {start}")
                    _feed_file(check, part)
                    shown.add(offset - shown.shown)  # a .part left by an earlier run
                    mode = "ab"
                elif status == 200:  # a fresh start, also when the server ignored the range
                    shown.restart()
                    offset, mode = 0, "wb"
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                else:
                    raise _Refused(f"HTTP {status}")
                if total is not None:
                    shown.expect(total)
                with open(part, mode) as out:
                    for chunk in resp.iter_raw():  # unbuffered: keep every byte before a cut
                        out.write(chunk)
                        shown.received += len(chunk)
                        shown.add(len(chunk))
                        check.feed(chunk)
        except httpx.TransportError as exc:  # timeouts, refused or cut connections
            raise _Transient(f"{type(exc).__name__}: {exc or 'no detail'}") from exc
        size = part.stat().st_size
        if total is not None and size != total:
            raise _Transient(f"got {size} of {total} bytes")
        check.finish()


def _gap(file: ArchiveFile, reason: str, detail: str) -> Gap:
    end = file.time + file.duration
    return Gap(file.collector, file.kind, file.time, end, reason, detail, (file.location,))


def _feed_file(check: StreamCheck, path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            check.feed(chunk)


def _content_range(value: str) -> tuple[int, int | None]:
    """(first byte, total length) from ``bytes 100-199/200``; the total may be ``*`` (unknown)."""
    try:
        unit, _, rest = value.partition(" ")
        span, _, total = rest.partition("/")
        first = int(span.split("-")[0])
    except ValueError:
        return -1, None
    if unit != "bytes":
        return -1, None
    return first, int(total) if total.isdigit() else None


def _content_range_total(value: str) -> int | None:
    """The total length from a 416's ``bytes */200``."""
    total = value.rpartition("/")[2]
    return int(total) if total.isdigit() else None
