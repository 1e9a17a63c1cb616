"""Origin anomalies (`transitwatch anomalies`) on small worlds built with transitwatch.scenarios:
each kind fires with the suspect origin, paths, peers and collectors, and stays quiet when it must."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from transitwatch.cli import main
from transitwatch.scenarios import (
    KP_PREFIXES,
    Action,
    Announce,
    BackgroundSpec,
    BuildResult,
    CollectorSpec,
    NamedAs,
    ScenarioSpec,
    ScenarioTarget,
    TargetOrigin,
    Upstream,
    WithdrawAnnouncement,
    build,
)

STAR, CHINA_UNICOM = 131279, 4837
HIJACKER, SECOND_ORIGIN, NEIGHBOUR = 64500, 64501, 64502  # documentation AS numbers (RFC 5398)
ANOMALY_TYPES = {"origin_change", "moas", "more_specific", "unexpected_space"}

BASE = ScenarioSpec(
    name="kp-anomalies",
    seed=7,
    start="2017-10-01T08:00:00Z",
    end="2017-10-01T10:00:00Z",
    collectors=(CollectorSpec("rrc00", "ris", 6, 1), CollectorSpec("route-views2", "routeviews", 6, 1)),
    background=BackgroundSpec(ipv4=40, ipv6=8, churn_per_5min=1),
    target=ScenarioTarget("KP", (TargetOrigin(STAR, "STAR-KP Ryugyong-dong", KP_PREFIXES),)),
    upstreams=(
        Upstream(CHINA_UNICOM, "CHINA169-BACKBONE CHINA UNICOM China169 Backbone", "CN", (3356, 1299, 174)),
    ),
    initial_carriers={p: (CHINA_UNICOM,) for p in KP_PREFIXES},
    names=(NamedAs(HIJACKER, "EXAMPLE-HIJACK Documentation AS", "NL"),),
)

WORLDS: dict[str, tuple[Action, ...]] = {
    "quiet": (),
    "hijack": (
        Announce("2017-10-01T08:30:00Z", "175.45.178.0/24", HIJACKER, None, 0.5),
        WithdrawAnnouncement("2017-10-01T09:10:00Z", "175.45.178.0/24", HIJACKER),
    ),
    "hijack_seen_by_few": (Announce("2017-10-01T08:30:00Z", "175.45.178.0/24", HIJACKER, None, 0.1),),
    "moas": (Announce("2017-10-01T08:30:00Z", "175.45.177.0/24", SECOND_ORIGIN, 3356, 0.5),),
    "more_specific": (Announce("2017-10-01T08:30:00Z", "175.45.179.128/25", NEIGHBOUR, None, 0.6),),
    "own_more_specific": (Announce("2017-10-01T08:30:00Z", "175.45.179.128/25", STAR, CHINA_UNICOM, 0.6),),
    "unexpected_space": (Announce("2017-10-01T08:30:00Z", "198.51.100.0/24", STAR, CHINA_UNICOM, 1.0),),
    # a neighbour's more-specific that the target then announces too, before the neighbour leaves
    "more_specific_taken_over": (
        Announce("2017-10-01T08:30:00Z", "175.45.179.128/25", NEIGHBOUR, None, 0.6),
        Announce("2017-10-01T09:00:00Z", "175.45.179.128/25", STAR, CHINA_UNICOM, 0.5),
        WithdrawAnnouncement("2017-10-01T09:30:00Z", "175.45.179.128/25", NEIGHBOUR),
    ),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], BuildResult]:
    built: dict[str, BuildResult] = {}

    def get(name: str) -> BuildResult:
        if name not in built:
            spec = dataclasses.replace(BASE, name=f"kp-{name}", timeline=WORLDS[name])
            built[name] = build(spec, tmp_path_factory.mktemp(name))
        return built[name]

    return get


def run(w: BuildResult, command: str, *extra: str) -> dict[str, Any]:
    window = w.load_manifest()["window"]
    args = [command, "KP", "--archive", str(w.archive), "--from", window["from"], "--to", window["to"]]
    res = CliRunner().invoke(main, [*args, "--registry", str(w.registry), "--format", "json", *extra])
    assert res.exit_code == 0, res.output
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def anomalies(w: BuildResult, *extra: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = run(w, "anomalies", *extra)["events"]
    assert {e["type"] for e in events} <= ANOMALY_TYPES
    return events


def one(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [e for e in events if e["type"] == kind]
    assert len(found) == 1, [e["type"] for e in events]
    return found[0]


def action_log(w: BuildResult, index: int) -> dict[str, Any]:
    entry: dict[str, Any] = w.load_manifest()["timeline"][index]
    return entry


def peer_keys(peers: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    return {(p["collector"], p["address"], p["asn"]) for p in peers}


def evidence_keys(event: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {(e["collector"], e["peer_address"], e["peer_asn"]) for e in event["evidence"]}


def full_feed_peers(w: BuildResult) -> set[tuple[str, str, int]]:
    return peer_keys([p for c in w.load_manifest()["collectors"] for p in c["peers"] if p["full_feed"]])


# ---- origin_change: a possible hijack ----------------------------------------------------------


def test_hijack_is_an_origin_change_with_its_evidence(world: Callable[[str], BuildResult]) -> None:
    w = world("hijack")
    announced, withdrawn = action_log(w, 0), action_log(w, 1)
    ev = one(anomalies(w), "origin_change")
    assert ev["prefix"] == "175.45.178.0/24"
    assert ev["suspect_origin"] == HIJACKER and ev["suspect_name"] == "EXAMPLE-HIJACK"
    assert ev["expected"] == [STAR]
    # the peers that chose the hijacker's route, no other, at both collectors
    assert evidence_keys(ev) == peer_keys(announced["peers"])
    assert ev["peers"] == len(announced["peers"]) == 6
    assert ev["collectors"] == ["route-views2", "rrc00"]
    assert all(e["as_path"].split()[-1] == str(HIJACKER) for e in ev["evidence"])
    assert all(e["as_path"].split()[0] == str(e["peer_asn"]) for e in ev["evidence"])
    # from the first peer's update to the last peer's return to the legitimate route
    assert ev["time"] == announced["first_update"] == "2017-10-01T08:30:00Z"
    assert announced["first_update"] < ev["confirmed"] <= announced["last_update"]
    assert ev["end"] == withdrawn["last_update"]


def test_hijack_needs_min_peers(world: Callable[[str], BuildResult]) -> None:
    w = world("hijack")
    assert [e["prefix"] for e in anomalies(w, "--min-peers", "6") if e["type"] == "origin_change"] == [
        "175.45.178.0/24"
    ]
    assert anomalies(w, "--min-peers", "7") == []  # one more than the six peers that saw it


def test_hijack_seen_by_fewer_than_min_peers_is_not_reported(world: Callable[[str], BuildResult]) -> None:
    w = world("hijack_seen_by_few")
    assert len(action_log(w, 0)["peers"]) == 2  # one per collector
    assert anomalies(w) == []
    ev = one(anomalies(w, "--min-peers", "2"), "origin_change")
    assert evidence_keys(ev) == peer_keys(action_log(w, 0)["peers"])


# ---- moas ---------------------------------------------------------------------------------------


def test_second_origin_is_moas(world: Callable[[str], BuildResult]) -> None:
    w = world("moas")
    events = anomalies(w)
    ev = one(events, "moas")
    assert ev["prefix"] == "175.45.177.0/24"
    assert ev["origins"] == [SECOND_ORIGIN, STAR]
    assert ev["end"] is None  # both origins still there at the window end
    assert ev["collectors"] == ["route-views2", "rrc00"]
    assert evidence_keys(ev) <= full_feed_peers(w)
    # its paths cross the upstream it was announced through
    second = [e for e in ev["evidence"] if e["as_path"].endswith(str(SECOND_ORIGIN))]
    assert second and all(e["as_path"].split()[-2:] == ["3356", str(SECOND_ORIGIN)] for e in second)
    assert one(events, "origin_change")["suspect_origin"] == SECOND_ORIGIN


@pytest.mark.parametrize("allow", ["AS64501", "64501", "175.45.177.0/24=AS64501"])
def test_allowed_second_origin_is_not_reported(world: Callable[[str], BuildResult], allow: str) -> None:
    assert anomalies(world("moas"), "--allow-origin", allow) == []


def test_allowing_the_origin_for_another_prefix_does_not_hide_it(world: Callable[[str], BuildResult]) -> None:
    events = anomalies(world("moas"), "--allow-origin", "175.45.176.0/24=AS64501")
    assert {e["type"] for e in events} == {"moas", "origin_change"}


# ---- more_specific -----------------------------------------------------------------------------


def test_new_more_specific_from_another_as(world: Callable[[str], BuildResult]) -> None:
    w = world("more_specific")
    ev = one(anomalies(w), "more_specific")
    assert ev["prefix"] == "175.45.179.128/25"
    assert ev["covering"] == "175.45.179.0/24"
    assert ev["suspect_origin"] == NEIGHBOUR
    assert evidence_keys(ev) == peer_keys(action_log(w, 0)["peers"])
    assert ev["peers"] == len(action_log(w, 0)["peers"])
    assert [e["type"] for e in anomalies(w)] == ["more_specific"]


def test_more_specific_from_the_target_itself_is_not_reported(world: Callable[[str], BuildResult]) -> None:
    w = world("own_more_specific")
    assert anomalies(w) == []
    # it is simply one more target prefix
    assert "175.45.179.128/25" in run(w, "upstreams")["target"]["prefixes"]


def test_moas_ends_when_the_neighbour_leaves_a_more_specific_the_target_took_over(
    world: Callable[[str], BuildResult],
) -> None:
    w = world("more_specific_taken_over")
    withdrawn = action_log(w, 2)
    ev = one(anomalies(w), "moas")
    assert ev["origins"] == [NEIGHBOUR, STAR]
    assert ev["end"] == withdrawn["last_update"]


# ---- unexpected_space --------------------------------------------------------------------------


def test_target_originating_space_outside_its_delegations(world: Callable[[str], BuildResult]) -> None:
    w = world("unexpected_space")
    ev = one(anomalies(w), "unexpected_space")
    assert ev["prefix"] == "198.51.100.0/24"
    assert ev["suspect_origin"] == STAR
    assert ev["delegated"] == ["175.45.176.0/22"]
    assert ev["peers"] == len(full_feed_peers(w)) == 10
    assert evidence_keys(ev) == full_feed_peers(w)
    assert all(e["as_path"].split()[-2:] == [str(CHINA_UNICOM), str(STAR)] for e in ev["evidence"])


def test_same_world_without_the_anomaly_is_quiet(world: Callable[[str], BuildResult]) -> None:
    w = world("quiet")
    assert anomalies(w) == []
    assert run(w, "upstreams")["target"]["prefixes"] == list(KP_PREFIXES)


# ---- the same events in the upstreams report --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("hijack", "origin_change"),
        ("moas", "moas"),
        ("more_specific", "more_specific"),
        ("unexpected_space", "unexpected_space"),
    ],
)
def test_upstreams_report_lists_the_anomalies(
    world: Callable[[str], BuildResult], name: str, kind: str
) -> None:
    w = world(name)
    report = run(w, "upstreams")
    listed = [e for e in report["events"] if e["type"] in ANOMALY_TYPES]
    assert [(e["type"], e["prefix"]) for e in listed] == [(e["type"], e["prefix"]) for e in anomalies(w)]
    assert kind in {e["type"] for e in listed}
    real = full_feed_peers(w)
    for e in listed:
        assert e["evidence"] and evidence_keys(e) <= real


def test_fixture_worlds_differ_only_in_their_timeline(world: Callable[[str], BuildResult]) -> None:
    quiet, hijack = world("quiet").load_manifest(), world("hijack").load_manifest()
    assert quiet["collectors"] == hijack["collectors"]
    first_rib = "rrc00/2017.10/bview.20171001.0800.gz"
    rib = {
        m["name"]: next(f for f in m["files"] if f["path"] == first_rib)["sha256"] for m in (quiet, hijack)
    }
    assert rib["kp-quiet"] == rib["kp-hijack"]
