"""File discovery for a time window: local folders, web servers (index pages) and the BGPKIT broker."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from click.testing import CliRunner

from tests.conftest import SCENARIOS
from tests.faulty_http import FaultyHTTPServer, faulty_http_fixture  # noqa: F401  (the faulty_http fixture)
from transitwatch.sources.archive import (
    ArchiveError,
    ArchiveFile,
    ArchivePlan,
    parse_bgpkit_response,
    parse_index_page,
    plan_files,
)
from transitwatch.sources.cli import files as files_command
from transitwatch.sources.collectors import COLLECTORS, collector_info, guess_collector, parse_file_name
from transitwatch.timeutil import iso, parse_time

TTK = SCENARIOS / "kp-2017-ttk"
OUTAGE = SCENARIOS / "kp-2014-outage"
StartServer = Callable[..., FaultyHTTPServer]


def t(text: str) -> int:
    return parse_time(text)


def names(files: list[ArchiveFile]) -> list[str]:
    return [f.path.rsplit("/", 1)[1] for f in files]


def summary_rows(plan: ArchivePlan) -> list[tuple[str, str, int, int, str]]:
    """What a plan says independent of where the archive is (local folder or URL)."""
    return [(f.collector, f.kind, f.time, f.duration, f.path) for f in plan.all_files()]


# --- the collector table and names --------------------------------------------------------------


def test_collector_table_has_both_projects_and_their_intervals() -> None:
    assert collector_info("rrc00").base_url == "https://data.ris.ripe.net/rrc00"
    assert (collector_info("rrc21").rib_interval, collector_info("rrc21").update_interval) == (8 * 3600, 300)
    assert "rrc17" not in COLLECTORS  # never published
    assert COLLECTORS["route-views2"].base_url == "https://archive.routeviews.org/bgpdata"
    linx = COLLECTORS["route-views.linx"]
    assert linx.base_url == "https://archive.routeviews.org/route-views.linx/bgpdata"
    assert (linx.project, linx.rib_interval, linx.update_interval) == ("routeviews", 2 * 3600, 900)
    assert sum(c.project == "ris" for c in COLLECTORS.values()) == 26


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/rrc00/2017.10/updates.20171001.0800.gz", "rrc00"),
        (
            "http://archive.routeviews.org/route-views.linx/bgpdata/2017.10/RIBS/rib.20171001.0800.bz2",
            "route-views.linx",
        ),
        ("http://archive.routeviews.org/bgpdata/2017.10/UPDATES/updates.20171001.0800.bz2", "route-views2"),
        ("https://archive.routeviews.org/amsix.ams/bgpdata/2024.01/RIBS/rib.20240101.0000.bz2", "amsix.ams"),
        ("/tmp/updates.20171001.0800.gz", None),
    ],
)
def test_guess_collector(path: str, expected: str | None) -> None:
    assert guess_collector(path) == expected


def test_parse_file_name() -> None:
    assert parse_file_name("bview.20171001.0800.gz") == ("rib", t("2017-10-01T08:00Z"))
    assert parse_file_name("rib.20141222.1600.bz2") == ("rib", t("2014-12-22T16:00Z"))
    assert parse_file_name("updates.20171001.0805.gz") == ("updates", t("2017-10-01T08:05Z"))
    assert parse_file_name("updates.20171032.0805.gz") is None
    assert parse_file_name("updates.20171001.0805.gz.md5") is None


# --- plans from the scenarios, local and over HTTP ----------------------------------------------


@pytest.mark.parametrize("served", [False, True], ids=["local", "http"])
def test_plan_picks_last_rib_before_start_and_every_update_to_end(
    served: bool, faulty_http: StartServer
) -> None:
    archive = faulty_http(TTK).url if served else str(TTK)
    plan = plan_files(archive, ["rrc00", "route-views2"], t("2017-10-01T09:10Z"), t("2017-10-01T12:00Z"))
    assert plan.gaps == []
    rrc00, rv2 = plan.files["rrc00"], plan.files["route-views2"]
    # RIS dumps at 08:00 and 16:00; the updates from the dump on, 5-minute files, up to 11:55
    assert names(rrc00)[0] == "bview.20171001.0800.gz"
    assert names(rrc00)[1:] == [
        f"updates.20171001.{h:02d}{m:02d}.gz" for h in range(8, 12) for m in range(0, 60, 5)
    ]
    # RouteViews dumps every 2 h: the 08:00 one, then 15-minute files up to 11:45
    assert names(rv2)[0] == "rib.20171001.0800.bz2"
    assert names(rv2)[1:] == [
        f"updates.20171001.{h:02d}{m:02d}.bz2" for h in range(8, 12) for m in (0, 15, 30, 45)
    ]
    assert all(f.kind == "updates" and f.duration == 300 for f in rrc00[1:])
    assert all(f.duration == 900 for f in rv2[1:])
    for files in (rrc00, rv2):
        times = [f.time for f in files[1:]]
        assert times == sorted(times) and len(set(times)) == len(times)
    if served:
        assert rrc00[0].location == f"{archive}/rrc00/2017.10/bview.20171001.0800.gz"
    else:
        assert Path(rrc00[0].location).read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.parametrize("served", [False, True], ids=["local", "http"])
def test_plan_on_the_2014_outage_uses_the_latest_rib_of_each_collector(
    served: bool, faulty_http: StartServer
) -> None:
    archive = faulty_http(OUTAGE, index_style="nginx").url if served else str(OUTAGE)
    plan = plan_files(archive, None, t("2014-12-22T17:00Z"), t("2014-12-23T04:00Z"))
    assert sorted(plan.files) == ["route-views2", "rrc00"]
    assert plan.gaps == []
    assert names(plan.files["rrc00"])[0] == "bview.20141222.1600.gz"
    assert names(plan.files["route-views2"])[0] == "rib.20141222.1600.bz2"
    assert len(plan.files["rrc00"]) == 1 + 12 * 12  # 16:00 to 04:00 in 5-minute files
    assert len(plan.files["route-views2"]) == 1 + 12 * 4
    assert names(plan.files["rrc00"])[-1] == "updates.20141223.0355.gz"
    assert names(plan.files["route-views2"])[-1] == "updates.20141223.0345.bz2"


def test_http_plan_equals_local_plan_and_lists_only_the_months_needed(faulty_http: StartServer) -> None:
    server = faulty_http(TTK)
    window = t("2017-10-01T08:00Z"), t("2017-10-02T12:00Z")
    local = plan_files(str(TTK), None, *window)
    remote = plan_files(server.url, None, *window)
    assert summary_rows(remote) == summary_rows(local)
    # the whole scenario: one RIB and every update file per collector, nothing missing
    assert len(local.files["rrc00"]) == 1 + 28 * 12 and len(local.files["route-views2"]) == 1 + 28 * 4
    assert local.gaps == []
    listed = {r.path for r in server.log if r.path.endswith("/")}
    # the 24 h RIB lookback reaches into September, so that month is asked for too (and is absent)
    assert {p.split("/")[-2] for p in listed if p != "/"} <= {"2017.09", "2017.10", "RIBS", "UPDATES"}
    assert "/rrc00/2017.10/" in listed and "/route-views2/bgpdata/2017.10/UPDATES/" in listed


def test_window_before_the_first_rib_is_a_gap(faulty_http: StartServer) -> None:
    plan = plan_files(str(TTK), ["rrc00"], t("2017-10-01T07:00Z"), t("2017-10-01T09:00Z"))
    rib_gaps = [g for g in plan.gaps if g.kind == "rib"]
    assert len(rib_gaps) == 1
    assert rib_gaps[0].reason == "missing" and rib_gaps[0].end == t("2017-10-01T07:00Z")
    assert "2017-10-01T08:00:00Z" in rib_gaps[0].detail  # says where the first dump is
    # no RIB: the updates from the window start on, and the hour before the archive starts is a gap
    update_gaps = [g for g in plan.gaps if g.kind == "updates"]
    assert [(iso(g.start), iso(g.end), len(g.locations)) for g in update_gaps] == [
        ("2017-10-01T07:00:00Z", "2017-10-01T08:00:00Z", 12)
    ]
    assert update_gaps[0].locations[0].endswith("rrc00/2017.10/updates.20171001.0700.gz")
    assert names(plan.files["rrc00"]) == [f"updates.20171001.08{m:02d}.gz" for m in range(0, 60, 5)]


def _copy_archive(src: Path, dst: Path, skip: set[str], legacy_rv2: bool = False) -> None:
    """A copy of a scenario made of symlinks, without the files named in ``skip``."""
    for dirpath, _dirs, file_names in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        if legacy_rv2 and rel.parts[:1] == ("route-views2",):
            rel = Path(*rel.parts[1:])  # route-views2/bgpdata/... -> bgpdata/...
        for name in file_names:
            if name not in skip and name != "truth.json":
                (dst / rel).mkdir(parents=True, exist_ok=True)
                (dst / rel / name).symlink_to(Path(dirpath) / name)


@pytest.mark.parametrize("served", [False, True], ids=["local", "http"])
def test_missing_update_files_are_gaps(tmp_path: Path, served: bool, faulty_http: StartServer) -> None:
    _copy_archive(
        TTK, tmp_path, {"updates.20171001.1005.gz", "updates.20171001.1010.gz", "updates.20171001.1030.bz2"}
    )
    archive = faulty_http(tmp_path).url if served else str(tmp_path)
    plan = plan_files(archive, ["rrc00", "route-views2"], t("2017-10-01T09:00Z"), t("2017-10-01T11:00Z"))
    gaps = [(g.collector, g.kind, iso(g.start), iso(g.end), g.reason) for g in plan.gaps]
    assert gaps == [
        ("rrc00", "updates", "2017-10-01T10:05:00Z", "2017-10-01T10:15:00Z", "missing"),
        ("route-views2", "updates", "2017-10-01T10:30:00Z", "2017-10-01T10:45:00Z", "missing"),
    ]
    assert plan.gaps[0].locations == (
        f"{archive}/rrc00/2017.10/updates.20171001.1005.gz",
        f"{archive}/rrc00/2017.10/updates.20171001.1010.gz",
    )
    assert "updates.20171001.1005.gz" not in names(plan.files["rrc00"])
    assert len(plan.files["rrc00"]) == 1 + 3 * 12 - 2
    assert "2 gaps" in plan.summary() and "10:05:00Z" in plan.summary()


def test_route_views2_in_the_legacy_root_layout(tmp_path: Path, faulty_http: StartServer) -> None:
    _copy_archive(TTK, tmp_path, set(), legacy_rv2=True)
    assert (tmp_path / "bgpdata" / "2017.10" / "RIBS").is_dir()
    server = faulty_http(tmp_path)
    for archive in (str(tmp_path), server.url):
        plan = plan_files(archive, None, t("2017-10-01T10:30Z"), t("2017-10-01T11:00Z"))
        assert sorted(plan.files) == ["route-views2", "rrc00"]
        rv2 = plan.files["route-views2"]
        assert rv2[0].path == "bgpdata/2017.10/RIBS/rib.20171001.1000.bz2"
        assert names(rv2)[1:] == [f"updates.20171001.{hhmm}.bz2" for hhmm in ("1000", "1015", "1030", "1045")]
        assert plan.gaps == []


def test_unknown_collector_and_bad_archive(tmp_path: Path) -> None:
    plan = plan_files(str(TTK), ["rrc99"], t("2017-10-01T09:00Z"), t("2017-10-01T10:00Z"))
    assert plan.files["rrc99"] == []
    assert [(g.kind, g.reason) for g in plan.gaps] == [("rib", "missing"), ("updates", "missing")]
    with pytest.raises(ArchiveError):
        plan_files(str(tmp_path / "nowhere"), None, 0, 10)
    with pytest.raises(ValueError):
        plan_files(str(TTK), None, 10, 10)


def test_unlistable_month_is_reported_not_skipped(faulty_http: StartServer) -> None:
    server = faulty_http(TTK)
    server.fault("rrc00/2017.10/", status=503)  # every attempt
    from transitwatch.sources.download import Backoff

    quick = Backoff(retries=1, sleep=lambda s: None)
    plan = plan_files(server.url, ["rrc00"], t("2017-10-01T09:00Z"), t("2017-10-01T10:00Z"), backoff=quick)
    assert server.requests("rrc00/2017.10/") == 2
    assert {g.reason for g in plan.gaps} == {"unlisted"}
    assert {g.kind for g in plan.gaps} == {"rib", "updates"}
    assert "503" in plan.gaps[-1].detail


# --- index pages ------------------------------------------------------------------------------


def _row(name: str, when: str, size: str) -> str:
    cells = f'<td align="right">{when}  </td><td align="right">{size}</td>'
    return f'<tr><td><a href="{name}">{name}</a></td>{cells}</tr>'


APACHE_TABLE = "\n".join(
    [
        "<html><body><h1>Index of /rrc00/2017.10</h1><table>",
        '<tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=S;O=A">Size</a></th></tr>',
        '<tr><td><a href="/rrc00/">Parent Directory</a></td><td>&nbsp;</td><td align="right">  - </td></tr>',
        _row("bview.20171001.0800.gz", "2017-10-01 09:12", "1.5M"),
        _row("updates.20171001.0800.gz", "2017-10-01 08:06", "576K"),
        _row("RIBS/", "2017-10-01 08:06", "  - "),
        "</table><address>Apache Server at example.org Port 80</address></body></html>",
    ]
)

NGINX = "\n".join(
    [
        "<html><head><title>Index of /bgpdata/</title></head><body><h1>Index of /bgpdata/</h1><hr><pre>",
        '<a href="../">../</a>',
        '<a href="2017.10/">2017.10/</a>                          01-Nov-2017 00:00                   -',
        '<a href="http://elsewhere.example/x.gz">x.gz</a>              01-Nov-2017 00:00                 100',
        '<a href="rib.20171001.0800.bz2">rib.20171001.0800.bz2</a>     01-Oct-2017 08:16            23466815',
        '<a href="updates%2B.txt">updates+.txt</a>              01-Oct-2017 08:16            12',
        "</pre><hr></body></html>",
    ]
)


def test_parse_index_pages_of_both_servers() -> None:
    apache = parse_index_page(APACHE_TABLE, "http://example.org/rrc00/2017.10/")
    assert apache.dirs == {"RIBS"}
    assert apache.files == {
        "bview.20171001.0800.gz": int(1.5 * 2**20),
        "updates.20171001.0800.gz": 576 * 1024,
    }
    nginx = parse_index_page(NGINX, "http://example.org/bgpdata/")
    assert nginx.dirs == {"2017.10"}
    assert nginx.files == {"rib.20171001.0800.bz2": 23466815, "updates+.txt": 12}


# --- the BGPKIT broker ------------------------------------------------------------------------


def _broker_answer(archive_root: Path, files_url: str, query: str, cap: int) -> tuple[int, str, bytes]:
    """A BGPKIT broker v3 search answer about a scenario's files (written from the broker's
    documented format; page sizes are capped like a real server's)."""
    q = {k: v[0] for k, v in parse_qs(query).items()}
    lo, hi = int(q["ts_start"]), int(q["ts_end"])
    page, page_size = int(q.get("page", "1")), min(int(q.get("page_size", "100")), cap)
    wanted = set(q["collector_id"].split(",")) if "collector_id" in q else None
    items = []
    for path in sorted(archive_root.rglob("*")):
        parsed = parse_file_name(path.name)
        rel = path.relative_to(archive_root).as_posix()
        collector = guess_collector(rel)
        if parsed is None or collector is None or (wanted and collector not in wanted):
            continue
        kind, ts = parsed
        length = 0 if kind == "rib" else collector_info(collector).update_interval
        if ts + length < lo or ts > hi:
            continue
        items.append(
            {
                "ts_start": iso(ts).rstrip("Z"),  # the broker's times carry no zone
                "ts_end": iso(ts + length).rstrip("Z"),
                "collector_id": collector,
                "data_type": "rib" if kind == "rib" else "updates",
                "url": f"{files_url}/{rel}",
                "rough_size": path.stat().st_size // 1000 * 1000,
                "exact_size": path.stat().st_size,
            }
        )
    items.sort(key=lambda i: (i["ts_start"], i["data_type"], i["collector_id"]))
    data = items[(page - 1) * page_size : page * page_size]
    answer = {
        "count": len(data),
        "page": page,
        "page_size": page_size,
        "error": None,
        "data": data,
        "meta": {"latest_update_ts": "2024-01-01T00:00:00", "latest_update_duration": 3},
    }
    return 200, "application/json", json.dumps(answer).encode()


def test_bgpkit_broker_backend_gives_the_same_plan(faulty_http: StartServer) -> None:
    files_server = faulty_http(TTK)
    broker = faulty_http(TTK)
    broker.route("/v3/broker/search", lambda query: _broker_answer(TTK, files_server.url, query, cap=20))
    window = t("2017-10-01T09:10Z"), t("2017-10-01T12:00Z")
    via_broker = plan_files(f"bgpkit:{broker.url}/v3/broker", None, *window)
    listed = plan_files(files_server.url, None, *window)
    assert summary_rows(via_broker) == summary_rows(listed)
    assert [f.location for f in via_broker.all_files()] == [f.location for f in listed.all_files()]
    assert via_broker.gaps == []
    # more than 20 files in the window: several pages were asked for
    assert broker.requests("/v3/broker/search") > 2


def test_bgpkit_broker_gaps_and_errors(faulty_http: StartServer, tmp_path: Path) -> None:
    _copy_archive(TTK, tmp_path, {"updates.20171001.1005.gz"})
    broker = faulty_http(tmp_path)
    broker.route(
        "/v3/broker/search", lambda query: _broker_answer(tmp_path, "https://mirror.example", query, 1000)
    )
    plan = plan_files(
        f"bgpkit:{broker.url}/v3/broker", ["rrc00"], t("2017-10-01T09:00Z"), t("2017-10-01T11:00Z")
    )
    assert [(iso(g.start), g.reason) for g in plan.gaps] == [("2017-10-01T10:05:00Z", "missing")]
    assert plan.gaps[0].locations == ("https://data.ris.ripe.net/rrc00/2017.10/updates.20171001.1005.gz",)
    assert plan.files["rrc00"][0].location == "https://mirror.example/rrc00/2017.10/bview.20171001.0800.gz"

    with pytest.raises(ArchiveError, match="invalid collector"):
        parse_bgpkit_response(json.dumps({"count": 0, "error": "invalid collector", "data": []}))
    with pytest.raises(ArchiveError, match="unexpected broker item"):
        parse_bgpkit_response(json.dumps({"data": [{"collector_id": "rrc00", "data_type": "rib"}]}))
    old_style = {
        "data": [
            {
                "ts_start": "2021-10-04T15:30:00+00:00",
                "ts_end": "2021-10-04T15:45:00+00:00",
                "collector_id": "route-views2",
                "data_type": "update",
                "url": "http://archive.routeviews.org/bgpdata/2021.10/UPDATES/updates.20211004.1530.bz2",
                "rough_size": 1153433,
            }
        ]
    }
    (item,) = parse_bgpkit_response(json.dumps(old_style))
    assert (item.kind, item.time, item.duration, item.size) == (
        "updates",
        t("2021-10-04T15:30Z"),
        900,
        1153433,
    )
    assert item.path == "bgpdata/2021.10/UPDATES/updates.20211004.1530.bz2"


# --- the files command ------------------------------------------------------------------------


def test_files_command_table_and_json(tmp_path: Path) -> None:
    _copy_archive(TTK, tmp_path, {"updates.20171001.0910.gz"})
    runner = CliRunner()
    args = ["--archive", str(tmp_path), "--collectors", "rrc00", "--from", "2017-10-01T09:00Z"]
    table = runner.invoke(files_command, [*args, "--to", "2017-10-01T09:30Z"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["COLLECTOR", "KIND", "TIME", "LOCATION"]
    assert lines[1].split()[:3] == ["rrc00", "rib", "2017-10-01T08:00:00Z"]
    assert any(
        line.split()[:5] == ["rrc00", "updates", "2017-10-01T09:10:00Z", "2017-10-01T09:15:00Z", "missing"]
        for line in lines
    )

    out = runner.invoke(files_command, [*args, "--to", "2017-10-01T09:30Z", "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["files"][0]["kind"] == "rib" and len(doc["files"]) == 1 + 18 - 1
    assert doc["gaps"][0]["locations"] == [str(tmp_path / "rrc00/2017.10/updates.20171001.0910.gz")]

    bad = runner.invoke(files_command, [*args, "--to", "yesterday"])
    assert bad.exit_code == 2 and "--to" in bad.output
