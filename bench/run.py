"""transitwatch benchmarks: one command, one section per benchmark.

    python bench/run.py                 # every benchmark, full size; rewrites their sections of RESULTS.md
    python bench/run.py --only reader   # one benchmark
    python bench/run.py --quick         # small inputs, fewer rounds; prints only (add --write to record)

A benchmark is a module under bench/ with ``NAME``, ``TITLE`` and ``run(opts: common.Options, log)
-> common.Section``; add it to ``SECTIONS`` below. Each section of RESULTS.md is replaced when its
benchmark runs and the others are kept.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ modules, whatever the working directory

import common

# section name -> module under bench/, in the order they run and appear in RESULTS.md.
SECTIONS: dict[str, str] = {
    "reader": "reader_bench",
    "upstreams": "upstreams_bench",
    "workers": "workers_bench",
    "rislive": "rislive_bench",
}


def _log(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Runs transitwatch's benchmarks (see bench/README.md).")
    ap.add_argument("--quick", action="store_true", help="skip the full-size inputs, fewer rounds")
    ap.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these benchmarks (repeat or comma-separate): {', '.join(SECTIONS)}",
    )
    ap.add_argument("--repeat", type=int, help="rounds per input (default: the benchmark's own)")
    ap.add_argument(
        "--budget", type=float, help="seconds per run for slow tools (reader default: 60, quick: 15)"
    )
    ap.add_argument(
        "--cpu", type=int, default=0, help="core the measured processes are pinned to (default 0)"
    )
    write = ap.add_mutually_exclusive_group()
    write.add_argument("--write", action="store_true", help="write bench/RESULTS.md even with --quick")
    write.add_argument("--no-write", action="store_true", help="print only, leave bench/RESULTS.md alone")
    args = ap.parse_args(argv)

    names = [n.strip() for item in (args.only or list(SECTIONS)) for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    command = "python bench/run.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    opts = common.Options(
        quick=args.quick, repeat=args.repeat, budget=args.budget, cpu=args.cpu, command=command
    )
    record = not args.no_write and (args.write or not args.quick)

    failed = False
    for name in [n for n in SECTIONS if n in names]:
        module = importlib.import_module(SECTIONS[name])
        _log(f"### {module.TITLE}")
        t0 = time.monotonic()
        section: common.Section = module.run(opts, log=_log)
        _log(f"\n{section.console}\n({name}: {time.monotonic() - t0:.0f} s)")
        if record:
            common.update_results(section)
            _log(f"wrote section '{name}' of {common.RESULTS_MD}")
        if section.failures:
            failed = True
            _log(f"\n!!! {name}: {len(section.failures)} check(s) FAILED:")
            for f in section.failures:
                _log(f"!!!   {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
