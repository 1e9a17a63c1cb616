"""Reader benchmark: MRT elements per second on one core, transitwatch vs bgpdump, mrtparse, bgpkit.

Every tool runs as its own process pinned to one core (``taskset -c CPU``), so elements/s is a
one-core figure. Runs are interleaved (one round runs every tool once, in an order rotated each round)
so that load from other users of the machine falls on all tools alike; figures are medians over the
rounds. Wall time is the whole process (interpreter start-up and imports included); peak RSS is the
process's maximum resident set size.

Counting: transitwatch counts the rows of the record batches; ``bgpdump -m FILE`` writes to /dev/null
in the timed runs and its lines are counted in one separate untimed run (which also warms the page
cache); mrtparse counts RIB entries + announced/withdrawn prefixes + state changes; pybgpkit-parser
counts the elements it yields (it yields no state changes). mrtparse and bgpkit are slow, so each run
of theirs stops after a time budget: its rate is then measured on the part of the file it read
("partial"), i.e. the start of the file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import common
import datasets

NAME = "reader"
TITLE = "Reader: MRT elements/s on one core"

Log = Callable[[str], None]

COUNT_SCRIPT = Path(__file__).resolve().parent / "count_elements.py"
TARGET_RATIO = 3.0  # transitwatch >= 3x bgpdump elements/s on one core, on the gzip RIBs
MEMORY_TARGET_KIB = 1024 * 1024  # 1 GiB peak RSS on the full-size RIB

# bgpdump 1.6.2 thrashes glibc's heap on IPv6 RIB entries that follow IPv4 ones (as in every RIS/RouteViews
# RIB dump): the heap top is trimmed and grown again for every entry (one brk and ~30 page faults per
# entry, mostly system time), which makes it several times slower on a full table. A 16 MiB heap top pad
# stops that without changing its output (byte-identical). The tuned run is a second, fairer baseline.
BGPDUMP_TUNED_ENV = MappingProxyType({"MALLOC_TOP_PAD_": str(16 << 20)})


@dataclass(frozen=True)
class Tool:
    name: str
    label: str
    python: bool  # a count_elements.py process (reports its own element count and reading time)
    budgeted: bool = False  # stops after the time budget
    diagnostic: bool = False  # not a decoder: no elements, not compared with bgpdump
    env: MappingProxyType[str, str] | None = None  # added to the environment


TOOLS = [
    Tool("transitwatch", "transitwatch (MrtReader.batches)", python=True),
    Tool("bgpdump", "bgpdump -m > /dev/null", python=False),
    Tool("bgpdump-tuned", "bgpdump -m, MALLOC_TOP_PAD_=16MiB", python=False, env=BGPDUMP_TUNED_ENV),
    Tool("mrtparse", "mrtparse", python=True, budgeted=True),
    Tool("bgpkit", "pybgpkit-parser", python=True, budgeted=True),
    Tool("gunzip", "gunzip only (transitwatch.mrt.io, ISA-L)", python=True, diagnostic=True),
]


@dataclass
class Sample:
    """One timed run."""

    wall_s: float
    cpu_s: float
    rss_kib: int
    elements: int | None
    partial: bool = False
    loop_s: float | None = None  # reading only, measured inside the process (python tools)
    import_s: float | None = None
    issues: int | None = None  # transitwatch's reader.issues
    decompressed_bytes: int | None = None  # gunzip only


@dataclass
class Result:
    """All runs of one tool on one file."""

    tool: Tool
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def rate(self) -> float | None:
        """Median over runs of elements / process wall time."""
        r = [s.elements / s.wall_s for s in self.samples if s.elements]
        return common.median(r) if r else None

    def rate_reading(self) -> float | None:
        """Median over runs of elements / reading time (start-up and imports left out)."""
        r = [s.elements / (s.loop_s or s.wall_s) for s in self.samples if s.elements]
        return common.median(r) if r else None

    def elements(self) -> int | None:
        e = [s.elements for s in self.samples if s.elements is not None]
        return int(common.median(e)) if e else None

    def partial(self) -> bool:
        return any(s.partial for s in self.samples)

    def wall(self) -> float:
        return common.median(s.wall_s for s in self.samples)

    def cpu(self) -> float:
        return common.median(s.cpu_s for s in self.samples)

    def loop(self) -> float:
        return common.median(s.loop_s or 0.0 for s in self.samples)

    def max_rss_kib(self) -> int:
        return max(s.rss_kib for s in self.samples)


@dataclass
class FileResult:
    ds: datasets.Dataset
    repeat: int
    bgpdump_count: int
    results: dict[str, Result]


def _command(tool: Tool, path: Path, budget: float) -> list[str]:
    if not tool.python:
        return ["bgpdump", "-m", str(path)]
    cmd = [sys.executable, str(COUNT_SCRIPT), tool.name, str(path)]
    if tool.budgeted:
        cmd += ["--budget", str(budget)]
    return cmd


def _run_once(tool: Tool, path: Path, budget: float, cpu: int, bgpdump_count: int) -> Sample | str:
    """One timed run; a string says why it failed."""
    cmd = _command(tool, path, budget)
    run = common.run_measured(cmd, cpu=cpu, stdout_to_devnull=not tool.python, env=tool.env)
    if run.returncode != 0:
        return f"exit status {run.returncode}: {run.stderr.strip()[-300:]}"
    if not tool.python:
        return Sample(run.wall_s, run.cpu_s, run.max_rss_kib, bgpdump_count)
    try:
        out = json.loads(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"unreadable output: {run.stdout[-300:]!r}"
    return Sample(
        run.wall_s,
        run.cpu_s,
        run.max_rss_kib,
        None if tool.diagnostic else int(out["elements"]),
        partial=bool(out["partial"]),
        loop_s=float(out["loop_s"]),
        import_s=float(out["import_s"]),
        issues=out.get("issues"),
        decompressed_bytes=out.get("decompressed_bytes"),
    )


def bench_file(ds: datasets.Dataset, repeat: int, budget: float, cpu: int, log: Log) -> FileResult:
    """All tools on one file, ``repeat`` interleaved rounds."""
    log(f"\n== {ds.name}: {ds.path}")
    # untimed; warms the page cache. Tuned to save minutes on the full table: same output.
    bgpdump_count, rc = common.count_lines(["bgpdump", "-m", str(ds.path)], env=BGPDUMP_TUNED_ENV)
    log(f"   bgpdump -m | (count lines): {bgpdump_count:,} lines (exit status {rc})")
    results = {t.name: Result(t) for t in TOOLS}
    for rnd in range(repeat):
        k = rnd % len(TOOLS)
        for tool in TOOLS[k:] + TOOLS[:k]:
            s = _run_once(tool, ds.path, budget, cpu, bgpdump_count)
            if isinstance(s, str):
                results[tool.name].errors.append(s)
                log(f"   round {rnd + 1}/{repeat} {tool.name:12s} FAILED: {s}")
                continue
            results[tool.name].samples.append(s)
            what = f"{s.elements:,} elements" if s.elements is not None else ""
            log(
                f"   round {rnd + 1}/{repeat} {tool.name:12s} {s.wall_s:8.2f} s wall {s.cpu_s:8.2f} s cpu "
                f"{s.rss_kib / 1024:7.0f} MiB  {what}{' (partial)' if s.partial else ''}"
            )
    return FileResult(ds, repeat, bgpdump_count, results)


def _checks(fr: FileResult) -> tuple[list[str], list[str]]:
    """(failures, notes) for one file."""
    failures: list[str] = []
    notes: list[str] = []
    name, res, bgp = fr.ds.name, fr.results, fr.bgpdump_count
    for tool in ("transitwatch", "bgpdump", "bgpdump-tuned"):
        if res[tool].errors or not res[tool].samples:
            failures.append(f"{name}: {tool} failed: {'; '.join(res[tool].errors) or 'no run'}")
    tw_counts = sorted({s.elements for s in res["transitwatch"].samples if s.elements is not None})
    if tw_counts and tw_counts != [bgp]:
        failures.append(f"{name}: element counts differ: transitwatch {tw_counts}, bgpdump -m {bgp:,} lines")
    issues = sorted({s.issues for s in res["transitwatch"].samples if s.issues})
    if issues:
        notes.append(f"{name}: transitwatch's reader reported issues: {issues}")
    for tool in ("mrtparse", "bgpkit", "gunzip"):
        r = res[tool]
        if r.errors:
            notes.append(f"{name}: {tool} failed in {len(r.errors)} run(s): {r.errors[0]}")
        e = r.elements()
        if e is not None and not r.partial() and e != bgp:
            notes.append(f"{name}: {r.tool.label} counted {e:,} elements, bgpdump -m {bgp:,} ({e - bgp:+,})")
    return failures, notes


def _fmt_rate(r: float | None) -> str:
    if r is None:
        return "–"
    return f"{r / 1e6:.2f} M" if r >= 1e6 else f"{r / 1e3:.1f} k"


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


HEADER = [
    "file",
    "tool",
    "elements",
    "runs",
    "seconds (median)",
    "CPU s (median)",
    "elements/s",
    "ratio to bgpdump",
    "elements/s excl. start-up",
    "peak RSS (max)",
]


def _rows(fr: FileResult, budget: float) -> list[list[str]]:
    base = fr.results["bgpdump"].rate()
    rows = []
    for tool in TOOLS:
        r = fr.results[tool.name]
        if not r.samples:
            rows.append([fr.ds.name, tool.label, "failed", "0", *["–"] * 6])
            continue
        rate = r.rate()
        if tool.diagnostic:
            elements = f"({(r.samples[0].decompressed_bytes or 0) / 1e6:.0f} MB out)"
        else:
            elements = f"{r.elements() or 0:,}" + (
                f" (partial: {budget:.0f} s budget)" if r.partial() else ""
            )
        rows.append(
            [
                fr.ds.name,
                tool.label,
                elements,
                str(len(r.samples)),
                f"{r.wall():.2f}",
                f"{r.cpu():.2f}",
                _fmt_rate(rate),
                f"{rate / base:.2f}x" if rate and base else "–",
                _fmt_rate(r.rate_reading() if tool.python else rate),
                _mib(r.max_rss_kib()),
            ]
        )
    return rows


def _verdicts(fr: FileResult) -> list[str]:
    out = []
    tw, bgp = fr.results["transitwatch"], fr.results["bgpdump"]
    tw_rate = tw.rate()
    if fr.ds.kind == "rib" and tw_rate:
        for ref in (bgp, fr.results["bgpdump-tuned"]):
            base = ref.rate()
            if not base:
                continue
            ratio = tw_rate / base
            reading = (tw.rate_reading() or tw_rate) / base
            out.append(
                f"- {fr.ds.name}, against {ref.tool.label}: transitwatch {ratio:.2f}x its elements/s by wall "
                f"time ({ref.cpu() / tw.cpu():.2f}x by CPU time, {reading:.2f}x leaving out transitwatch's "
                f"start-up) → **{'met' if ratio >= TARGET_RATIO else 'not met'}**"
            )
    if fr.ds.full_size and tw.samples:
        rss = tw.max_rss_kib()
        out.append(
            f"- memory, {fr.ds.name}: transitwatch peak RSS {_mib(rss)} against the 1 GiB target → "
            f"**{'within' if rss <= MEMORY_TARGET_KIB else 'over'}**"
        )
    return out


def _time_split(fr: FileResult) -> list[str] | None:
    tw, gz = fr.results["transitwatch"], fr.results["gunzip"]
    if not tw.samples or not gz.samples:
        return None
    wall, loop, gzl = tw.wall(), tw.loop(), gz.loop()
    imp = common.median(s.import_s or 0.0 for s in tw.samples)
    return [
        fr.ds.name,
        f"{wall:.2f}",
        f"{wall - loop:.2f} ({imp:.2f} importing pyarrow etc.)",
        f"{loop:.2f}",
        f"{gzl:.2f} ({gzl / loop:.0%})",
        f"{loop - gzl:.2f} ({1 - gzl / loop:.0%})",
    ]


def run(opts: common.Options, log: Log = print) -> common.Section:
    budget = opts.budget if opts.budget is not None else (15.0 if opts.quick else 60.0)
    small_repeat = opts.repeat or (3 if opts.quick else 5)
    files = [(datasets.REAL_RIB, small_repeat), (datasets.REAL_UPDATES, small_repeat)]
    if not opts.quick:
        files.append((datasets.fulltable(log=log), opts.repeat or 3))
    started = common.now_utc()
    commit = common.git_commit()
    reader_code = common.code_id()  # the checkout is shared: say so if the reader changes during the run
    load = common.LoadMeter()
    load.start()
    frs = [bench_file(ds, rep, budget, opts.cpu, log) for ds, rep in files]
    load.stop()
    reader_code_after = common.code_id()

    failures: list[str] = []
    notes: list[str] = []
    rows: list[list[str]] = []
    verdicts: list[str] = []
    split: list[list[str]] = []
    for fr in frs:
        f, n = _checks(fr)
        failures += f
        notes += n
        rows += _rows(fr, budget)
        verdicts += _verdicts(fr)
        if (row := _time_split(fr)) is not None:
            split.append(row)
    if reader_code_after != reader_code:
        notes.append(
            f"the reader's code (src/transitwatch/mrt) changed during the run: git tree {reader_code} at the "
            f"start, {reader_code_after} at the end; the figures mix both"
        )
    if opts.quick:
        verdicts.append("- (quick run: no full-size RIB, so the memory target was not measured)")

    right = range(2, len(HEADER))
    console = [common.text_table(HEADER, rows, right), "", "Targets (reported, not asserted):", *verdicts]

    md = [
        f"Run {started} with `{opts.command}`{' (quick)' if opts.quick else ''}.",
        "",
        *common.machine_lines(
            {
                "bgpdump": common.bgpdump_version(),
                **common.package_versions("mrtparse", "pybgpkit-parser", "pyarrow", "isal"),
            },
            commit=commit,
        ),
        f"- Reader code: git tree {reader_code} of src/transitwatch/mrt",
        f"- Machine load: {load.describe()}",
        "",
        "### Inputs",
        "",
        common.markdown_table(
            ["file", "path", "size", "elements (bgpdump -m lines)", "what"],
            [
                [
                    fr.ds.name,
                    f"`{datasets.short_path(fr.ds.path)}`",
                    f"{fr.ds.path.stat().st_size / 1e6:.1f} MB",
                    f"{fr.bgpdump_count:,}",
                    fr.ds.about,
                ]
                for fr in frs
            ],
            right=[2, 3],
        ),
        "",
        "### Results",
        "",
        f"Each tool in its own process pinned to CPU {opts.cpu} (`taskset -c {opts.cpu}`), every round runs "
        "each tool once (order rotated per round). seconds = median process wall time, start-up and imports "
        "included; CPU s = user + sys; elements/s = median over runs of elements / wall time; ratio = "
        "elements/s over bgpdump's on the same file in the same benchmark run; excl. start-up = elements / "
        "reading time measured inside the process; peak RSS = largest maximum RSS over the runs (GNU time "
        f"%M). mrtparse and pybgpkit-parser stop after a {budget:.0f} s budget per run: *partial* rows are "
        "measured on the start of the file (for the full-size RIB that is IPv4 entries only). *gunzip only* "
        "decompresses the file the way transitwatch's reader does, without decoding.",
        "",
        common.markdown_table(HEADER, rows, right),
        "",
        "### Targets (reported, not asserted)",
        "",
        f"Target: transitwatch ≥ {TARGET_RATIO:.0f}x bgpdump elements/s on one core on the gzip RIBs "
        "(judged by wall time); peak memory ≤ 1 GiB on the full-size RIB.",
        "",
        *verdicts,
        "",
        "### Where transitwatch's time goes",
        "",
        common.markdown_table(
            [
                "file",
                "process wall s",
                "start-up + exit s",
                "reading s",
                "gunzip alone s (share)",
                "decoding s (share)",
            ],
            split,
            right=range(1, 6),
        ),
        "",
        "Medians of the rounds. start-up + exit = process wall - reading: interpreter start, imports (mostly "
        "pyarrow and numpy) and shutdown. Reading time is measured inside the process; gunzip alone is the "
        "same decompression (`transitwatch.mrt.io.open_chunks`, ISA-L) in its own process; decoding = "
        "reading - gunzip alone (MRT decoding and building the Arrow batches).",
    ]
    return common.section(NAME, TITLE, opts, console, md, notes=notes, failures=failures, load=load)
