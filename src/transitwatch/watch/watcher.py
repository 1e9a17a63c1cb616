"""The watcher: one engine per target, fed rows from the RIS Live stream or from MRT update files.

``watch`` and ``replay`` both run this class, so live and history give the same events. Every row
applied is first written to the store's journal; after a crash or ``kill -9`` the watcher rebuilds
its state from the RIB bootstrap plus the journal (the engines are deterministic), so the events it
stores again are the same events, with the same ids: nothing lost, nothing duplicated. Alerts
already sent are recorded in the store and not sent again.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from transitwatch.analysis.engine import Engine
from transitwatch.analysis.feed import CollectorRows
from transitwatch.detect.anomalies import AnomalyRule
from transitwatch.detect.outages import OutageRule
from transitwatch.model import Element
from transitwatch.routing.state import FullFeedRule, PeerKey, PeerTables, Row
from transitwatch.store import Store
from transitwatch.targets import Target, TargetSet
from transitwatch.timeutil import iso
from transitwatch.watch.config import TargetConfig, WatchConfig

logger = logging.getLogger("transitwatch.watch")


def row_from_element(el: Element) -> Row:
    """A stream element (RIS Live) as the row the route state takes; same fields as from MRT."""
    return Row(
        el.timestamp,
        el.collector or "",
        el.peer_address or "",
        el.peer_asn or 0,
        el.type.value,
        el.prefix,
        el.as_path,
        el.origin_asn,
        el.new_state,
    )


@dataclass(eq=False)  # identity: one per target
class WatchedTarget:
    config: TargetConfig
    target: Target
    engine: Engine | None = None
    written_series: int = 0
    event_types: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        return self.config.label


class Watcher:
    """Feeds rows to every target's engine and writes what they find to the store."""

    def __init__(
        self,
        config: WatchConfig,
        store: Store,
        targets: Sequence[tuple[TargetConfig, Target]],
        *,
        names: Any = None,
        on_events: Callable[[list[dict[str, Any]], float], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.names = names
        self.on_events = on_events  # e.g. the alert dispatcher; gets every stored event
        self.clock = clock
        self.targets = [WatchedTarget(c, t, event_types=c.event_types()) for c, t in targets]
        self.start: float | None = None
        self.last_time: float | None = None
        self.rows_applied = 0
        self._journal: list[Row] = []
        self._written: dict[tuple[str, str], Any] = {}  # state last written to the store
        self._gaps: list[dict[str, Any]] = []
        # which targets a row may concern, so 50 targets do not each look at every row
        self._by_asn: dict[int, list[WatchedTarget]] = defaultdict(list)
        for wt in self.targets:
            for a in wt.target.asns:
                self._by_asn[a].append(wt)
        self._by_prefix: dict[str, list[WatchedTarget]] = {}  # prefix -> targets it is inside of
        self._watch_index: Any = None  # radix tree of every target's watched space (see below)
        self._indexed: dict[int, int] = {}  # target index -> its prefixes already in _watch_index
        self._generation = -1  # TargetSet.generation when _by_prefix and _watch_index were filled
        self._stored_events: dict[str, str] = {}  # event id -> its JSON as last upserted
        # per target: (engine revision, gaps) -> its events as last stored, with their ids
        self._event_cache: dict[int, tuple[Any, list[dict[str, Any]], list[str]]] = {}
        self._pending: list[Callable[[], None]] = []  # cache updates, applied once a flush commits

    # ---- set-up ------------------------------------------------------------------------------
    def bootstrap(self, collectors: list[CollectorRows], start: float) -> None:
        """Start every engine from the RIB dumps (and update files up to ``start``)."""
        tables = PeerTables.empty()
        for c in collectors:
            tables.merge(c.tables)
        full = FullFeedRule(self.config.full_feed_ratio).select(tables)
        self.start = start
        self.last_time = start
        for wt in self.targets:
            cfg = wt.config
            wt.engine = Engine(
                wt.target,
                full,
                start=start,
                end=None,
                bin_s=self.config.bin,
                min_peers=cfg.min_peers,
                outage_rule=OutageRule(
                    cfg.outage.ratio, int(cfg.outage.baseline_hours * 3600), cfg.outage.min_duration
                ),
                anomaly_rule=AnomalyRule.parse_allow(cfg.allow_origins, cfg.min_peers),
                share_shift=cfg.share_shift,
            )
            for c in collectors:
                for row in c.rib_rows:
                    wt.engine.bootstrap(row)
            for c in collectors:
                for row in c.update_rows:
                    if row.time < start:
                        wt.engine.bootstrap(row)
            wt.engine.begin()
        self._store_targets(full)

    def _store_targets(self, full: set[PeerKey]) -> None:
        now = self.clock()
        collectors = sorted({p.collector for p in full})
        with self.store.transaction():  # one commit for all targets, not one each
            for wt in self.targets:
                assert wt.engine is not None
                info = {
                    "spec": wt.config.target,
                    "country": wt.target.country,
                    "asns": sorted(wt.target.asns),
                    "prefixes": sorted(wt.engine.targets.prefixes),
                    "collectors": collectors,
                    "full_feed_peers": len(full),
                    "window": {"from": iso(self.start), "to": None},
                }
                self.store.upsert_target(wt.label, info, now)

    # ---- rows --------------------------------------------------------------------------------
    def restore(self) -> int:
        """Re-apply the journal of a previous run (after bootstrap); returns the rows re-applied."""
        rows = self.store.journal_rows(since=self.start)
        for row in rows:
            self._apply(row)
        if rows:
            logger.info("restored %d journaled rows up to %s", len(rows), iso(rows[-1].time))
        return len(rows)

    def process(self, rows: Iterable[Row]) -> None:
        """Apply rows (in time order): journaled first, so a crash can be recovered exactly."""
        batch = [r for r in rows if self.start is None or r.time >= self.start]
        for row in batch:
            self._apply(row)
        # journaled at the next flush, before the events it causes: a crash in between loses both
        self._journal.extend(batch)

    def _apply(self, row: Row) -> None:
        self.rows_applied += 1
        if self.last_time is None or row.time > self.last_time:
            self.last_time = row.time
        for wt in self._targets_for(row):
            assert wt.engine is not None
            wt.engine.feed(row)

    def _targets_for(self, row: Row) -> list[WatchedTarget]:
        if row.type == "S" or len(self.targets) == 1:
            return self.targets
        out = self._by_asn.get(row.origin_asn, []) if row.origin_asn is not None else []
        prefix = row.prefix
        if prefix is None:
            return out
        inside = self._prefix_targets(prefix)
        if not inside:
            return out
        return inside if not out else [*out, *(wt for wt in inside if wt not in out)]

    def _prefix_targets(self, prefix: str) -> list[WatchedTarget]:
        """Targets whose prefixes or watched space hold ``prefix`` (cached; refreshed on discoveries)."""
        if TargetSet.generation != self._generation:  # a target discovered a prefix: its space grew
            self._by_prefix.clear()
            self._update_watch_index()
            self._generation = TargetSet.generation
        hit = self._by_prefix.get(prefix)
        if hit is None:
            hit = self._lookup_watch(prefix)
            if len(self._by_prefix) > 1_000_000:
                self._by_prefix.clear()
            self._by_prefix[prefix] = hit
        return hit

    def _update_watch_index(self) -> None:
        """One radix tree over every target's watched space; each node lists the targets (by index)
        that watch it, so a prefix takes one covering search instead of one per target. Built once,
        then grown by the prefixes each target discovered since (they come last in its dict)."""
        import radix

        if self._watch_index is None:
            self._watch_index = radix.Radix()
            for i, wt in enumerate(self.targets):
                if wt.engine is not None:
                    self._index_prefixes(i, wt.engine.targets.watched_prefixes())
                    self._indexed[i] = len(wt.engine.targets.prefixes)
            return
        for i, wt in enumerate(self.targets):
            if wt.engine is None:
                continue
            discovered = wt.engine.targets.prefixes
            if len(discovered) > self._indexed.get(i, 0):
                self._index_prefixes(i, itertools.islice(discovered, self._indexed.get(i, 0), None))
                self._indexed[i] = len(discovered)

    def _index_prefixes(self, i: int, prefixes: Iterable[str]) -> None:
        for p in prefixes:
            try:
                node = self._watch_index.add(p)
            except ValueError:  # not a prefix radix can hold (TargetSet skips it too)
                continue
            holders = node.data.setdefault("targets", [])
            if i not in holders:
                holders.append(i)

    def _lookup_watch(self, prefix: str) -> list[WatchedTarget]:
        try:
            nodes = self._watch_index.search_covering(prefix)
        except ValueError:  # not a prefix radix can hold: only an exact target prefix can match
            return [wt for wt in self.targets if wt.engine and prefix in wt.engine.targets.prefixes]
        if not nodes:
            return []
        if len(nodes) == 1:
            return [self.targets[i] for i in nodes[0].data["targets"]]
        return [self.targets[i] for i in sorted({i for n in nodes for i in n.data["targets"]})]

    def gap(self, start: float, end: float, reason: str) -> None:
        """A blind interval of the stream: reported as a data_gap event for every target."""
        gap = {"time": iso(start), "type": "data_gap", "end": iso(end), "reason": reason}
        self._gaps.append({**gap, "duration_s": round(end - start, 6)})

    # ---- output ------------------------------------------------------------------------------
    def flush(self, extra_states: Sequence[tuple[str, str, Any]] = ()) -> list[dict[str, Any]]:
        """Write the journal, new series points, events and changed state to the store in one
        transaction, with ``extra_states`` (target, key, value: e.g. the stream's counters); then hand
        every event to ``on_events``. Returns the events stored new."""
        now = self.clock()
        self._pending = []
        with self.store.transaction():  # one commit: each costs a write to the file
            all_events, new = self._write(now)
            if extra_states:
                self.store.set_states(list(extra_states), now)
        for remember in self._pending:  # committed: what the store now holds
            remember()
        if self.on_events is not None:
            self.on_events(all_events, now)
        return new

    def _write(self, now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from transitwatch.store import event_id

        if self._journal:
            self.store.append_journal(self._journal)
            self._journal = []
        all_events: list[dict[str, Any]] = []
        all_ids: list[str] = []
        changed_events: list[dict[str, Any]] = []
        stored: dict[str, str] = {}
        cache: dict[int, tuple[Any, list[dict[str, Any]], list[str]]] = {}
        states: list[tuple[str, str, Any]] = []
        series_rows: list[tuple[str, dict[str, Any]]] = []
        for i, wt in enumerate(self.targets):
            eng = wt.engine
            if eng is None:
                continue
            if self.last_time is not None:
                eng.advance(self.last_time)
            series = eng.tracker.series[wt.written_series :]
            if series:
                points = [
                    {
                        "time": p.time,
                        "routes": p.routes,
                        "visible_prefixes": p.visible_prefixes,
                        "by_upstream": {str(u): n for u, n in p.by_upstream.items()},
                    }
                    for p in series
                ]
                series_rows.extend((wt.label, p) for p in points)
                wt.written_series += len(series)
            revision = (eng.revision, len(self._gaps))
            cached = self._event_cache.get(i)
            if cached is not None and cached[0] == revision:  # nothing new: as stored last time
                events, ids = cached[1], cached[2]
            else:
                events = [e for e in eng.events(self.names) if e["type"] in wt.event_types]
                events += [dict(g) for g in self._gaps]
                for e in events:
                    e["target"] = wt.label
                ids = [event_id(e) for e in events]
                # the engines return every event of the run: upsert only those new or changed since
                # the last flush (an open outage gains its end, a link its drop)
                for eid, e in zip(ids, events, strict=True):
                    text = json.dumps(e, sort_keys=True, default=str)
                    if self._stored_events.get(eid) != text:
                        changed_events.append(e)
                        stored[eid] = text
                cache[i] = (revision, events, ids)
                # the target's state moves with its revision too (unchanged: as written last time)
                states.append((wt.label, "upstreams", self._upstreams_now(wt)))
                states.append((wt.label, "routes", eng.tracker.routes))
                states.append((wt.label, "outages", [o.start_event() for o in eng.outages.outages]))
            all_events.extend(events)
            all_ids.extend(ids)
            states.append((wt.label, "position", {"time": iso(self.last_time), "rows": self.rows_applied}))
        new_ids = set(self.store.upsert_events(changed_events, "watch", now))  # one statement
        self.store.write_series_many(series_rows)
        # only what changed since the last flush: each write costs a statement
        changed = [(t, k, v) for t, k, v in states if self._written.get((t, k)) != v]
        self.store.set_states(changed, now)
        self._pending.append(lambda: self._stored_events.update(stored))
        self._pending.append(lambda: self._event_cache.update(cache))
        self._pending.append(lambda: self._written.update({(t, k): v for t, k, v in changed}))
        return all_events, [e for eid, e in zip(all_ids, all_events, strict=True) if eid in new_ids]

    def _upstreams_now(self, wt: WatchedTarget) -> list[dict[str, Any]]:
        assert wt.engine is not None
        tr = wt.engine.tracker
        total = tr.routes
        rows = []
        for u, cur in sorted(tr.upstreams_now().items(), key=lambda kv: (-kv[1]["routes"], kv[0])):
            rows.append(
                {
                    "asn": u,
                    "name": self.names.as_name(u) if self.names is not None else None,
                    "country": self.names.as_country(u) if self.names is not None else None,
                    "routes": cur["routes"],
                    "share": round(cur["routes"] / total, 6) if total else 0.0,
                    "peers": cur["peers"],
                    "collectors": cur["collectors"],
                    "prefixes": cur["prefixes"],
                    "first_seen": iso(tr.first_seen(u)),
                    "in_first_rib": u in tr.in_first_rib,
                }
            )
        return rows

    def events(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        """The events of every target, as stored, in time order (optionally within [since, until))."""
        out = []
        for wt in self.targets:
            out.extend(self.store.events(wt.label, since=since, until=until, limit=1_000_000))
        return out
