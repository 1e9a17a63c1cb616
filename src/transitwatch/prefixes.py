"""Prefix arithmetic shared by the analyses: ordering and address space in /24 or /48 units."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: address space is counted in /24s for IPv4 and /48s for IPv6 (the most specific routable units)
UNIT = {4: 24, 6: 48}


def network(prefix: str) -> Network:
    return ipaddress.ip_network(prefix, strict=False)


def network_key(net: Network) -> tuple[int, int, int]:
    """Networks in order: IPv4 first, then by address, shorter prefixes first."""
    return (net.version, int(net.network_address), net.prefixlen)


def sort_key(prefix: str) -> tuple[int, int, int]:
    return network_key(network(prefix))


def sort_prefixes(prefixes: Iterable[str]) -> list[str]:
    return sorted(prefixes, key=sort_key)


def weight(prefix: str) -> float:
    """Address space of one prefix in /24 (IPv4) or /48 (IPv6) units."""
    n = network(prefix)
    return 2.0 ** (UNIT[n.version] - n.prefixlen)


def address_units(prefixes: Iterable[str], version: int) -> float:
    """Address space covered by the prefixes of one family, overlaps counted once."""
    nets = [network(p) for p in prefixes if (":" in p) == (version == 6)]  # parse one family only
    merged: Iterable[Network]
    if version == 4:
        merged = ipaddress.collapse_addresses([n for n in nets if isinstance(n, ipaddress.IPv4Network)])
    else:
        merged = ipaddress.collapse_addresses([n for n in nets if isinstance(n, ipaddress.IPv6Network)])
    return sum(2.0 ** (UNIT[version] - n.prefixlen) for n in merged)
