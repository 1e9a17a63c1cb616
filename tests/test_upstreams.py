"""`transitwatch upstreams` on the replay scenarios equals their ground truth (truth.json)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import REGISTRY, SCENARIOS
from transitwatch.cli import main

SCENARIO_NAMES = ["kp-2017-ttk", "kp-2014-outage"]


def scenario_window(name: str) -> tuple[str, str]:
    spec = json.loads((SCENARIOS / f"{name}.json").read_text())
    return spec["start"], spec["end"]


def run_upstreams(archive: str, name: str, *extra: str) -> dict[str, Any]:
    start, end = scenario_window(name)
    args = [
        "upstreams",
        "KP",
        "--archive",
        archive,
        "--from",
        start,
        "--to",
        end,
        "--registry",
        str(REGISTRY),
    ]
    result = CliRunner().invoke(main, [*args, "--format", "json", *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module", params=SCENARIO_NAMES)
def analysed(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], dict[str, Any]]:
    name = request.param
    truth = json.loads((SCENARIOS / name / "truth.json").read_text())
    return name, run_upstreams(str(SCENARIOS / name), name), truth


def test_target_and_peers(analysed: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    _name, out, truth = analysed
    assert out["target"]["country"] == truth["target"]["country"]
    assert out["target"]["asns"] == truth["target"]["asns"]
    assert out["target"]["prefixes"] == truth["prefixes"]
    assert out["full_feed_peers"] == truth["full_feed_peers"]
    got = {c["name"]: (c["peers"], c["full_feed_peers"]) for c in out["collectors"]}
    want = {n: (c["peers"], c["full_feed_peers"]) for n, c in truth["collectors"].items()}
    assert got == want


def test_series_equals_truth(analysed: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    _name, out, truth = analysed
    assert len(out["series"]) == len(truth["series_5min"])
    for mine, want in zip(out["series"], truth["series_5min"], strict=True):
        assert mine["time"] == want["t"]
        assert mine["routes"] == want["routes"], mine["time"]
        assert mine["by_upstream"] == want["by_upstream"], mine["time"]
        assert mine["peers_by_prefix"] == want["visible_prefixes_by_peers"], mine["time"]
        visible = sum(
            1 for n in want["visible_prefixes_by_peers"].values() if 2 * n > truth["full_feed_peers"]
        )
        assert mine["visible_prefixes"] == visible, mine["time"]


def test_links_equal_truth_to_the_second(analysed: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    _name, out, truth = analysed
    mine: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for link in out["links"]:
        mine[str(link["upstream"])][link["prefix"]].append(
            {"up": link["up"], "first_drop": link["first_drop"], "down": link["down"]}
        )
    want = {u: v["prefixes"] for u, v in truth["links"].items() if v["prefixes"]}
    assert {u: dict(p) for u, p in mine.items()} == want


def test_visibility_log_equals_truth(analysed: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    _name, out, truth = analysed
    assert [[v["time"], v["visible_prefixes"]] for v in out["visibility"]] == truth["visible_prefixes_log"]


def test_upstreams_first_seen_and_shares(analysed: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    _name, out, truth = analysed
    ups = {u["asn"]: u for u in out["upstreams"]}
    for key, link in truth["links"].items():
        if not link["prefixes"] and not link["in_first_rib"]:
            continue
        u = ups[int(key)]
        assert u["first_seen"] == link["first_seen_in_updates"]
        assert u["in_first_rib"] == link["in_first_rib"]
        assert u["name"] == link["name"]
    last = truth["series_5min"][-1]
    assert out["routes"] == last["routes"]
    for asn, u in ups.items():
        assert u["routes"] == last["by_upstream"].get(str(asn), 0)
        assert u["share"] == pytest.approx(u["routes"] / last["routes"], abs=1e-6)


def _union_episodes(truth: dict[str, Any], upstream: str) -> list[tuple[str | None, str | None]]:
    """When the upstream's total route count left and returned to 0, from truth's link intervals."""
    edges: list[tuple[str, int]] = []
    start_count = 0
    for ivs in truth["links"][upstream]["prefixes"].values():
        for iv in ivs:
            if iv["up"] is None:
                start_count += 1
            else:
                edges.append((iv["up"], +1))
            if iv["down"] is not None:
                edges.append((iv["down"], -1))
    episodes: list[tuple[str | None, str | None]] = []
    open_at: str | None = None if start_count else "closed"
    n = start_count
    # at equal times, process ups before downs (a link handing over to another keeps the count > 0)
    for t, d in sorted(edges, key=lambda e: (e[0], -e[1])):
        before = n
        n += d
        if before == 0 and n > 0:
            open_at = t
        elif before > 0 and n == 0:
            episodes.append((None if open_at is None else open_at, t))
            open_at = "closed"
    if n > 0:
        episodes.append((None if open_at is None else open_at, None))
    return episodes


def test_upstream_events_match_truth_links(analysed: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    _name, out, truth = analysed
    for key in truth["links"]:
        episodes = _union_episodes(truth, key)
        added = [
            e["time"] for e in out["events"] if e["type"] == "upstream_added" and str(e["upstream"]) == key
        ]
        lost = [
            e["time"] for e in out["events"] if e["type"] == "upstream_lost" and str(e["upstream"]) == key
        ]
        assert added == [a for a, _b in episodes if a is not None]
        assert lost == [b for _a, b in episodes if b is not None]
    for ev in out["events"]:
        assert ev["target"] == "KP"
        if ev["type"] == "upstream_added":
            assert ev["confirmed"] is None or ev["confirmed"] >= ev["time"]
        elif (
            ev["type"] == "upstream_lost"
        ):  # the loss is confirmed during the decline, at the latest when the count hits 0
            assert ev["decline_start"] <= ev["time"]
            assert ev["confirmed"] is None or ev["decline_start"] <= ev["confirmed"] <= ev["time"]


def test_ttk_named_and_first_seen_at_090751() -> None:
    out = run_upstreams(str(SCENARIOS / "kp-2017-ttk"), "kp-2017-ttk")
    ttk = next(e for e in out["events"] if e["type"] == "upstream_added" and e["upstream"] == 20485)
    assert ttk["time"] == "2017-10-01T09:07:51Z"
    assert ttk["name"] == "TRANSTELECOM" and ttk["country"] == "RU"
    assert ttk["prefixes"] == ["175.45.176.0/24", "175.45.178.0/24", "175.45.179.0/24"]
    assert ttk["confirmed"] is not None and ttk["confirmed"] >= ttk["time"]


def test_table_csv_html_formats_agree_with_json(tmp_path: Path) -> None:
    name = "kp-2017-ttk"
    data = run_upstreams(str(SCENARIOS / name), name)
    start, end = scenario_window(name)
    base = [
        "upstreams",
        "KP",
        "--archive",
        str(SCENARIOS / name),
        "--from",
        start,
        "--to",
        end,
        "--registry",
        str(REGISTRY),
    ]
    runner = CliRunner()
    table = runner.invoke(main, base, catch_exceptions=False).stdout
    for u in data["upstreams"]:
        assert f"AS{u['asn']}" in table and f"{u['routes']}/{data['routes']}" in table
    csv_text = runner.invoke(main, [*base, "--format", "csv"], catch_exceptions=False).stdout
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("asn,name,country,routes,share")
    assert [int(line.split(",")[0]) for line in lines[1:]] == [u["asn"] for u in data["upstreams"]]
    html_path = tmp_path / "r.html"
    png_path = tmp_path / "r.png"
    res = runner.invoke(main, [*base, "--format", "html", "-o", str(html_path), "--plot", str(png_path)])
    assert res.exit_code == 0, res.output
    html = html_path.read_text()
    assert "data:image/png;base64," in html and "TRANSTELECOM" in html and "<script" not in html
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
