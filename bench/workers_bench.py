"""workers benchmark: ``transitwatch upstreams KP --workers 1`` against ``--workers 2``, both cores.

Input: a multi-collector, multi-hour replay archive built once by ``shared/tools/scenario.py`` from
``bench/specs/bench-workers-kp.json`` (4 collectors: 2 RIS-style with gzip files, 2 RouteViews-style
with bzip2 files; 8 hours; a 220k-prefix background table and 10,000 background updates per 5 minutes
per collector; the kp-2017-ttk timeline for the target). ``--quick`` uses a 1/13-size version.

Runs are not pinned (the point is to use both cores); rounds alternate the order of the two. Check
(exit 1 if it fails): every run's JSON output is byte-identical. Target (reported): speed-up (median
wall time of --workers 1 over that of --workers 2) at least 1.7x.

A diagnostic run (``bench/workers_profile.py``, one process) times each step of the same analysis:
imports, planning, each collector's reading (the unit of work a worker gets), pickling each result
(what the pool ships back), the analysis of the merged rows and the JSON report, and a pool's start-up;
then the reads in a 2-process pool as ``--workers 2`` runs them; from those, the bound on the two-worker
wall time, to say where a shortfall comes from.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
import datasets

NAME = "workers"
TITLE = "workers: upstreams KP on a 4-collector archive, --workers 1 vs 2"

Log = Callable[[str], None]

TRANSITWATCH = Path(sys.executable).parent / "transitwatch"
PROFILE_SCRIPT = Path(__file__).resolve().parent / "workers_profile.py"
QUICK_SPEC = datasets.SPECS_DIR / "bench-workers-kp-quick.json"
TARGET_SPEEDUP = 1.7
TARGET = "KP"
WORKERS = (1, 2)


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    rss_kib: int
    sha256: str


@dataclass
class Result:
    workers: int
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # sha256 -> one output with it

    def wall(self) -> float:
        return common.median(s.wall_s for s in self.samples)

    def cpu(self) -> float:
        return common.median(s.cpu_s for s in self.samples)


def command(archive: datasets.Archive, workers: int) -> list[str]:
    return [
        str(TRANSITWATCH),
        "upstreams",
        TARGET,
        "--archive",
        str(archive.path),
        "--from",
        archive.start,
        "--to",
        archive.end,
        "--registry",
        str(datasets.REGISTRY),
        "--format",
        "json",
        "--workers",
        str(workers),
    ]


def _archive_stats(archive: datasets.Archive) -> list[list[str]]:
    rows = []
    for name, kind in archive.collectors:
        files = sorted(p for p in (archive.path / name).rglob("*") if p.is_file())
        ribs = [p for p in files if p.name.startswith(("bview", "rib"))]
        updates = [p for p in files if p.name.startswith("updates")]
        rows.append(
            [
                name,
                "RIS (gzip)" if kind == "ris" else "RouteViews (bzip2)",
                f"{len(ribs)} ({sum(p.stat().st_size for p in ribs) / 1e6:.0f} MB)",
                f"{len(updates)} ({sum(p.stat().st_size for p in updates) / 1e6:.0f} MB)",
            ]
        )
    return rows


def _profile(archive: datasets.Archive, log: Log) -> dict[str, Any] | str:
    cmd = [
        sys.executable,
        str(PROFILE_SCRIPT),
        TARGET,
        str(archive.path),
        archive.start,
        archive.end,
        str(datasets.REGISTRY),
    ]
    run = common.run_measured(cmd, cpu=None)
    if run.returncode != 0:
        return f"exit status {run.returncode}: {run.stderr.strip()[-300:]}"
    try:
        prof = dict(json.loads(run.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return f"unreadable output: {run.stdout[-300:]!r}"
    prof["wall_s"] = run.wall_s
    prof["cpu_s"] = run.cpu_s
    log(
        f"   profile: {run.wall_s:.2f} s wall; reading "
        + ", ".join(f"{c['name']} {c['read_s']:.2f} s" for c in prof["collectors"])
    )
    return prof


def _serial_s(prof: dict[str, Any]) -> float:
    """Everything but the reading: interpreter start and exit, imports, planning, analysis, report."""
    pooled = prof["pooled"]["wall_s"]
    startup_exit = max(0.0, prof["wall_s"] - prof["total_s"] - pooled)  # outside main()
    return startup_exit + prof["import_s"] + prof["plan_s"] + prof["analysis_s"] + prof["report_s"]


def run(opts: common.Options, log: Log = print) -> common.Section:
    spec = QUICK_SPEC if opts.quick else datasets.WORKERS_SPEC
    archive = datasets.scenario_archive(spec, log=log)
    repeat = opts.repeat or (2 if opts.quick else 5)
    started = common.now_utc()
    commit = common.git_commit()
    stats = _archive_stats(archive)
    for p in archive.path.rglob("*"):  # warm the page cache (untimed)
        if p.is_file():
            p.read_bytes()

    load = common.LoadMeter()
    load.start()
    results = {w: Result(w) for w in WORKERS}
    for rnd in range(repeat):
        order = WORKERS if rnd % 2 == 0 else tuple(reversed(WORKERS))
        for w in order:
            r = common.run_measured(command(archive, w), cpu=None)
            if r.returncode != 0:
                results[w].errors.append(f"exit status {r.returncode}: {r.stderr.strip()[-300:]}")
                log(f"   round {rnd + 1}/{repeat} --workers {w} FAILED: {results[w].errors[-1]}")
                continue
            sha = hashlib.sha256(r.stdout.encode()).hexdigest()
            results[w].outputs.setdefault(sha, r.stdout)
            results[w].samples.append(Sample(r.wall_s, r.cpu_s, r.max_rss_kib, sha))
            log(
                f"   round {rnd + 1}/{repeat} --workers {w}  {r.wall_s:7.2f} s wall {r.cpu_s:7.2f} s cpu "
                f"{r.max_rss_kib / 1024:6.0f} MiB  output sha256 {sha[:12]}"
            )
    prof = _profile(archive, log)
    load.stop()

    failures: list[str] = []
    notes: list[str] = []
    for w, res in results.items():
        if res.errors or not res.samples:
            failures.append(f"--workers {w} failed: {'; '.join(res.errors) or 'no run'}")
    shas = {s.sha256 for res in results.values() for s in res.samples}
    if len(shas) > 1:
        by = {w: sorted({s.sha256[:12] for s in res.samples}) for w, res in results.items()}
        failures.append(f"the JSON outputs differ between runs: sha256 by --workers {by}")
    summary = _summary(results)
    if isinstance(prof, str):
        notes.append(f"the diagnostic run failed: {prof}")
    elif shas and prof["report_sha256"] not in shas:
        notes.append(
            "the diagnostic run's JSON report differs from the command's output (its times may not match)"
        )

    w1, w2 = results[1], results[2]
    speedup = w1.wall() / w2.wall() if w1.samples and w2.samples else None
    paired = [a.wall_s / b.wall_s for a, b in zip(w1.samples, w2.samples, strict=False)]
    verdict = (
        f"- speed-up {speedup:.2f}x (median wall time of --workers 1 over --workers 2; per round "
        f"{', '.join(f'{x:.2f}x' for x in paired)}) → "
        f"**{'met' if speedup >= TARGET_SPEEDUP else 'not met'}** "
        f"(target ≥ {TARGET_SPEEDUP}x)"
        if speedup
        else "- no verdict: a run failed"
    )
    header = ["--workers", "runs", "seconds (median)", "CPU s (median)", "peak RSS (max)", "speed-up"]
    rows = [
        [
            str(w),
            str(len(res.samples)),
            f"{res.wall():.2f}" if res.samples else "–",
            f"{res.cpu():.2f}" if res.samples else "–",
            f"{max(s.rss_kib for s in res.samples) / 1024:.0f} MiB" if res.samples else "–",
            f"{w1.wall() / res.wall():.2f}x" if res.samples and w1.samples else "–",
        ]
        for w, res in results.items()
    ]
    prof_md, prof_console = _profile_tables(prof) if not isinstance(prof, str) else ([], [])

    console = [common.text_table(header, rows, range(1, 6)), "", "Target (reported, not asserted):", verdict]
    console += prof_console

    cmd_text = " ".join(shlex.quote(a) for a in command(archive, 1))
    cmd_text = cmd_text.replace(str(TRANSITWATCH), "transitwatch").replace(
        str(datasets.BENCH_DIR.parent) + "/", ""
    )
    cmd_text = cmd_text.replace(str(datasets.SHARED), "../shared")
    md = [
        f"Run {started} with `{opts.command}`{' (quick)' if opts.quick else ''}.",
        "",
        *common.machine_lines({**common.package_versions("pyarrow", "isal")}, commit=commit),
        f"- Machine load: {load.describe()}",
        "",
        "### Input and command",
        "",
        f"- Archive: `{datasets.short_path(archive.path)}`, built by `python ../shared/tools/scenario.py "
        f"{datasets.short_path(archive.spec)} OUT` ({_build_line(archive)}); "
        f"window {archive.start} to {archive.end}",
        "",
        common.markdown_table(["collector", "style", "RIB dumps", "update files"], stats, right=[2, 3]),
        "",
        f"- Command: `{cmd_text}` and the same with `--workers 2`; not pinned (both cores), stdout captured",
        f"- Result: {summary}",
        "",
        "### Results",
        "",
        f"{repeat} rounds, each running both (order alternated). seconds = median wall time of the process, "
        "start-up included; CPU s = user + sys of the process and its workers (GNU time).",
        "",
        common.markdown_table(header, rows, range(1, 6)),
        "",
        f"Outputs: {len(shas)} distinct JSON output(s) over {sum(len(r.samples) for r in results.values())} "
        f"runs ({'byte-identical' if len(shas) == 1 else 'NOT identical'}).",
        "",
        "### Target (reported, not asserted)",
        "",
        verdict,
        *prof_md,
    ]
    return common.section(NAME, TITLE, opts, console, md, notes=notes, failures=failures, load=load)


def _summary(results: dict[int, Result]) -> str:
    for res in results.values():
        for text in res.outputs.values():
            try:
                d = json.loads(text)
            except ValueError:
                continue
            ups = ", ".join(f"AS{u['asn']} {u['routes']}" for u in d["upstreams"])
            return (
                f"{len(d['target']['prefixes'])} target prefixes, {d['full_feed_peers']} full-feed peers, "
                f"{d['routes']} routes at the window end (by upstream: {ups}), {len(d['events'])} events"
            )
    return "no output"


def _profile_tables(prof: dict[str, Any]) -> tuple[list[str], list[str]]:
    cols = prof["collectors"]
    pooled = {c["name"]: c for c in prof["pooled"]["collectors"]}
    header = [
        "collector",
        "files",
        "elements",
        "rows kept",
        "read alone: s (CPU s)",
        "in the 2-worker pool: s (CPU s)",
        "pickled (pickle+unpickle)",
    ]

    def cell(c: dict[str, Any]) -> str:
        return f"{c['read_s']:.2f} ({c['read_cpu_s']:.2f})"

    rows = [
        [
            c["name"],
            str(c["files"]),
            f"{c['elements']:,}",
            f"{c['rows_kept']:,}",
            cell(c),
            cell(pooled[c["name"]]),
            f"{c['pickle_bytes'] / 1e3:.0f} kB ({c['pickle_s'] * 1e3:.0f} ms)",
        ]
        for c in cols
    ]
    reads = sum(c["read_s"] for c in cols)
    reads_cpu = sum(c["read_cpu_s"] for c in cols)
    startup_exit = max(
        0.0,
        prof["wall_s"] - prof["total_s"] - prof["pooled"]["wall_s"],
    )
    steps = [
        ["interpreter start-up and exit", f"{startup_exit:.2f}"],
        ["imports (transitwatch, pyarrow, ...)", f"{prof['import_s']:.2f}"],
        ["registry, target, planning the files", f"{prof['plan_s']:.2f}"],
        [f"reading the 4 collectors one after the other ({reads_cpu:.2f} s CPU)", f"{reads:.2f}"],
        ["analysis of the merged rows (serial)", f"{prof['analysis_s']:.2f}"],
        ["JSON report (serial)", f"{prof['report_s']:.2f}"],
        ["process pool start and stop, 2 workers, empty tasks", f"{prof['pool_start_stop_s']:.2f}"],
        [
            "reading the 4 collectors in a 2-worker pool, as --workers 2 (wall)",
            f"{prof['pooled']['wall_s']:.2f}",
        ],
    ]
    serial = _serial_s(prof)
    one = serial + reads
    pooled_wall = prof["pooled"]["wall_s"]
    pooled_cpu = sum(c["read_cpu_s"] for c in pooled.values())
    free = [0.0, 0.0]  # the pool hands the collectors out in input order to whichever worker is free
    for c in prof["pooled"]["collectors"]:
        free[free.index(min(free))] += c["read_s"]
    bound = serial + prof["pool_start_stop_s"] + max(pooled_cpu / 2, max(free))
    pred = [
        f"- One process: the reads take {reads:.2f} s wall and {reads_cpu:.2f} s CPU (CPU above wall: "
        "alone, indexed_bzip2 decodes with a thread per core; the threads cost CPU of their own), "
        f"{one:.2f} s in all with the serial part ({serial:.2f} s: start-up, imports, planning, "
        "analysis, report).",
        f"- In the 2-worker pool, each worker decoding bzip2 with its share of the cores (one thread "
        f"here): the reads take {pooled_wall:.2f} s together and {pooled_cpu:.2f} s CPU, "
        f"{serial + pooled_wall:.2f} s in all: {one / (serial + pooled_wall):.2f}x.",
        f"- Bound for 2 workers: the pool's read CPU time over 2 cores ({pooled_cpu / 2:.2f} s) or the "
        f"busier worker's reads ({max(free):.2f} s), whichever is larger, plus the serial part and the "
        f"pool's start: {bound:.2f} s, {one / bound:.2f}x; the measured pool is "
        f"{(serial + pooled_wall) / bound - 1:+.0%} from it.",
    ]
    md = [
        "",
        "### Where the time goes (one diagnostic run, `bench/workers_profile.py`)",
        "",
        "Each collector's read (`read_collector`, the unit of work of a worker) timed alone in one process, "
        "then all four in a 2-process pool as `--workers 2` runs them (each worker decodes bzip2 with its "
        "share of the cores; timed inside the workers; CPU = every thread of the worker).",
        "",
        common.markdown_table(header, rows, range(1, 7)),
        "",
        common.markdown_table(["step", "seconds"], steps, [1]),
        "",
        *pred,
    ]
    console = [
        "",
        common.text_table(header, rows, range(1, 7)),
        "",
        common.text_table(["step", "s"], steps, [1]),
        *pred,
    ]
    return md, console


def _build_line(archive: datasets.Archive) -> str:
    lines = archive.build_log().strip().splitlines()
    return "; ".join(lines[1:]) if len(lines) > 1 else "build log missing"
