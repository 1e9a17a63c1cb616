"""Shared pieces of the benchmarks: timed subprocesses, machine description, result files."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"


@dataclass
class Options:
    """Command-line options every section receives."""

    quick: bool = False
    repeat: int | None = None  # None: the section's default
    budget: float | None = None  # None: the section's default
    cpu: int = 0
    command: str = ""  # the command line, for "how to reproduce"


@dataclass
class Section:
    """What a benchmark section hands back to the runner."""

    name: str
    title: str
    console: str  # printed to the terminal
    markdown: str  # the section's body in RESULTS.md (without its heading)
    failures: list[str] = field(default_factory=list)  # failed checks: the runner exits non-zero


def section(
    name: str,
    title: str,
    opts: Any,
    console: list[str],
    md: list[str],
    *,
    notes: Sequence[str] = (),
    failures: Sequence[str] = (),
    load: Any = None,
) -> Section:
    """A benchmark's section: its body, then its notes, failed checks, the machine's load (console) and
    how to reproduce it (markdown)."""
    console, md = list(console), list(md)
    if notes:
        console += ["", "Notes:", *(f"- {n}" for n in notes)]
        md += ["", "### Notes", "", *(f"- {n}" for n in notes)]
    if failures:
        console += ["", "CHECKS FAILED:", *(f"- {f}" for f in failures)]
        md += ["", "### CHECKS FAILED", "", *(f"- {f}" for f in failures)]
    if load is not None:
        console += ["", "Machine load: " + load.describe()]
    md += ["", f"Reproduce: `. /work/venv/bin/activate && {opts.command}`"]
    return Section(name, title, "\n".join(console), "\n".join(md), list(failures))


# --- timed subprocesses ----------------------------------------------------------------------------


@dataclass
class Run:
    """One finished subprocess: wall time, CPU time and peak RSS (from wait4's rusage)."""

    cmd: list[str]
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_kib: int
    returncode: int
    stdout: str
    stderr: str

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


GNU_TIME = "/usr/bin/time"


def run_measured(
    cmd: Sequence[str],
    *,
    cpu: int | None = 0,
    stdout_to_devnull: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float = 3600,
) -> Run:
    """Runs ``cmd`` pinned with ``taskset -c CPU`` (unless cpu is None) and measures it.

    Wall time is taken here around spawn .. exit (high resolution). CPU time and peak RSS come from
    GNU time (``/usr/bin/time -f '%e %U %S %M'``), which forks the tool from its own small process:
    a child forked straight from this Python process would report this process's RSS as its peak
    when that is larger (Linux carries the pre-exec high-water mark over exec). Without GNU time,
    wait4's rusage is used, with that caveat. Output goes to temporary files (no pipe to drain) or,
    with ``stdout_to_devnull``, stdout to /dev/null as in ``tool > /dev/null``. ``env`` adds to the
    environment.
    """
    pinned = ["taskset", "-c", str(cpu), *cmd] if cpu is not None else list(cmd)
    have_time = os.access(GNU_TIME, os.X_OK)
    with (
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as out,
        tempfile.NamedTemporaryFile("r", suffix=".time") as tfile,
    ):
        full = [GNU_TIME, "-o", tfile.name, "-f", "%e %U %S %M", *pinned] if have_time else pinned
        stdout = subprocess.DEVNULL if stdout_to_devnull else out
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            full,
            stdout=stdout,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env} if env else None,
        )
        killer = threading.Timer(timeout, proc.kill)  # a hung tool must not hang the benchmark
        killer.start()
        try:
            _pid, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        user, system, rss = ru.ru_utime, ru.ru_stime, ru.ru_maxrss
        if have_time:
            lines = tfile.read().strip().splitlines()
            try:
                _e, u, s, m = lines[-1].split()
                user, system, rss = float(u), float(s), int(m)
            except (IndexError, ValueError):
                pass  # killed before time could report: keep wait4's figures
        out.seek(0)
        err.seek(0)
        return Run(
            pinned,
            wall,
            user,
            system,
            rss,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def count_lines(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """Untimed: runs ``cmd`` and counts the lines of its stdout (as ``cmd | wc -l``). -> (lines, rc)."""
    n = 0
    full_env = {**os.environ, **env} if env else None
    with subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=full_env) as proc:
        assert proc.stdout is not None
        while block := proc.stdout.read(1 << 20):
            n += block.count(b"\n")
    return n, proc.returncode


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


# --- machine load ---------------------------------------------------------------------------------


def _cpu_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat."""
    res = []
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d+ ", line):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + v[4]  # idle + iowait
            res.append((sum(v) - idle, sum(v)))
    return res


class LoadMeter:
    """Busy share of each CPU between start() and stop(), ours included, and the load average."""

    def start(self) -> None:
        self._t0 = _cpu_times()
        self.load_before = Path("/proc/loadavg").read_text().split()[:3]

    def stop(self) -> None:
        t1 = _cpu_times()
        self.busy = [
            (b1 - b0) / (n1 - n0) if n1 > n0 else 0.0
            for (b0, n0), (b1, n1) in zip(self._t0, t1, strict=False)
        ]
        self.load_after = Path("/proc/loadavg").read_text().split()[:3]

    def describe(self) -> str:
        busy = ", ".join(f"cpu{i} {b:.0%}" for i, b in enumerate(self.busy))
        return (
            f"busy during the run (this benchmark included): {busy}; "
            f"load average before {' '.join(self.load_before)}, after {' '.join(self.load_after)}"
        )


# --- machine description --------------------------------------------------------------------------


def _first(path: str, pattern: str) -> str | None:
    try:
        m = re.search(pattern, Path(path).read_text(), re.M)
    except OSError:
        return None
    return m.group(1).strip() if m else None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cmd_out(cmd: Sequence[str], strip: bool = True) -> str:
    try:
        res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    out = res.stdout + res.stderr
    return out.strip() if strip else out.rstrip("\n")


def bgpdump_version() -> str:
    deb = _cmd_out(["dpkg-query", "-W", "-f", "${Version}", "bgpdump"])
    m = re.search(r"bgpdump version (\S+)", _cmd_out(["bgpdump", "-h"]))
    v = m.group(1) if m else "unknown"
    return f"{v} (Debian {deb})" if deb and "no packages" not in deb else v


def git_commit() -> str:
    """HEAD, and what is uncommitted in the package (read-only git commands)."""
    head = _cmd_out(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"]) or "unknown"
    # porcelain lines are "XY PATH": keep their leading space
    dirty = _cmd_out(
        ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "src", "setup.py"], strip=False
    )
    if not dirty.strip():
        return head
    paths = [line[3:] for line in dirty.splitlines()]
    mrt = [p for p in paths if p.startswith("src/transitwatch/mrt/")]
    return f"{head} + uncommitted changes in {', '.join(paths)}" + (
        "" if mrt else " (none in src/transitwatch/mrt/, the reader)"
    )


def code_id(path: str = "src/transitwatch/mrt") -> str:
    """Identifies the code under ``path``: its git tree at HEAD plus any uncommitted change in it."""
    tree = _cmd_out(["git", "-C", str(REPO_DIR), "rev-parse", f"HEAD:{path}"])
    dirty = _cmd_out(["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", path])
    return f"{tree[:12]}{' + uncommitted: ' + ' '.join(dirty.split()) if dirty else ''}"


def machine_lines(tools: dict[str, str] | None = None, commit: str | None = None) -> list[str]:
    """Markdown bullet lines describing the machine and the software versions."""
    cpu = _first("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or platform.processor() or "unknown"
    mem_kib = _first("/proc/meminfo", r"^MemTotal:\s*(\d+)")
    mem = f"{int(mem_kib) / 1024**2:.1f} GiB" if mem_kib else "unknown"
    os_name = _first("/etc/os-release", r'^PRETTY_NAME="?([^"\n]+)') or platform.system()
    usable = len(os.sched_getaffinity(0))
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores ({usable} usable by this process)",
        f"- RAM: {mem}",
        f"- OS: {os_name}, kernel {platform.release()}",
        f"- Python {platform.python_version()} ({sys.executable})",
        f"- transitwatch: git {commit or git_commit()}",
    ]
    for name, version in (tools or {}).items():
        lines.append(f"- {name}: {version}")
    return lines


def package_versions(*dists: str) -> dict[str, str]:
    return {d: _version(d) for d in dists}


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- tables and RESULTS.md -------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> str:
    r = set(right)
    out = ["| " + " | ".join(header) + " |"]
    out.append("| " + " | ".join("---:" if i in r else "---" for i in range(len(header))) + " |")
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> str:
    r = set(right)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in r else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(row) for row in rows)])


_PREAMBLE = """# Benchmark results

Regenerated by `python bench/run.py` (see bench/README.md): each section is replaced when its
benchmark runs; the other sections are kept as they were.
"""


def update_results(section: Section, path: Path = RESULTS_MD) -> None:
    """Replaces (or appends) the section between its markers, keeping every other section."""
    begin, end = f"<!-- section:{section.name} -->", f"<!-- /section:{section.name} -->"
    block = f"{begin}\n## {section.title}\n\n{section.markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else _PREAMBLE
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pat.sub(lambda _m: block, text) if pat.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n")
    tmp.replace(path)
