"""Share shifts: an upstream's share of the target's routes moved by at least ``threshold``.

Measured between consecutive series points (every ``--bin`` seconds), skipping points where the
target has no route at all (an outage is reported as such, not as every upstream dropping to 0%).
"""

from __future__ import annotations

from typing import Any

from transitwatch.analysis.tracker import SeriesPoint, UpstreamTracker
from transitwatch.timeutil import iso


class ShareShiftDetector:
    def __init__(self, threshold: float, tracker: UpstreamTracker) -> None:
        self.threshold = threshold
        self._prev: SeriesPoint | None = None
        self._events: list[dict[str, Any]] = []
        tracker.on_bin.append(self.on_bin)

    def on_bin(self, pt: SeriesPoint) -> None:
        if not pt.routes:
            return
        prev = self._prev
        self._prev = pt
        if prev is None:
            return
        before = {u: n / prev.routes for u, n in prev.by_upstream.items()}
        after = {u: n / pt.routes for u, n in pt.by_upstream.items()}
        for u in sorted(set(before) | set(after)):
            a, b = before.get(u, 0.0), after.get(u, 0.0)
            if abs(b - a) >= self.threshold:
                self._events.append(
                    {
                        "time": iso(pt.time),
                        "type": "share_shift",
                        "upstream": u,
                        "since": iso(prev.time),
                        "share_before": round(a, 6),
                        "share_after": round(b, 6),
                        "routes_before": prev.by_upstream.get(u, 0),
                        "routes_after": pt.by_upstream.get(u, 0),
                        "routes_total_before": prev.routes,
                        "routes_total_after": pt.routes,
                    }
                )

    def events(self) -> list[dict[str, Any]]:
        return list(self._events)
