"""Fan-out of the per-collector work: local processes or a Dask distributed cluster.

Each collector's RIB dump and update sequence are read independently (decompression, decoding and
filtering are the costly part); only the target's rows come back, in the inputs' order, and the
merge that follows is the same as in a single process, so results are identical.

    transitwatch upstreams KP --archive ... --workers 2
    transitwatch upstreams KP --archive ... --scheduler tcp://10.0.0.5:8786

With a cluster, the archive paths must be readable by the workers (a shared file system, or an
http(s) archive that each worker streams).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from transitwatch.analysis.feed import CollectorInput, CollectorRows, read_collector
from transitwatch.mrt.io import set_bz2_threads
from transitwatch.targets import Target


def map_collectors(
    inputs: list[CollectorInput],
    target: Target,
    end: float,
    *,
    workers: int = 1,
    scheduler: str | None = None,
) -> list[CollectorRows]:
    """Read every collector in parallel; results in the same order as ``inputs``."""
    job = partial(read_collector, target=target, end=end)
    if scheduler is not None:
        return _on_dask(inputs, job, scheduler)
    if workers <= 1 or len(inputs) <= 1:
        return [job(ci) for ci in inputs]
    processes = min(workers, len(inputs))
    share = max(1, (os.cpu_count() or 1) // processes)  # each worker's share of the cores
    with ProcessPoolExecutor(max_workers=processes, initializer=set_bz2_threads, initargs=(share,)) as pool:
        return list(pool.map(job, inputs))


def _on_dask(
    inputs: list[CollectorInput], job: partial[CollectorRows], scheduler: str
) -> list[CollectorRows]:
    try:
        from distributed import Client
    except ImportError as exc:  # an optional dependency
        raise ValueError("--scheduler needs Dask: pip install 'transitwatch[cluster]'") from exc
    with Client(scheduler, timeout=30) as client:
        futures = client.map(job, inputs, pure=False)
        return list(client.gather(futures))
