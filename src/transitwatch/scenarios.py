"""Replay worlds: small, deterministic MRT archives with registry files, for tests and the demo.

A :class:`ScenarioSpec` describes a world (collectors and their peers, a background table, the
target's networks, its upstreams and a timeline of routing actions); :func:`build` writes it as

- ``OUT/archive``: the collectors' files laid out like the public archives (RIS: RIB every 8 h and
  update files every 5 min, ``rrc00/2017.10/bview.20171001.0800.gz``; RouteViews: every 2 h and
  15 min, ``route-views2/bgpdata/2017.10/RIBS/rib.20171001.0800.bz2``), genuine MRT
  (TABLE_DUMP_V2, BGP4MP_MESSAGE_AS4) written with :mod:`transitwatch.mrt.writer`;
- ``OUT/registry``: a delegated-extended file for the target (its AS numbers and address blocks
  under one opaque id) and ``asn.txt`` names for the target, its upstreams and the tier-1s;
- ``OUT/manifest.json``: the spec, the peers, every file with its checksum and element count, and
  when each action of the timeline reached the first and the last peer.

Everything is seeded: the same spec gives the same bytes. ::

    from transitwatch import api, scenarios

    world = scenarios.build(scenarios.kp_2017_spec(), "/tmp/kp")
    result = api.upstreams("KP", str(world.archive), world.start, world.end, registry=str(world.registry))

Timeline actions: :class:`AddUpstream` / :class:`RemoveUpstream` (an upstream starts or stops
carrying prefixes), :class:`WithdrawAll` / :class:`Restore` (an outage), :class:`Announce` (another
route for a prefix, with a given origin, through a given upstream, seen by a fraction of the
full-feed peers of each collector: hijacks, MOAS, new more-specifics) and :class:`WithdrawAnnouncement`.
Peers react with small deterministic delays: for each action one peer sees it at the exact time
given, the others 2 s to ``max_delay_s`` later, as routes propagate.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
import random
import shutil
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any, ClassVar, Literal

from transitwatch.mrt.writer import Attributes, Peer, RibEntry, Session, open_for_write
from transitwatch.prefixes import sort_key
from transitwatch.timeutil import iso, parse_time

GENERATOR = "transitwatch.scenarios/1"
RIS_RIB_EVERY, RIS_UPDATES_EVERY = 8 * 3600, 300
ROUTEVIEWS_RIB_EVERY, ROUTEVIEWS_UPDATES_EVERY = 2 * 3600, 900
CollectorKind = Literal["ris", "routeviews"]

# ---------------------------------------------------------------------------------------------
# the spec


@dataclass(frozen=True)
class NamedAs:
    """An AS as asn.txt lists it: ``name`` is the handle and description (``"TWELVE99 Arelion"``)."""

    asn: int
    name: str
    country: str


#: Tier-1 networks the background table and the upstreams reach the world through (asn.txt names).
TIER1S: tuple[NamedAs, ...] = (
    NamedAs(174, "COGENT-174 - Cogent Communications", "US"),
    NamedAs(701, "UUNET - MCI Communications Services, Inc. d/b/a Verizon Business", "US"),
    NamedAs(1299, "TWELVE99 Arelion, fka Telia Carrier", "SE"),
    NamedAs(2914, "NTT-LTD-2914 - NTT America, Inc.", "US"),
    NamedAs(3257, "GTT-BACKBONE GTT", "US"),
    NamedAs(3320, "DTAG Deutsche Telekom AG", "DE"),
    NamedAs(3356, "LEVEL3 - Level 3 Parent, LLC", "US"),
    NamedAs(3491, "BTN-ASN - PCCW Global, Inc.", "US"),
    NamedAs(5511, "OPENTRANSIT Orange S.A.", "FR"),
    NamedAs(6453, "AS6453 - TATA COMMUNICATIONS (AMERICA) INC", "US"),
    NamedAs(6461, "ZAYO-6461 - Zayo Bandwidth", "US"),
    NamedAs(6762, "SEABONE-NET TELECOM ITALIA SPARKLE S.p.A.", "IT"),
    NamedAs(7018, "ATT-INTERNET4 - AT&T Services, Inc.", "US"),
    NamedAs(12956, "TELXIUS TELEFONICA GLOBAL SOLUTIONS SL", "ES"),
)

#: AS numbers collector peers are drawn from (ASes that peer with RIS and RouteViews).
PEER_ASNS: tuple[int, ...] = (
    3356, 2914, 3257, 1299, 6939, 3303, 7018, 3130, 293, 2497, 7660, 1221, 6453, 6762, 8492, 20912,
    23673, 37100, 49788, 53364, 57866, 11686, 19214, 22652, 31019, 13030, 4826, 6830, 3491, 174,
    1403, 20811, 34549, 9002, 25091, 8447,
)  # fmt: skip


@dataclass(frozen=True)
class CollectorSpec:
    """A route collector; ``partial_peers`` of its ``peers`` see only a sliver of the table."""

    name: str
    kind: CollectorKind
    peers: int
    partial_peers: int = 0


@dataclass(frozen=True)
class BackgroundSpec:
    """The unrelated part of the table: stable paths, ``churn_per_5min`` changes per collector."""

    ipv4: int = 300
    ipv6: int = 60
    churn_per_5min: int = 3
    partial_share: float = 0.05  # of the background that partial peers see


@dataclass(frozen=True)
class TargetOrigin:
    """One of the target's AS numbers and the prefixes it originates."""

    asn: int
    name: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class ScenarioTarget:
    """The networks watched: their country, AS numbers and prefixes, and how the registry lists them."""

    country: str
    origins: tuple[TargetOrigin, ...]
    rir: str = "apnic"
    holder_id: str = "A91C1D4B"  # the delegation records' opaque id
    registered: str = "20100122"

    @property
    def asns(self) -> tuple[int, ...]:
        return tuple(o.asn for o in self.origins)

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(p for o in self.origins for p in o.prefixes)


@dataclass(frozen=True)
class Upstream:
    """A transit provider of the target: reaches the world ``via`` these tier-1s; ``preference`` is
    the share of each collector's full-feed peers that prefer it when it carries a prefix."""

    asn: int
    name: str
    country: str
    via: tuple[int, ...]
    preference: float = 0.0


@dataclass(frozen=True)
class AddUpstream:
    """The upstream starts carrying the prefixes."""

    kind: ClassVar[str] = "add"
    at: str
    upstream: int
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class RemoveUpstream:
    """The upstream stops carrying the prefixes."""

    kind: ClassVar[str] = "remove"
    at: str
    upstream: int
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class WithdrawAll:
    """Every route to the prefixes is withdrawn (an outage); announcements by others stay."""

    kind: ClassVar[str] = "withdraw_all"
    at: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class Restore:
    """The prefixes come back through the upstreams that carry them now."""

    kind: ClassVar[str] = "restore"
    at: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class Announce:
    """A route for ``prefix`` originated by ``origin`` through ``upstream`` (None: the origin
    connects to a tier-1 directly), chosen by ``fraction`` of each collector's full-feed peers
    (at least one); the newest announcement a peer has chosen is its route."""

    kind: ClassVar[str] = "announce"
    at: str
    prefix: str
    origin: int
    upstream: int | None = None
    fraction: float = 1.0


@dataclass(frozen=True)
class WithdrawAnnouncement:
    """The announcement of ``prefix`` by ``origin`` ends; its peers fall back to what they had."""

    kind: ClassVar[str] = "withdraw"
    at: str
    prefix: str
    origin: int


Action = AddUpstream | RemoveUpstream | WithdrawAll | Restore | Announce | WithdrawAnnouncement


@dataclass(frozen=True)
class ScenarioSpec:
    """A whole world. ``initial_carriers`` gives each target prefix's upstreams at ``start``;
    ``origin_prepend_peers`` are peer ASes that receive the target's routes with the origin
    prepended three times; ``names`` are further asn.txt entries (a hijacker, say)."""

    name: str
    seed: int
    start: str
    end: str
    collectors: tuple[CollectorSpec, ...]
    target: ScenarioTarget
    upstreams: tuple[Upstream, ...]
    initial_carriers: Mapping[str, tuple[int, ...]]
    timeline: tuple[Action, ...] = ()
    background: BackgroundSpec = field(default_factory=BackgroundSpec)
    origin_prepend_peers: tuple[int, ...] = ()
    names: tuple[NamedAs, ...] = ()
    tier1s: tuple[NamedAs, ...] = TIER1S
    max_delay_s: int = 60
    about: str = ""

    @property
    def start_time(self) -> int:
        return parse_time(self.start)

    @property
    def end_time(self) -> int:
        return parse_time(self.end)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["initial_carriers"] = {p: list(u) for p, u in self.initial_carriers.items()}
        d["timeline"] = [{"action": a.kind, **asdict(a)} for a in self.timeline]
        return d

    def validate(self) -> None:
        """Raise ValueError for a spec that cannot be built as asked."""
        t0, t1 = self.start_time, self.end_time
        if t1 <= t0:
            raise ValueError(f"{self.name}: end {self.end} is not after start {self.start}")
        names = [c.name for c in self.collectors]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"{self.name}: collector names must be given and distinct: {names}")
        for c in self.collectors:
            if c.kind not in ("ris", "routeviews"):
                raise ValueError(f"collector {c.name}: kind must be ris or routeviews, not {c.kind!r}")
            if not 0 <= c.partial_peers < c.peers:
                raise ValueError(
                    f"collector {c.name}: needs full-feed peers ({c.peers} peers, {c.partial_peers} partial)"
                )
        ups = {u.asn for u in self.upstreams}
        tier1 = {t.asn for t in self.tier1s}
        for u in self.upstreams:
            if not u.via or not set(u.via) <= tier1:
                raise ValueError(f"upstream AS{u.asn}: via {u.via} must be tier-1s of the spec")
            if not 0.0 <= u.preference <= 1.0:
                raise ValueError(f"upstream AS{u.asn}: preference {u.preference} is not a share")
        prefixes = set(self.target.prefixes)
        for p in [*prefixes, *self.initial_carriers]:
            ipaddress.ip_network(p, strict=True)
        for p, carriers in self.initial_carriers.items():
            if p not in prefixes or not set(carriers) <= ups:
                raise ValueError(
                    f"initial carriers of {p}: {carriers} (prefix and upstreams must be in the spec)"
                )
        for a in self.timeline:
            when = parse_time(a.at)
            if not t0 <= when < t1:
                raise ValueError(f"{a.kind} at {a.at} is outside the window {self.start} to {self.end}")
            if isinstance(a, AddUpstream | RemoveUpstream) and a.upstream not in ups:
                raise ValueError(f"{a.kind} at {a.at}: AS{a.upstream} is not an upstream of the spec")
            if isinstance(a, AddUpstream | RemoveUpstream | WithdrawAll | Restore):
                unknown = set(a.prefixes) - prefixes
                if unknown:
                    raise ValueError(f"{a.kind} at {a.at}: not target prefixes: {sorted(unknown)}")
            if isinstance(a, Announce):
                ipaddress.ip_network(a.prefix, strict=True)
                if not 0.0 < a.fraction <= 1.0:
                    raise ValueError(f"announce at {a.at}: fraction {a.fraction} must be in (0, 1]")


# ---------------------------------------------------------------------------------------------
# the world


def _h(*parts: object) -> int:
    """A stable hash (Python's own hash of strings changes between runs)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


@dataclass(frozen=True)
class _Peer:
    collector: str
    index: int  # in the collector's peer index table
    ip: str
    asn: int
    bgp_id: str
    partial: bool
    ipv6: bool  # carries IPv6 routes
    provider: int  # its tier-1 towards the background table
    v6_next_hop: str


@dataclass(frozen=True)
class _BackgroundRoute:
    prefix: str
    origin: int
    chain: tuple[int, ...]  # origin's providers, origin side first, a tier-1 last
    prepend: int


_AsPath = tuple[int, ...]


@dataclass(frozen=True)
class _Update:
    time: int
    seq: int
    collector: str
    peer: int
    prefix: str
    path: _AsPath | None  # None: withdrawn


@dataclass
class _ActionLog:
    action: Action
    first: int | None = None
    last: int | None = None
    peers: set[tuple[str, int]] = field(default_factory=set)


class _World:
    def __init__(self, spec: ScenarioSpec) -> None:
        spec.validate()
        self.spec = spec
        self.t0, self.t1 = spec.start_time, spec.end_time
        rng = random.Random(spec.seed)
        self.tier1 = [t.asn for t in spec.tier1s]
        self.target_asns = set(spec.target.asns)
        self.upstreams = {u.asn: u for u in spec.upstreams}
        self.origin_of = {p: o.asn for o in spec.target.origins for p in o.prefixes}
        special = (
            self.target_asns
            | set(self.upstreams)
            | {a.origin for a in spec.timeline if isinstance(a, Announce)}
        )
        pool = [a for a in PEER_ASNS if a not in special]
        self.peers: dict[str, list[_Peer]] = {}
        for ci, c in enumerate(spec.collectors):
            if c.peers > len(pool):
                raise ValueError(f"collector {c.name}: at most {len(pool)} peers")
            peers = []
            for i, asn in enumerate(rng.sample(pool, c.peers)):
                peers.append(
                    _Peer(
                        c.name,
                        i,
                        f"{80 + ci}.{(asn >> 8) & 255}.{asn & 255}.{i + 1}",
                        asn,
                        f"{10 + ci}.{(asn >> 8) & 255}.{asn & 255}.{i + 1}",
                        partial=i >= c.peers - c.partial_peers,
                        ipv6=rng.random() < 0.8,
                        provider=asn if asn in self.tier1 else rng.choice(self.tier1),
                        v6_next_hop=f"2001:db8:{ci + 1:x}::{i + 1:x}",
                    )
                )
            self.peers[c.name] = peers
        self.background = self._background(rng, special)
        n_bg = len(self.background)
        keep = max(1, round(spec.background.partial_share * n_bg))
        self.partial_view = [self.background[(k * n_bg) // keep] for k in range(keep)]
        # which peers prefer which upstream: a fixed share of each collector's full-feed peers
        self.likes: set[tuple[str, int, int]] = set()
        for c in spec.collectors:
            full = self.full_peers(c.name)
            for u in spec.upstreams:
                for pe in self._ranked(full, "likes", u.asn)[: math.ceil(round(u.preference * len(full), 9))]:
                    self.likes.add((c.name, pe.index, u.asn))

    def _ranked(self, peers: list[_Peer], *why: object) -> list[_Peer]:
        """Peers in a fixed pseudo-random order that depends on the seed and on ``why``."""
        return sorted(peers, key=lambda pe: _h(self.spec.seed, *why, pe.collector, pe.ip))

    def full_peers(self, collector: str) -> list[_Peer]:
        return [pe for pe in self.peers[collector] if not pe.partial]

    def all_full_peers(self) -> Iterator[_Peer]:
        for c in self.spec.collectors:
            yield from self.full_peers(c.name)

    # ---- the background table ----------------------------------------------------------------
    def _background(self, rng: random.Random, special: set[int]) -> list[_BackgroundRoute]:
        bg = self.spec.background
        avoid = [ipaddress.ip_network(p) for p in self.spec.target.prefixes]
        avoid += [ipaddress.ip_network(a.prefix) for a in self.spec.timeline if isinstance(a, Announce)]
        taken = set(special) | set(self.tier1) | set(PEER_ASNS)

        def asn() -> int:
            while True:
                a = rng.randint(1000, 63999) if rng.random() < 0.7 else rng.randint(131072, 399999)
                if a not in taken:
                    return a

        origins = [asn() for _ in range(max(1, (bg.ipv4 + bg.ipv6) // 4))]
        chains = {
            o: (o, *(asn() for _ in range(rng.choice([0, 1, 1, 2, 2, 3]))), rng.choice(self.tier1))
            for o in origins
        }
        routes: list[_BackgroundRoute] = []
        used: set[str] = set()

        def add(prefix: str, prepend: int) -> None:
            net = ipaddress.ip_network(prefix)
            if prefix in used or any(net.overlaps(a) for a in avoid):
                return
            used.add(prefix)
            o = rng.choice(origins)
            routes.append(_BackgroundRoute(prefix, o, chains[o], prepend))

        while len(routes) < bg.ipv4:
            length = rng.choice([16, 19, 20, 21, 22, 23, 24, 24, 24, 24])
            addr = ipaddress.IPv4Address(rng.randint(1, 223) << 24 | rng.getrandbits(24))
            net = ipaddress.IPv4Network(f"{addr}/{length}", strict=False)
            if net.is_global and not net.is_multicast:
                add(str(net), rng.choice([1] * 8 + [2, 3]))
        while len(routes) < bg.ipv4 + bg.ipv6:
            length = rng.choice([32, 36, 40, 44, 48, 48])
            addr6 = ipaddress.IPv6Address((0x2 << 124) | rng.getrandbits(124))
            add(str(ipaddress.IPv6Network(f"{addr6}/{length}", strict=False)), 1)
        return sorted(routes, key=lambda r: sort_key(r.prefix))

    def background_path(self, pe: _Peer, route: _BackgroundRoute, variant: int = 0) -> _AsPath:
        top, body = route.chain[-1], list(reversed(route.chain[1:-1]))
        if pe.asn == top:
            path = [pe.asn, *body]
        elif pe.asn in self.tier1 or (pe.provider == top and not variant):
            path = [pe.asn, top, *body]
        else:
            alt = self.tier1[(self.tier1.index(pe.provider) + variant) % len(self.tier1)]
            path = [pe.asn, alt, top, *body] if alt != top else [pe.asn, top, *body]
        return (*path, *[route.origin] * route.prepend)

    def sees(self, pe: _Peer, prefix: str) -> bool:
        return pe.ipv6 or ":" not in prefix

    # ---- the target ----------------------------------------------------------------------------
    def _via(self, pe: _Peer, upstream: int | None) -> list[int]:
        """The peer's path down to the upstream (inclusive), through one of its tier-1s."""
        u = self.upstreams.get(upstream) if upstream is not None else None
        via = list(u.via) if u is not None else self.tier1
        mid = via[_h(pe.collector, pe.asn, upstream) % len(via)]
        path = [pe.asn] if pe.asn == mid else [pe.asn, mid]
        if upstream is not None and upstream not in path:
            path.append(upstream)
        return path

    def target_path(self, pe: _Peer, prefix: str, carriers: set[int]) -> _AsPath | None:
        if not carriers:
            return None
        # a peer takes an upstream it prefers; otherwise the least preferred one (the incumbent)
        u = min(
            carriers,
            key=lambda a: ((pe.collector, pe.index, a) not in self.likes, self.upstreams[a].preference, a),
        )
        reps = 3 if pe.asn in self.spec.origin_prepend_peers else 1
        return (*self._via(pe, u), *[self.origin_of[prefix]] * reps)

    def announce_path(self, pe: _Peer, a: Announce) -> _AsPath:
        return (*self._via(pe, a.upstream), a.origin)

    def announce_peers(self, a: Announce) -> frozenset[tuple[str, int]]:
        chosen: set[tuple[str, int]] = set()
        for c in self.spec.collectors:
            full = [pe for pe in self.full_peers(c.name) if self.sees(pe, a.prefix)]
            ranked = self._ranked(full, "announce", a.prefix, a.origin)
            k = max(1, math.ceil(round(a.fraction * len(full), 9)))
            chosen |= {(pe.collector, pe.index) for pe in ranked[:k]}
        return frozenset(chosen)

    # ---- simulation ----------------------------------------------------------------------------
    def initial_state(self) -> dict[tuple[str, int, str], tuple[_AsPath, int]]:
        """(collector, peer, prefix) -> (path, originated) at the start."""
        state: dict[tuple[str, int, str], tuple[_AsPath, int]] = {}
        born = self.t0 - 3600
        carriers = {p: set(self.spec.initial_carriers.get(p, ())) for p in self.spec.target.prefixes}
        for c in self.spec.collectors:
            for pe in self.peers[c.name]:
                for r in self.partial_view if pe.partial else self.background:
                    if self.sees(pe, r.prefix):
                        state[(c.name, pe.index, r.prefix)] = (self.background_path(pe, r), born)
                if pe.partial:
                    continue
                for p in self.spec.target.prefixes:
                    path = self.target_path(pe, p, carriers[p]) if self.sees(pe, p) else None
                    if path is not None:
                        state[(c.name, pe.index, p)] = (path, born)
        return state

    def timeline_updates(
        self, state: Mapping[tuple[str, int, str], tuple[_AsPath, int]]
    ) -> tuple[list[_Update], list[_ActionLog]]:
        spec = self.spec
        carriers = {p: set(spec.initial_carriers.get(p, ())) for p in spec.target.prefixes}
        down: set[str] = set()
        announced: dict[str, list[tuple[Announce, frozenset[tuple[str, int]]]]] = defaultdict(list)
        intended: dict[tuple[str, int, str], _AsPath | None] = {
            k: v[0] for k, v in state.items() if k[2] in carriers
        }
        last_emit: dict[tuple[str, int, str], int] = {}
        updates: list[_Update] = []
        logs: list[_ActionLog] = []
        seq = 0
        order = sorted(range(len(spec.timeline)), key=lambda i: (parse_time(spec.timeline[i].at), i))
        for i in order:
            a = spec.timeline[i]
            t = parse_time(a.at)
            if isinstance(a, AddUpstream):
                for p in a.prefixes:
                    carriers[p].add(a.upstream)
                touched = list(a.prefixes)
            elif isinstance(a, RemoveUpstream):
                for p in a.prefixes:
                    carriers[p].discard(a.upstream)
                touched = list(a.prefixes)
            elif isinstance(a, WithdrawAll):
                down |= set(a.prefixes)
                touched = list(a.prefixes)
            elif isinstance(a, Restore):
                down -= set(a.prefixes)
                touched = list(a.prefixes)
            elif isinstance(a, Announce):
                announced[a.prefix].append((a, self.announce_peers(a)))
                touched = [a.prefix]
            else:
                active = announced[a.prefix]
                match = [k for k, (b, _) in enumerate(active) if b.origin == a.origin]
                if not match:
                    raise ValueError(f"withdraw at {a.at}: {a.prefix} is not announced by AS{a.origin} then")
                del active[match[-1]]
                touched = [a.prefix]
            changed: list[tuple[_Peer, str, _AsPath | None]] = []
            for pe in self.all_full_peers():
                for p in touched:
                    if not self.sees(pe, p):
                        continue
                    new = self._route(pe, p, carriers.get(p, set()) if p not in down else set(), announced[p])
                    key = (pe.collector, pe.index, p)
                    if new != intended.get(key):
                        intended[key] = new
                        changed.append((pe, p, new))
            log = _ActionLog(a)
            logs.append(log)
            if not changed:
                continue
            first = min(
                {(pe.collector, pe.index): pe for pe, _p, _n in changed}.values(),
                key=lambda pe: _h(spec.seed, "first", i, pe.collector, pe.ip),
            )
            for pe, p, new in changed:
                delay = (
                    0
                    if pe is first
                    else 2 + _h(spec.seed, "delay", i, pe.collector, pe.ip) % max(1, spec.max_delay_s - 2)
                )
                key = (pe.collector, pe.index, p)
                when = max(t + delay, last_emit.get(key, 0))  # a peer never reorders one prefix's updates
                last_emit[key] = when
                updates.append(_Update(when, seq, pe.collector, pe.index, p, new))
                seq += 1
                if when < self.t1:
                    log.first = when if log.first is None else min(log.first, when)
                    log.last = when if log.last is None else max(log.last, when)
                    log.peers.add((pe.collector, pe.index))
        return updates, logs

    def _route(
        self,
        pe: _Peer,
        prefix: str,
        carriers: set[int],
        announced: list[tuple[Announce, frozenset[tuple[str, int]]]],
    ) -> _AsPath | None:
        for a, peers in reversed(announced):
            if (pe.collector, pe.index) in peers:
                return self.announce_path(pe, a)
        if prefix in self.origin_of:
            return self.target_path(pe, prefix, carriers)
        return None

    def churn_updates(self, seq0: int) -> list[_Update]:
        """Light background churn: path changes, and withdrawals re-announced minutes later."""
        spec = self.spec
        out: list[_Update] = []
        seq = seq0
        for c in spec.collectors:
            rng = random.Random(_h(spec.seed, "churn", c.name))
            full = self.full_peers(c.name)
            n = (self.t1 - self.t0) // 300 * spec.background.churn_per_5min
            for _ in range(n):
                t = rng.randint(self.t0, self.t1 - 1)
                pe = rng.choice(full)
                r = rng.choice(self.background)
                roll = rng.random()
                if not self.sees(pe, r.prefix):
                    continue
                if roll < 0.15:
                    out.append(_Update(t, seq, c.name, pe.index, r.prefix, None))
                    out.append(
                        _Update(
                            t + rng.randint(20, 900),
                            seq + 1,
                            c.name,
                            pe.index,
                            r.prefix,
                            self.background_path(pe, r),
                        )
                    )
                    seq += 2
                else:
                    path = self.background_path(pe, r, rng.randint(0, 3))
                    out.append(_Update(t, seq, c.name, pe.index, r.prefix, path))
                    seq += 1
        return out


# ---------------------------------------------------------------------------------------------
# writing


@dataclass
class BuildResult:
    """Where a built world is and what it holds (``manifest`` has the details)."""

    root: Path
    archive: Path
    registry: Path
    manifest: Path
    start: int
    end: int
    mrt_files: int
    update_elements: int  # announced and withdrawn prefixes in all update files
    rib_entries: int

    def load_manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.manifest.read_text(encoding="utf-8"))
        return data


def _file_path(kind: str, collector: str, what: str, t: int) -> str:
    d = datetime.fromtimestamp(t, UTC)
    if kind == "ris":
        name = ("bview" if what == "rib" else "updates") + d.strftime(".%Y%m%d.%H%M.gz")
        return f"{collector}/{d:%Y.%m}/{name}"
    folder, name = ("RIBS", "rib") if what == "rib" else ("UPDATES", "updates")
    return f"{collector}/bgpdata/{d:%Y.%m}/{folder}/{name}{d:.%Y%m%d.%H%M}.bz2"


class _Attrs:
    """Attributes per (path, next hop), made once: the same few paths recur thousands of times."""

    def __init__(self) -> None:
        self._cache: dict[tuple[_AsPath, str], Attributes] = {}

    def get(self, path: _AsPath, next_hop: str) -> Attributes:
        key = (path, next_hop)
        a = self._cache.get(key)
        if a is None:
            a = self._cache[key] = Attributes(list(path), next_hop=next_hop)
        return a


def _next_hop(pe: _Peer, prefix: str) -> str:
    return pe.v6_next_hop if ":" in prefix else pe.ip


def _write_collector(
    world: _World,
    c: CollectorSpec,
    ci: int,
    state: dict[tuple[str, int, str], tuple[_AsPath, int]],
    updates: list[_Update],
    archive: Path,
    attrs: _Attrs,
) -> list[dict[str, Any]]:
    rib_every, upd_every = (
        (RIS_RIB_EVERY, RIS_UPDATES_EVERY)
        if c.kind == "ris"
        else (ROUTEVIEWS_RIB_EVERY, ROUTEVIEWS_UPDATES_EVERY)
    )
    collector_id, local_as = (
        (f"193.0.4.{28 + ci}", 12654) if c.kind == "ris" else (f"128.223.51.{102 + ci}", 6447)
    )
    peers = world.peers[c.name]
    mrt_peers = [Peer(pe.ip, pe.asn, pe.bgp_id) for pe in peers]
    sessions = [Session(pe.ip, pe.asn, collector_id, local_as) for pe in peers]
    mine = {k: v for k, v in state.items() if k[0] == c.name}
    # updates that propagation delays push past the window end fall outside the archive, as they would
    pending = sorted(
        (u for u in updates if u.collector == c.name and u.time < world.t1),
        key=lambda u: (u.time, u.peer, u.seq),
    )
    files: list[dict[str, Any]] = []
    ui = 0
    slot = world.t0 - world.t0 % rib_every  # the RIB at or before the start, and updates from there
    while slot < world.t1:
        if slot % rib_every == 0:
            rel = _file_path(c.kind, c.name, "rib", slot)
            files.append(_write_rib(archive / rel, rel, slot, mine, peers, mrt_peers, collector_id, attrs))
        applied: list[_Update] = []
        while ui < len(pending) and pending[ui].time < slot + upd_every:
            u = pending[ui]
            ui += 1
            key = (c.name, u.peer, u.prefix)
            old = mine.get(key)
            if (old[0] if old else None) == u.path:
                continue  # nothing to tell: real sessions send no duplicate
            if u.path is None:
                del mine[key]
            else:
                mine[key] = (u.path, u.time)
            applied.append(u)
        rel = _file_path(c.kind, c.name, "updates", slot)
        files.append(_write_updates(archive / rel, rel, applied, peers, sessions, attrs))
        slot += upd_every
    return files


def _write_rib(
    path: Path,
    rel: str,
    t: int,
    state: Mapping[tuple[str, int, str], tuple[_AsPath, int]],
    peers: list[_Peer],
    mrt_peers: list[Peer],
    collector_id: str,
    attrs: _Attrs,
) -> dict[str, Any]:
    by_prefix: dict[str, list[tuple[int, _AsPath, int]]] = defaultdict(list)
    for (_c, idx, prefix), (p, born) in state.items():
        by_prefix[prefix].append((idx, p, born))
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = 0
    with open_for_write(path) as w:
        w.peer_index_table(t, mrt_peers, collector_id=collector_id)
        for prefix in sorted(by_prefix, key=sort_key):
            rows = sorted(by_prefix[prefix])
            w.rib(
                t,
                prefix,
                [
                    RibEntry(mrt_peers[i], attrs.get(p, _next_hop(peers[i], prefix)), born)
                    for i, p, born in rows
                ],
            )
            entries += len(rows)
        records = w.records
    return {"path": rel, "kind": "rib", "time": iso(t), "records": records, "elements": entries}


def _write_updates(
    path: Path, rel: str, applied: list[_Update], peers: list[_Peer], sessions: list[Session], attrs: _Attrs
) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    elements = 0
    with open_for_write(path) as w:
        # one UPDATE per peer, moment, path and address family: a router packs one change's prefixes
        for (when, idx, p, _v6), group in groupby(
            applied, key=lambda u: (u.time, u.peer, u.path, ":" in u.prefix)
        ):
            prefixes = [u.prefix for u in group]
            elements += len(prefixes)
            if p is None:
                w.update(when, sessions[idx], withdraw=prefixes)
            else:
                w.update(
                    when,
                    sessions[idx],
                    announce=prefixes,
                    attributes=attrs.get(p, _next_hop(peers[idx], prefixes[0])),
                )
        records = w.records
    return {"path": rel, "kind": "updates", "records": records, "elements": elements}


def _write_registry(spec: ScenarioSpec, folder: Path, world: _World) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    tgt = spec.target
    day = datetime.fromtimestamp(world.t0, UTC).strftime("%Y%m%d")
    records = [
        f"{tgt.rir}|{tgt.country}|asn|{a}|1|{tgt.registered}|assigned|{tgt.holder_id}"
        for a in sorted(tgt.asns)
    ]
    counts = {"asn": len(records), "ipv4": 0, "ipv6": 0}
    nets = [ipaddress.ip_network(p) for p in tgt.prefixes]
    for version in (4, 6):
        fam = [n for n in nets if n.version == version]
        for block in ipaddress.collapse_addresses(fam):  # type: ignore[type-var]
            value = block.num_addresses if version == 4 else block.prefixlen
            fields = [tgt.rir, tgt.country, f"ipv{version}", block.network_address, value]
            records.append("|".join(map(str, [*fields, tgt.registered, "assigned", tgt.holder_id])))
            counts[f"ipv{version}"] += 1
    lines = [f"2.3|{tgt.rir}|{day}|{len(records)}|19830613|{day}|+0000"]
    lines += [f"{tgt.rir}|*|{kind}|*|{n}|summary" for kind, n in counts.items()]
    delegated = f"delegated-{tgt.rir}-extended-{day}"
    (folder / delegated).write_text("\n".join(lines + records) + "\n", encoding="utf-8")
    named: dict[int, tuple[str, str]] = {t.asn: (t.name, t.country) for t in spec.tier1s}
    named.update({u.asn: (u.name, u.country) for u in spec.upstreams})
    named.update({o.asn: (o.name, tgt.country) for o in tgt.origins})
    named.update({n.asn: (n.name, n.country) for n in spec.names})
    (folder / "asn.txt").write_text(
        "".join(f"{a} {n}, {cc}\n" for a, (n, cc) in sorted(named.items())), encoding="utf-8"
    )
    return [delegated, "asn.txt"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(spec: ScenarioSpec, out: str | os.PathLike[str], *, overwrite: bool = False) -> BuildResult:
    """Write the world of ``spec`` into ``out`` (``archive/``, ``registry/``, ``manifest.json``).

    ``out/archive`` and ``out/registry`` must not exist yet, or be empty, unless ``overwrite``:
    then they are replaced, so no file of an earlier build can linger among the new ones.
    """
    world = _World(spec)  # checks the spec before anything is touched
    root = Path(out)
    archive, registry, manifest = root / "archive", root / "registry", root / "manifest.json"
    for folder in (archive, registry):
        if folder.exists() and any(folder.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{folder} is not empty (pass overwrite=True to replace it)")
            shutil.rmtree(folder)
    state = world.initial_state()
    timeline, logs = world.timeline_updates(state)
    updates = timeline + world.churn_updates(len(timeline))
    attrs = _Attrs()
    files: list[dict[str, Any]] = []
    for ci, c in enumerate(spec.collectors):
        files += _write_collector(world, c, ci, state, updates, archive, attrs)
    for f in files:
        p = archive / f["path"]
        f["bytes"] = p.stat().st_size
        f["sha256"] = _sha256(p)
    reg_files = _write_registry(spec, registry, world)
    peer_names = {(pe.collector, pe.index): pe for c in spec.collectors for pe in world.peers[c.name]}

    def peer_json(pe: _Peer) -> dict[str, Any]:
        return {"collector": pe.collector, "address": pe.ip, "asn": pe.asn}

    data = {
        "generator": GENERATOR,
        "name": spec.name,
        "about": spec.about,
        "window": {"from": iso(world.t0), "to": iso(world.t1)},
        "target": {
            "country": spec.target.country,
            "asns": sorted(spec.target.asns),
            "prefixes": list(spec.target.prefixes),
        },
        "collectors": [
            {
                "name": c.name,
                "kind": c.kind,
                "peers": [
                    {**peer_json(pe), "bgp_id": pe.bgp_id, "full_feed": not pe.partial, "ipv6": pe.ipv6}
                    for pe in world.peers[c.name]
                ],
            }
            for c in spec.collectors
        ],
        "background": {"prefixes": len(world.background), "partial_view": len(world.partial_view)},
        "timeline": [
            {
                "action": log.action.kind,
                **asdict(log.action),
                "first_update": iso(log.first),
                "last_update": iso(log.last),
                "peers": [peer_json(peer_names[k]) for k in sorted(log.peers)],
            }
            for log in logs
        ],
        "files": files,
        "registry": reg_files,
        "spec": spec.to_json(),
    }
    root.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return BuildResult(
        root,
        archive,
        registry,
        manifest,
        world.t0,
        world.t1,
        len(files),
        sum(f["elements"] for f in files if f["kind"] == "updates"),
        sum(f["elements"] for f in files if f["kind"] == "rib"),
    )


# ---------------------------------------------------------------------------------------------
# the published events


KP_PREFIXES = ("175.45.176.0/24", "175.45.177.0/24", "175.45.178.0/24", "175.45.179.0/24")
KP_TTK_PREFIXES = ("175.45.176.0/24", "175.45.178.0/24", "175.45.179.0/24")
KP_OUTAGES = (
    ("2017-10-01T10:47:12Z", "2017-10-01T10:49:40Z"),
    ("2017-10-01T11:12:05Z", "2017-10-01T11:15:31Z"),
    ("2017-10-01T11:40:22Z", "2017-10-01T11:42:03Z"),
    ("2017-10-01T12:24:30Z", "2017-10-01T12:26:10Z"),
)


def kp_2017_spec() -> ScenarioSpec:
    """1-2 Oct 2017 as Dyn Research published it, in a small world that builds in seconds:
    TransTeleCom (AS20485) starts carrying three of Star JV's (AS131279) four /24s beside China
    Unicom (AS4837) at 09:07:51, disappears at 10:14:45 and returns at 12:21:55; four brief total
    outages in between; on 2 Oct .176 loses it at 07:56:39 and .179 at 09:10:29. Peers, paths and
    the background table are synthetic."""
    timeline: list[Action] = [
        AddUpstream("2017-10-01T09:07:51Z", 20485, KP_TTK_PREFIXES),
        RemoveUpstream("2017-10-01T10:14:45Z", 20485, KP_TTK_PREFIXES),
    ]
    for down, up in KP_OUTAGES[:3]:
        timeline += [WithdrawAll(down, KP_PREFIXES), Restore(up, KP_PREFIXES)]
    timeline.append(AddUpstream("2017-10-01T12:21:55Z", 20485, KP_TTK_PREFIXES))
    timeline += [WithdrawAll(KP_OUTAGES[3][0], KP_PREFIXES), Restore(KP_OUTAGES[3][1], KP_PREFIXES)]
    timeline += [
        RemoveUpstream("2017-10-02T07:56:39Z", 20485, ("175.45.176.0/24",)),
        RemoveUpstream("2017-10-02T09:10:29Z", 20485, ("175.45.179.0/24",)),
    ]
    return ScenarioSpec(
        name="kp-2017-ttk-demo",
        about=(
            "Dyn Research's published timeline of 1-2 Oct 2017: TransTeleCom (AS20485) begins transit for "
            "three of Star JV's (AS131279) four /24s beside China Unicom (AS4837). Peers, paths and the "
            "background table are synthetic."
        ),
        seed=2017,
        start="2017-10-01T08:00:00Z",
        end="2017-10-02T12:00:00Z",
        collectors=(CollectorSpec("rrc00", "ris", 10, 1), CollectorSpec("route-views2", "routeviews", 9, 1)),
        background=BackgroundSpec(ipv4=300, ipv6=60, churn_per_5min=3),
        target=ScenarioTarget("KP", (TargetOrigin(131279, "STAR-KP Ryugyong-dong", KP_PREFIXES),)),
        upstreams=(
            Upstream(
                4837,
                "CHINA169-BACKBONE CHINA UNICOM China169 Backbone",
                "CN",
                (3356, 1299, 174, 2914, 3491, 6453),
            ),
            Upstream(
                20485,
                "TRANSTELECOM Joint Stock Company TransTeleCom",
                "RU",
                (1299, 3356, 174, 6762, 3257),
                0.8,
            ),
        ),
        initial_carriers={p: (4837,) for p in KP_PREFIXES},
        timeline=tuple(timeline),
        origin_prepend_peers=(6939,),
    )
