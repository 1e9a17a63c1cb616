"""How fragile is the target's connectivity: AS hegemony, single points of failure, what-if removal.

All three look at the routes full-feed peers have *now* (the state at the window end, or at
``--at``) and at nothing else: an AS can matter more than the observed paths show, never less.

- **AS hegemony** (Fontugne et al., the Internet Health Report's definition): for each viewpoint
  (a full-feed peer), the betweenness of an AS is the address-space-weighted share of the
  viewpoint's paths to the target that cross it; the viewpoint's own AS is left out of its paths,
  as are the target's ASes. Hegemony is the mean over viewpoints after dropping the lowest and
  highest ``alpha`` (0.1) of values. Computed for IPv4 and IPv6 separately, and for all prefixes
  with IPv4 space in /24s and IPv6 space in /48s.
- **Single point of failure**: an AS on at least ``spof_share`` of all routes (peer AS included:
  a route from a peer that *is* the AS depends on it as much as any).
- **What-if removal**: drop every route whose path crosses the removed ASes; report the prefixes
  left with no route, the routes and address space lost, and through whom the rest survive.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from transitwatch.prefixes import address_units, sort_prefixes, weight
from transitwatch.routing.paths import collapse
from transitwatch.routing.state import PeerKey, Route, RouteState


def _transit(route: Route, targets: frozenset[int], drop_viewpoint: bool) -> set[int]:
    p = list(collapse(route.path))
    while p and p[-1] in targets:
        p.pop()
    if route.origin is not None and not targets:  # prefix-only targets: the origin is the target
        while p and p[-1] == route.origin:
            p.pop()
    if drop_viewpoint and p:
        p = p[1:]
    return set(p)


def trimmed_mean(values: list[float], alpha: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    k = math.floor(alpha * len(v))
    kept = v[k : len(v) - k] or v
    return sum(kept) / len(kept)


def _routes_by_peer(state: RouteState) -> dict[PeerKey, dict[str, Route]]:
    out: dict[PeerKey, dict[str, Route]] = defaultdict(dict)
    for peer, prefix, route in state.iter_routes():
        out[peer][prefix] = route
    return out


def hegemony(state: RouteState, alpha: float = 0.1, family: int | None = None) -> dict[int, float]:
    """AS hegemony scores for the target (0..1), optionally for one address family."""
    targets = state.targets.target.asns
    per_peer = _routes_by_peer(state)
    weights: dict[str, float] = {}  # each prefix parsed once, not once per viewpoint
    bcs: list[dict[int, float]] = []
    for routes in per_peer.values():
        total = 0.0
        crossed: dict[int, float] = defaultdict(float)
        for prefix, route in routes.items():
            if family is not None and (":" in prefix) != (family == 6):
                continue
            w = weights.get(prefix)
            if w is None:
                w = weights[prefix] = weight(prefix)
            total += w
            for asn in _transit(route, targets, drop_viewpoint=True):
                crossed[asn] += w
        if total > 0:
            bcs.append({a: c / total for a, c in crossed.items()})
    ases = {a for bc in bcs for a in bc}
    return {a: trimmed_mean([bc.get(a, 0.0) for bc in bcs], alpha) for a in ases}


def route_shares_through(state: RouteState) -> tuple[dict[int, float], int]:
    """Share of all routes whose path crosses each AS (peer AS included), and the route count."""
    targets = state.targets.target.asns
    counts: dict[int, int] = defaultdict(int)
    n = 0
    for _peer, _prefix, route in state.iter_routes():
        n += 1
        for asn in _transit(route, targets, drop_viewpoint=False):
            counts[asn] += 1
    return ({a: c / n for a, c in counts.items()} if n else {}), n


@dataclass
class DependencyReport:
    viewpoints: int
    routes: int
    alpha: float
    spof_share: float
    rows: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "viewpoints": self.viewpoints,
            "routes": self.routes,
            "alpha": self.alpha,
            "spof_share": self.spof_share,
            "ases": self.rows,
            "single_points_of_failure": [r["asn"] for r in self.rows if r["spof"]],
        }


def dependency_report(
    state: RouteState, names: Any = None, alpha: float = 0.1, spof_share: float = 0.9, top: int = 25
) -> DependencyReport:
    """Hegemony (all, IPv4, IPv6), route share through each AS, and single points of failure."""
    h_all = hegemony(state, alpha)
    h4 = hegemony(state, alpha, 4)
    h6 = hegemony(state, alpha, 6)
    through, n = route_shares_through(state)
    ases = sorted(set(h_all) | set(through), key=lambda a: (-h_all.get(a, 0.0), -through.get(a, 0.0), a))
    rows = []
    for a in ases[:top]:
        rows.append(
            {
                "asn": a,
                "name": names.as_name(a) if names is not None else None,
                "country": names.as_country(a) if names is not None else None,
                "hegemony": round(h_all.get(a, 0.0), 6),
                "hegemony_ipv4": round(h4[a], 6) if a in h4 else None,
                "hegemony_ipv6": round(h6[a], 6) if a in h6 else None,
                "route_share": round(through.get(a, 0.0), 6),
                "spof": through.get(a, 0.0) >= spof_share,
            }
        )
    viewpoints = len(_routes_by_peer(state))
    return DependencyReport(viewpoints, n, alpha, spof_share, rows)


@dataclass
class WhatIfResult:
    without: list[int]
    at: float
    routes: int
    routes_lost: int
    prefixes_lost: list[str]
    prefixes_kept: dict[str, dict[int | None, int]]  # prefix -> surviving upstream -> routes
    space: dict[int, tuple[float, float]]  # family -> (space, space lost)
    peers_cut_off: list[PeerKey]

    def to_json(self, names: Any = None) -> dict[str, Any]:
        from transitwatch.timeutil import iso

        def label(a: int | None) -> dict[str, Any]:
            return {
                "asn": a,
                "name": names.as_name(a) if names is not None and a is not None else None,
            }

        return {
            "without": self.without,
            "at": iso(self.at),
            "routes": self.routes,
            "routes_lost": self.routes_lost,
            "route_share_lost": round(self.routes_lost / self.routes, 6) if self.routes else None,
            "prefixes": len(self.prefixes_lost) + len(self.prefixes_kept),
            "prefixes_lost": self.prefixes_lost,
            "prefix_share_lost": (
                round(len(self.prefixes_lost) / (len(self.prefixes_lost) + len(self.prefixes_kept)), 6)
                if self.prefixes_lost or self.prefixes_kept
                else None
            ),
            "address_space": {
                f"ipv{fam}": {
                    "unit": "/24" if fam == 4 else "/48",
                    "total": tot,
                    "lost": lost,
                    "share_lost": round(lost / tot, 6) if tot else None,
                }
                for fam, (tot, lost) in sorted(self.space.items())
            },
            "prefixes_kept": [
                {
                    "prefix": p,
                    "routes": sum(ups.values()),
                    "via": [
                        {**label(u), "routes": n}
                        for u, n in sorted(ups.items(), key=lambda kv: (-kv[1], kv[0] or 0))
                    ],
                }
                for p, ups in self.prefixes_kept.items()
            ],
            "peers_cut_off": len(self.peers_cut_off),
        }


def what_if(state: RouteState, without: Iterable[int], at: float) -> WhatIfResult:
    """What remains of the target's observed routes if the ``without`` ASes disappeared."""
    gone = set(without)
    by_prefix: dict[str, list[tuple[PeerKey, Route]]] = defaultdict(list)
    for peer, prefix, route in state.iter_routes():
        by_prefix[prefix].append((peer, route))
    lost_prefixes: list[str] = []
    kept: dict[str, dict[int | None, int]] = {}
    routes = lost = 0
    peer_left: dict[PeerKey, int] = defaultdict(int)
    for prefix in sort_prefixes(by_prefix):
        survivors: dict[int | None, int] = defaultdict(int)
        for peer, route in by_prefix[prefix]:
            routes += 1
            if gone.intersection(route.path):  # the path crosses a removed AS (origin and peer included)
                lost += 1
                peer_left.setdefault(peer, 0)
            else:
                survivors[route.upstream] += 1
                peer_left[peer] += 1
        if survivors:
            kept[prefix] = dict(survivors)
        else:
            lost_prefixes.append(prefix)
    space: dict[int, tuple[float, float]] = {}
    for fam in (4, 6):
        allp = [p for p in by_prefix if (":" in p) == (fam == 6)]
        if not allp:
            continue
        tot = address_units(allp, fam)
        remaining = address_units(kept, fam)
        space[fam] = (tot, tot - remaining)
    cut = sorted(p for p, n in peer_left.items() if n == 0)
    return WhatIfResult(sorted(gone), at, routes, lost, lost_prefixes, kept, space, cut)
