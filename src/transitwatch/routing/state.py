"""Route state of the target prefixes, per collector, peer and prefix.

``RouteState.apply(row)`` takes one element (from a RIB dump, an update file or RIS Live) and
returns the route changes it causes. Everything downstream (shares, links, visibility, outages,
anomalies) is computed from those changes, for history and live alike.

Definitions (``shared/scenarios/README.md``): a *peer* is one BGP session of a collector
(collector, peer address, peer AS); a *route* is the path a full-feed peer currently has for a
target prefix; only full-feed peers count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from transitwatch.routing.paths import collapse, parse_path, upstream_of
from transitwatch.targets import TargetSet


class PeerKey(NamedTuple):
    collector: str
    address: str
    asn: int

    def __str__(self) -> str:
        return f"{self.collector} {self.address} AS{self.asn}"


class Row(NamedTuple):
    """The fields of one element that the route state needs."""

    time: float
    collector: str
    peer_address: str
    peer_asn: int
    type: str  # R, A, W, S
    prefix: str | None
    as_path: str | None
    origin_asn: int | None
    new_state: int | None

    @property
    def peer(self) -> PeerKey:
        return PeerKey(self.collector, self.peer_address, self.peer_asn)


_ROW_COLUMNS = [
    "timestamp",
    "peer_address",
    "peer_asn",
    "type",
    "prefix",
    "as_path",
    "origin_asn",
    "new_state",
]


def rows_from_batch(batch: pa.RecordBatch, mask: pa.Array | None, collector: str) -> list[Row]:
    """Selected rows of an element batch as :class:`Row` tuples (file order kept)."""
    if mask is not None:
        batch = batch.filter(mask)
    n = batch.num_rows
    if not n:
        return []
    cols = {c: batch.column(c) for c in _ROW_COLUMNS}
    ts = cols["timestamp"].view(pa.int64()).to_pylist()
    lists = [cols[c].to_pylist() for c in _ROW_COLUMNS[1:]]
    out = []
    for i in range(n):
        addr, asn, typ, prefix, path, origin, state = (col[i] for col in lists)
        out.append(Row(ts[i] / 1e6, collector, addr or "", asn, typ, prefix, path, origin, state))
    return out


class Route(NamedTuple):
    path: tuple[int, ...]  # as received (prepending kept)
    upstream: int | None
    origin: int | None


@dataclass(frozen=True, slots=True)
class RouteChange:
    """One peer's route to one prefix changed. ``old``/``new`` None mean no route.

    ``target`` is False for prefixes that are only watched (inside the target's delegated space but
    never originated by it): anomaly detectors see them, route shares do not count them.
    """

    time: float
    peer: PeerKey
    prefix: str
    old: Route | None
    new: Route | None
    cause: str  # rib, announce, withdraw, session_down, promoted
    target: bool = True


ESTABLISHED = 6


class RouteState:
    """Current routes of full-feed peers to target prefixes.

    A peer session leaving Established (a BGP4MP state change) withdraws every route the peer had:
    collectors do not record withdrawals for a session that went down.
    """

    def __init__(self, targets: TargetSet, full_feed: Iterable[PeerKey]) -> None:
        self.targets = targets
        self.full_feed = set(full_feed)
        self.routes: dict[PeerKey, dict[str, Route]] = defaultdict(dict)
        self._asns = targets.target.asns

    def route_of(self, peer: PeerKey, prefix: str) -> Route | None:
        return self.routes.get(peer, {}).get(prefix)

    def make_route(self, path_text: str | None, origin: int | None) -> Route:
        path = parse_path(path_text or "")
        # prefix-only targets have no AS list: the route's own origin is the target AS
        targets = self._asns if self._asns else ({origin} if origin is not None else set())
        return Route(path, upstream_of(collapse(path), targets), origin)

    def apply(self, row: Row) -> list[RouteChange]:
        peer = row.peer
        if peer not in self.full_feed:
            return []
        if row.type == "S":
            if row.new_state is None or row.new_state == ESTABLISHED:
                return []
            held = self.routes.pop(peer, {})
            return [
                RouteChange(row.time, peer, p, r, None, "session_down", p in self.targets.prefixes)
                for p, r in sorted(held.items())
            ]
        prefix = row.prefix
        if prefix is None:
            return []
        targets = self.targets
        table = self.routes[peer]
        old = table.get(prefix)
        changes: list[RouteChange] = []
        is_target = prefix in targets.prefixes
        if not is_target and row.type != "W":
            if targets.is_target_origin(row.origin_asn) or targets.within_explicit(prefix):
                targets.add(prefix, row.time)
                is_target = True
                changes = self._promote(row.time, prefix)
            elif old is None and not targets.within_watch(prefix):
                return []
        if row.type == "W":
            if old is None:
                return []
            del table[prefix]
            return [RouteChange(row.time, peer, prefix, old, None, "withdraw", is_target)]
        new = self.make_route(row.as_path, row.origin_asn)
        if old is not None and old.path == new.path:
            return changes  # an announcement repeating the current path changes nothing
        table[prefix] = new
        cause = "rib" if row.type == "R" else "announce"
        changes.append(RouteChange(row.time, peer, prefix, old, new, cause, is_target))
        return changes

    def _promote(self, t: float, prefix: str) -> list[RouteChange]:
        """A watched prefix became a target prefix: its existing routes now count (as if announced)."""
        return [
            RouteChange(t, peer, prefix, None, table[prefix], "promoted", True)
            for peer, table in sorted(self.routes.items())
            if prefix in table
        ]

    def iter_routes(self, targets_only: bool = True) -> Iterator[tuple[PeerKey, str, Route]]:
        """Current routes in (peer, prefix) order; by default only those to target prefixes."""
        tp = self.targets.prefixes
        for peer in sorted(self.routes):
            for prefix, route in sorted(self.routes[peer].items()):
                if not targets_only or prefix in tp:
                    yield peer, prefix, route


@dataclass
class PeerTables:
    """RIB entries per peer in a collector's first RIB dump, by address family."""

    v4: dict[PeerKey, int]
    v6: dict[PeerKey, int]

    @classmethod
    def empty(cls) -> PeerTables:
        return cls(defaultdict(int), defaultdict(int))

    def add_batch(self, batch: pa.RecordBatch, collector: str) -> None:
        # work on the dictionaries' indices: decoding a full table's strings would cost more
        types: pa.DictionaryArray = batch.column("type")
        is_rib = pc.take(pc.equal(types.dictionary, "R"), types.indices)
        if not pc.all(is_rib).as_py():
            batch = batch.filter(is_rib)
        if not batch.num_rows:
            return
        prefix: pa.DictionaryArray = batch.column("prefix")
        peer: pa.DictionaryArray = batch.column("peer_address")
        v6_by_value = pc.fill_null(pc.match_substring(prefix.dictionary, ":"), False)
        table = pa.table(
            {
                "peer": peer.indices,
                "asn": batch.column("peer_asn"),
                "v6": pc.take(v6_by_value, prefix.indices),
            }
        )
        addresses = peer.dictionary.to_pylist()
        for rec in table.group_by(["peer", "asn", "v6"]).aggregate([([], "count_all")]).to_pylist():
            address = addresses[rec["peer"]] if rec["peer"] is not None else None
            key = PeerKey(collector, address or "", rec["asn"])
            (self.v6 if rec["v6"] else self.v4)[key] += rec["count_all"]

    def peers(self) -> set[PeerKey]:
        return set(self.v4) | set(self.v6)

    def merge(self, other: PeerTables) -> None:
        for k, n in other.v4.items():
            self.v4[k] += n
        for k, n in other.v6.items():
            self.v6[k] += n


@dataclass(frozen=True)
class FullFeedRule:
    """Which peers are full-feed.

    By default (the project's definition) a peer whose first-RIB table holds at least ``ratio``
    (0.5) times as many entries as the largest table at its collector. With ``min_v4`` or
    ``min_v6`` set, an absolute rule as IODA uses instead: at least that many IPv4 or IPv6 entries.
    """

    ratio: float = 0.5
    min_v4: int | None = None
    min_v6: int | None = None

    def select(self, tables: PeerTables) -> set[PeerKey]:
        peers = tables.peers()
        if self.min_v4 is not None or self.min_v6 is not None:
            return {
                p
                for p in peers
                if (self.min_v4 is not None and tables.v4.get(p, 0) >= self.min_v4)
                or (self.min_v6 is not None and tables.v6.get(p, 0) >= self.min_v6)
            }
        largest: dict[str, int] = defaultdict(int)
        size = {p: tables.v4.get(p, 0) + tables.v6.get(p, 0) for p in peers}
        for p, n in size.items():
            largest[p.collector] = max(largest[p.collector], n)
        return {p for p, n in size.items() if n > 0 and n >= self.ratio * largest[p.collector]}

    def describe(self) -> str:
        if self.min_v4 is not None or self.min_v6 is not None:
            parts = []
            if self.min_v4 is not None:
                parts.append(f">= {self.min_v4} IPv4 entries")
            if self.min_v6 is not None:
                parts.append(f">= {self.min_v6} IPv6 entries")
            return " or ".join(parts) + " in the first RIB dump"
        return f"a first-RIB table of at least {self.ratio:g} x the largest table at the collector"
