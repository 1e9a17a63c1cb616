"""The replay-world builder (transitwatch.scenarios): byte-for-byte deterministic, laid out like the
public archives, decodable by bgpdump, and its kp-2017 world analysed as the published timeline says."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from transitwatch.cli import main
from transitwatch.registry import Registry
from transitwatch.scenarios import (
    KP_OUTAGES,
    AddUpstream,
    BackgroundSpec,
    BuildResult,
    build,
    kp_2017_spec,
)
from transitwatch.sources.archive import plan_files
from transitwatch.sources.collectors import parse_file_name
from transitwatch.timeutil import iso, parse_time

TTK, CHINA_UNICOM, STAR = 20485, 4837, 131279


@pytest.fixture(scope="module")
def kp_world(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    return build(kp_2017_spec(), tmp_path_factory.mktemp("kp-2017"))


@pytest.fixture(scope="module")
def manifest(kp_world: BuildResult) -> dict[str, Any]:
    return kp_world.load_manifest()


def run_cli(world: BuildResult, command: str, *extra: str) -> dict[str, Any]:
    window = world.load_manifest()["window"]
    args = [command, "KP", "--archive", str(world.archive), "--from", window["from"], "--to", window["to"]]
    res = CliRunner().invoke(main, [*args, "--registry", str(world.registry), "--format", "json", *extra])
    assert res.exit_code == 0, res.output
    data: dict[str, Any] = json.loads(res.stdout)
    return data


@pytest.fixture(scope="module")
def analysed(kp_world: BuildResult) -> dict[str, Any]:
    return run_cli(kp_world, "upstreams")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- determinism ------------------------------------------------------------------------------


def test_two_builds_are_byte_identical(kp_world: BuildResult, tmp_path: Path) -> None:
    # the second build runs in another interpreter with another string-hash seed, so any
    # dependence on set or dict order of strings would show up as a difference
    code = (
        "import sys; from transitwatch.scenarios import build, kp_2017_spec; "
        "build(kp_2017_spec(), sys.argv[1])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=env)
    first, second = tree(kp_world.root), tree(tmp_path)
    assert sorted(first) == sorted(second)
    assert len(first) == kp_world.mrt_files + 3  # the MRT files, two registry files, the manifest
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []


def test_another_seed_gives_another_world(tmp_path: Path) -> None:
    small = dataclasses.replace(
        kp_2017_spec(), end="2017-10-01T09:00:00Z", timeline=(), background=BackgroundSpec(40, 8, 1)
    )
    a = build(small, tmp_path / "a")
    b = build(dataclasses.replace(small, seed=small.seed + 1), tmp_path / "b")
    rib = "rrc00/2017.10/bview.20171001.0800.gz"
    assert (a.archive / rib).read_bytes() != (b.archive / rib).read_bytes()


def test_build_refuses_to_mix_with_an_earlier_build(tmp_path: Path) -> None:
    small = dataclasses.replace(
        kp_2017_spec(), end="2017-10-01T09:00:00Z", timeline=(), background=BackgroundSpec(20, 4, 1)
    )
    build(small, tmp_path)
    with pytest.raises(FileExistsError):
        build(small, tmp_path)
    again = build(small, tmp_path, overwrite=True)
    assert again.mrt_files == len(list(again.archive.rglob("*.gz")) + list(again.archive.rglob("*.bz2")))


def test_spec_errors_are_reported_before_anything_is_written(tmp_path: Path) -> None:
    late = AddUpstream("2017-10-02T12:00:00Z", TTK, ("175.45.176.0/24",))  # the window end is exclusive
    with pytest.raises(ValueError, match="outside the window"):
        build(dataclasses.replace(kp_2017_spec(), timeline=(late,)), tmp_path)
    stranger = AddUpstream("2017-10-01T09:00:00Z", 3356, ("175.45.176.0/24",))
    with pytest.raises(ValueError, match="not an upstream"):
        build(dataclasses.replace(kp_2017_spec(), timeline=(stranger,)), tmp_path)
    assert list(tmp_path.iterdir()) == []


# ---- layout and decoding ----------------------------------------------------------------------


def test_archive_layout_is_what_plan_files_expects(kp_world: BuildResult, manifest: dict[str, Any]) -> None:
    plan = plan_files(str(kp_world.archive), None, kp_world.start, kp_world.end)
    assert plan.gaps == []
    assert sorted(plan.files) == ["route-views2", "rrc00"]
    hours = (kp_world.end - kp_world.start) // 3600
    for name, every_s, rib_every_s in [("rrc00", 300, 8 * 3600), ("route-views2", 900, 2 * 3600)]:
        files = plan.files[name]
        assert files[0].kind == "rib" and files[0].time == kp_world.start
        updates = [f for f in files[1:] if f.kind == "updates"]
        assert len(updates) == len(files) - 1 == hours * 3600 // every_s
        assert [f.time for f in updates] == list(range(kp_world.start, kp_world.end, every_s))
        # every RIB dump of the window is there, at the collector's interval
        ribs = sorted(
            t
            for kind, t in (parse_file_name(p.name) or ("", 0) for p in (kp_world.archive / name).rglob("*"))
            if kind == "rib"
        )
        assert ribs == list(range(kp_world.start, kp_world.end, rib_every_s))
    # the plan takes the RIB dump at the window start and every update file; later dumps are extra
    planned = {os.path.relpath(f.location, kp_world.archive) for f in plan.all_files()}
    firsts = {p for p in planned if "bview" in p or "/RIBS/" in p}
    assert len(firsts) == 2
    assert planned - firsts == {f["path"] for f in manifest["files"] if f["kind"] == "updates"}
    assert firsts < {f["path"] for f in manifest["files"] if f["kind"] == "rib"}


def test_window_between_rib_dumps_gets_the_dump_before_it(tmp_path: Path) -> None:
    spec = dataclasses.replace(
        kp_2017_spec(),
        start="2017-10-01T09:10:00Z",
        end="2017-10-01T10:00:00Z",
        timeline=(),
        background=BackgroundSpec(20, 4, 1),
    )
    world = build(spec, tmp_path)
    plan = plan_files(str(world.archive), None, world.start, world.end)
    assert plan.gaps == []
    ribs = {name: [iso(f.time) for f in files if f.kind == "rib"] for name, files in plan.files.items()}
    assert ribs == {"rrc00": ["2017-10-01T08:00:00Z"], "route-views2": ["2017-10-01T08:00:00Z"]}
    # the updates between that dump and the window start are there too (the state at the start needs them)
    first_update = {name: iso(files[1].time) for name, files in plan.files.items()}
    assert first_update == {"rrc00": "2017-10-01T08:00:00Z", "route-views2": "2017-10-01T08:00:00Z"}


def test_bgpdump_decodes_every_file(
    kp_world: BuildResult, manifest: dict[str, Any], bgpdump_bin: str
) -> None:
    def dump(entry: dict[str, Any]) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
        proc = subprocess.run(
            [bgpdump_bin, "-m", str(kp_world.archive / entry["path"])], capture_output=True, text=True
        )
        return entry, proc

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(dump, manifest["files"]))
    assert len(results) == kp_world.mrt_files
    kinds: Counter[str] = Counter()
    for entry, proc in results:
        assert proc.returncode == 0, (entry["path"], proc.stderr)
        complaints = [ln for ln in proc.stderr.splitlines() if ln and "logging to syslog" not in ln]
        assert complaints == [], entry["path"]
        lines = proc.stdout.splitlines()
        assert len(lines) == entry["elements"], entry["path"]
        want = "TABLE_DUMP2" if entry["kind"] == "rib" else "BGP4MP"
        assert all(ln.startswith(want + "|") for ln in lines), entry["path"]
        kinds.update(ln.split("|")[2] for ln in lines)
    assert kinds["B"] == kp_world.rib_entries
    assert kinds["A"] + kinds["W"] == kp_world.update_elements
    assert kinds["W"] > 0 and kinds["A"] > kinds["W"]


def test_first_transtelecom_announcement_as_bgpdump_prints_it(
    kp_world: BuildResult, manifest: dict[str, Any], bgpdump_bin: str
) -> None:
    t = parse_time("2017-10-01T09:07:51Z")
    first = manifest["timeline"][0]
    assert first["action"] == "add" and first["first_update"] == iso(t)
    files = [
        f["path"]
        for f in manifest["files"]
        if f["path"].endswith(("updates.20171001.0900.bz2", "updates.20171001.0905.gz"))
    ]
    lines = []
    for path in files:
        out = subprocess.run(
            [bgpdump_bin, "-m", str(kp_world.archive / path)], capture_output=True, text=True
        )
        lines += [ln for ln in out.stdout.splitlines() if f"|{t}|A|" in ln]
    assert lines, "nothing announced at 09:07:51"
    for ln in lines:
        fields = ln.split("|")
        assert fields[5] in first["prefixes"]
        assert fields[6].split()[-2:] == [str(TTK), str(STAR)]


# ---- the registry ---------------------------------------------------------------------------


def test_registry_files_describe_the_world(kp_world: BuildResult) -> None:
    reg = Registry.load(kp_world.registry)
    assert reg.issues == ()
    assert reg.country_asns("KP") == {STAR}
    assert [str(n) for n in reg.country_prefixes("KP")] == ["175.45.176.0/22"]
    asn_record = reg.asn_delegation(STAR)
    block = reg.prefix_delegation("175.45.178.0/24")
    assert asn_record is not None and block is not None
    assert asn_record.opaque_id == block.opaque_id != ""
    assert (reg.as_name(TTK), reg.as_country(TTK)) == ("TRANSTELECOM", "RU")
    assert (reg.as_name(CHINA_UNICOM), reg.as_country(CHINA_UNICOM)) == ("CHINA169-BACKBONE", "CN")
    assert reg.as_name(1299) == "TWELVE99"  # a tier-1 the upstreams reach the world through


# ---- the kp-2017 world analysed ---------------------------------------------------------------


def test_partial_peers_are_not_full_feed(analysed: dict[str, Any], manifest: dict[str, Any]) -> None:
    full = {c["name"]: sum(p["full_feed"] for p in c["peers"]) for c in manifest["collectors"]}
    peers = {c["name"]: len(c["peers"]) for c in manifest["collectors"]}
    got = {c["name"]: (c["peers"], c["full_feed_peers"]) for c in analysed["collectors"]}
    assert got == {name: (peers[name], full[name]) for name in peers}
    assert all(full[name] < peers[name] for name in peers)


def test_transtelecom_first_seen_at_its_first_announcement(analysed: dict[str, Any]) -> None:
    rows = {u["asn"]: u for u in analysed["upstreams"]}
    assert set(rows) == {CHINA_UNICOM, TTK}
    ttk = rows[TTK]
    assert ttk["name"] == "TRANSTELECOM" and ttk["country"] == "RU"
    assert ttk["first_seen"] == "2017-10-01T09:07:51Z"
    assert ttk["in_first_rib"] is False and rows[CHINA_UNICOM]["in_first_rib"] is True
    # at the window end TransTeleCom carries only .178 (.176 and .179 lost it on 2 Oct)
    assert ttk["prefixes"] == ["175.45.178.0/24"]
    ups = sorted((lk["prefix"], lk["up"]) for lk in analysed["links"] if lk["upstream"] == TTK)
    assert ups[0][1] == "2017-10-01T09:07:51Z"
    assert {p for p, _ in ups} == {"175.45.176.0/24", "175.45.178.0/24", "175.45.179.0/24"}


def test_the_four_outages_are_total(analysed: dict[str, Any]) -> None:
    outages = analysed["outages"]
    assert [o["severity"] for o in outages] == ["total"] * 4
    delay = kp_2017_spec().max_delay_s
    for o, (down, up) in zip(outages, KP_OUTAGES, strict=True):
        # visibility falls while the withdrawals spread (one peer's is not enough) and comes back
        # while the routes return
        assert parse_time(down) < parse_time(o["start"]) < parse_time(down) + delay
        assert parse_time(up) < parse_time(o["end"]) < parse_time(up) + delay
        assert o["prefixes"] == list(kp_2017_spec().target.prefixes)


def test_whatif_without_china_unicom_keeps_178_through_transtelecom(kp_world: BuildResult) -> None:
    out = run_cli(kp_world, "whatif", "--without", "AS4837")
    assert out["at"] == iso(kp_world.end)
    assert out["prefixes_lost"] == ["175.45.176.0/24", "175.45.177.0/24", "175.45.179.0/24"]
    kept = {k["prefix"]: k for k in out["prefixes_kept"]}
    assert list(kept) == ["175.45.178.0/24"]
    assert [v["asn"] for v in kept["175.45.178.0/24"]["via"]] == [TTK]
    assert out["routes_lost"] + kept["175.45.178.0/24"]["routes"] == out["routes"]
