"""Who holds an address block or an AS number, in which country, under what name.

:class:`Registry` joins the five RIRs' delegated-extended files (see :mod:`.delegations`) with RIPE's
AS-name list (see :mod:`.names`)::

    reg = Registry.load("/work/shared/registry")        # or Registry.load_default(None): the cache
    reg.country_asns("KP")                              # {131279}
    reg.country_prefixes("KP")                          # [IPv4Network('175.45.176.0/22')]
    reg.as_name(4837), reg.as_country(4837)             # ('CHINA169-BACKBONE', 'CN')
    reg.prefix_delegation("175.45.177.0/24").status     # 'assigned'

The files are downloaded by :func:`transitwatch.registry.download.update_registry` (``transitwatch
registry update``) into :func:`default_registry_dir`.
"""

from __future__ import annotations

import bisect
import ipaddress
import os
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import radix

from transitwatch.model import SourceIssue
from transitwatch.prefixes import network_key
from transitwatch.registry.delegations import (
    Delegation,
    IPNetwork,
    load_delegations,
    select_delegated_files,
)
from transitwatch.registry.names import ASN_NAMES_FILE, AsName, parse_as_names_file

__all__ = [
    "AsName",
    "Delegation",
    "Registry",
    "RegistryNotFoundError",
    "default_cache_dir",
    "default_registry_dir",
]

_UNKNOWN_COUNTRIES = frozenset({"", "ZZ"})


def default_cache_dir() -> Path:
    """``$TRANSITWATCH_CACHE``, else ``$XDG_CACHE_HOME/transitwatch``, else ``~/.cache/transitwatch``."""
    if explicit := os.environ.get("TRANSITWATCH_CACHE"):
        return Path(explicit).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "transitwatch"
    return Path.home() / ".cache" / "transitwatch"


def default_registry_dir(cache_dir: str | Path | None = None) -> Path:
    """Where registry files live inside a cache directory (default: :func:`default_cache_dir`)."""
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "registry"


class RegistryNotFoundError(FileNotFoundError):
    """No delegated files nor asn.txt where the registry was looked for; the message says what to do."""


def _to_network(prefix: str | IPNetwork | ipaddress.IPv4Address | ipaddress.IPv6Address) -> IPNetwork:
    if isinstance(prefix, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return prefix
    return ipaddress.ip_network(prefix, strict=False)


class Registry:
    """Delegations and AS names, indexed for lookups.

    Every answer comes from the files loaded and nothing else: an AS or prefix not in them is unknown
    (None / empty), not an error. Lists are returned in a fixed order (IPv4 before IPv6, then by address
    and prefix length; AS numbers ascending). Indexes are built on first use, so a lookup of one kind
    does not pay for the others.
    """

    def __init__(
        self,
        delegations: Iterable[Delegation],
        names: Mapping[int, AsName] | None = None,
        *,
        sources: Iterable[Path] = (),
        issues: Iterable[SourceIssue] = (),
    ) -> None:
        # Only allocated/assigned records are delegations; available/reserved space belongs to no one.
        self.delegations: tuple[Delegation, ...] = tuple(d for d in delegations if d.is_delegated)
        self.names: Mapping[int, AsName] = dict(names or {})
        self.sources: tuple[Path, ...] = tuple(sources)
        self.issues: tuple[SourceIssue, ...] = tuple(issues)
        # Filled country by country: network objects for every country at once would cost seconds.
        self._prefixes_by_country: dict[str, list[tuple[IPNetwork, Delegation]]] = {}

    @classmethod
    def load(cls, directory: str | Path) -> Registry:
        """Load the delegated files (chosen as :func:`~.delegations.select_delegated_files` documents) and
        ``asn.txt`` of ``directory``. Raises :class:`RegistryNotFoundError` when it holds neither."""
        directory = Path(directory)
        chosen = select_delegated_files(directory)
        names_path = directory / ASN_NAMES_FILE
        if not chosen.per_rir and chosen.combined is None and not names_path.is_file():
            raise RegistryNotFoundError(
                f"no registry files (delegated-<rir>-extended-*, delegated-extended, asn.txt) in {directory}"
            )
        loaded = load_delegations(directory, chosen)
        names: dict[int, AsName] = {}
        sources = list(loaded.files)
        issues = list(loaded.issues)
        if names_path.is_file():
            parsed_names = parse_as_names_file(names_path)
            names = parsed_names.by_asn
            sources.append(names_path)
            issues.extend(parsed_names.issues)
        return cls(loaded.delegations, names, sources=sources, issues=issues)

    @classmethod
    def load_default(cls, registry_dir: str | Path | None = None) -> Registry:
        """Load ``registry_dir`` if given, else the cache's registry (:func:`default_registry_dir`).

        Raises :class:`RegistryNotFoundError` telling the user to run ``transitwatch registry update`` or
        pass ``--registry DIR`` when there is nothing to load.
        """
        directory = Path(registry_dir) if registry_dir is not None else default_registry_dir()
        try:
            return cls.load(directory)
        except RegistryNotFoundError as exc:
            raise RegistryNotFoundError(
                f"no registry data in {directory}: run `transitwatch registry update` to download the RIR "
                "delegation files and AS names, or pass --registry DIR pointing at a directory that has them"
            ) from exc

    # --- AS numbers -------------------------------------------------------------------------------

    @cached_property
    def _asn_ranges(self) -> tuple[list[int], list[int], list[Delegation]]:
        """AS delegations sorted by first AS, with the running maximum of last ASes for overlap scans."""
        ranges = sorted(
            (d for d in self.delegations if d.type == "asn"), key=lambda d: (int(d.start), -d.value)
        )
        starts = [int(d.start) for d in ranges]
        running_last: list[int] = []
        top = -1
        for d in ranges:
            top = max(top, int(d.start) + d.value - 1)
            running_last.append(top)
        return starts, running_last, ranges

    def asn_delegation(self, asn: int) -> Delegation | None:
        """The ``asn`` record whose range holds ``asn``; if ranges overlap, the one starting closest below."""
        starts, running_last, ranges = self._asn_ranges
        i = bisect.bisect_right(starts, asn) - 1
        while i >= 0 and running_last[i] >= asn:
            d = ranges[i]
            if int(d.start) + d.value - 1 >= asn:
                return d
            i -= 1
        return None

    def as_name(self, asn: int) -> str | None:
        """The AS's handle from asn.txt (``STAR-KP`` for 131279), or None if unnamed."""
        entry = self.names.get(asn)
        return entry.name if entry else None

    def as_description(self, asn: int) -> str | None:
        """asn.txt's whole text before the country (``STAR-KP Ryugyong-dong``), or None if unnamed."""
        entry = self.names.get(asn)
        return entry.description if entry else None

    def as_country(self, asn: int) -> str | None:
        """The AS holder's country: asn.txt's code when it gives a real one (not ``ZZ``), else the country of
        the AS's delegation record, else None. asn.txt comes first because it covers all RIRs even when
        only some delegated files are loaded."""
        entry = self.names.get(asn)
        if entry is not None and entry.country and entry.country not in _UNKNOWN_COUNTRIES:
            return entry.country
        d = self.asn_delegation(asn)
        if d is not None and d.cc not in _UNKNOWN_COUNTRIES:
            return d.cc
        return None

    @cached_property
    def _asns_by_country(self) -> dict[str, set[int]]:
        country_of: dict[int, str] = {}
        # Walk ranges in reverse start order so the record asn_delegation() would pick wins on overlap.
        for d in reversed(self._asn_ranges[2]):
            if d.cc in _UNKNOWN_COUNTRIES:
                continue
            for asn in d.asns():
                country_of.setdefault(asn, d.cc)
        for asn, entry in self.names.items():
            if entry.country and entry.country not in _UNKNOWN_COUNTRIES:
                country_of[asn] = entry.country
        by_country: dict[str, set[int]] = {}
        for asn, cc in country_of.items():
            by_country.setdefault(cc, set()).add(asn)
        return by_country

    def country_asns(self, cc: str) -> set[int]:
        """The AS numbers whose :meth:`as_country` is ``cc``: delegated to a holder in ``cc``, or named in
        asn.txt with country ``cc`` (asn.txt winning where the two disagree). A fresh set each call."""
        return set(self._asns_by_country.get(cc.upper(), ()))

    # --- prefixes ---------------------------------------------------------------------------------

    @cached_property
    def _prefix_tree(self) -> Any:
        tree = radix.Radix()
        for d in self.delegations:
            if d.type == "asn":
                continue
            for cidr in d.cidrs():
                node = tree.add(cidr)
                # Same block twice (e.g. a stale transfer in two RIRs' files): the first file read wins.
                node.data.setdefault("delegation", d)
        return tree

    def prefix_delegation(
        self, prefix: str | IPNetwork | ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> Delegation | None:
        """The delegation record of the most specific delegated block that covers ``prefix`` (an address
        or a network; host bits are ignored), or None if no delegated block covers it."""
        node = self._prefix_tree.search_best(str(_to_network(prefix)))
        return None if node is None else node.data.get("delegation")

    @cached_property
    def _address_delegations_by_country(self) -> dict[str, list[Delegation]]:
        by_country: dict[str, list[Delegation]] = {}
        for d in self.delegations:
            if d.type != "asn":
                by_country.setdefault(d.cc, []).append(d)
        return by_country

    def country_prefix_delegations(self, cc: str) -> list[tuple[IPNetwork, Delegation]]:
        """:meth:`country_prefixes`, each with the delegation record it comes from, in the same order."""
        cc = cc.upper()
        pairs = self._prefixes_by_country.get(cc)
        if pairs is None:
            pairs = [(n, d) for d in self._address_delegations_by_country.get(cc, ()) for n in d.networks()]
            pairs.sort(key=lambda pair: network_key(pair[0]))
            self._prefixes_by_country[cc] = pairs
        return list(pairs)

    def country_prefixes(self, cc: str) -> list[IPNetwork]:
        """The CIDR blocks (IPv4 then IPv6, ascending) delegated to holders in ``cc``; an IPv4 record whose
        host count is not one CIDR block contributes each of its exact blocks."""
        return [net for net, _ in self.country_prefix_delegations(cc)]

    def countries(self) -> list[str]:
        """Every country code with a delegation or a named AS, sorted."""
        codes = {d.cc for d in self.delegations} | {e.country for e in self.names.values() if e.country}
        return sorted(codes - _UNKNOWN_COUNTRIES)
