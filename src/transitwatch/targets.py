"""What to watch: a country, AS numbers, prefixes, or a file of them.

A target spec is a comma or whitespace separated list of tokens; ``@FILE`` reads more tokens from
a file (one or more per line, ``#`` comments):

- ``KP``: a country code (ISO 3166 alpha-2): every AS number delegated to it (RIR files);
- ``AS131279`` or ``131279``: an AS number;
- ``175.45.176.0/22``: a prefix; routes for it and its more-specifics are tracked.

The target's prefixes are the explicit ones (with their more-specifics) and every prefix that a
target AS originates in the data, discovered as the data is read (see :class:`TargetSet`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from transitwatch.prefixes import network_key

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_ASN_RE = re.compile(r"^(?:AS)?(\d{1,10})$", re.IGNORECASE)
_CC_RE = re.compile(r"^[A-Za-z]{2}$")


class CountryRegistry(Protocol):
    def country_asns(self, cc: str) -> set[int]: ...


@dataclass(frozen=True)
class TargetSpec:
    """A parsed target spec, before the registry is consulted."""

    spec: str
    countries: tuple[str, ...] = ()
    asns: tuple[int, ...] = ()
    prefixes: tuple[Network, ...] = ()


def parse_target_spec(spec: str) -> TargetSpec:
    """Parse ``KP``, ``AS131279,AS4837``, ``175.45.176.0/22``, ``@targets.txt`` or a mix."""
    countries: list[str] = []
    asns: list[int] = []
    prefixes: list[Network] = []
    for token in _tokens(spec):
        if "/" in token:
            try:
                prefixes.append(ipaddress.ip_network(token, strict=True))
            except ValueError as exc:
                raise ValueError(f"bad prefix {token!r} in target: {exc}") from exc
        elif m := _ASN_RE.match(token):
            asn = int(m.group(1))
            if asn > 0xFFFFFFFF:
                raise ValueError(f"AS number out of range in target: {token!r}")
            asns.append(asn)
        elif _CC_RE.match(token):
            countries.append(token.upper())
        else:
            raise ValueError(
                f"cannot read target token {token!r}: expected a country code (KP), an AS number "
                "(AS131279) or a prefix (175.45.176.0/22)"
            )
    if not (countries or asns or prefixes):
        raise ValueError("empty target")
    return TargetSpec(
        spec, tuple(dict.fromkeys(countries)), tuple(dict.fromkeys(asns)), tuple(dict.fromkeys(prefixes))
    )


def _tokens(spec: str) -> Iterable[str]:
    for raw in re.split(r"[,\s]+", spec.strip()):
        if not raw:
            continue
        if raw.startswith("@"):
            with open(raw[1:], encoding="utf-8") as fh:
                for line in fh:
                    yield from _tokens(line.split("#", 1)[0])
        else:
            yield raw


@dataclass
class Target:
    """A resolved target: AS numbers, explicit prefixes, and the address space delegated to it.

    Discovered prefixes live in :class:`TargetSet`. ``delegated`` comes from the registry (empty
    without one): the country's blocks, or the blocks registered to the same holder as the AS
    numbers (same RIR opaque id).
    """

    spec: str
    countries: tuple[str, ...]
    asns: frozenset[int]
    explicit_prefixes: tuple[Network, ...]
    delegated: tuple[Network, ...] = ()
    has_registry: bool = False

    @property
    def country(self) -> str | None:
        return self.countries[0] if len(self.countries) == 1 else None

    @classmethod
    def resolve(cls, spec: TargetSpec | str, registry: CountryRegistry | None) -> Target:
        if isinstance(spec, str):
            spec = parse_target_spec(spec)
        asns = set(spec.asns)
        for cc in spec.countries:
            if registry is None:
                raise ValueError(f"target {cc} is a country: a registry is needed (--registry DIR)")
            found = registry.country_asns(cc)
            if not found:
                raise ValueError(f"the registry lists no AS numbers delegated to {cc}")
            asns |= found
        delegated = tuple(delegated_space(registry, spec.countries, asns)) if registry is not None else ()
        return cls(spec.spec, spec.countries, frozenset(asns), spec.prefixes, delegated, registry is not None)


def delegated_space(registry: Any, countries: Iterable[str], asns: Iterable[int]) -> list[Network]:
    """Address blocks delegated to the countries, or to the holders of the AS numbers."""
    nets: set[Network] = set()
    for cc in countries:
        nets.update(registry.country_prefixes(cc))
    holders = set()
    for asn in asns:
        d = registry.asn_delegation(asn)
        if d is not None and d.opaque_id:
            holders.add((d.registry, d.opaque_id))
    if holders:
        for d in registry.delegations:
            if d.type != "asn" and d.is_delegated and (d.registry, d.opaque_id) in holders:
                nets.update(d.networks())
    return sorted(nets, key=network_key)


class TargetSet:
    """The target's prefixes as they are discovered in the data, the watched space, and the batch filter.

    A prefix becomes a *target prefix* when a full-feed peer's route for it is originated by a target
    AS, or when it lies within an explicit target prefix. Once in, every route for it counts,
    whatever its origin (a hijacked route to a target prefix is still a route to a target prefix).

    The *watched space* adds the target's delegated address space (from the registry) and every
    target prefix: routes for any prefix inside it are followed too, so that anomaly detectors see
    more-specifics and foreign origins, but they do not count in route shares.
    """

    def __init__(self, target: Target) -> None:
        import radix

        self.target = target
        self.prefixes: dict[str, float] = {}  # target prefix -> time first seen
        self.watch_networks = sorted(set(target.delegated) | set(target.explicit_prefixes), key=network_key)
        self._watch = radix.Radix()
        self._explicit = radix.Radix()
        for net in self.watch_networks:
            self._watch.add(str(net))
        for net in target.explicit_prefixes:
            self._explicit.add(str(net))
        self._asn_array = pa.array(sorted(target.asns), pa.uint32())
        self._known: pa.Array | None = None

    #: bumped whenever any TargetSet gains a prefix: caches of "which targets hold this prefix" check it
    generation = 0

    def add(self, prefix: str, when: float) -> bool:
        if prefix in self.prefixes:
            return False
        TargetSet.generation += 1
        self.prefixes[prefix] = when
        self._known = None
        with contextlib.suppress(ValueError):  # not a prefix radix can hold: never in the watched space
            self._watch.add(prefix)
        return True

    @staticmethod
    def _covered(tree: object, prefix: str) -> bool:
        try:
            return tree.search_best(prefix) is not None  # type: ignore[attr-defined]
        except ValueError:
            return False

    def within_explicit(self, prefix: str) -> bool:
        """Inside an explicit target prefix (which makes it a target prefix)."""
        return bool(self.target.explicit_prefixes) and self._covered(self._explicit, prefix)

    def within_watch(self, prefix: str) -> bool:
        """Inside the watched space (target prefixes, explicit prefixes, delegated space)."""
        return self._covered(self._watch, prefix)

    def watched_prefixes(self) -> list[str]:
        """Every prefix of the watched space (explicit, delegated and discovered target prefixes)."""
        return list(self._watch.prefixes())

    def is_target_origin(self, origin: int | None) -> bool:
        return origin is not None and origin in self.target.asns

    def candidate_mask(self, batch: pa.RecordBatch) -> pa.Array:
        """Rows that may concern the target: its prefixes (known, newly originated) or watched space."""
        prefix_col: pa.DictionaryArray = batch.column("prefix")
        values = prefix_col.dictionary
        keep = pc.is_in(values, value_set=self._known_array())
        if len(self._asn_array):
            originated = pc.fill_null(pc.is_in(batch.column("origin_asn"), value_set=self._asn_array), False)
            if pc.any(originated).as_py():
                new = pc.unique(pc.filter(prefix_col, originated).dictionary_decode())
                keep = pc.or_(keep, pc.is_in(values, value_set=new))
        if self.watch_networks:
            inside = [self._covered(self._watch, v) for v in values.to_pylist()]
            keep = pc.or_(keep, pa.array(inside, pa.bool_()))
        return pc.fill_null(pc.take(keep, prefix_col.indices), False)

    def _known_array(self) -> pa.Array:
        if self._known is None:
            self._known = pa.array(sorted(self.prefixes), pa.string())
        return self._known
