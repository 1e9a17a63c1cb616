"""The downloader against a real HTTP server that fails on purpose: retries, resume, verification,
the cache (offline use, LRU eviction) and bounded parallelism."""

from __future__ import annotations

import bz2
import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SCENARIOS
from tests.faulty_http import FaultyHTTPServer, faulty_http_fixture  # noqa: F401  (the faulty_http fixture)
from transitwatch.sources.archive import ArchiveFile, plan_files
from transitwatch.sources.download import Backoff, CorruptData, Downloader, StreamCheck
from transitwatch.timeutil import parse_time

TTK = SCENARIOS / "kp-2017-ttk"
BVIEW = "rrc00/2017.10/bview.20171001.0800.gz"
StartServer = Callable[..., FaultyHTTPServer]


def quick_backoff(sleeps: list[float], retries: int = 4) -> Backoff:
    """Records the waits instead of waiting; the jitter is fixed so the waits are known."""
    return Backoff(retries=retries, base=0.01, cap=1.0, sleep=sleeps.append, jitter=lambda: 0.5)


def window_files(server: FaultyHTTPServer, to: str = "2017-10-01T09:30Z") -> list[ArchiveFile]:
    """rrc00's files for 09:00 to ``to``, as listed by the server: the 08:00 RIB dump and the updates."""
    plan = plan_files(server.url, ["rrc00"], parse_time("2017-10-01T09:00Z"), parse_time(to))
    assert plan.gaps == []
    return plan.all_files()


def by_name(files: list[ArchiveFile], name: str) -> ArchiveFile:
    (match,) = [f for f in files if f.path.endswith(name)]
    return match


def no_part_files(cache: Path) -> bool:
    return not list(cache.rglob("*.part"))


def same_as_source(path: str, file: ArchiveFile, root: Path = TTK) -> bool:
    return Path(path).read_bytes() == (root / file.path).read_bytes()


# --- downloads, faults and retries -------------------------------------------------------------


def test_fetch_mirrors_the_archive_and_the_cache_is_an_archive(
    faulty_http: StartServer, tmp_path: Path
) -> None:
    server = faulty_http(TTK)
    files = window_files(server)
    with Downloader(tmp_path / "cache", timeout=5) as dl:
        result = dl.fetch(files)
    assert result.ok and result.downloaded == len(files) == 1 + 18
    assert list(result.paths) == files  # request order
    for f, path in result.paths.items():
        assert path == str(tmp_path / "cache" / f.path)
        assert same_as_source(path, f)
    assert result.bytes_downloaded == sum((TTK / f.path).stat().st_size for f in files)
    assert no_part_files(tmp_path / "cache")
    # the cache keeps the archive layout, so it plans like the original
    again = plan_files(
        str(tmp_path / "cache"), ["rrc00"], parse_time("2017-10-01T09:00Z"), parse_time("2017-10-01T09:30Z")
    )
    assert [(f.kind, f.time, f.path) for f in again.all_files()] == [(f.kind, f.time, f.path) for f in files]


def test_server_errors_are_retried_with_exponential_backoff(faulty_http: StartServer, tmp_path: Path) -> None:
    server = faulty_http(TTK)
    files = window_files(server)
    flaky = by_name(files, "updates.20171001.0900.gz")
    busy = by_name(files, "updates.20171001.0905.gz")
    server.fault(flaky.path, status=500, times=3)
    server.fault(busy.path, status=503, times=1, retry_after=30)
    sleeps: list[float] = []
    with Downloader(tmp_path, timeout=5, backoff=quick_backoff(sleeps)) as dl:
        result = dl.fetch([flaky, busy])
    assert result.ok
    assert server.requests(flaky.path) == 4 and server.requests(busy.path) == 2
    # half fixed, half jitter (0.5 here): 0.0075, 0.015, 0.03; Retry-After 30 s is capped at 1 s
    assert sorted(sleeps) == pytest.approx([0.0075, 0.015, 0.03, 1.0])
    assert same_as_source(result.paths[flaky], flaky) and same_as_source(result.paths[busy], busy)


def test_persistent_server_error_becomes_a_gap_after_the_retries(
    faulty_http: StartServer, tmp_path: Path
) -> None:
    server = faulty_http(TTK)
    broken = by_name(window_files(server), "updates.20171001.0910.gz")
    server.fault(broken.path, status=500)
    sleeps: list[float] = []
    with Downloader(tmp_path, timeout=5, backoff=quick_backoff(sleeps, retries=3)) as dl:
        result = dl.fetch([broken])
    assert result.paths == {}
    (gap,) = result.gaps
    assert (gap.collector, gap.kind, gap.start, gap.end) == (
        "rrc00",
        "updates",
        broken.time,
        broken.time + 300,
    )
    assert gap.reason == "failed" and "HTTP 500" in gap.detail and gap.locations == (broken.location,)
    assert server.requests(broken.path) == 4 and len(sleeps) == 3
    assert not (tmp_path / broken.path).exists()


def test_not_found_is_a_gap_at_once(faulty_http: StartServer, tmp_path: Path) -> None:
    server = faulty_http(TTK)
    files = window_files(server)
    gone = by_name(files, "updates.20171001.0915.gz")
    server.not_found(gone.path)
    sleeps: list[float] = []
    with Downloader(tmp_path, timeout=5, backoff=quick_backoff(sleeps)) as dl:
        result = dl.fetch(files)
    assert [(g.reason, g.locations) for g in result.gaps] == [("not-found", (gone.location,))]
    assert server.requests(gone.path) == 1 and sleeps == []
    assert len(result.paths) == len(files) - 1 and gone not in result.paths
    assert no_part_files(tmp_path)


def test_cut_connection_is_resumed_with_range_requests(faulty_http: StartServer, tmp_path: Path) -> None:
    server = faulty_http(TTK)
    bview = by_name(window_files(server), "bview.20171001.0800.gz")
    size = (TTK / BVIEW).stat().st_size
    server.fault(BVIEW, cut_after=100_000, cut_times=2)  # two answers end after 100,000 bytes
    sleeps: list[float] = []
    with Downloader(tmp_path, timeout=5, backoff=quick_backoff(sleeps)) as dl:
        result = dl.fetch([bview])
    assert result.ok and same_as_source(result.paths[bview], bview)
    gets = [(r.range, r.status) for r in server.log if r.path == "/" + BVIEW]
    assert gets == [(None, 200), ("bytes=100000-", 206), ("bytes=200000-", 206)]
    assert result.bytes_downloaded == size  # nothing fetched twice
    assert no_part_files(tmp_path)


def test_cut_connection_restarts_when_the_server_ignores_ranges(
    faulty_http: StartServer, tmp_path: Path
) -> None:
    server = faulty_http(TTK)
    bview = by_name(window_files(server), "bview.20171001.0800.gz")
    server.fault(BVIEW, cut_after=50_000, cut_times=1, ignore_range=True)
    with Downloader(tmp_path, timeout=5, backoff=quick_backoff([])) as dl:
        result = dl.fetch([bview])
    assert result.ok and same_as_source(result.paths[bview], bview)
    assert [(r.range, r.status) for r in server.log if r.path == "/" + BVIEW] == [
        (None, 200),
        ("bytes=50000-", 200),
    ]


def test_partial_file_from_an_earlier_run_is_resumed(faulty_http: StartServer, tmp_path: Path) -> None:
    server = faulty_http(TTK)
    bview = by_name(window_files(server), "bview.20171001.0800.gz")
    data = (TTK / BVIEW).read_bytes()
    part = tmp_path / (BVIEW + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:250_000])
    with Downloader(tmp_path, timeout=5) as dl:
        result = dl.fetch([bview])
    assert result.ok and same_as_source(result.paths[bview], bview)
    assert [(r.range, r.status) for r in server.log if r.path == "/" + BVIEW] == [("bytes=250000-", 206)]
    assert result.bytes_downloaded == len(data) - 250_000
    assert not part.exists()


def test_partial_file_longer_than_the_file_starts_over(faulty_http: StartServer, tmp_path: Path) -> None:
    server = faulty_http(TTK)
    update = by_name(window_files(server), "updates.20171001.0900.gz")
    part = tmp_path / (update.path + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\x1f\x8b" + b"x" * 200_000)  # longer than the real file: the server says 416
    with Downloader(tmp_path, timeout=5, backoff=quick_backoff([])) as dl:
        result = dl.fetch([update])
    assert result.ok and same_as_source(result.paths[update], update)
    assert [r.status for r in server.log if r.path == "/" + update.path] == [416, 200]


def test_slow_response_within_the_timeout_succeeds(faulty_http: StartServer, tmp_path: Path) -> None:
    server = faulty_http(TTK)
    bview = by_name(window_files(server), "bview.20171001.0800.gz")
    server.fault(BVIEW, delay=0.2, chunk_delay=0.002)  # 0.2 s before the headers, then 37 slow chunks
    with Downloader(tmp_path, timeout=2, backoff=quick_backoff([])) as dl:
        result = dl.fetch([bview])
    assert result.ok and same_as_source(result.paths[bview], bview)
    assert server.requests(BVIEW) == 1


def test_response_slower_than_the_timeout_is_retried(faulty_http: StartServer, tmp_path: Path) -> None:
    server = faulty_http(TTK)
    update = by_name(window_files(server), "updates.20171001.0900.gz")
    server.fault(update.path, delay=2.0, slow_times=1)  # only the first answer is late
    sleeps: list[float] = []
    with Downloader(tmp_path, timeout=0.5, backoff=quick_backoff(sleeps)) as dl:
        result = dl.fetch([update])
    assert result.ok and same_as_source(result.paths[update], update)
    assert server.requests(update.path) == 2 and len(sleeps) == 1


def test_incomplete_or_wrong_content_is_never_used(faulty_http: StartServer, tmp_path: Path) -> None:
    root = tmp_path / "archive" / "rrc00" / "2017.10"
    root.mkdir(parents=True)
    whole = (TTK / "rrc00/2017.10/updates.20171001.0900.gz").read_bytes()
    (root / "updates.20171001.0900.gz").write_bytes(whole[: len(whole) // 2])  # truncated at the source
    (root / "updates.20171001.0905.gz").write_bytes(b"<html><body>Service unavailable</body></html>")
    shutil.copy(TTK / "rrc00/2017.10/updates.20171001.0910.gz", root)
    shutil.copy(TTK / "rrc00/2017.10/bview.20171001.0800.gz", root)
    server = faulty_http(tmp_path / "archive")
    # the updates from 08:00 to 09:00 are not in this archive (gaps of the plan); fetch what is
    plan = plan_files(server.url, ["rrc00"], parse_time("2017-10-01T09:00Z"), parse_time("2017-10-01T09:15Z"))
    files = plan.all_files()
    assert len(files) == 4
    sleeps: list[float] = []
    with Downloader(tmp_path / "cache", timeout=5, backoff=quick_backoff(sleeps, retries=1)) as dl:
        result = dl.fetch(files)
    assert [(g.reason, g.locations[0].rsplit("/", 1)[1]) for g in result.gaps] == [
        ("corrupt", "updates.20171001.0900.gz"),
        ("corrupt", "updates.20171001.0905.gz"),
    ]
    assert "end marker" in result.gaps[0].detail and "expected gzip" in result.gaps[1].detail
    assert [f.path.rsplit("/", 1)[1] for f in result.paths] == [
        "bview.20171001.0800.gz",
        "updates.20171001.0910.gz",
    ]
    cached = sorted(p.name for p in (tmp_path / "cache").rglob("*.gz*"))
    assert cached == ["bview.20171001.0800.gz", "updates.20171001.0910.gz"]  # no .part, no bad file


# --- the cache --------------------------------------------------------------------------------


def test_offline_run_reads_only_the_cache(faulty_http: StartServer, tmp_path: Path) -> None:
    server = faulty_http(TTK)
    files = window_files(server)
    later = window_files(server, to="2017-10-01T09:35Z")[-1]  # never downloaded
    with Downloader(tmp_path, timeout=5) as dl:
        first = dl.fetch(files)
    assert first.ok
    requests_before = server.total_requests()
    with Downloader(tmp_path, offline=True) as dl:
        second = dl.fetch([*files, later])
    assert server.total_requests() == requests_before
    assert second.paths == first.paths and second.cache_hits == len(files) and second.downloaded == 0
    assert [(g.reason, g.start) for g in second.gaps] == [("offline", later.time)]


def test_lru_eviction_keeps_the_cache_under_its_limit(faulty_http: StartServer, tmp_path: Path) -> None:
    server = faulty_http(TTK)
    a, b, c, d = window_files(server)[1:5]
    size = {f: (TTK / f.path).stat().st_size for f in (a, b, c, d)}
    limit = size[a] + size[c] + size[d]
    with Downloader(tmp_path, timeout=5, max_cache_bytes=limit) as dl:
        for batch in ([a], [b], [c], [a]):  # a is used again, so b is now the least recently used
            assert dl.fetch(batch).ok
        result = dl.fetch([d])
        assert result.evicted == [b.path]
        assert dl.index.total_bytes() <= limit
        assert dl.index.last_used() == [c.path, a.path, d.path]
    assert [(tmp_path / f.path).exists() for f in (a, b, c, d)] == [True, False, True, True]


def test_files_in_use_are_never_evicted(faulty_http: StartServer, tmp_path: Path) -> None:
    server = faulty_http(TTK)
    a, b, c, d = window_files(server)[1:5]
    with Downloader(tmp_path, timeout=5, max_cache_bytes=1) as dl:
        result = dl.fetch([a, b, c])
        assert result.ok and result.evicted == []
        assert all(Path(p).exists() for p in result.paths.values())
        assert "over its limit" in result.notes[0]
        later = dl.fetch([d])
    assert sorted(later.evicted) == sorted([a.path, b.path, c.path])
    assert (tmp_path / d.path).exists() and not (tmp_path / a.path).exists()


def test_local_archive_files_need_no_download(tmp_path: Path) -> None:
    plan = plan_files(str(TTK), ["rrc00"], parse_time("2017-10-01T09:00Z"), parse_time("2017-10-01T09:10Z"))
    files = plan.all_files()
    missing = ArchiveFile("rrc00", "updates", 0, 300, str(tmp_path / "updates.19700101.0000.gz"), "x.gz")
    with Downloader(tmp_path / "cache") as dl:
        result = dl.fetch([*files, missing])
    assert list(result.paths.values()) == [f.location for f in files]
    assert [(g.reason, g.locations) for g in result.gaps] == [("missing", (missing.location,))]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [".transitwatch-cache.sqlite"]


def test_parallel_downloads_are_bounded(faulty_http: StartServer, tmp_path: Path) -> None:
    server = faulty_http(TTK)
    files = window_files(server)[1:10]
    for f in files:
        server.fault(f.path, delay=0.05)  # long enough for the workers to overlap
    with Downloader(tmp_path, max_workers=3, timeout=5) as dl:
        result = dl.fetch(files)
    assert result.ok
    assert 2 <= server.max_active <= 3


def test_progress_bar_when_asked(
    faulty_http: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = faulty_http(TTK)
    files = window_files(server)[:4]
    with Downloader(tmp_path, timeout=5, progress=True) as dl:
        assert dl.fetch(files).ok
    assert "downloading 4/4 files" in capsys.readouterr().err
    with Downloader(tmp_path / "quiet", timeout=5) as dl:  # stderr is not a terminal here
        assert dl.fetch(files).ok
    assert capsys.readouterr().err == ""


# --- building blocks --------------------------------------------------------------------------


def _feed(check: StreamCheck, data: bytes, step: int = 1000) -> None:
    for i in range(0, len(data), step):
        check.feed(data[i : i + step])


@pytest.mark.parametrize(
    "path",
    [
        "rrc00/2017.10/updates.20171001.0900.gz",
        "route-views2/bgpdata/2017.10/UPDATES/updates.20171001.0900.bz2",
    ],
)
def test_stream_check_needs_the_end_marker(path: str) -> None:
    name = path.rsplit("/", 1)[1]
    source = TTK / path
    data = source.read_bytes()
    whole = StreamCheck(name)
    _feed(whole, data)
    whole.finish()
    twice = StreamCheck(name)  # concatenated streams, as `cat a.gz b.gz` makes
    _feed(twice, data + data)
    twice.finish()
    cut = StreamCheck(name)
    _feed(cut, data[:-10])
    with pytest.raises(CorruptData, match="end marker"):
        cut.finish()
    garbage = StreamCheck(name)
    with pytest.raises(CorruptData, match="garbage"):
        _feed(garbage, data + b"\0" * 100)


def test_stream_check_names_and_magic() -> None:
    with pytest.raises(CorruptData, match="expected bzip2"):
        StreamCheck("rib.bz2").feed(gzip.compress(b"x"))
    plain = StreamCheck("updates.mrt")
    plain.feed(b"not compressed at all")
    plain.finish()
    tiny = StreamCheck("updates.bz2")
    tiny.feed(bz2.compress(b"")[:2])
    with pytest.raises(CorruptData):
        tiny.finish()


def test_backoff_grows_exponentially_up_to_its_cap() -> None:
    low = Backoff(base=1.0, cap=10.0, jitter=lambda: 0.0)
    high = Backoff(base=1.0, cap=10.0, jitter=lambda: 1.0)
    assert [low.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert [high.delay(n) for n in range(5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert low.delay(0, retry_after=3) == 3.0 and low.delay(0, retry_after=99) == 10.0
