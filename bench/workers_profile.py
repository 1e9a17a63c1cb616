"""Where the time of ``transitwatch upstreams`` goes, step by step, in one process (a diagnostic).

    python bench/workers_profile.py TARGET ARCHIVE FROM TO REGISTRY

Runs what ``transitwatch upstreams TARGET --format json`` runs, with the same options, one step at a
time: imports, planning, each collector's reading (``read_collector``: what one worker of
``--workers N`` does), pickling each collector's result and back (what the process pool ships), the
analysis of the merged rows, and the JSON report; plus the cost of starting a 2-process pool
(``total_s``: everything so far). Then the collectors are read again in a 2-process pool as
``--workers 2`` does (each worker given its share of the cores for bzip2 decoding, as
``map_collectors`` does), timed inside the workers (wall and CPU time of each read, all threads).
Prints one JSON object with the times (seconds) and the sizes, and the sha256 of the JSON report,
which should be that of the command's output.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
import time
from typing import Any

_T0 = time.perf_counter()


def _noop(x: int) -> int:
    return x


def _timed_read(ci: Any, target: Any, end: float) -> dict[str, Any]:
    """One collector read in a pool worker, as ``map_collectors`` does, timed there."""
    import os

    from transitwatch.analysis.feed import read_collector

    started, w, c = time.time(), time.perf_counter(), time.process_time()
    read_collector(ci, target, end)
    return {
        "name": ci.name,
        "pid": os.getpid(),
        "start": started,
        "read_s": time.perf_counter() - w,
        "read_cpu_s": time.process_time() - c,  # every thread of the worker
    }


def _pooled(inputs: list[Any], target: Any, end: float) -> dict[str, Any]:
    import os
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    from transitwatch.mrt.io import set_bz2_threads

    share = max(1, (os.cpu_count() or 1) // 2)  # as map_collectors gives each of 2 workers
    t0, w = time.time(), time.perf_counter()
    with ProcessPoolExecutor(max_workers=2, initializer=set_bz2_threads, initargs=(share,)) as pool:
        reads = list(pool.map(partial(_timed_read, target=target, end=end), inputs))
    for r in reads:
        r["start"] -= t0
    return {"wall_s": time.perf_counter() - w, "collectors": reads}


def main(argv: list[str]) -> dict[str, Any]:
    target, archive, start, end, registry = argv
    from concurrent.futures import ProcessPoolExecutor

    from transitwatch import api
    from transitwatch.analysis.feed import read_collector
    from transitwatch.analysis.upstreams import UpstreamOptions, analyse_rows
    from transitwatch.routing.state import FullFeedRule
    from transitwatch.timeutil import parse_time

    out: dict[str, Any] = {"import_s": time.perf_counter() - _T0}
    t = time.perf_counter()
    reg = api.registry_for(target, registry)
    tgt = api.resolve_target(target, reg)
    t0, t1 = parse_time(start), parse_time(end)
    inputs, gaps = api.plan_inputs(archive, None, t0, t1)
    out["plan_s"] = time.perf_counter() - t

    collectors = []
    rows = []
    for ci in inputs:
        w, c = time.perf_counter(), time.process_time()
        r = read_collector(ci, tgt, t1)
        read_s, read_cpu = time.perf_counter() - w, time.process_time() - c
        w = time.perf_counter()
        blob = pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)
        collectors.append(
            {
                "name": ci.name,
                "files": r.stats["files"],
                "elements": r.stats["elements"],
                "rows_kept": len(r.rib_rows) + len(r.update_rows),
                "read_s": read_s,
                "read_cpu_s": read_cpu,
                "pickle_bytes": len(blob),
                "pickle_s": time.perf_counter() - w,
            }
        )
        rows.append(r)
    out["collectors"] = collectors

    t = time.perf_counter()
    options = UpstreamOptions(t0, t1, full_feed=FullFeedRule())  # the command's defaults
    result = analyse_rows(tgt, rows, options, names=reg)
    result.gaps = gaps
    out["analysis_s"] = time.perf_counter() - t
    t = time.perf_counter()
    text = json.dumps(result.to_json(), indent=1) + "\n"
    out["report_s"] = time.perf_counter() - t
    out["report_sha256"] = hashlib.sha256(text.encode()).hexdigest()

    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_noop, [1, 2]))
    out["pool_start_stop_s"] = time.perf_counter() - t
    out["total_s"] = time.perf_counter() - _T0
    # the reads again, in a 2-process pool as --workers 2 runs them, timed inside the workers
    out["pooled"] = _pooled(inputs, tgt, t1)
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
