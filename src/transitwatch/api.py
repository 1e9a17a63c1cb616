"""transitwatch's Python API: the functions the command line is built on.

from transitwatch import api
result = api.upstreams("KP", archive="/data/archive", start="2017-10-01T08:00Z",
                       end="2017-10-02T12:00Z", registry="/data/registry")
result.to_json()["upstreams"]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transitwatch.analysis.feed import CollectorInput
from transitwatch.analysis.upstreams import UpstreamOptions, UpstreamResult, analyse_upstreams
from transitwatch.detect.anomalies import AnomalyRule
from transitwatch.detect.outages import OutageRule
from transitwatch.model import SourceIssue
from transitwatch.mrt.io import is_url
from transitwatch.routing.state import FullFeedRule
from transitwatch.targets import Target
from transitwatch.timeutil import parse_time

logger = logging.getLogger("transitwatch")


def _time(value: int | float | str) -> int:
    return parse_time(value) if isinstance(value, str) else int(value)


def load_registry(registry: Any) -> Any:
    """A Registry from a directory, an existing Registry, or the default cache (None)."""
    from transitwatch.registry import Registry

    if registry is None or isinstance(registry, (str, Path)):
        return Registry.load_default(registry)
    return registry


def registry_for(target: str | Target, registry: Any) -> Any:
    """The registry to use: required for country targets, optional (names only) otherwise."""
    from transitwatch.registry import RegistryNotFoundError
    from transitwatch.targets import parse_target_spec

    needed = isinstance(target, str) and bool(parse_target_spec(target).countries)
    try:
        return load_registry(registry)
    except RegistryNotFoundError:
        if needed or registry is not None:
            raise
        return None


def resolve_target(target: str | Target, registry: Any) -> Target:
    if isinstance(target, Target):
        return target
    return Target.resolve(target, registry)


def plan_inputs(
    archive: str,
    collectors: list[str] | None,
    start: int,
    end: int,
    *,
    cache: str | None = None,
    cache_limit: int | None = None,
    offline: bool = False,
    progress: bool | None = None,
) -> tuple[list[CollectorInput], list[dict[str, Any]]]:
    """The files each collector needs for the window (RIB at or before start, then updates), and gaps.

    URL archives are downloaded into the cache first (verified, resumable, shared across runs);
    files that cannot be had are reported as gaps, never silently skipped.
    """
    from transitwatch.registry import default_cache_dir
    from transitwatch.sources.archive import is_remote, plan_files

    cache_dir = Path(cache) if cache else default_cache_dir() / "archives"
    if offline and is_remote(archive):
        # the cache mirrors the archives' layout (RIS and RouteViews paths do not collide, and a
        # broker's answers point at them): plan from it, and make no request at all
        archive = str(cache_dir)
    plan = plan_files(archive, collectors, start, end)
    gaps = [g.to_dict() for g in plan.gaps]
    locations: dict[str, str] = {}
    files = plan.all_files()
    if any(is_url(f.location) for f in files):
        from transitwatch.sources.download import Downloader

        with Downloader(cache_dir, max_cache_bytes=cache_limit, offline=offline, progress=progress) as dl:
            fetched = dl.fetch(files)
        for note in fetched.notes:
            logger.warning("%s", note)
        locations = {f.location: str(p) for f, p in fetched.paths.items()}
        gaps.extend(g.to_dict() for g in fetched.gaps)
    else:
        locations = {f.location: f.location for f in files}
    inputs = []
    order = collectors or sorted(plan.files)
    for name in order:
        cf = plan.files.get(name, [])
        ribs = [f for f in cf if f.kind == "rib" and f.location in locations]
        updates = [locations[f.location] for f in cf if f.kind == "updates" and f.location in locations]
        rib = ribs[0] if ribs else None
        inputs.append(
            CollectorInput(name, locations[rib.location] if rib else None, updates, rib.time if rib else None)
        )
    return inputs, gaps


def upstreams(
    target: str | Target,
    archive: str,
    start: int | str,
    end: int | str,
    *,
    collectors: list[str] | None = None,
    registry: Any = None,
    bin_s: int = 300,
    min_peers: int = 3,
    full_feed: FullFeedRule | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    cache: str | None = None,
    cache_limit: int | None = None,
    offline: bool = False,
    on_issue: Callable[[SourceIssue], None] | None = None,
    progress: bool | None = None,
    outage: OutageRule | None = None,
    anomaly: AnomalyRule | None = None,
    spof_share: float = 0.9,
) -> UpstreamResult:
    """Who carried the target's routes over [start, end), in what share, since when.

    The result also holds the outages, origin anomalies and dependency of the target (see
    :class:`transitwatch.analysis.upstreams.UpstreamResult`).
    """
    reg = registry_for(target, registry)
    tgt = resolve_target(target, reg)
    t0, t1 = _time(start), _time(end)
    inputs, gaps = plan_inputs(
        archive, collectors, t0, t1, cache=cache, cache_limit=cache_limit, offline=offline, progress=progress
    )
    options = UpstreamOptions(
        t0,
        t1,
        bin_s=bin_s,
        min_peers=min_peers,
        full_feed=full_feed or FullFeedRule(),
        workers=workers,
        scheduler=scheduler,
        outage=outage or OutageRule(),
        anomaly=anomaly,
        spof_share=spof_share,
    )
    from transitwatch.progress import reading_files, wanted

    n_files = sum(len(ci.updates) + (1 if ci.rib else 0) for ci in inputs)
    with reading_files(n_files, wanted(progress) and workers <= 1 and scheduler is None) as on_file:
        result = analyse_upstreams(tgt, inputs, options, names=reg, on_issue=on_issue, progress=on_file)
    result.gaps = gaps
    return result
