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

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

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
    return TargetSpec(spec, tuple(dict.fromkeys(countries)), tuple(dict.fromkeys(asns)), tuple(dict.fromkeys(prefixes)))


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
    """A resolved target: AS numbers and explicit prefixes (discovered prefixes live in TargetSet)."""

    spec: str
    countries: tuple[str, ...]
    asns: frozenset[int]
    explicit_prefixes: tuple[Network, ...]

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
        return cls(spec.spec, spec.countries, frozenset(asns), spec.prefixes)


@dataclass
class TargetSet:
    """The target's prefixes as they are discovered in the data, and the batch filter for them.

    A prefix joins when a route for it is originated by a target AS, or when it lies within an
    explicit target prefix. Once in, every route for it counts, whatever its origin (a hijacked
    route to a target prefix is still a route to a target prefix).
    """

    target: Target
    prefixes: dict[str, float] = field(default_factory=dict)  # prefix -> time first seen
    _asn_array: pa.Array = field(init=False)
    _known: pa.Array | None = field(init=False, default=None)
    _explicit_cache: dict[str, bool] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._asn_array = pa.array(sorted(self.target.asns), pa.uint32())
        # coarse string prefixes that any more-specific of an explicit prefix starts with
        self._explicit_starts = sorted({_text_start(n) for n in self.target.explicit_prefixes})

    def add(self, prefix: str, when: float) -> bool:
        if prefix in self.prefixes:
            return False
        self.prefixes[prefix] = when
        self._known = None
        return True

    def within_explicit(self, prefix: str) -> bool:
        hit = self._explicit_cache.get(prefix)
        if hit is None:
            try:
                net = ipaddress.ip_network(prefix, strict=False)
            except ValueError:
                hit = False
            else:
                hit = any(
                    net.version == e.version and net.subnet_of(e)  # type: ignore[arg-type]
                    for e in self.target.explicit_prefixes
                )
            self._explicit_cache[prefix] = hit
        return hit

    def is_target_origin(self, origin: int | None) -> bool:
        return origin is not None and origin in self.target.asns

    def candidate_mask(self, batch: pa.RecordBatch) -> pa.Array:
        """Rows that may concern the target: its prefixes (known, newly originated, or explicit)."""
        prefix_col: pa.DictionaryArray = batch.column("prefix")
        values = prefix_col.dictionary
        keep = pc.is_in(values, value_set=self._known_array())
        if len(self._asn_array):
            originated = pc.fill_null(pc.is_in(batch.column("origin_asn"), value_set=self._asn_array), False)
            if pc.any(originated).as_py():
                new = pc.unique(pc.filter(prefix_col, originated).dictionary_decode())
                keep = pc.or_(keep, pc.is_in(values, value_set=new))
        if self._explicit_starts:
            coarse = pc.starts_with(values, self._explicit_starts[0])
            for s in self._explicit_starts[1:]:
                coarse = pc.or_(coarse, pc.starts_with(values, s))
            if pc.any(coarse).as_py():
                exact = [
                    bool(c) and self.within_explicit(v)
                    for c, v in zip(coarse.to_pylist(), values.to_pylist(), strict=True)
                ]
                keep = pc.or_(keep, pa.array(exact, pa.bool_()))
        return pc.fill_null(pc.take(keep, prefix_col.indices), False)

    def _known_array(self) -> pa.Array:
        if self._known is None:
            self._known = pa.array(sorted(self.prefixes), pa.string())
        return self._known


def _text_start(net: Network) -> str:
    """A string every more-specific of ``net`` starts with, in the decoder's notation."""
    if net.version == 4:
        octets = str(net.network_address).split(".")
        return ".".join(octets[: net.prefixlen // 8]) + ("." if net.prefixlen >= 8 else "")
    head: list[str] = []
    for group in net.network_address.exploded.split(":")[: net.prefixlen // 16]:
        if int(group, 16) == 0:  # zero groups may be compressed to "::": stop before them
            break
        head.append(group.lstrip("0"))
    return ":".join(head) + ":" if head else ""
