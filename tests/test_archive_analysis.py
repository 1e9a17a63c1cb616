"""The upstream analysis over a faulty HTTP archive equals the local-folder analysis, gap apart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.conftest import REGISTRY, SCENARIOS
from tests.faulty_http import FaultyHTTPServer
from transitwatch.cli import main

SCENARIO = SCENARIOS / "kp-2017-ttk"
WINDOW = ["--from", "2017-10-01T08:00:00Z", "--to", "2017-10-01T16:00:00Z"]
MISSING = "rrc00/2017.10/updates.20171001.1110.gz"  # an update file holding target updates


def analyse(archive: str, *extra: str) -> dict[str, Any]:
    args = ["upstreams", "KP", "--archive", archive, *WINDOW, "--registry", str(REGISTRY), "--format", "json"]
    res = CliRunner().invoke(main, [*args, *extra], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def without_gaps(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in ("gaps", "issues")}


def test_faulty_http_archive_equals_local_folder_then_offline_uses_the_cache(tmp_path: Path) -> None:
    # the reference: the same archive on disk, without the file the server will not have
    local = tmp_path / "local"
    shutil.copytree(SCENARIO, local, ignore=shutil.ignore_patterns("truth.json"))
    (local / MISSING).unlink()
    reference = analyse(str(local))
    assert [g["reason"] for g in reference["gaps"]] == ["missing"]
    full = analyse(str(SCENARIO))
    assert without_gaps(full) != without_gaps(reference), "the missing file matters to the result"

    server = FaultyHTTPServer(SCENARIO).start()
    try:
        server.fault("rrc00/2017.10/bview.20171001.0800.gz", status=500, times=2)  # 500 twice, then OK
        server.fault("route-views2/bgpdata/2017.10/RIBS/rib.20171001.0800.bz2", cut_after=20_000)  # cut once
        server.fault("rrc00/2017.10/updates.20171001.0900.gz", delay=0.3, chunk_delay=0.01)  # slow
        server.not_found(MISSING)
        cache = tmp_path / "cache"
        over_http = analyse(server.url, "--cache", str(cache))
        assert without_gaps(over_http) == without_gaps(reference)
        [gap] = over_http["gaps"]
        assert gap["collector"] == "rrc00" and gap["reason"] == "not-found"
        assert (gap["start"], gap["end"]) == ("2017-10-01T11:10:00Z", "2017-10-01T11:15:00Z")
        assert server.requests("rrc00/2017.10/bview.20171001.0800.gz") == 3
        assert not list(cache.rglob("*.part")), "no partial file is left in the cache"
        before = server.total_requests()
        offline = analyse(server.url, "--cache", str(cache), "--offline")
    finally:
        server.stop()
    assert without_gaps(offline) == without_gaps(reference)
    assert server.total_requests() == before, "offline mode made no request"
    # the same cache serves the public archives and a broker offline: no network at all
    for archive in ("public", "bgpkit"):
        cached = analyse(archive, "--collectors", "route-views2,rrc00", "--cache", str(cache), "--offline")
        assert without_gaps(cached) == without_gaps(reference), archive


def test_cache_limit_evicts_the_least_recently_used_files(tmp_path: Path) -> None:
    """`--cache-limit` reaches the downloader: a later run under a small limit evicts the files of an
    earlier one, never its own."""
    cache = tmp_path / "cache"
    server = FaultyHTTPServer(SCENARIO).start()
    url = server.url
    try:
        analyse(url, "--collectors", "rrc00", "--cache", str(cache))
        assert list((cache / "rrc00").rglob("*.gz"))
        analyse(url, "--collectors", "route-views2", "--cache", str(cache), "--cache-limit", "1K")
    finally:
        server.stop()
    assert not list((cache / "rrc00").rglob("*.gz")), "the earlier run's files were evicted"
    assert list((cache / "route-views2").rglob("*.bz2")), "this run's files are kept, whatever the limit"
    bad = CliRunner().invoke(main, ["upstreams", "KP", "--archive", url, *WINDOW, "--cache-limit", "lots"])
    assert bad.exit_code == 2 and "not a size" in bad.output
