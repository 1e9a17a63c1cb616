"""The data types every part of transitwatch shares: no I/O, no decoding, no analysis.

An :class:`Element` is one route change or one RIB entry as seen by one peer of one collector,
the same idea as bgpkit-parser's ``BgpElem`` and BGPStream's ``bgpstream_elem``. The MRT reader
produces them in columns (Arrow record batches, see :mod:`transitwatch.mrt.schema`); this class is
the row view of the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ElementType(StrEnum):
    """BGPStream's element types: RIB entry, announcement, withdrawal, peer state change."""

    RIB = "R"
    ANNOUNCEMENT = "A"
    WITHDRAWAL = "W"
    STATE = "S"


#: BGP finite state machine states as numbered in RFC 6396 (7 and 8 are Quagga's additions).
BGP_STATES = {
    1: "Idle",
    2: "Connect",
    3: "Active",
    4: "OpenSent",
    5: "OpenConfirm",
    6: "Established",
    7: "Clearing",
    8: "Deleted",
}


@dataclass(frozen=True, slots=True)
class Element:
    """One BGP element. Missing values are ``None``; nothing is filled in with a guess.

    ``as_path`` uses bgpdump's notation, so segment types stay distinguishable:
    ``"3356 1299 {64512,64513}"`` for an AS_SET, ``"(65001 65002)"`` for an AS_CONFED_SEQUENCE and
    ``"[65001,65002]"`` for an AS_CONFED_SET. ``origin_asn`` is the last AS of the path when the path
    ends in an AS_SEQUENCE, else ``None``. Communities are space-separated in bgpdump's notation.
    """

    type: ElementType
    timestamp: float  # seconds since the epoch, UTC; microseconds for BGP4MP_ET records
    record_type: str  # bgpdump's first column: TABLE_DUMP2, BGP4MP, BGP4MP_ET_AP, ...
    collector: str | None
    peer_address: str | None
    peer_asn: int | None
    prefix: str | None = None
    path_id: int | None = None
    as_path: str | None = None
    origin_asn: int | None = None
    origin: str | None = None  # IGP, EGP or INCOMPLETE
    next_hop: str | None = None
    local_pref: int | None = None
    med: int | None = None
    communities: str | None = None
    large_communities: str | None = None
    ext_communities: str | None = None
    atomic_aggregate: bool | None = None
    aggregator_asn: int | None = None
    aggregator_address: str | None = None
    originated: float | None = None  # RIB entries: when the route was learned
    safi: int | None = None  # 1 unicast, 2 multicast, 3 both
    old_state: int | None = None
    new_state: int | None = None

    @property
    def path(self) -> list[int]:
        """The AS path as a flat list of AS numbers (set and confederation members included)."""
        if not self.as_path:
            return []
        return [int(tok) for tok in self.as_path.translate(_PATH_PUNCT).split()]


_PATH_PUNCT = str.maketrans({"{": " ", "}": " ", "(": " ", ")": " ", "[": " ", "]": " ", ",": " "})


@dataclass(frozen=True, slots=True)
class SourceIssue:
    """Something in an input that could not be read as it should: reported, counted, never hidden.

    ``offset`` is the byte offset of the MRT record in the decompressed stream. ``severity`` is
    ``"damaged"`` for corrupt or truncated data (the record or its bytes were skipped),
    ``"unsupported"`` for well-formed records transitwatch does not decode (e.g. RIB_GENERIC),
    ``"warning"`` for data that was decoded with a documented workaround, and ``"error"`` for a
    failure that ended the input early (e.g. a truncated compressed stream).
    """

    source: str
    offset: int | None
    severity: str
    reason: str
    record_type: int | None = None
    record_subtype: int | None = None
    skipped_bytes: int = 0  # bytes of the stream not decoded because of this issue

    def __str__(self) -> str:
        where = f"{self.source}" if self.offset is None else f"{self.source} at byte {self.offset}"
        rec = ""
        if self.record_type is not None:
            rec = f" (MRT type {self.record_type} subtype {self.record_subtype})"
        return f"{where}{rec}: {self.severity}: {self.reason}"
