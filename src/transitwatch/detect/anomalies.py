"""Origin anomalies on the target's prefixes: possible hijacks, MOAS, new more-specifics, and target
ASes originating space outside their delegations.

What is *expected* for a prefix: the target's AS numbers, the origins seen for it when the window
starts (its baseline), and the allow-list (``--allow-origin ASN`` for every prefix, or
``PREFIX=ASN`` pairs). Each anomaly is a candidate until ``min_peers`` full-feed peers have seen
it; it then becomes an event that names the suspect origin, the paths, and the peers and
collectors that saw them. The event's ``end`` is set when no peer holds such a route any more.

- ``origin_change``: a target prefix announced by an unexpected origin (possible hijack);
- ``moas``: a target prefix originated by several ASes at once, at least one of them unexpected,
  when that was not so at the start;
- ``more_specific``: a prefix inside a target prefix or the target's delegated space that was not
  routed at the start, announced by an origin that is neither a target AS nor allowed;
- ``unexpected_space``: a target AS starts originating a prefix outside the address space
  delegated to it (needs the registry).
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from transitwatch.routing.state import PeerKey, RouteChange, RouteState
from transitwatch.targets import Network, TargetSet
from transitwatch.timeutil import iso

EVIDENCE_KEPT = 20


@dataclass(frozen=True)
class AnomalyRule:
    min_peers: int = 3
    allow_origins: frozenset[int] = frozenset()
    allow_pairs: frozenset[tuple[str, int]] = frozenset()  # (prefix, origin)

    @classmethod
    def parse_allow(cls, items: list[str], min_peers: int = 3) -> AnomalyRule:
        """``4837`` / ``AS4837`` for any prefix, ``175.45.176.0/24=AS4837`` for one prefix."""
        origins: set[int] = set()
        pairs: set[tuple[str, int]] = set()
        for item in items:
            if "=" in item:
                pfx, asn = item.split("=", 1)
                net = ipaddress.ip_network(pfx.strip(), strict=True)
                pairs.add((str(net), _asn(asn)))
            else:
                origins.add(_asn(item))
        return cls(min_peers, frozenset(origins), frozenset(pairs))


def _asn(text: str) -> int:
    t = text.strip().upper()
    return int(t[2:] if t.startswith("AS") else t)


@dataclass
class _Candidate:
    type: str
    prefix: str
    origin: int | None  # the suspect (None for moas)
    first: float
    evidence: dict[PeerKey, tuple[float, str]] = field(default_factory=dict)  # peer -> (time, path)
    holders: set[PeerKey] = field(default_factory=set)
    confirmed: float | None = None
    end: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AnomalyDetector:
    def __init__(self, rule: AnomalyRule, targets: TargetSet, delegated: list[Network] | None = None) -> None:
        self.rule = rule
        self.targets = targets
        self.delegated = delegated  # None: unknown (no registry), so no unexpected_space checks
        self.baseline_origins: dict[str, set[int]] = defaultdict(set)
        self.baseline_prefixes: set[str] = set()
        self.origins_now: dict[str, Counter[int]] = defaultdict(Counter)
        self._cands: dict[tuple[str, str, int | None], _Candidate] = {}
        self._order: list[_Candidate] = []
        self._moas_open: dict[str, _Candidate] = {}

    # ---- set-up -------------------------------------------------------------------------------
    def begin(self, state: RouteState) -> None:
        for _peer, prefix, route in state.iter_routes(targets_only=False):
            self.baseline_prefixes.add(prefix)
            if route.origin is not None:
                self.baseline_origins[prefix].add(route.origin)
                self.origins_now[prefix][route.origin] += 1

    def expected(self, prefix: str) -> set[int]:
        exp = (
            set(self.targets.target.asns)
            | set(self.rule.allow_origins)
            | self.baseline_origins.get(prefix, set())
        )
        exp |= {o for p, o in self.rule.allow_pairs if p == prefix}
        return exp

    # ---- changes ------------------------------------------------------------------------------
    def on_change(self, ch: RouteChange) -> None:
        if ch.cause == "promoted":  # a watched route now counted as a target route: seen already
            return
        p = ch.prefix
        if ch.old is not None and ch.old.origin is not None:
            c = self.origins_now[p]
            c[ch.old.origin] -= 1
            if c[ch.old.origin] <= 0:
                del c[ch.old.origin]
            self._release(ch, ch.old.origin)
        if ch.new is not None and ch.new.origin is not None:
            self.origins_now[p][ch.new.origin] += 1
            self._observe(ch, ch.new.origin)
        self._check_moas(ch)

    def _observe(self, ch: RouteChange, o: int) -> None:
        p = ch.prefix
        path = " ".join(str(a) for a in ch.new.path) if ch.new is not None else ""
        is_target = p in self.targets.prefixes
        if is_target and o not in self.expected(p):
            self._hold("origin_change", p, o, ch, path, expected=sorted(self.expected(p)))
        if (
            p not in self.baseline_prefixes
            and o not in self.targets.target.asns
            and o not in self.rule.allow_origins
        ):
            covering = self._covering(p)
            if covering is not None and (p, o) not in self.rule.allow_pairs:
                self._hold("more_specific", p, o, ch, path, covering=covering)
        if (
            o in self.targets.target.asns
            and self.delegated is not None
            and p not in self.baseline_prefixes
            and not self._inside(p, self.delegated)
        ):
            self._hold("unexpected_space", p, o, ch, path, delegated=[str(n) for n in self.delegated])

    def _covering(self, prefix: str) -> str | None:
        """A shorter target prefix or delegated block that contains ``prefix``, if any."""
        try:
            net = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            return None
        best: Network | None = None
        candidates = [ipaddress.ip_network(q, strict=False) for q in self.targets.prefixes if q != prefix]
        candidates += list(self.targets.watch_networks)
        for c in candidates:
            inside = c.version == net.version and c.prefixlen < net.prefixlen and net.subnet_of(c)  # type: ignore[arg-type]
            if inside and (best is None or c.prefixlen > best.prefixlen):
                best = c
        return str(best) if best is not None else None

    @staticmethod
    def _inside(prefix: str, space: list[Network]) -> bool:
        net = ipaddress.ip_network(prefix, strict=False)
        return any(net.version == s.version and net.subnet_of(s) for s in space)  # type: ignore[arg-type]

    def _hold(self, kind: str, p: str, o: int | None, ch: RouteChange, path: str, **extra: Any) -> None:
        key = (kind, p, o)
        cand = self._cands.get(key)
        if cand is None or cand.end is not None:
            cand = _Candidate(kind, p, o, ch.time, extra=extra)
            self._cands[key] = cand
            self._order.append(cand)
        cand.holders.add(ch.peer)
        cand.evidence.setdefault(ch.peer, (ch.time, path))
        if cand.confirmed is None and len(cand.evidence) >= self.rule.min_peers:
            cand.confirmed = ch.time

    def _release(self, ch: RouteChange, o: int) -> None:
        for kind in ("origin_change", "more_specific", "unexpected_space"):
            cand = self._cands.get((kind, ch.prefix, o))
            if cand is None or cand.end is not None:
                continue
            still = ch.new is not None and ch.new.origin == o
            if not still:
                cand.holders.discard(ch.peer)
                if not cand.holders:
                    cand.end = ch.time

    def _check_moas(self, ch: RouteChange) -> None:
        p = ch.prefix
        if p not in self.targets.prefixes:
            return
        origins = set(self.origins_now.get(p, {}))
        open_c = self._moas_open.get(p)
        allowed = set(self.targets.target.asns) | set(self.rule.allow_origins)
        allowed |= {o for q, o in self.rule.allow_pairs if q == p}
        anomalous = (
            len(origins) >= 2
            and not origins <= allowed
            and not origins <= self.baseline_origins.get(p, set())
        )
        if anomalous:
            if open_c is None:
                open_c = _Candidate("moas", p, None, ch.time)
                self._moas_open[p] = open_c
                self._order.append(open_c)
            open_c.extra["origins"] = sorted(origins | set(open_c.extra.get("origins", [])))
            if ch.new is not None:
                path = " ".join(str(a) for a in ch.new.path)
                open_c.evidence.setdefault(ch.peer, (ch.time, path))
            counts = self.origins_now[p]
            # confirmed once at least two origins are each held by min_peers peers
            if open_c.confirmed is None and sum(1 for o in origins if counts[o] >= self.rule.min_peers) >= 2:
                open_c.confirmed = ch.time
        elif open_c is not None:
            open_c.end = ch.time
            del self._moas_open[p]

    # ---- results ------------------------------------------------------------------------------
    def events(self, names: Any = None) -> list[dict[str, Any]]:
        out = []
        for c in self._order:
            if c.confirmed is None:
                continue
            peers = sorted(c.evidence)
            ev: dict[str, Any] = {"time": iso(c.first), "type": c.type, "prefix": c.prefix}
            if c.origin is not None:
                ev["suspect_origin"] = c.origin
                if names is not None:
                    ev["suspect_name"] = names.as_name(c.origin)
                    ev["suspect_country"] = names.as_country(c.origin)
            ev.update(c.extra)
            ev["peers"] = len(peers)
            ev["collectors"] = sorted({p.collector for p in peers})
            ev["confirmed"] = iso(c.confirmed)
            ev["end"] = iso(c.end)
            ev["evidence"] = [
                {
                    "collector": p.collector,
                    "peer_address": p.address,
                    "peer_asn": p.asn,
                    "time": iso(t),
                    "as_path": path,
                }
                for p, (t, path) in sorted(c.evidence.items(), key=lambda kv: (kv[1][0], kv[0]))[
                    :EVIDENCE_KEPT
                ]
            ]
            out.append(ev)
        return out
