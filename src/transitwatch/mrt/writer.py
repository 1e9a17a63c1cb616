"""MRT (RFC 6396) writer: test fixtures, fuzz seeds and the demo replay archive.

    from transitwatch.mrt.writer import Attributes, Peer, RibEntry, Session, open_for_write

    rrc = Peer("192.0.2.1", 64500, bgp_id="192.0.2.1")
    with open_for_write("rib.20240101.0000.gz") as w:         # plain, .gz or .bz2 by suffix
        w.peer_index_table(1704067200, [rrc], collector_id="198.51.100.1")
        attrs = Attributes("64500 3356 {64512,64513}", next_hop="192.0.2.1", med=10)
        w.rib(1704067200, "203.0.113.0/24", [RibEntry(rrc, attrs, originated=1704060000)])
        w.update(1704067260, Session("192.0.2.1", 64500), announce=["198.51.100.0/24"],
                 attributes=Attributes([64500, 4200000000], next_hop="192.0.2.1", communities=["64500:1"]))
        w.state_change(1704067300, Session("192.0.2.1", 64500), "Established", "Idle", et_usec=250000)

Everything is encoded exactly as asked and nothing is guessed: an attribute left at ``None`` is not
written. AS paths are lists of AS numbers or bgpdump's notation (``"3356 {64512,64513}"``,
``"(65001 65002) 3356"``, ``"[65001,65002]"``); prefixes and addresses are strings. Sessions with
2-byte AS numbers get RFC 6793's AS_TRANS, AS4_PATH and AS4_AGGREGATOR. Odd and broken inputs for
parser tests are written with :meth:`MrtWriter.raw`, :meth:`MrtWriter.write_bytes`,
:class:`RawAttribute` and :meth:`MrtWriter.bgp_message`.
"""

from __future__ import annotations

import bz2
import gzip
import ipaddress
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Protocol, Self

from transitwatch.model import BGP_STATES

# MRT types and subtypes (RFC 6396, RFC 8050)
TABLE_DUMP, TABLE_DUMP_V2, BGP4MP, BGP4MP_ET = 12, 13, 16, 17
PEER_INDEX_TABLE = 1
RIB_IPV4_UNICAST, RIB_IPV4_MULTICAST, RIB_IPV6_UNICAST, RIB_IPV6_MULTICAST = 2, 3, 4, 5
ADDPATH_RIB_OFFSET = 6  # RIB_IPV4_UNICAST_ADDPATH (8) = RIB_IPV4_UNICAST (2) + 6, and so on
BGP4MP_STATE_CHANGE, BGP4MP_STATE_CHANGE_AS4 = 0, 5
# BGP4MP message subtypes by (4-byte ASNs, sent by the local side, ADD-PATH)
BGP4MP_MESSAGE_SUBTYPES = {
    (False, False, False): 1,  # MESSAGE
    (True, False, False): 4,  # MESSAGE_AS4
    (False, True, False): 6,  # MESSAGE_LOCAL
    (True, True, False): 7,  # MESSAGE_AS4_LOCAL
    (False, False, True): 8,  # MESSAGE_ADDPATH
    (True, False, True): 9,  # MESSAGE_AS4_ADDPATH
    (False, True, True): 10,  # MESSAGE_LOCAL_ADDPATH
    (True, True, True): 11,  # MESSAGE_AS4_LOCAL_ADDPATH
}

# BGP message types (RFC 4271)
OPEN, UPDATE, NOTIFICATION, KEEPALIVE = 1, 2, 3, 4
BGP_MARKER = b"\xff" * 16
MAX_BGP_MESSAGE = 65535  # RFC 8654 extended messages; RFC 4271's limit is 4096

# AS path segment types (RFC 4271, RFC 5065)
AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET = 1, 2, 3, 4
AS_TRANS = 23456
MAX_SEGMENT_ASNS = 255

# path attribute type codes and flags
ORIGIN_ATTR, AS_PATH_ATTR, NEXT_HOP_ATTR, MED_ATTR, LOCAL_PREF_ATTR = 1, 2, 3, 4, 5
ATOMIC_AGGREGATE_ATTR, AGGREGATOR_ATTR, COMMUNITIES_ATTR = 6, 7, 8
MP_REACH_ATTR, MP_UNREACH_ATTR, EXT_COMMUNITIES_ATTR = 14, 15, 16
AS4_PATH_ATTR, AS4_AGGREGATOR_ATTR, LARGE_COMMUNITIES_ATTR = 17, 18, 32
OPTIONAL, TRANSITIVE, EXTENDED_LENGTH = 0x80, 0x40, 0x10

ORIGINS = {"IGP": 0, "EGP": 1, "INCOMPLETE": 2}
WELL_KNOWN_COMMUNITIES = {"no-export": 0xFFFFFF01, "no-advertise": 0xFFFFFF02, "local-AS": 0xFFFFFF03}
_STATE_NUMBERS = {name.lower(): number for number, name in BGP_STATES.items()}

# ---------------------------------------------------------------------------------------------
# what is written


@dataclass(frozen=True, slots=True)
class Peer:
    """A collector peer as a TABLE_DUMP_V2 PEER_INDEX_TABLE lists it."""

    ip: str
    asn: int
    bgp_id: str = "0.0.0.0"


@dataclass(frozen=True, slots=True)
class Session:
    """Both ends of a BGP session as BGP4MP records name them. ``local_ip`` ``None`` is the
    unspecified address of the peer's family."""

    peer_ip: str
    peer_asn: int
    local_ip: str | None = None
    local_asn: int = 0
    ifindex: int = 0


@dataclass(frozen=True, slots=True)
class AsPathSegment:
    """One AS path segment; ``type`` is :data:`AS_SET`, :data:`AS_SEQUENCE`, ... (RFC 5065 codes)."""

    type: int
    asns: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RawAttribute:
    """A path attribute written as given, after the known ones (``flags`` gets the extended-length
    bit when the value needs it; set it yourself to force it)."""

    type_code: int
    value: bytes
    flags: int = OPTIONAL | TRANSITIVE


AsPathInput = str | Sequence[int | AsPathSegment]
CommunityInput = str | tuple[int, int]
LargeCommunityInput = str | tuple[int, int, int]
ExtCommunityInput = str | bytes | int
PrefixInput = str | tuple[str, int]  # a prefix, or a prefix and its ADD-PATH path id


@dataclass(frozen=True, slots=True)
class Attributes:
    """BGP path attributes. ``None`` (or empty) means the attribute is not written; ``origin``
    is IGP unless given (``None`` leaves it out).

    ``next_hop``: an IPv4 next hop becomes the NEXT_HOP attribute, an IPv6 one (with
    ``link_local``, 32 bytes) goes into MP_REACH_NLRI (in RIB entries, the abbreviated form of
    RFC 6396 4.3.4). ``mp_next_hop`` is MP_REACH_NLRI's next hop when a message also carries an
    IPv4 NEXT_HOP (IPv4 and IPv6 prefixes in one UPDATE).
    Communities: ``(65000, 1)`` or ``"65000:1"`` / ``"no-export"``; large ones ``(a, b, c)`` or
    ``"a:b:c"``; extended ones as 8 bytes, a 64-bit int, ``"0x0002..."``, ``"rt:65000:1"``,
    ``"rt:192.0.2.1:1"`` or ``"soo:..."``. ``aggregator`` is ``(asn, "192.0.2.1")``.
    """

    as_path: AsPathInput | None = None
    next_hop: str | None = None
    origin: int | str | None = "IGP"
    med: int | None = None
    local_pref: int | None = None
    atomic_aggregate: bool = False
    aggregator: tuple[int, str] | None = None
    communities: Sequence[CommunityInput] = ()
    large_communities: Sequence[LargeCommunityInput] = ()
    ext_communities: Sequence[ExtCommunityInput] = ()
    link_local: str | None = None
    mp_next_hop: str | None = None
    other: Sequence[RawAttribute] = ()

    def __post_init__(self) -> None:
        # fail where the mistake is made, not when the record is written
        if self.as_path is not None:
            as_path_segments(self.as_path)
        _origin_code(self.origin)
        for c in self.communities:
            _community_value(c)
        for lc in self.large_communities:
            _large_community_value(lc)
        for ec in self.ext_communities:
            _ext_community_value(ec)


@dataclass(frozen=True, slots=True)
class RibEntry:
    """One TABLE_DUMP_V2 RIB entry. ``peer`` is a :class:`Peer` of the last peer index table or a
    raw index; ``originated`` ``None`` is the dump's own time."""

    peer: Peer | int
    attributes: Attributes
    originated: int | None = None
    path_id: int | None = None


# ---------------------------------------------------------------------------------------------
# AS paths and communities as text

_PATH_TOKEN = re.compile(r"\s*(?:(\d+)|([{}()\[\],]))")
_OPENERS = {"{": ("}", AS_SET), "(": (")", AS_CONFED_SEQUENCE), "[": ("]", AS_CONFED_SET)}
_DELIMS = {AS_SET: "{}", AS_CONFED_SEQUENCE: "()", AS_CONFED_SET: "[]"}


@lru_cache(maxsize=4096)
def parse_as_path(text: str) -> tuple[AsPathSegment, ...]:
    """Segments from bgpdump's notation: ``"1 2 {3,4} (5 6) [7,8]"`` (commas or spaces inside)."""
    segments: list[AsPathSegment] = []
    run: list[int] = []
    pos, end = 0, len(text.rstrip())
    inside: tuple[str, int] | None = None
    while pos < end:
        m = _PATH_TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"AS path {text!r}: unexpected {text[pos:].strip()[:10]!r} at {pos}")
        pos = m.end()
        number, punct = m.groups()
        if number is not None:
            run.append(_u32(int(number), "AS number"))
        elif punct == ",":
            if inside is None or inside[1] == AS_CONFED_SEQUENCE:
                raise ValueError(f"AS path {text!r}: comma outside a set")
        elif punct in _OPENERS:
            if inside is not None:
                raise ValueError(f"AS path {text!r}: nested segment at {pos - 1}")
            if run:
                segments.append(AsPathSegment(AS_SEQUENCE, tuple(run)))
            run, inside = [], _OPENERS[punct]
        else:
            if inside is None or punct != inside[0]:
                raise ValueError(f"AS path {text!r}: unbalanced {punct!r} at {pos - 1}")
            segments.append(AsPathSegment(inside[1], tuple(run)))
            run, inside = [], None
    if inside is not None:
        raise ValueError(f"AS path {text!r}: {inside[0]!r} missing")
    if run:
        segments.append(AsPathSegment(AS_SEQUENCE, tuple(run)))
    return tuple(segments)


def as_path_segments(path: AsPathInput) -> tuple[AsPathSegment, ...]:
    """Segments of a path given as text, or as AS numbers (runs become AS_SEQUENCEs) and segments."""
    if isinstance(path, str):
        return parse_as_path(path)
    segments: list[AsPathSegment] = []
    run: list[int] = []
    for item in path:
        if isinstance(item, AsPathSegment):
            if run:
                segments.append(AsPathSegment(AS_SEQUENCE, tuple(run)))
                run = []
            if item.type not in (AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET):
                raise ValueError(f"unknown AS path segment type {item.type}")
            segments.append(AsPathSegment(item.type, tuple(_u32(a, "AS number") for a in item.asns)))
        else:
            run.append(_u32(item, "AS number"))
    if run:
        segments.append(AsPathSegment(AS_SEQUENCE, tuple(run)))
    return tuple(segments)


def format_as_path(path: AsPathInput) -> str:
    """A path in bgpdump's notation (the inverse of :func:`parse_as_path`)."""
    parts = []
    for seg in as_path_segments(path):
        if seg.type == AS_SEQUENCE:
            parts.append(" ".join(map(str, seg.asns)))
        else:
            sep = " " if seg.type == AS_CONFED_SEQUENCE else ","
            delims = _DELIMS[seg.type]
            parts.append(delims[0] + sep.join(map(str, seg.asns)) + delims[1])
    return " ".join(parts)


def _community_value(c: CommunityInput) -> int:
    if isinstance(c, str):
        if c in WELL_KNOWN_COMMUNITIES:
            return WELL_KNOWN_COMMUNITIES[c]
        asn, sep, value = c.partition(":")
        if not sep or not asn.isdigit() or not value.isdigit():
            raise ValueError(
                f"community {c!r}: expected 'asn:value' or one of {list(WELL_KNOWN_COMMUNITIES)}"
            )
        c = (int(asn), int(value))
    asn16, value16 = c
    return (_u16(asn16, "community AS") << 16) | _u16(value16, "community value")


def _large_community_value(c: LargeCommunityInput) -> bytes:
    parts = c.split(":") if isinstance(c, str) else list(c)
    if len(parts) != 3:
        raise ValueError(f"large community {c!r}: expected three parts a:b:c")
    return b"".join(struct.pack("!I", _u32(int(p), "large community part")) for p in parts)


def _ext_community_value(c: ExtCommunityInput) -> bytes:
    if isinstance(c, bytes):
        if len(c) != 8:
            raise ValueError(f"extended community {c!r}: 8 bytes expected")
        return c
    if isinstance(c, int):
        if not 0 <= c < 1 << 64:
            raise ValueError(f"extended community {c}: not a 64-bit value")
        return c.to_bytes(8, "big")
    if c.startswith("0x"):
        raw = bytes.fromhex(c[2:])
        if len(raw) != 8:
            raise ValueError(f"extended community {c!r}: 16 hex digits expected")
        return raw
    kind, _, rest = c.partition(":")
    admin, _, local_text = rest.rpartition(":")
    subtype = {"rt": 2, "soo": 3}.get(kind)
    if subtype is None or not admin or not local_text.isdigit():
        raise ValueError(f"extended community {c!r}: expected rt:/soo:<admin>:<value> or 0x<16 hex digits>")
    local = int(local_text)
    if "." in admin:  # IPv4-address-specific (type 0x01)
        return (
            bytes([0x01, subtype])
            + ipaddress.IPv4Address(admin).packed
            + struct.pack("!H", _u16(local, "value"))
        )
    asn = int(admin)
    if asn <= 0xFFFF:  # two-octet AS specific (type 0x00)
        return bytes([0x00, subtype]) + struct.pack("!HI", asn, _u32(local, "value"))
    return bytes([0x02, subtype]) + struct.pack("!IH", _u32(asn, "AS number"), _u16(local, "value"))


def _origin_code(origin: int | str | None) -> int | None:
    if origin is None or isinstance(origin, int):
        return None if origin is None else _u8(origin, "ORIGIN")
    try:
        return ORIGINS[origin.upper()]
    except KeyError:
        raise ValueError(f"ORIGIN {origin!r}: expected IGP, EGP, INCOMPLETE or a number") from None


def state_number(state: int | str) -> int:
    """A BGP FSM state by number or by name (``"Established"``), as RFC 6396 numbers them."""
    if isinstance(state, int):
        return _u16(state, "BGP state")
    try:
        return _STATE_NUMBERS[state.lower()]
    except KeyError:
        raise ValueError(f"BGP state {state!r}: expected one of {list(BGP_STATES.values())}") from None


# ---------------------------------------------------------------------------------------------
# encoding: numbers, addresses, prefixes


def _check(value: int, bits: int, what: str) -> int:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{what} {value} does not fit in {bits} bits")
    return value


def _u8(value: int, what: str) -> int:
    return _check(value, 8, what)


def _u16(value: int, what: str) -> int:
    return _check(value, 16, what)


def _u32(value: int, what: str) -> int:
    return _check(value, 32, what)


@lru_cache(maxsize=4096)  # a scenario writes the same few next hops and peers on every entry
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _prefix(item: PrefixInput) -> tuple[Network, int | None]:
    text, path_id = (item, None) if isinstance(item, str) else item
    return ipaddress.ip_network(text), None if path_id is None else _u32(path_id, "path id")


def encode_prefix(prefix: str, path_id: int | None = None) -> bytes:
    """NLRI encoding of one prefix (RFC 4271 4.3), preceded by its path id when given (RFC 7911)."""
    net = ipaddress.ip_network(prefix)
    head = b"" if path_id is None else struct.pack("!I", _u32(path_id, "path id"))
    return head + bytes([net.prefixlen]) + net.network_address.packed[: (net.prefixlen + 7) // 8]


def _nlri(items: Iterable[tuple[Network, int | None]], addpath: bool) -> bytes:
    out = bytearray()
    for net, path_id in items:
        if addpath:
            out += struct.pack("!I", path_id or 0)
        out.append(net.prefixlen)
        out += net.network_address.packed[: (net.prefixlen + 7) // 8]
    return bytes(out)


def _one_afi(items: Sequence[tuple[Network, int | None]]) -> int:
    versions = {net.version for net, _ in items}
    if len(versions) > 1:
        # one MP_REACH_NLRI and one MP_UNREACH_NLRI per UPDATE (RFC 4760 sec. 3 and 4)
        raise ValueError("IPv4 and IPv6 prefixes cannot share an MP attribute: leave mp_ipv4 off")
    return 1 if versions == {4} else 2


# ---------------------------------------------------------------------------------------------
# encoding: path attributes


def encode_attribute(flags: int, type_code: int, value: bytes) -> bytes:
    """One path attribute; the extended-length flag is added when the value exceeds 255 bytes."""
    if len(value) > 0xFFFF:
        raise ValueError(f"attribute {type_code}: {len(value)} bytes is more than 65535")
    if len(value) > 255:
        flags |= EXTENDED_LENGTH
    if flags & EXTENDED_LENGTH:
        return struct.pack("!BBH", flags, _u8(type_code, "attribute type"), len(value)) + value
    return struct.pack("!BBB", flags, _u8(type_code, "attribute type"), len(value)) + value


def encode_as_path(path: AsPathInput, asn_size: int = 4) -> bytes:
    """An AS_PATH (or AS4_PATH) value; segments of more than 255 ASNs are split."""
    fmt = "!I" if asn_size == 4 else "!H"
    out = bytearray()
    for seg in as_path_segments(path):
        asns = seg.asns
        for start in range(0, max(len(asns), 1), MAX_SEGMENT_ASNS):
            chunk = asns[start : start + MAX_SEGMENT_ASNS]
            out += bytes([seg.type, len(chunk)])
            for a in chunk:
                out += struct.pack(fmt, a if asn_size == 4 or a <= 0xFFFF else AS_TRANS)
    return bytes(out)


def _mp_next_hop(attrs: Attributes) -> bytes:
    text = attrs.mp_next_hop or attrs.next_hop
    if text is None:
        raise ValueError("MP_REACH_NLRI needs a next hop: set Attributes.next_hop (or mp_next_hop)")
    nh = _address(text).packed
    if attrs.link_local is not None:
        nh += ipaddress.IPv6Address(attrs.link_local).packed
    return nh


def encode_attributes(
    attrs: Attributes,
    *,
    as4: bool = True,
    mp_reach: bytes | None = None,
    mp_unreach: bytes | None = None,
    next_hop_attribute: bool = True,
) -> bytes:
    """The path attribute block, in type-code order, then ``attrs.other`` as given.

    ``as4=False`` encodes for a 2-byte AS session (RFC 6793): 4-byte ASNs become AS_TRANS in
    AS_PATH and AGGREGATOR, and AS4_PATH / AS4_AGGREGATOR carry the real ones. ``mp_reach`` and
    ``mp_unreach`` are the MP attribute values; ``next_hop_attribute=False`` leaves NEXT_HOP out.
    """
    found: list[tuple[int, int, bytes]] = []  # (type code, flags, value), in type-code order
    origin = _origin_code(attrs.origin)
    if origin is not None:
        found.append((ORIGIN_ATTR, TRANSITIVE, bytes([origin])))
    as4_path: tuple[AsPathSegment, ...] = ()
    if attrs.as_path is not None:
        segments = as_path_segments(attrs.as_path)
        found.append((AS_PATH_ATTR, TRANSITIVE, encode_as_path(segments, 4 if as4 else 2)))
        if not as4 and any(a > 0xFFFF for s in segments for a in s.asns):
            # RFC 6793 4.2.2: confederation segments stay out of AS4_PATH
            as4_path = tuple(s for s in segments if s.type in (AS_SET, AS_SEQUENCE))
    if next_hop_attribute and attrs.next_hop is not None and _address(attrs.next_hop).version == 4:
        found.append((NEXT_HOP_ATTR, TRANSITIVE, _address(attrs.next_hop).packed))
    if attrs.med is not None:
        found.append((MED_ATTR, OPTIONAL, struct.pack("!I", _u32(attrs.med, "MED"))))
    if attrs.local_pref is not None:
        found.append((LOCAL_PREF_ATTR, TRANSITIVE, struct.pack("!I", _u32(attrs.local_pref, "LOCAL_PREF"))))
    if attrs.atomic_aggregate:
        found.append((ATOMIC_AGGREGATE_ATTR, TRANSITIVE, b""))
    as4_aggregator = None
    if attrs.aggregator is not None:
        agg_asn, agg_text = attrs.aggregator
        agg_addr = ipaddress.IPv4Address(agg_text).packed
        found.append((AGGREGATOR_ATTR, OPTIONAL | TRANSITIVE, _asn_field(agg_asn, as4) + agg_addr))
        if not as4 and agg_asn > 0xFFFF:  # AS_TRANS above, the real AS in AS4_AGGREGATOR (RFC 6793)
            as4_aggregator = struct.pack("!I", agg_asn) + agg_addr
    if attrs.communities:
        value = b"".join(struct.pack("!I", _community_value(c)) for c in attrs.communities)
        found.append((COMMUNITIES_ATTR, OPTIONAL | TRANSITIVE, value))
    if mp_reach is not None:
        found.append((MP_REACH_ATTR, OPTIONAL, mp_reach))
    if mp_unreach is not None:
        found.append((MP_UNREACH_ATTR, OPTIONAL, mp_unreach))
    if attrs.ext_communities:
        value = b"".join(_ext_community_value(c) for c in attrs.ext_communities)
        found.append((EXT_COMMUNITIES_ATTR, OPTIONAL | TRANSITIVE, value))
    if as4_path:
        found.append((AS4_PATH_ATTR, OPTIONAL | TRANSITIVE, encode_as_path(as4_path, 4)))
    if as4_aggregator is not None:
        found.append((AS4_AGGREGATOR_ATTR, OPTIONAL | TRANSITIVE, as4_aggregator))
    if attrs.large_communities:
        value = b"".join(_large_community_value(c) for c in attrs.large_communities)
        found.append((LARGE_COMMUNITIES_ATTR, OPTIONAL | TRANSITIVE, value))
    found += [(a.type_code, a.flags, a.value) for a in attrs.other]
    return b"".join(encode_attribute(flags, code, value) for code, flags, value in found)


def _rib_attribute_block(
    attrs: Attributes, prefix_version: int, *, as4: bool = True, abbreviated: bool = True
) -> bytes:
    """Attributes of a RIB entry: an IPv6 next hop (or any with ``mp_next_hop``) goes into
    MP_REACH_NLRI, abbreviated as TABLE_DUMP_V2 has it (RFC 6396 4.3.4) or in full for TABLE_DUMP."""
    next_hop = attrs.next_hop
    via_mp = attrs.mp_next_hop is not None or (
        next_hop is not None and (prefix_version == 6 or _address(next_hop).version == 6)
    )
    if not via_mp:
        return encode_attributes(attrs, as4=as4)
    nh = _mp_next_hop(attrs)
    if abbreviated:
        mp_reach = bytes([len(nh)]) + nh
    else:
        mp_reach = struct.pack("!HBB", 1 if prefix_version == 4 else 2, 1, len(nh)) + nh + b"\x00"
    return encode_attributes(
        attrs, as4=as4, mp_reach=mp_reach, next_hop_attribute=attrs.mp_next_hop is not None
    )


# ---------------------------------------------------------------------------------------------
# encoding: BGP messages


def encode_bgp_message(msg_type: int, body: bytes) -> bytes:
    """A BGP message: marker, length, type, body (RFC 4271 4.1)."""
    length = 19 + len(body)
    if length > MAX_BGP_MESSAGE:
        raise ValueError(f"BGP message of {length} bytes is longer than {MAX_BGP_MESSAGE}")
    return BGP_MARKER + struct.pack("!HB", length, _u8(msg_type, "BGP message type")) + body


def encode_update(
    *,
    announce: Iterable[PrefixInput] = (),
    withdraw: Iterable[PrefixInput] = (),
    attributes: Attributes | None = None,
    as4: bool = True,
    addpath: bool = False,
    mp_ipv4: bool = False,
    safi: int = 1,
) -> bytes:
    """A BGP UPDATE message. IPv4 prefixes go in the classic fields (in MP_REACH_NLRI /
    MP_UNREACH_NLRI with ``mp_ipv4`` or a ``safi`` other than unicast), IPv6 prefixes always in MP
    attributes. ``addpath`` prefixes every NLRI with its path id (0 when none is given)."""
    ann, wd = [_prefix(p) for p in announce], [_prefix(p) for p in withdraw]
    if not addpath and any(pid is not None for _, pid in ann + wd):
        raise ValueError("path ids given for an UPDATE without ADD-PATH (addpath=False)")
    if ann and attributes is None:
        raise ValueError("announcements need attributes")
    in_classic = safi == 1 and not mp_ipv4
    classic_ann = [(net, pid) for net, pid in ann if net.version == 4 and in_classic]
    classic_wd = [(net, pid) for net, pid in wd if net.version == 4 and in_classic]
    mp_ann = [(net, pid) for net, pid in ann if net.version == 6 or not in_classic]
    mp_wd = [(net, pid) for net, pid in wd if net.version == 6 or not in_classic]
    mp_reach = mp_unreach = None
    if mp_ann:
        assert attributes is not None
        nh = _mp_next_hop(attributes)
        afi = _one_afi(mp_ann)
        mp_reach = (
            struct.pack("!HBB", afi, _u8(safi, "SAFI"), len(nh)) + nh + b"\x00" + _nlri(mp_ann, addpath)
        )
    if mp_wd:
        mp_unreach = struct.pack("!HB", _one_afi(mp_wd), _u8(safi, "SAFI")) + _nlri(mp_wd, addpath)
    attr_block = b""
    if attributes is not None:
        if classic_ann and (attributes.next_hop is None or _address(attributes.next_hop).version != 4):
            raise ValueError("IPv4 prefixes in the NLRI field need an IPv4 next hop (else pass mp_ipv4=True)")
        # NEXT_HOP is left out when its address is MP_REACH_NLRI's next hop (RFC 4760 sec. 3)
        next_hop_attribute = bool(classic_ann) or mp_reach is None or attributes.mp_next_hop is not None
        attr_block = encode_attributes(
            attributes,
            as4=as4,
            mp_reach=mp_reach,
            mp_unreach=mp_unreach,
            next_hop_attribute=next_hop_attribute,
        )
    elif mp_unreach is not None:
        attr_block = encode_attribute(OPTIONAL, MP_UNREACH_ATTR, mp_unreach)
    withdrawn = _nlri(classic_wd, addpath)
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attr_block)) + attr_block
    return encode_bgp_message(UPDATE, body + _nlri(classic_ann, addpath))


Capability = tuple[int, bytes]


def encode_open(
    asn: int, bgp_id: str, *, hold_time: int = 180, capabilities: Sequence[Capability] = (), version: int = 4
) -> bytes:
    """A BGP OPEN; ``asn`` above 65535 is written as AS_TRANS (the 4-octet AS capability carries
    it). The capabilities share one optional parameter (RFC 5492)."""
    caps = b"".join(bytes([_u8(code, "capability code"), len(value)]) + value for code, value in capabilities)
    params = bytes([2, len(caps)]) + caps if caps else b""
    my_as = asn if _u32(asn, "AS number") <= 0xFFFF else AS_TRANS
    head = struct.pack("!BHH", _u8(version, "BGP version"), my_as, _u16(hold_time, "hold time"))
    return encode_bgp_message(
        OPEN, head + ipaddress.IPv4Address(bgp_id).packed + bytes([len(params)]) + params
    )


def default_capabilities(asn: int, afi: int, *, as4: bool = True) -> list[Capability]:
    """Multiprotocol (``afi`` unicast), route refresh, and 4-octet AS when ``as4``."""
    caps = [(1, struct.pack("!HBB", afi, 0, 1)), (2, b"")]
    if as4:
        caps.append((65, struct.pack("!I", _u32(asn, "AS number"))))
    return caps


# ---------------------------------------------------------------------------------------------
# the writer


def _asn_field(asn: int, as4: bool) -> bytes:
    # a 2-byte field cannot hold a 4-byte AS number: AS_TRANS, as 2-byte speakers see it
    if as4:
        return struct.pack("!I", _u32(asn, "AS number"))
    return struct.pack("!H", asn if _u32(asn, "AS number") <= 0xFFFF else AS_TRANS)


def mrt_header(ts: int, mrt_type: int, subtype: int, length: int) -> bytes:
    """The 12-byte MRT common header."""
    return struct.pack(
        "!IHHI", _u32(ts, "timestamp"), _u16(mrt_type, "MRT type"), _u16(subtype, "MRT subtype"), length
    )


class BinarySink(Protocol):
    """What the writer needs of a stream: an open binary file, BytesIO, GzipFile, BZ2File..."""

    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...
    def tell(self) -> int: ...
    def close(self) -> None: ...


class MrtWriter:
    """Writes MRT records to a binary stream, one method per record kind.

    Records are written in call order; nothing is buffered beyond the stream's own buffer. The
    peer index of RIB entries is the last :meth:`peer_index_table` written; RIB sequence numbers
    count from 0 after each one.
    """

    def __init__(self, fh: BinarySink, *, close_stream: bool = False) -> None:
        self.fh = fh
        self.records = 0
        self._close_stream = close_stream
        self._peer_index: dict[Peer, int] = {}
        self._rib_seq = 0

    # -- plumbing --------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Flush; close the stream too when this writer opened it (:func:`open_for_write`)."""
        if self._close_stream:
            self.fh.close()
        else:
            self.fh.flush()

    @property
    def offset(self) -> int:
        """Where the next record starts in the (uncompressed) stream: for notes on damaged fixtures."""
        return self.fh.tell()

    def raw(self, ts: int, mrt_type: int, subtype: int, body: bytes, *, length: int | None = None) -> None:
        """Any record, body as given. ``length`` overrides the header's length field (damaged files)."""
        self.fh.write(
            mrt_header(ts, mrt_type, subtype, _u32(len(body) if length is None else length, "length"))
        )
        self.fh.write(body)
        self.records += 1

    def write_bytes(self, data: bytes) -> None:
        """Bytes as they are, between records: garbage, a cut-off record, a stray header."""
        self.fh.write(data)

    # -- TABLE_DUMP_V2 ---------------------------------------------------------------------

    def peer_index_table(
        self,
        ts: int,
        peers: Sequence[Peer],
        *,
        collector_id: str = "0.0.0.0",
        view: str = "",
        as4: bool = True,
    ) -> None:
        """A PEER_INDEX_TABLE; RIB entries name these peers. ``as4=False`` writes 2-byte AS numbers
        for the peers whose AS fits in 2 bytes."""
        name = view.encode()
        body = bytearray(ipaddress.IPv4Address(collector_id).packed)
        body += struct.pack("!H", len(name)) + name + struct.pack("!H", _u16(len(peers), "peer count"))
        for peer in peers:
            addr = _address(peer.ip)
            wide = _u32(peer.asn, "peer AS") > 0xFFFF or as4
            body.append((1 if addr.version == 6 else 0) | (2 if wide else 0))
            body += ipaddress.IPv4Address(peer.bgp_id).packed + addr.packed
            body += struct.pack("!I" if wide else "!H", peer.asn)
        self.raw(ts, TABLE_DUMP_V2, PEER_INDEX_TABLE, bytes(body))
        self._peer_index = {}
        for i, peer in enumerate(peers):
            self._peer_index.setdefault(peer, i)
        self._rib_seq = 0

    def rib(
        self,
        ts: int,
        prefix: str,
        entries: Sequence[RibEntry],
        *,
        multicast: bool = False,
        addpath: bool | None = None,
        seq: int | None = None,
    ) -> None:
        """A RIB_IPV4/IPV6_UNICAST/MULTICAST record (the ADD-PATH subtype when ``addpath``, or by
        default when an entry has a path id). IPv6 next hops use the abbreviated MP_REACH_NLRI of
        RFC 6396 4.3.4; attributes always have 4-byte AS numbers."""
        net = ipaddress.ip_network(prefix)
        if addpath is None:
            addpath = any(e.path_id is not None for e in entries)
        elif not addpath and any(e.path_id is not None for e in entries):
            raise ValueError("path ids given for a RIB record without ADD-PATH (addpath=False)")
        subtype = {(4, False): RIB_IPV4_UNICAST, (4, True): RIB_IPV4_MULTICAST}.get((net.version, multicast))
        subtype = subtype or (RIB_IPV6_MULTICAST if multicast else RIB_IPV6_UNICAST)
        if addpath:
            subtype += ADDPATH_RIB_OFFSET
        body = bytearray(struct.pack("!I", _u32(self._rib_seq if seq is None else seq, "sequence number")))
        body += encode_prefix(prefix) + struct.pack("!H", _u16(len(entries), "entry count"))
        for entry in entries:
            attrs = _rib_attribute_block(entry.attributes, net.version)
            originated = ts if entry.originated is None else entry.originated
            body += struct.pack("!HI", self._peer_number(entry.peer), _u32(originated, "originated time"))
            if addpath:
                body += struct.pack("!I", _u32(entry.path_id or 0, "path id"))
            body += struct.pack("!H", _u16(len(attrs), "attribute length")) + attrs
        self.raw(ts, TABLE_DUMP_V2, subtype, bytes(body))
        self._rib_seq = (self._rib_seq if seq is None else seq) + 1

    def _peer_number(self, peer: Peer | int) -> int:
        if isinstance(peer, int):
            return _u16(peer, "peer index")
        try:
            return self._peer_index[peer]
        except KeyError:
            raise ValueError(f"{peer} is not in the last peer index table") from None

    # -- TABLE_DUMP (v1) -------------------------------------------------------------------

    def table_dump_v1(
        self,
        ts: int,
        prefix: str,
        peer: Peer,
        attributes: Attributes,
        *,
        originated: int | None = None,
        as4: bool = False,
        view: int = 0,
        seq: int | None = None,
        status: int = 1,
    ) -> None:
        """A TABLE_DUMP entry (AFI_IPv4 or AFI_IPv6 by the prefix; the nonstandard 32BIT_AS
        subtypes 3 and 4 with ``as4``). An IPv6 next hop goes into a full MP_REACH_NLRI.
        ``seq`` ``None`` is the number of records written so far, modulo 65536."""
        net = ipaddress.ip_network(prefix)
        addr = _address(peer.ip)
        if addr.version != net.version:
            raise ValueError(f"TABLE_DUMP: peer {peer.ip} and prefix {prefix} differ in address family")
        attrs = _rib_attribute_block(attributes, net.version, as4=as4, abbreviated=False)
        body = bytearray(
            struct.pack("!HH", _u16(view, "view"), (self.records if seq is None else seq) & 0xFFFF)
        )
        body += net.network_address.packed + struct.pack("!BB", net.prefixlen, _u8(status, "status"))
        body += struct.pack("!I", _u32(ts if originated is None else originated, "originated time"))
        body += addr.packed + _asn_field(peer.asn, as4)
        body += struct.pack("!H", _u16(len(attrs), "attribute length")) + attrs
        subtype = (1 if net.version == 4 else 2) + (2 if as4 else 0)
        self.raw(ts, TABLE_DUMP, subtype, bytes(body))

    # -- BGP4MP ----------------------------------------------------------------------------

    def _bgp4mp(self, ts: int, subtype: int, body: bytes, et_usec: int | None) -> None:
        if et_usec is None:
            self.raw(ts, BGP4MP, subtype, body)
        else:
            # BGP4MP_ET: the microseconds lead the body and count in the length (RFC 6396 3)
            self.raw(ts, BGP4MP_ET, subtype, struct.pack("!I", _u32(et_usec, "microseconds")) + body)

    @staticmethod
    def _session_header(session: Session, as4: bool) -> bytes:
        peer = _address(session.peer_ip)
        local = _address(session.local_ip) if session.local_ip is not None else None
        if local is None:
            local = ipaddress.IPv4Address(0) if peer.version == 4 else ipaddress.IPv6Address(0)
        if local.version != peer.version:
            raise ValueError(f"session {session.peer_ip} / {session.local_ip}: address families differ")
        afi = 1 if peer.version == 4 else 2
        head = (
            _asn_field(session.peer_asn, as4)
            + _asn_field(session.local_asn, as4)
            + struct.pack("!HH", _u16(session.ifindex, "ifindex"), afi)
        )
        return head + peer.packed + local.packed

    def bgp_message(
        self,
        ts: int,
        session: Session,
        message: bytes,
        *,
        as4: bool = True,
        local: bool = False,
        addpath: bool = False,
        et_usec: int | None = None,
    ) -> None:
        """A BGP4MP(_ET) MESSAGE record around a BGP message given as bytes (see ``encode_*``).

        ``as4``: MESSAGE_AS4 (4-byte AS numbers in the record and the message); ``local``: sent by
        the collector side (MESSAGE_LOCAL); ``addpath``: the ADD-PATH subtypes (RFC 8050);
        ``et_usec``: a BGP4MP_ET record with these microseconds."""
        subtype = BGP4MP_MESSAGE_SUBTYPES[(as4, local, addpath)]
        self._bgp4mp(ts, subtype, self._session_header(session, as4) + message, et_usec)

    def update(
        self,
        ts: int,
        session: Session,
        *,
        announce: Iterable[PrefixInput] = (),
        withdraw: Iterable[PrefixInput] = (),
        attributes: Attributes | None = None,
        as4: bool = True,
        addpath: bool | None = None,
        local: bool = False,
        et_usec: int | None = None,
        mp_ipv4: bool = False,
        safi: int = 1,
    ) -> None:
        """An UPDATE (see :func:`encode_update`). Prefixes are ``"10.0.0.0/8"`` or, with ADD-PATH,
        ``("10.0.0.0/8", path_id)``; ``addpath`` ``None`` means ADD-PATH when any path id is given."""
        announce, withdraw = list(announce), list(withdraw)
        if addpath is None:
            addpath = any(not isinstance(p, str) for p in announce + withdraw)
        message = encode_update(
            announce=announce,
            withdraw=withdraw,
            attributes=attributes,
            as4=as4,
            addpath=addpath,
            mp_ipv4=mp_ipv4,
            safi=safi,
        )
        self.bgp_message(ts, session, message, as4=as4, local=local, addpath=addpath, et_usec=et_usec)

    def keepalive(
        self, ts: int, session: Session, *, as4: bool = True, local: bool = False, et_usec: int | None = None
    ) -> None:
        """A KEEPALIVE message."""
        self.bgp_message(
            ts, session, encode_bgp_message(KEEPALIVE, b""), as4=as4, local=local, et_usec=et_usec
        )

    def open_message(
        self,
        ts: int,
        session: Session,
        *,
        bgp_id: str | None = None,
        hold_time: int = 180,
        capabilities: Sequence[Capability] | None = None,
        as4: bool = True,
        local: bool = False,
        et_usec: int | None = None,
    ) -> None:
        """An OPEN from the sender (the peer; the local side with ``local``). ``bgp_id`` defaults
        to the sender's IPv4 address (else 0.0.0.0), ``capabilities`` to
        :func:`default_capabilities`."""
        asn = session.local_asn if local else session.peer_asn
        sender = (session.local_ip if local else session.peer_ip) or "0.0.0.0"
        if bgp_id is None:
            bgp_id = sender if _address(sender).version == 4 else "0.0.0.0"
        if capabilities is None:
            capabilities = default_capabilities(
                asn, 1 if _address(session.peer_ip).version == 4 else 2, as4=as4
            )
        message = encode_open(asn, bgp_id, hold_time=hold_time, capabilities=capabilities)
        self.bgp_message(ts, session, message, as4=as4, local=local, et_usec=et_usec)

    def notification(
        self,
        ts: int,
        session: Session,
        code: int,
        subcode: int = 0,
        data: bytes = b"",
        *,
        as4: bool = True,
        local: bool = False,
        et_usec: int | None = None,
    ) -> None:
        """A NOTIFICATION (RFC 4271 4.5): error code, subcode, data."""
        body = bytes([_u8(code, "error code"), _u8(subcode, "error subcode")]) + data
        self.bgp_message(
            ts, session, encode_bgp_message(NOTIFICATION, body), as4=as4, local=local, et_usec=et_usec
        )

    def state_change(
        self,
        ts: int,
        session: Session,
        old_state: int | str,
        new_state: int | str,
        *,
        as4: bool = True,
        et_usec: int | None = None,
    ) -> None:
        """A STATE_CHANGE (STATE_CHANGE_AS4 with ``as4``); states by number or name."""
        subtype = BGP4MP_STATE_CHANGE_AS4 if as4 else BGP4MP_STATE_CHANGE
        body = self._session_header(session, as4) + struct.pack(
            "!HH", state_number(old_state), state_number(new_state)
        )
        self._bgp4mp(ts, subtype, body, et_usec)


def open_for_write(path: str | os.PathLike[str], *, compresslevel: int = 6) -> MrtWriter:
    """An :class:`MrtWriter` on a new file, gzip (``.gz``) or bzip2 (``.bz2``) by its suffix, else
    plain. Output is deterministic (no time or name in the gzip header), so a rebuilt fixture is
    byte-identical. Use it as a context manager, or call ``close()``."""
    name = os.fspath(path)
    if name.endswith(".bz2"):
        return MrtWriter(
            bz2.BZ2File(name, "wb", compresslevel=max(1, min(9, compresslevel))), close_stream=True
        )
    raw = open(name, "wb")  # noqa: SIM115 (the writer closes it)
    if name.endswith(".gz"):
        return MrtWriter(_GzipStream(raw, compresslevel), close_stream=True)
    return MrtWriter(raw, close_stream=True)


class _GzipStream(gzip.GzipFile):
    """A gzip stream that also closes the file under it (GzipFile leaves a given fileobj open)."""

    def __init__(self, raw: BinarySink, compresslevel: int) -> None:
        super().__init__(filename="", mode="wb", compresslevel=compresslevel, fileobj=raw, mtime=0)
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()
