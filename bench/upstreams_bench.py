"""upstreams benchmark: ``transitwatch upstreams ASxxx`` on the full-size RIB against the obvious script.

The target is the origin AS with the most prefixes in the full-size synthetic RIB (found once, cached
beside the RIB). The archive is a folder in RIS layout holding only that RIB (a symlink), and the
window is its first 5 minutes, so the analysis reads the RIB and nothing else.

Tools, each a process (tree) pinned to one core with ``taskset -c CPU``:

- transitwatch: ``transitwatch upstreams ASxxx --archive DIR --from T0 --to T0+5min --format json``;
- the obvious script: ``bgpdump -m RIB | python3 bench/obvious_upstreams.py ASxxx`` (both processes on
  the same core; the pipeline's wall time and the CPU time of both);
- the same with bgpdump's heap thrashing removed (``MALLOC_TOP_PAD_``, see the reader benchmark), a
  second, fairer baseline.

Rounds interleave the tools (order rotated); figures are medians. Check (exit 1 if it fails): the
route counts per upstream, the routes in total and the full-feed peers agree between transitwatch and
the obvious script. Target (reported): transitwatch at least 2x faster by wall time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
import datasets

NAME = "upstreams"
TITLE = "upstreams: one origin AS on the full-size RIB, one core"

Log = Callable[[str], None]

OBVIOUS_SCRIPT = Path(__file__).resolve().parent / "obvious_upstreams.py"
TRANSITWATCH = Path(sys.executable).parent / "transitwatch"
TARGET_RATIO = 2.0  # transitwatch at least 2x faster than the obvious script (wall time)
TUNED_PAD = str(16 << 20)  # MALLOC_TOP_PAD_ for bgpdump, as in the reader benchmark


@dataclass(frozen=True)
class Tool:
    name: str
    label: str


TOOLS = [
    Tool("transitwatch", "transitwatch upstreams"),
    Tool("obvious", "bgpdump -m | obvious_upstreams.py"),
    Tool("obvious-tuned", "bgpdump -m (MALLOC_TOP_PAD_=16MiB) | obvious_upstreams.py"),
]


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    rss_kib: int
    result: dict[str, Any]  # normalised: full_feed_peers, routes, upstreams {asn: routes}
    filter_cpu_s: float | None = None  # the obvious script's Python filter alone (its own GNU time)


@dataclass
class Result:
    tool: Tool
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def wall(self) -> float:
        return common.median(s.wall_s for s in self.samples)

    def cpu(self) -> float:
        return common.median(s.cpu_s for s in self.samples)

    def max_rss_kib(self) -> int:
        return max(s.rss_kib for s in self.samples)


# --- inputs ----------------------------------------------------------------------------------------


def largest_origin(ds: datasets.Dataset, log: Log) -> dict[str, Any]:
    """The origin AS with the most prefixes in the RIB (ties: lowest ASN); computed once, cached in
    ``largest-origin.json`` in the RIB's build folder (the folder's name changes with the RIB)."""
    cache = ds.path.parents[2] / "largest-origin.json"
    if cache.exists():
        return dict(json.loads(cache.read_text()))
    import pyarrow as pa

    from transitwatch.mrt import MrtReader

    log(f"finding the origin AS with the most prefixes in {ds.path} (once)")
    pairs: set[tuple[int, str]] = set()
    for batch in MrtReader(ds.path).batches():
        t = pa.table({"o": batch.column("origin_asn"), "p": batch.column("prefix").dictionary_decode()})
        g = t.group_by(["o", "p"]).aggregate([])
        pairs.update(zip(g.column("o").to_pylist(), g.column("p").to_pylist(), strict=True))
    counts: dict[int, int] = {}
    for o, _p in pairs:
        if o is not None:
            counts[o] = counts.get(o, 0) + 1
    asn, n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    runner_up = sorted(counts.values(), reverse=True)[1:4]
    info = {"asn": asn, "prefixes": n, "origins": len(counts), "next_largest": runner_up}
    cache.write_text(json.dumps(info) + "\n")
    return info


def archive_for(ds: datasets.Dataset) -> tuple[Path, str, str]:
    """A folder in RIS layout holding just this RIB (symlinked), and the window: its first 5 minutes."""
    m = re.match(r"bview\.(\d{4})(\d{2})(\d{2})\.(\d{2})(\d{2})\.gz$", ds.path.name)
    if not m:
        raise ValueError(f"not a RIS RIB name: {ds.path.name}")
    y, mo, d, hh, mm = m.groups()
    collector = ds.path.parents[1].name
    folder = datasets.DATA_DIR / f"upstreams-{ds.path.parents[2].name}"
    link = folder / collector / f"{y}.{mo}" / ds.path.name
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(link.name + f".tmp-{os.getpid()}")
        tmp.symlink_to(ds.path.resolve())
        tmp.replace(link)
    start = f"{y}-{mo}-{d}T{hh}:{mm}:00Z"
    end_min = int(mm) + 5
    if end_min >= 60:
        raise ValueError("RIB time too close to the end of an hour for a 5-minute window")
    return folder, start, f"{y}-{mo}-{d}T{hh}:{end_min:02d}:00Z"


# --- commands --------------------------------------------------------------------------------------


def transitwatch_cmd(asn: int, archive: Path, start: str, end: str) -> list[str]:
    return [
        str(TRANSITWATCH),
        "upstreams",
        f"AS{asn}",
        "--archive",
        str(archive),
        "--from",
        start,
        "--to",
        end,
        "--registry",
        str(datasets.REGISTRY),
        "--format",
        "json",
    ]


def obvious_pipeline(asn: int, rib: Path, tuned: bool, filter_time_file: str | None = None) -> str:
    """The shell pipeline; with ``filter_time_file`` the Python filter runs under GNU time too."""
    bgpdump = f"bgpdump -m {shlex.quote(str(rib))}"
    if tuned:
        bgpdump = f"MALLOC_TOP_PAD_={TUNED_PAD} {bgpdump}"
    py = f"{shlex.quote(sys.executable)} {shlex.quote(str(OBVIOUS_SCRIPT))} AS{asn}"
    if filter_time_file:
        py = f"{common.GNU_TIME} -o {shlex.quote(filter_time_file)} -f '%e %U %S %M' {py}"
    return f"set -o pipefail; {bgpdump} | {py}"


def _normalise_transitwatch(out: dict[str, Any]) -> dict[str, Any]:
    return {
        "full_feed_peers": out["full_feed_peers"],
        "routes": out["routes"],
        "upstreams": {str(u["asn"]): u["routes"] for u in out["upstreams"] if u["routes"]},
        "shares": {str(u["asn"]): u["share"] for u in out["upstreams"] if u["routes"]},
        "prefixes": len(out["target"]["prefixes"]),
    }


def _normalise_obvious(out: dict[str, Any]) -> dict[str, Any]:
    return {
        "full_feed_peers": out["full_feed_peers"],
        "routes": out["routes"],
        "upstreams": {u: v["routes"] for u, v in out["upstreams"].items()},
        "shares": {u: v["share"] for u, v in out["upstreams"].items()},
    }


def _run_once(
    tool: Tool, asn: int, rib: Path, archive: Path, window: tuple[str, str], cpu: int
) -> Sample | str:
    filter_cpu = None
    if tool.name == "transitwatch":
        run = common.run_measured(transitwatch_cmd(asn, archive, *window), cpu=cpu)
        normalise = _normalise_transitwatch
    else:
        with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
            cmd = ["bash", "-c", obvious_pipeline(asn, rib, tool.name == "obvious-tuned", tf.name)]
            run = common.run_measured(cmd, cpu=cpu)
            try:
                _e, u, s, _m = tf.read().strip().splitlines()[-1].split()
                filter_cpu = float(u) + float(s)
            except (IndexError, ValueError):
                pass
        normalise = _normalise_obvious
    if run.returncode != 0:
        return f"exit status {run.returncode}: {run.stderr.strip()[-300:]}"
    try:
        result = normalise(json.loads(run.stdout))
    except (ValueError, KeyError) as exc:
        return f"unreadable output ({exc}): {run.stdout[-300:]!r}"
    return Sample(run.wall_s, run.cpu_s, run.max_rss_kib, result, filter_cpu)


# --- the benchmark -----------------------------------------------------------------------------------


def run(opts: common.Options, log: Log = print) -> common.Section:
    if opts.quick:
        ds = dataclasses.replace(
            datasets.fulltable(datasets.QUICK_TABLE_SPEC, log=log),
            name="synthetic quick table",
            about=f"synthetic TABLE_DUMP_V2 RIB from {datasets.QUICK_TABLE_SPEC.name}, gzip",
        )
    else:
        ds = datasets.fulltable(log=log)
    repeat = opts.repeat or 3
    origin = largest_origin(ds, log)
    asn = int(origin["asn"])
    archive, start, end = archive_for(ds)
    log(f"target AS{asn} ({origin['prefixes']} prefixes), archive {archive}, window {start} .. {end}")
    started = common.now_utc()
    commit = common.git_commit()
    # warm the page cache and count the entries (untimed)
    entries, _rc = common.count_lines(["bgpdump", "-m", str(ds.path)], env={"MALLOC_TOP_PAD_": TUNED_PAD})
    log(f"   bgpdump -m | (count lines): {entries:,} entries")

    load = common.LoadMeter()
    load.start()
    results = {t.name: Result(t) for t in TOOLS}
    for rnd in range(repeat):
        k = rnd % len(TOOLS)
        for tool in TOOLS[k:] + TOOLS[:k]:
            s = _run_once(tool, asn, ds.path, archive, (start, end), opts.cpu)
            if isinstance(s, str):
                results[tool.name].errors.append(s)
                log(f"   round {rnd + 1}/{repeat} {tool.name:14s} FAILED: {s}")
                continue
            results[tool.name].samples.append(s)
            extra = f" (Python filter {s.filter_cpu_s:.1f} s CPU)" if s.filter_cpu_s is not None else ""
            log(
                f"   round {rnd + 1}/{repeat} {tool.name:14s} {s.wall_s:8.2f} s wall {s.cpu_s:8.2f} s cpu "
                f"{s.rss_kib / 1024:6.0f} MiB  {s.result['routes']} routes{extra}"
            )
    load.stop()

    failures, notes = _checks(results)
    rows = _rows(results, entries)
    verdicts = _verdicts(results)
    tw = results["transitwatch"]
    agreed = tw.samples[0].result if tw.samples else None
    right = range(1, 8)
    console = [common.text_table(HEADER, rows, right), "", "Target (reported, not asserted):", *verdicts]

    tw_cmd = " ".join(shlex.quote(a) for a in transitwatch_cmd(asn, archive, start, end))
    md = [
        f"Run {started} with `{opts.command}`{' (quick)' if opts.quick else ''}.",
        "",
        *common.machine_lines(
            {"bgpdump": common.bgpdump_version(), **common.package_versions("pyarrow", "isal")},
            commit=commit,
        ),
        f"- Machine load: {load.describe()}",
        "",
        "### Input and commands",
        "",
        f"- RIB: `{datasets.short_path(ds.path)}` ({ds.path.stat().st_size / 1e6:.1f} MB, "
        f"{entries:,} entries, "
        f"{ds.about})",
        f"- Target: AS{asn}, the origin with the most prefixes in that RIB ({origin['prefixes']} prefixes; "
        f"next largest {', '.join(map(str, origin['next_largest']))}; {origin['origins']:,} origins in all), "
        f"cached in `{datasets.short_path(ds.path.parents[2] / 'largest-origin.json')}`",
        f"- Archive: `{datasets.short_path(archive)}`, RIS layout, holding only that RIB (a symlink); "
        f"window {start} to "
        f"{end}, so the analysis reads the RIB only (the missing update file is reported as a data gap)",
        f"- transitwatch: `taskset -c {opts.cpu} {_shorten_cmd(tw_cmd)}`",
        f"- obvious script: `taskset -c {opts.cpu} bash -c 'set -o pipefail; bgpdump -m RIB | python3 "
        f"bench/obvious_upstreams.py AS{asn}'` (python3 = {sys.executable}); both processes share the core",
        f"- obvious script, tuned bgpdump: the same with `MALLOC_TOP_PAD_={TUNED_PAD}` for bgpdump only "
        "(stops its heap thrashing on IPv6 entries; same output; see the reader section)",
        "",
        "### Results",
        "",
        f"{len(TOOLS)} tools x {repeat} rounds, interleaved (order rotated per round). seconds = median wall "
        "time "
        "of the process (tree), start-up included; CPU s = user + sys of every process of it (GNU time); "
        "entries/s = RIB entries / wall time; speed-up = the tool's wall time over transitwatch's; peak RSS "
        "= largest single process.",
        "",
        common.markdown_table(HEADER, [[c.replace("|", "\\|") for c in row] for row in rows], right),
        "",
    ]
    if agreed is not None:
        md += [
            f"Result (all tools agree: {'yes' if not failures else 'NO'}): "
            f"{agreed['full_feed_peers']} full-feed "
            f"peers, {agreed['routes']} routes to AS{asn}'s {agreed['prefixes']} prefixes; per upstream: "
            + ", ".join(
                f"AS{u} {n} routes ({agreed['shares'][u]:.1%})" for u, n in agreed["upstreams"].items()
            ),
            "",
        ]
    md += ["### Target (reported, not asserted)", "", *verdicts]
    return common.section(NAME, TITLE, opts, console, md, notes=notes, failures=failures, load=load)


HEADER = [
    "tool",
    "runs",
    "seconds (median)",
    "CPU s (median)",
    "Python filter CPU s",
    "entries/s",
    "speed-up of transitwatch",
    "peak RSS (max)",
]


def _rows(results: dict[str, Result], entries: int) -> list[list[str]]:
    tw = results["transitwatch"]
    rows = []
    for tool in TOOLS:
        r = results[tool.name]
        if not r.samples:
            rows.append([tool.label, "0 (failed)", *["–"] * 6])
            continue
        fc = [s.filter_cpu_s for s in r.samples if s.filter_cpu_s is not None]
        rows.append(
            [
                tool.label,
                str(len(r.samples)),
                f"{r.wall():.2f}",
                f"{r.cpu():.2f}",
                f"{common.median(fc):.2f}" if fc else "–",
                f"{entries / r.wall() / 1e6:.2f} M",
                f"{r.wall() / tw.wall():.2f}x" if tw.samples else "–",
                f"{r.max_rss_kib() / 1024:.0f} MiB",
            ]
        )
    return rows


def _checks(results: dict[str, Result]) -> tuple[list[str], list[str]]:
    failures: list[str] = []
    notes: list[str] = []
    for r in results.values():
        if r.errors or not r.samples:
            failures.append(f"{r.tool.label} failed: {'; '.join(r.errors) or 'no run'}")
    tw = results["transitwatch"].samples
    if not tw:
        return failures, notes
    want = tw[0].result
    keys = ("full_feed_peers", "routes", "upstreams")
    for r in results.values():
        for i, s in enumerate(r.samples):
            diff = [k for k in keys if s.result[k] != want[k]]
            if diff:
                failures.append(
                    f"{r.tool.label}, run {i + 1}: differs from transitwatch's first run in "
                    + "; ".join(f"{k}: {s.result[k]} vs {want[k]}" for k in diff)
                )
    for r in results.values():
        for s in r.samples:
            for u, share in s.result["shares"].items():
                if abs(share - want["shares"].get(u, -1.0)) > 1e-6:
                    notes.append(
                        f"{r.tool.label}: share of AS{u} {share} vs transitwatch's {want['shares'].get(u)}"
                    )
    return failures, sorted(set(notes))


def _verdicts(results: dict[str, Result]) -> list[str]:
    tw = results["transitwatch"]
    if not tw.samples:
        return ["- transitwatch failed: no verdict"]
    out = []
    for name in ("obvious", "obvious-tuned"):
        r = results[name]
        if not r.samples:
            continue
        ratio = r.wall() / tw.wall()
        out.append(
            f"- against {r.tool.label}: transitwatch {ratio:.2f}x faster by wall time "
            f"({r.cpu() / tw.cpu():.2f}x by CPU time) → **{'met' if ratio >= TARGET_RATIO else 'not met'}** "
            f"(target ≥ {TARGET_RATIO:.0f}x)"
        )
    return out


def _shorten_cmd(cmd: str) -> str:
    """The command with the repository and shared paths made relative, for reading."""
    return (
        cmd.replace(str(TRANSITWATCH), "transitwatch")
        .replace(str(datasets.BENCH_DIR.parent) + "/", "")
        .replace(str(datasets.SHARED), "../shared")
    )
