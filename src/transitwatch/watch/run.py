"""Running a watcher: bootstrap from archives, then RIS Live (``watch``) or update files (``replay``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from transitwatch.analysis.feed import CollectorRows, merge_updates, read_collector
from transitwatch.model import Element
from transitwatch.routing.state import Row
from transitwatch.store import Store
from transitwatch.targets import Target
from transitwatch.timeutil import iso, parse_time
from transitwatch.watch.config import TargetConfig, WatchConfig
from transitwatch.watch.watcher import Watcher, row_from_element

logger = logging.getLogger("transitwatch.watch")

FLUSH_ROWS = 20_000  # flush at least this often in rows, whatever the time


def load_registry_for(config: WatchConfig) -> Any:
    """The registry: required when a target is a country, else optional (AS names only)."""
    from transitwatch import api
    from transitwatch.targets import parse_target_spec

    specs = [c.target for c in config.targets]
    country = next((s for s in specs if parse_target_spec(s).countries), specs[0])
    return api.registry_for(country, config.registry)


def resolve_targets(config: WatchConfig, registry: Any) -> list[tuple[TargetConfig, Target]]:
    from transitwatch.targets import Target as T

    return [(c, T.resolve(c.target, registry)) for c in config.targets]


def union_target(targets: list[tuple[TargetConfig, Target]]) -> Target:
    """One target covering all of them, so archives are read once for every target."""
    asns: set[int] = set()
    explicit: list[Any] = []
    delegated: list[Any] = []
    for _c, t in targets:
        asns |= t.asns
        explicit.extend(t.explicit_prefixes)
        delegated.extend(t.delegated)
    return Target(
        "+".join(c.label for c, _ in targets),
        (),
        frozenset(asns),
        tuple(dict.fromkeys(explicit)),
        tuple(dict.fromkeys(delegated)),
        any(t.has_registry for _c, t in targets),
    )


def read_archive(
    config: WatchConfig,
    archive: str,
    target: Target,
    start: int,
    end: int,
    collectors: list[str] | None = None,
) -> tuple[list[CollectorRows], list[dict[str, Any]]]:
    """The collectors' RIB at or before ``start`` and their update rows before ``end``, plus gaps."""
    from transitwatch import api

    inputs, gaps = api.plan_inputs(
        archive, collectors or config.bootstrap.collectors, start, end, cache=config.bootstrap.cache
    )
    rows = [read_collector(ci, target, end) for ci in inputs]
    return rows, gaps


def _gap_event(g: dict[str, Any]) -> tuple[float, float, str]:
    return parse_time(g["start"]), parse_time(g["end"]), f"{g['collector']} {g['kind']} {g['reason']}"


def open_watcher(
    config: WatchConfig,
    *,
    clock: Callable[[], float] = time.time,
    on_events: Callable[[list[dict[str, Any]], float], None] | None = None,
) -> tuple[Watcher, Store, Target, Any]:
    """The watcher, its store, the union of its targets, and the alert dispatcher (None: no alerts).

    Every event the watcher stores goes to ``on_events`` if given, else to the dispatcher built
    from the config's channels (which shares the watcher's store, so sent alerts are recorded there).
    """
    registry = load_registry_for(config)
    targets = resolve_targets(config, registry)
    # open only while writing, so `serve` can read the store between flushes
    store = Store(config.storage, keep_open=False)
    dispatcher = None
    if on_events is None and any(t.alerts for t in config.targets):
        from transitwatch.alerts import build_dispatcher

        dispatcher = build_dispatcher(config, store)
        on_events = dispatcher.process
    watcher = Watcher(config, store, targets, names=registry, clock=clock, on_events=on_events)
    return watcher, store, union_target(targets), dispatcher


# ---- replay ---------------------------------------------------------------------------------------
def replay(
    config: WatchConfig,
    archive: str,
    start: int,
    end: int,
    *,
    speed: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    on_events: Callable[[list[dict[str, Any]], float], None] | None = None,
) -> list[dict[str, Any]]:
    """Feed the archive's update files for [start, end) through the live code path; return the events.

    ``speed`` paces the rows by their timestamps (60: an hour of data per minute; 0: as fast as
    possible). The store's journal is reset: a replay recomputes everything from the archive.
    """
    watcher, store, union, dispatcher = open_watcher(config, clock=clock, on_events=on_events)
    try:
        store.clear_journal()
        rows, gaps = read_archive(config, archive, union, start, end)
        watcher.bootstrap(rows, start)
        for g in gaps:
            watcher.gap(*_gap_event(g))
        t_wall = clock()
        pending: list[Row] = []
        last_flush = clock()
        for row in merge_updates(rows):
            if row.time < start:
                continue
            if speed > 0:
                due = t_wall + (row.time - start) / speed
                wait = due - clock()
                if wait > 0:
                    if pending:
                        watcher.process(pending)
                        pending = []
                    sleep(wait)
            pending.append(row)
            if len(pending) >= FLUSH_ROWS or clock() - last_flush >= config.flush_interval:
                watcher.process(pending)
                pending = []
                watcher.flush()
                last_flush = clock()
        watcher.process(pending)
        watcher.last_time = max(watcher.last_time or start, float(end))
        watcher.flush()
        return watcher.events(since=start, until=end)  # this window's, whatever the store held before
    finally:
        if dispatcher is not None:
            dispatcher.close()
        store.close()


# ---- live ------------------------------------------------------------------------------------------
def stream_subscriptions(watcher: Watcher, union: Target) -> list[dict[str, Any]]:
    from transitwatch.sources.rislive import subscriptions_for

    prefixes: set[str] = {str(n) for n in union.explicit_prefixes} | {str(n) for n in union.delegated}
    for wt in watcher.targets:
        if wt.engine is not None:
            prefixes |= set(wt.engine.targets.prefixes)
    # more-specifics of a delegated block arrive through its subscription: drop covered prefixes
    return subscriptions_for(prefixes=sorted(_outermost(prefixes)), origin_asns=sorted(union.asns))


def _outermost(prefixes: set[str]) -> set[str]:
    """The prefixes not inside another one. In address order a covering prefix comes first, and the
    kept ones are disjoint: a prefix is covered if and only if the last one kept covers it."""
    from transitwatch.prefixes import network, network_key

    kept: list[Any] = []
    for n in sorted((network(p) for p in prefixes), key=network_key):
        if not (kept and kept[-1].version == n.version and n.subnet_of(kept[-1])):
            kept.append(n)
    return {str(n) for n in kept}


async def watch(
    config: WatchConfig,
    *,
    clock: Callable[[], float] = time.time,
    stop: asyncio.Event | None = None,
    on_events: Callable[[list[dict[str, Any]], float], None] | None = None,
    client_options: dict[str, Any] | None = None,
    ready: Callable[[], Awaitable[None] | None] | None = None,
    on_flush: Callable[[Watcher], None] | None = None,
    wall: Callable[[], float] = time.monotonic,
) -> Watcher:
    """Bootstrap, restore the journal, then follow RIS Live until ``stop`` is set.

    ``clock`` is the time of the world (staleness, lag, store timestamps; injectable in tests);
    ``wall`` paces the store writes (every ``flush_interval`` seconds).
    """
    from transitwatch.sources.rislive import Gap, Lag, RisLiveClient

    watcher, store, union, dispatcher = open_watcher(config, clock=clock, on_events=on_events)
    try:
        at = parse_time(config.bootstrap.at) if config.bootstrap.at else int(clock())
        rows, gaps = read_archive(config, config.bootstrap.archive, union, at, at + 1)
        watcher.bootstrap(rows, at)
        for g in gaps:
            watcher.gap(*_gap_event(g))
        previous = store.state("", "watcher")  # written at every flush of an earlier run
        restored = watcher.restore()
        pruned = store.prune_journal(at)  # rows from before this bootstrap's RIB: never needed again
        if pruned:
            logger.info("dropped %d journaled rows older than the bootstrap at %s", pruned, iso(at))
        now = clock()
        if restored and previous:
            # blind while the watcher was down: from its last store write to now
            if now - previous["flushed_at"] > 1.0:
                watcher.gap(previous["flushed_at"], now, "watcher restarted")
        elif now - at > 60:
            watcher.gap(float(at), now, "between the bootstrap data and the stream")
        watcher.flush()
        logger.info("started at %s: %d journaled rows restored", iso(at), restored)
        subs = stream_subscriptions(watcher, union)
        options: dict[str, Any] = {
            "stale_after": config.stream.stale_after,
            "max_message_bytes": config.stream.max_message_bytes,
            "out_of_order_tolerance": config.stream.out_of_order_tolerance,
            "clock": clock,
        }
        options.update(client_options or {})
        client = RisLiveClient(config.stream.url, subs, **options)
        pending: list[Row] = []
        last_flush = wall()

        def flush() -> None:
            nonlocal last_flush
            watcher.flush(
                [
                    ("", "watcher", {"flushed_at": clock(), "data_time": watcher.last_time}),
                    ("", "stream_counters", dataclasses.asdict(client.counters)),
                ]
            )
            last_flush = wall()
            logger.info("flushed: %s", describe_position(watcher))
            if on_flush is not None:
                on_flush(watcher)

        if ready is not None:
            res = ready()
            if res is not None:
                await res
        async with client:
            reader = _NextEvent(client.__aiter__())
            try:
                while stop is None or not stop.is_set():
                    ev = await reader.get(config.flush_interval)
                    if isinstance(ev, Element):
                        pending.append(row_from_element(ev))
                    elif isinstance(ev, Gap):
                        watcher.gap(ev.start, ev.end, ev.reason)
                    elif isinstance(ev, Lag):
                        store.set_state("", "stream_lag", {"seconds": ev.seconds, "at": clock()}, clock())
                    if pending and (
                        len(pending) >= FLUSH_ROWS or wall() - last_flush >= config.flush_interval
                    ):
                        pending.sort(key=lambda r: r.time)
                        watcher.process(pending)
                        pending = []
                        flush()
                    elif ev is None and wall() - last_flush >= config.flush_interval:
                        flush()
            except StopAsyncIteration:
                pass
            finally:
                await reader.close()
        pending.sort(key=lambda r: r.time)
        watcher.process(pending)
        flush()
        return watcher
    finally:
        if dispatcher is not None:
            dispatcher.close()
        store.close()


class _NextEvent:
    """Reads an async iterator with a timeout, never cancelling a read: cancelling an async
    generator's ``__anext__`` would end the generator (here: the stream client)."""

    def __init__(self, iterator: Any) -> None:
        self.iterator = iterator
        self.pending: asyncio.Future[Any] | None = None

    async def get(self, timeout: float) -> Any:
        """The next item, or None if none came within ``timeout`` seconds (the read goes on)."""
        if self.pending is None:
            self.pending = asyncio.ensure_future(self.iterator.__anext__())
        done, _ = await asyncio.wait({self.pending}, timeout=timeout)
        if not done:
            return None
        fut, self.pending = self.pending, None
        return fut.result()

    async def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            with contextlib.suppress(BaseException):
                await self.pending
            self.pending = None


def describe_position(watcher: Watcher) -> str:
    return f"{watcher.rows_applied} rows applied, data time {iso(watcher.last_time)}"
