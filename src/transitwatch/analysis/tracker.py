"""Route counts per upstream, link intervals, visibility and upstream events, from route changes.

The metric definitions are those of ``shared/scenarios/README.md``:

- *route share* of upstream U: routes whose upstream is U over all routes to target prefixes;
- *link (U, prefix) interval*: ``up`` the update that took the number of full-feed peers routing
  the prefix via U from 0 to 1 (None: present in the first RIB dump), ``first_drop`` the first
  update in the interval that lowered it (reset if it recovers before reaching 0), ``down`` the
  update that brought it back to 0;
- *visible prefix*: a target prefix that more than half of all full-feed peers have a route for;
- *state at time t*: after every update with timestamp < t.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transitwatch.routing.state import PeerKey, RouteChange, RouteState


@dataclass
class LinkInterval:
    upstream: int
    prefix: str
    up: float | None
    first_drop: float | None = None
    down: float | None = None


@dataclass
class SeriesPoint:
    time: float
    routes: int
    by_upstream: dict[int, int]
    visible_prefixes: int
    peers_by_prefix: dict[str, int]


@dataclass
class UpstreamEvent:
    """An upstream's route count left 0 (``upstream_added``) or returned to 0 (``upstream_lost``)."""

    time: float
    type: str
    upstream: int
    peers: int  # added: most peers routing via it in the episode; lost: peers just before the decline
    prefixes: list[str]
    collectors: list[str]
    confirmed: float | None  # when min_peers peers had seen it (the route, or its loss)
    first_peer: PeerKey | None = None  # added: the peer that saw it first
    decline_start: float | None = None  # lost: first drop of the final decline
    episode_start: float | None = None  # lost: when it was added (None: present at the start)

    def to_json(self) -> dict[str, Any]:
        from transitwatch.timeutil import iso

        d: dict[str, Any] = {
            "time": iso(self.time),
            "type": self.type,
            "upstream": self.upstream,
            "peers": self.peers,
            "prefixes": self.prefixes,
            "collectors": self.collectors,
            "confirmed": iso(self.confirmed),
        }
        if self.type == "upstream_added" and self.first_peer is not None:
            d["first_peer"] = {
                "collector": self.first_peer.collector,
                "address": self.first_peer.address,
                "asn": self.first_peer.asn,
            }
        if self.type == "upstream_lost":
            d["decline_start"] = iso(self.decline_start)
            d["since"] = iso(self.episode_start)
            if self.episode_start is not None:
                d["duration_s"] = round(self.time - self.episode_start, 6)
        return d


@dataclass
class _Episode:
    """The life of one upstream from its count leaving 0 to its return to 0."""

    start: float | None
    first_peer: PeerKey | None
    max_peers: int = 0
    prefixes: set[str] = field(default_factory=set)
    collectors: set[str] = field(default_factory=set)
    confirmed: float | None = None
    # the current decline: peers that had it when it began and those that have lost it since
    decline_start: float | None = None
    decline_peers: int = 0
    decline_prefixes: set[str] = field(default_factory=set)
    decline_collectors: set[str] = field(default_factory=set)
    decline_lost: int = 0
    decline_confirmed: float | None = None
    event: UpstreamEvent | None = None  # the open upstream_added event, kept up to date


class UpstreamTracker:
    """Consumes route changes in time order; keeps every metric the reports need."""

    def __init__(
        self, full_feed_peers: int, start: float, end: float | None, bin_s: int, min_peers: int = 3
    ) -> None:
        """``end`` None: a live window that never closes (series points as time goes by)."""
        self.n_full = full_feed_peers
        self.start, self.end, self.bin_s, self.min_peers = start, end, bin_s, min_peers
        self.count: dict[tuple[int, str], int] = defaultdict(int)  # (upstream, prefix) -> routes
        self.total: dict[int, int] = defaultdict(int)  # upstream -> routes
        self.no_upstream = 0  # routes from peers inside the target (no upstream)
        self.seen: dict[str, int] = defaultdict(int)  # prefix -> full-feed peers with a route
        self.via: dict[int, dict[PeerKey, int]] = defaultdict(dict)  # upstream -> peer -> routes
        self.carried: dict[int, set[str]] = defaultdict(set)  # upstream -> prefixes with routes via it
        self.intervals: dict[tuple[int, str], list[LinkInterval]] = defaultdict(list)
        self.in_first_rib: set[int] = set()
        self.series: list[SeriesPoint] = []
        self.visibility: list[tuple[float, int]] = []
        self.events: list[UpstreamEvent] = []
        # every distinct time the counts changed: (time, routes, routes by upstream, visible prefixes)
        self.timeline: list[tuple[float, int, dict[int, int], int]] = []
        self._episodes: dict[int, _Episode] = {}
        self.on_bin: list[Callable[[SeriesPoint], None]] = []  # listeners for each series point
        self._next_bin = float(start)
        self._visible = 0

    # ---- set-up from the state at the window start -------------------------------------------
    def init_from_state(self, state: RouteState) -> None:
        for peer, prefix, route in state.iter_routes():
            self.seen[prefix] += 1
            u = route.upstream
            if u is None:
                self.no_upstream += 1
                continue
            if self.count[(u, prefix)] == 0:
                self.intervals[(u, prefix)].append(LinkInterval(u, prefix, None))
            self.count[(u, prefix)] += 1
            self.carried[u].add(prefix)
            self.total[u] += 1
            self.via[u][peer] = self.via[u].get(peer, 0) + 1
            self.in_first_rib.add(u)
        for u in self.in_first_rib:
            ep = _Episode(None, None)
            self._refresh_episode(u, ep)
            self._episodes[u] = ep
        self._visible = self._count_visible()
        self.visibility.append((self.start, self._visible))
        self._record(self.start)

    def _record(self, t: float) -> None:
        point = (t, self.routes, {u: n for u, n in sorted(self.total.items()) if n}, self._visible)
        if self.timeline and self.timeline[-1][0] == t:
            self.timeline[-1] = point
        elif not self.timeline or self.timeline[-1][1:] != point[1:]:
            self.timeline.append(point)

    def known_prefixes(self, prefixes: list[str]) -> None:
        """Make sure prefixes known at the start appear in per-prefix output even without routes."""
        for p in prefixes:
            self.seen.setdefault(p, 0)

    # ---- time ------------------------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Emit every series point at or before t (state: updates with timestamp < point)."""
        limit = t if self.end is None else min(t, self.end)
        while self._next_bin <= limit:
            self._snapshot(self._next_bin)
            self._next_bin += self.bin_s

    def finish(self) -> None:
        if self.end is not None:
            self.advance(self.end)

    def _snapshot(self, t: float) -> None:
        by_up = {u: n for u, n in sorted(self.total.items()) if n}
        pt = SeriesPoint(t, self.routes, by_up, self._visible, {p: self.seen[p] for p in sorted(self.seen)})
        self.series.append(pt)
        for listener in self.on_bin:
            listener(pt)

    @property
    def routes(self) -> int:
        return sum(self.total.values()) + self.no_upstream

    def _count_visible(self) -> int:
        return sum(1 for n in self.seen.values() if 2 * n > self.n_full)

    # ---- changes -----------------------------------------------------------------------------
    def on_change(self, ch: RouteChange) -> None:
        self.advance(ch.time)
        if not ch.target:
            return
        t, p = ch.time, ch.prefix
        self.seen[p] += (ch.new is not None) - (ch.old is not None)
        vis = self._count_visible()
        if vis != self._visible:
            self._visible = vis
            self.visibility.append((t, vis))
        ou = ch.old.upstream if ch.old is not None else None
        nu = ch.new.upstream if ch.new is not None else None
        if ch.old is not None and ou is None:
            self.no_upstream -= 1
        if ch.new is not None and nu is None:
            self.no_upstream += 1
        if ou != nu:
            if ou is not None:
                self._remove(t, ou, p, ch.peer)
            if nu is not None:
                self._add(t, nu, p, ch.peer)
        self._record(t)

    def _remove(self, t: float, u: int, p: str, peer: PeerKey) -> None:
        self.count[(u, p)] -= 1
        iv = self.intervals[(u, p)][-1]
        if iv.first_drop is None:
            iv.first_drop = t
        if self.count[(u, p)] == 0:
            iv.down = t
            self.carried[u].discard(p)
        left = self.via[u][peer] - 1
        if left:
            self.via[u][peer] = left
        else:
            del self.via[u][peer]
        ep = self._episodes[u]
        if ep.decline_start is None:
            ep.decline_start = t
            ep.decline_peers = len(self.via[u]) + (0 if left else 1)
            ep.decline_prefixes = self.carried[u] | {p}
            ep.decline_collectors = {q.collector for q in self.via[u]} | {peer.collector}
            ep.decline_lost = 0
            ep.decline_confirmed = None
        if not left:
            ep.decline_lost += 1
            if ep.decline_confirmed is None and ep.decline_lost >= min(
                self.min_peers, max(ep.decline_peers, 1)
            ):
                ep.decline_confirmed = t
        self.total[u] -= 1
        if self.total[u] == 0:
            self.events.append(
                UpstreamEvent(
                    t,
                    "upstream_lost",
                    u,
                    ep.decline_peers,
                    sorted(ep.decline_prefixes),
                    sorted(ep.decline_collectors),
                    ep.decline_confirmed,
                    decline_start=ep.decline_start,
                    episode_start=ep.start,
                )
            )
            del self._episodes[u]

    def _add(self, t: float, u: int, p: str, peer: PeerKey) -> None:
        if self.count[(u, p)] == 0:
            self.intervals[(u, p)].append(LinkInterval(u, p, t))
        else:
            last = self.intervals[(u, p)][-1]
            if last.first_drop is not None and last.down is None:
                last.first_drop = None  # a drop that recovered before reaching zero
        self.count[(u, p)] += 1
        self.carried[u].add(p)
        self.via[u][peer] = self.via[u].get(peer, 0) + 1
        self.total[u] += 1
        ep = self._episodes.get(u)
        if ep is None:
            ep = self._episodes[u] = _Episode(t, peer)
            ep.event = UpstreamEvent(t, "upstream_added", u, 0, [], [], None, first_peer=peer)
            self.events.append(ep.event)
        ep.decline_start = None  # any increase ends a decline
        self._refresh_episode(u, ep, t)

    def _refresh_episode(self, u: int, ep: _Episode, t: float | None = None) -> None:
        peers = len(self.via[u])
        ep.max_peers = max(ep.max_peers, peers)
        ep.prefixes |= self.carried[u]
        ep.collectors |= {q.collector for q in self.via[u]}
        if ep.confirmed is None and peers >= self.min_peers:
            ep.confirmed = t
        ev = ep.event  # the open "added" event describes the whole episode so far
        if ev is not None:
            ev.peers = ep.max_peers
            ev.prefixes = sorted(ep.prefixes)
            ev.collectors = sorted(ep.collectors)
            ev.confirmed = ep.confirmed

    # ---- results -----------------------------------------------------------------------------
    def links(self) -> list[LinkInterval]:
        out: list[LinkInterval] = []
        for (_u, _p), ivs in sorted(self.intervals.items()):
            out.extend(ivs)
        return out

    def first_seen(self, u: int) -> float | None:
        ups = [iv.up for (v, _p), ivs in self.intervals.items() if v == u for iv in ivs if iv.up is not None]
        return min(ups) if ups else None

    def upstreams_now(self) -> dict[int, dict[str, Any]]:
        """Per upstream with routes now: routes, prefixes, peers, collectors."""
        out: dict[int, dict[str, Any]] = {}
        for u, n in self.total.items():
            if not n:
                continue
            out[u] = {
                "routes": n,
                "prefixes": sorted(self.carried[u]),
                "peers": len(self.via[u]),
                "collectors": sorted({q.collector for q in self.via[u]}),
            }
        return out
