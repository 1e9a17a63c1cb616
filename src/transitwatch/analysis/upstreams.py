"""Who carries a target's routes, in what share, since when: the upstream analysis.

    result = analyse_upstreams(target, inputs, UpstreamOptions(start, end), names=registry)
    result.to_json()   # the documented JSON object (docs/upstreams.md)

Every number can be traced: routes are (full-feed peer, target prefix) paths, shares are route
counts over all routes, times are the timestamps of the updates that caused them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from transitwatch.analysis.dependency import DependencyReport, dependency_report
from transitwatch.analysis.engine import Engine
from transitwatch.analysis.feed import CollectorInput, CollectorRows, merge_updates, read_collectors
from transitwatch.analysis.tracker import UpstreamTracker
from transitwatch.detect.anomalies import AnomalyRule
from transitwatch.detect.outages import OutageRule
from transitwatch.model import SourceIssue
from transitwatch.prefixes import address_units, sort_prefixes
from transitwatch.routing.state import FullFeedRule, PeerKey, PeerTables, RouteState
from transitwatch.targets import Target
from transitwatch.timeutil import iso


class NameSource(Protocol):
    def as_name(self, asn: int) -> str | None: ...
    def as_country(self, asn: int) -> str | None: ...


@dataclass
class UpstreamOptions:
    start: int
    end: int
    bin_s: int = 300
    min_peers: int = 3
    full_feed: FullFeedRule = field(default_factory=FullFeedRule)
    workers: int = 1
    scheduler: str | None = None
    outage: OutageRule = field(default_factory=OutageRule)
    anomaly: AnomalyRule | None = None  # None: AnomalyRule(min_peers)
    alpha: float = 0.1  # hegemony trimming
    spof_share: float = 0.9
    share_shift: float = 0.2  # share_shift events: an upstream's share moved this much between series points


@dataclass
class CollectorSummary:
    name: str
    peers: int
    full_feed_peers: int
    rib_time: int | None
    stats: dict[str, int]


@dataclass
class UpstreamResult:
    """Everything the upstream analysis found; rendered by transitwatch.report."""

    target: Target
    options: UpstreamOptions
    prefixes: list[str]
    collectors: list[CollectorSummary]
    full_feed: set[PeerKey]
    engine: Engine
    names: NameSource | None
    issues: list[SourceIssue]
    gaps: list[dict[str, Any]] = field(default_factory=list)

    # ---- derived views -----------------------------------------------------------------------
    @property
    def tracker(self) -> UpstreamTracker:
        return self.engine.tracker

    @property
    def state(self) -> RouteState:
        return self.engine.state

    def events(self) -> list[dict[str, Any]]:
        return self.engine.events(self.names)

    def dependency(self) -> DependencyReport:
        return dependency_report(self.state, self.names, self.options.alpha, self.options.spof_share)

    def outages(self) -> list[dict[str, Any]]:
        return [o.start_event() | {"start": iso(o.start)} for o in self.engine.outages.outages]

    def name(self, asn: int) -> str | None:
        return self.names.as_name(asn) if self.names is not None else None

    def country(self, asn: int) -> str | None:
        return self.names.as_country(asn) if self.names is not None else None

    def upstream_rows(self) -> list[dict[str, Any]]:
        """One row per upstream seen in the window, by routes at the window end."""
        tr = self.tracker
        now = tr.upstreams_now()
        total = tr.routes
        seen = sorted(tr.in_first_rib | {u for (u, _p) in tr.intervals})
        fam = self._family_breakdown()
        rows = []
        for u in seen:
            cur = now.get(u, {"routes": 0, "prefixes": [], "peers": 0, "collectors": []})
            f = fam.get(u, {})
            rows.append(
                {
                    "asn": u,
                    "name": self.name(u),
                    "country": self.country(u),
                    "in_first_rib": u in tr.in_first_rib,
                    "first_seen": iso(tr.first_seen(u)),
                    "routes": cur["routes"],
                    "share": round(cur["routes"] / total, 6) if total else 0.0,
                    "prefixes": cur["prefixes"],
                    "peers": cur["peers"],
                    "collectors": cur["collectors"],
                    **f,
                }
            )
        rows.sort(key=lambda r: (-r["routes"], r["asn"]))
        return rows

    def _family_breakdown(self) -> dict[int, dict[str, Any]]:
        """Shares by IPv4/IPv6 routes, by prefix, and by address space (routed /24 or /48 units)."""
        routes_fam: dict[int, dict[int, int]] = {}
        prefixes_via: dict[int, set[str]] = {}
        all_prefixes: set[str] = set()
        for _peer, prefix, route in self.state.iter_routes():
            all_prefixes.add(prefix)
            if route.upstream is None:
                continue
            v = 6 if ":" in prefix else 4
            routes_fam.setdefault(route.upstream, {4: 0, 6: 0})[v] += 1
            prefixes_via.setdefault(route.upstream, set()).add(prefix)
        tot = {4: 0, 6: 0}
        for d in routes_fam.values():
            tot[4] += d[4]
            tot[6] += d[6]
        space_all = {4: address_units(all_prefixes, 4), 6: address_units(all_prefixes, 6)}
        out: dict[int, dict[str, Any]] = {}
        for u, d in routes_fam.items():
            pv = prefixes_via[u]
            out[u] = {
                "routes_ipv4": d[4],
                "routes_ipv6": d[6],
                "share_ipv4": round(d[4] / tot[4], 6) if tot[4] else None,
                "share_ipv6": round(d[6] / tot[6], 6) if tot[6] else None,
                "prefix_share": round(len(pv) / len(all_prefixes), 6) if all_prefixes else None,
                "address_share_ipv4": round(address_units(pv, 4) / space_all[4], 6) if space_all[4] else None,
                "address_share_ipv6": round(address_units(pv, 6) / space_all[6], 6) if space_all[6] else None,
            }
        return out

    def target_json(self) -> dict[str, Any]:
        return {
            "spec": self.target.spec,
            "country": self.target.country,
            "asns": sorted(self.target.asns),
            "prefixes": self.prefixes,
        }

    def visibility_json(self) -> list[dict[str, Any]]:
        return [{"time": iso(t), "visible_prefixes": n} for t, n in self.tracker.visibility]

    def to_json(self) -> dict[str, Any]:
        tr = self.tracker
        return {
            "target": self.target_json(),
            "window": {"from": iso(self.options.start), "to": iso(self.options.end)},
            "collectors": [
                {
                    "name": c.name,
                    "peers": c.peers,
                    "full_feed_peers": c.full_feed_peers,
                    "rib": iso(c.rib_time),
                }
                for c in self.collectors
            ],
            "full_feed_peers": len(self.full_feed),
            "full_feed_rule": self.options.full_feed.describe(),
            "routes": tr.routes,
            "upstreams": self.upstream_rows(),
            "links": [
                {
                    "upstream": iv.upstream,
                    "prefix": iv.prefix,
                    "up": iso(iv.up),
                    "first_drop": iso(iv.first_drop),
                    "down": iso(iv.down),
                }
                for iv in tr.links()
            ],
            "series": [
                {
                    "time": iso(pt.time),
                    "routes": pt.routes,
                    "by_upstream": {str(u): n for u, n in pt.by_upstream.items()},
                    "visible_prefixes": pt.visible_prefixes,
                    "peers_by_prefix": pt.peers_by_prefix,
                }
                for pt in tr.series
            ],
            "visibility": self.visibility_json(),
            "events": self.events(),
            "outages": [{k: v for k, v in o.items() if k not in ("time", "type")} for o in self.outages()],
            "outage_rule": self.options.outage.describe(),
            "dependency": self.dependency().to_json(),
            "gaps": self.gaps,
            "issues": {
                "damaged_records": sum(c.stats.get("damaged_records", 0) for c in self.collectors),
                "reports": [str(i) for i in self.issues if i.severity in ("damaged", "error")][:100],
            },
        }


def analyse_rows(
    target: Target,
    rows: list[CollectorRows],
    options: UpstreamOptions,
    *,
    names: NameSource | None = None,
    issues: list[SourceIssue] | None = None,
) -> UpstreamResult:
    """The analysis proper, from the collectors' target rows (already read)."""
    tables = PeerTables.empty()
    for r in rows:
        tables.merge(r.tables)
    full = options.full_feed.select(tables)
    engine = Engine(
        target,
        full,
        start=options.start,
        end=options.end,
        bin_s=options.bin_s,
        min_peers=options.min_peers,
        outage_rule=options.outage,
        anomaly_rule=options.anomaly,
        share_shift=options.share_shift,
    )
    for r in rows:
        for row in r.rib_rows:
            engine.bootstrap(row)
    for row in merge_updates(rows):
        engine.feed(row)
    engine.finish()
    summaries = []
    for r in rows:
        peers = {p for p in tables.peers() if p.collector == r.name}
        summaries.append(
            CollectorSummary(
                r.name, len(peers), sum(1 for p in full if p.collector == r.name), r.rib_time, r.stats
            )
        )
    all_issues = list(issues or [])
    for r in rows:
        all_issues.extend(r.issues)
    return UpstreamResult(
        target,
        options,
        sort_prefixes(list(engine.targets.prefixes)),
        summaries,
        full,
        engine,
        names,
        all_issues,
    )


def analyse_upstreams(
    target: Target,
    inputs: list[CollectorInput],
    options: UpstreamOptions,
    *,
    names: NameSource | None = None,
    on_issue: Callable[[SourceIssue], None] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> UpstreamResult:
    """Read the collectors' files and run the analysis."""
    rows = read_collectors(
        inputs,
        target,
        options.end,
        workers=options.workers,
        scheduler=options.scheduler,
        on_issue=on_issue,
        progress=progress,
    )
    return analyse_rows(target, rows, options, names=names)
