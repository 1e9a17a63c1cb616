"""Outages: the target's visibility against its own recent baseline.

Signal: visible address space in /24 equivalents (a target with no IPv4 space: visible prefixes),
where a prefix is visible when more than half of all full-feed peers have a route for it.
Baseline: the median of the signal at the series points of the trailing ``baseline_s`` (default
24 h; since the window start when that is shorter), leaving out points inside outages, and frozen
while an outage lasts. An outage starts when the signal falls below ``ratio`` times the baseline
(default 0.8, i.e. more than a fifth of the usual visible space gone, as IODA's BGP signal alerts)
and ends when it is back at or above that level. ``total`` when nothing was visible at the worst
moment, else ``partial``.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from transitwatch.analysis.tracker import SeriesPoint, UpstreamTracker
from transitwatch.prefixes import address_units
from transitwatch.routing.state import PeerKey, RouteChange
from transitwatch.timeutil import iso


@dataclass(frozen=True)
class OutageRule:
    ratio: float = 0.8
    baseline_s: int = 86400
    min_duration_s: float = 0.0  # shorter outages are dropped when they end

    def describe(self) -> str:
        return (
            f"visible space below {self.ratio:g} x its median over the previous "
            f"{self.baseline_s / 3600:g} h (since the window start when shorter)"
        )


@dataclass
class Outage:
    start: float
    baseline: float
    severity: str = "partial"
    end: float | None = None
    worst: float = 0.0  # lowest signal seen
    worst_time: float = 0.0
    prefixes: set[str] = field(default_factory=set)  # target prefixes that were not visible
    peers: set[PeerKey] = field(default_factory=set)  # full-feed peers that lost a route meanwhile
    unit: str = "/24"

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start

    def start_event(self) -> dict[str, Any]:
        return {
            "time": iso(self.start),
            "type": "outage_start",
            "severity": self.severity,
            "baseline": self.baseline,
            "lowest": self.worst,
            "visible_share": round(self.worst / self.baseline, 6) if self.baseline else None,
            "unit": self.unit,
            "prefixes": sorted(self.prefixes),
            "peers": len(self.peers),
            "collectors": sorted({p.collector for p in self.peers}),
            "end": iso(self.end),
            "duration_s": None if self.duration is None else round(self.duration, 6),
        }

    def end_event(self, target_spec: str) -> dict[str, Any]:
        from transitwatch.report.text import format_duration

        assert self.end is not None and self.duration is not None
        return {
            "time": iso(self.end),
            "type": "outage_end",
            "severity": self.severity,
            "start": iso(self.start),
            "duration_s": round(self.duration, 6),
            "prefixes": sorted(self.prefixes),
            "peers": len(self.peers),
            "notice": (
                f"{target_spec} restored after {format_duration(self.duration, minutes=True)} "
                f"({self.severity} outage from {iso(self.start)} to {iso(self.end)}; "
                f"{len(self.prefixes)} prefix{'es' if len(self.prefixes) != 1 else ''} affected)"
            ),
        }


class OutageDetector:
    """Consumes the tracker's series points and route changes; keeps the outages found."""

    def __init__(self, rule: OutageRule, tracker: UpstreamTracker, target_spec: str) -> None:
        self.rule = rule
        self.tracker = tracker
        self.target_spec = target_spec
        self.outages: list[Outage] = []
        self.active: Outage | None = None
        self.samples: deque[tuple[float, float]] = deque()
        self._recent_losses: deque[tuple[float, PeerKey]] = deque()
        self._visible_key: frozenset[str] | None = None
        self._signal = 0.0
        self._use_space = True
        tracker.on_bin.append(self.on_bin)

    # ---- the signal --------------------------------------------------------------------------
    def _visible(self) -> frozenset[str]:
        n = self.tracker.n_full
        return frozenset(p for p, c in self.tracker.seen.items() if 2 * c > n)

    def signal(self) -> float:
        vis = self._visible()
        if vis != self._visible_key:
            self._visible_key = vis
            self._signal = self._measure(vis)
        return self._signal

    def _measure(self, visible: frozenset[str]) -> float:
        if not self._use_space:
            return float(len(visible))
        return address_units(visible, 4)

    def begin(self) -> None:
        """At the window start: choose the unit and take the first sample."""
        known = list(self.tracker.seen)
        self._use_space = any(":" not in p for p in known)
        self._visible_key = None
        self.samples.append((self.tracker.start, self.signal()))

    # ---- inputs ------------------------------------------------------------------------------
    def on_bin(self, pt: SeriesPoint) -> None:
        if self.active is None and pt.time > self.tracker.start:
            self.samples.append((pt.time, self.signal()))
        horizon = pt.time - self.rule.baseline_s
        while self.samples and self.samples[0][0] < horizon:
            self.samples.popleft()

    def baseline(self) -> float:
        return float(statistics.median(v for _t, v in self.samples)) if self.samples else 0.0

    def on_change(self, ch: RouteChange) -> None:
        t = ch.time
        if ch.old is not None and ch.new is None:
            self._recent_losses.append((t, ch.peer))
            if self.active is not None:
                self.active.peers.add(ch.peer)
        while self._recent_losses and self._recent_losses[0][0] < t - 300:
            self._recent_losses.popleft()
        value = self.signal()
        out = self.active
        if out is None:
            base = self.baseline()
            if base > 0 and value < self.rule.ratio * base:
                out = self.active = Outage(
                    t, base, worst=value, worst_time=t, unit="/24" if self._use_space else "prefix"
                )
                out.peers |= {p for _t, p in self._recent_losses}
                self._note(out, value, t)
            return
        self._note(out, value, t)
        if value >= self.rule.ratio * out.baseline:
            out.end = t
            self.active = None
            if out.duration is not None and out.duration >= self.rule.min_duration_s:
                self.outages.append(out)

    def _note(self, out: Outage, value: float, t: float) -> None:
        if value < out.worst:
            out.worst, out.worst_time = value, t
        if value == 0:
            out.severity = "total"
        assert self._visible_key is not None
        out.prefixes |= {p for p in self.tracker.seen if p not in self._visible_key}

    def finish(self) -> None:
        if self.active is not None:  # still out at the window end: reported open-ended
            self.outages.append(self.active)
            self.active = None

    # ---- results -----------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for o in self.outages:
            out.append(o.start_event())
            if o.end is not None:
                out.append(o.end_event(self.target_spec))
        return out

    def spans(self) -> list[tuple[float, float]]:
        end = self.tracker.end
        return [
            (o.start, o.end if o.end is not None else float(end if end is not None else o.start))
            for o in self.outages
        ]
