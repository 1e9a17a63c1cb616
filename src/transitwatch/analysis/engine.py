"""The engine: route state, metrics and detectors fed rows in time order.

The same engine runs over archives (RIB dump, then update files) and over the RIS Live stream, so
history and live give the same answers:

    engine = Engine(target, full_feed, start=t0, end=t1)
    for row in rib_rows: engine.bootstrap(row)       # state only, no events
    for row in update_rows: engine.feed(row)         # events from the window start on
    engine.finish()
    engine.events()
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from transitwatch.analysis.tracker import UpstreamTracker
from transitwatch.detect.anomalies import AnomalyDetector, AnomalyRule
from transitwatch.detect.outages import OutageDetector, OutageRule
from transitwatch.detect.shares import ShareShiftDetector
from transitwatch.routing.state import PeerKey, RouteState, Row
from transitwatch.targets import Target, TargetSet
from transitwatch.timeutil import epoch


class Engine:
    def __init__(
        self,
        target: Target,
        full_feed: Iterable[PeerKey],
        *,
        start: float,
        end: float | None,
        bin_s: int = 300,
        min_peers: int = 3,
        outage_rule: OutageRule | None = None,
        anomaly_rule: AnomalyRule | None = None,
        share_shift: float = 0.2,
    ) -> None:
        self.target = target
        self.full_feed = set(full_feed)
        self.start, self.end = start, end
        self.targets = TargetSet(target)
        self.state = RouteState(self.targets, self.full_feed)
        self.tracker = UpstreamTracker(len(self.full_feed), start, end, bin_s, min_peers)
        self.outages = OutageDetector(outage_rule or OutageRule(), self.tracker, target.spec)
        self.anomalies = AnomalyDetector(
            anomaly_rule or AnomalyRule(min_peers=min_peers),
            self.targets,
            list(target.delegated) if target.has_registry else None,
        )
        self.shares = ShareShiftDetector(share_shift, self.tracker)
        self.started = False
        self.last_time = start
        self.changes = 0  # route changes applied since the window start (see revision)

    def bootstrap(self, row: Row) -> None:
        """A row from before the window (RIB dump, earlier updates): builds state, reports nothing."""
        self.state.apply(row)

    def begin(self) -> None:
        if self.started:
            return
        self.started = True
        self.tracker.known_prefixes(list(self.targets.prefixes))
        self.tracker.init_from_state(self.state)
        self.outages.begin()
        self.anomalies.begin(self.state)

    def feed(self, row: Row) -> None:
        if not self.started:
            if row.time < self.start:
                self.bootstrap(row)
                return
            self.begin()
        self.last_time = max(self.last_time, row.time)
        for ch in self.state.apply(row):
            self.changes += 1
            self.tracker.on_change(ch)
            self.outages.on_change(ch)
            self.anomalies.on_change(ch)

    def advance(self, t: float) -> None:
        """Time passed without data (live): emit the series points due."""
        self.begin()
        self.tracker.advance(t)

    def finish(self) -> None:
        self.begin()
        self.tracker.finish()
        self.outages.finish()

    @property
    def revision(self) -> tuple[bool, int, int]:
        """Changes whenever :meth:`events` may: the detectors only move on a route change or a series
        point (a live watcher skips the targets whose revision did not change)."""
        return (self.started, self.changes, len(self.tracker.series))

    def events(self, names: Any = None) -> list[dict[str, Any]]:
        """Every event, in time order: upstream changes, outages, origin anomalies."""
        out: list[dict[str, Any]] = []
        out.extend(_named(ev.to_json(), ev.upstream, names) for ev in self.tracker.events)
        out.extend(self.outages.events())
        out.extend(_named(d, d["upstream"], names) for d in self.shares.events())
        out.extend(self.anomalies.events(names))
        for d in out:
            d["target"] = self.target.spec
        out.sort(key=lambda d: (epoch(d["time"]), _TYPE_ORDER.get(d["type"], 9)))
        return out


def _named(d: dict[str, Any], asn: int, names: Any) -> dict[str, Any]:
    """An upstream event with the upstream's name and country (when a registry is at hand)."""
    if names is not None:
        d["name"] = names.as_name(asn)
        d["country"] = names.as_country(asn)
    return d


_TYPE_ORDER = {"outage_end": 0, "upstream_lost": 1, "upstream_added": 2, "outage_start": 3}
