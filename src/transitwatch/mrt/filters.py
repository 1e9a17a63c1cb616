"""Element filters, applied to whole batches (vectorised where the column allows it).

The prefix filter follows BGPStream's vocabulary: ``exact`` (the prefix itself), ``more`` (it and
its more-specifics), ``less`` (it and its less-specifics), ``any`` (more or less).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

PREFIX_MATCHES = ("exact", "more", "less", "any")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_prefix(text: str) -> Network:
    """A prefix as users write it; host bits must be zero (``10.0.0.1/8`` is an error)."""
    return ipaddress.ip_network(text.strip(), strict=True)


def _matches(net: Network, wanted: Sequence[Network], how: str) -> bool:
    for w in wanted:
        if net.version != w.version:
            continue
        if how == "exact" and net == w:
            return True
        if how in ("more", "any") and net.subnet_of(w):  # type: ignore[arg-type]
            return True
        if how in ("less", "any") and w.subnet_of(net):  # type: ignore[arg-type]
            return True
    return False


@dataclass
class ElementFilter:
    """Which elements to keep. Empty criteria keep everything."""

    prefixes: list[Network] = field(default_factory=list)
    prefix_match: str = "more"
    peer_asns: set[int] = field(default_factory=set)
    origin_asns: set[int] = field(default_factory=set)
    types: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.prefix_match not in PREFIX_MATCHES:
            raise ValueError(f"prefix match must be one of {', '.join(PREFIX_MATCHES)}")

    @property
    def empty(self) -> bool:
        return not (self.prefixes or self.peer_asns or self.origin_asns or self.types)

    def mask(self, batch: pa.RecordBatch) -> pa.Array | None:
        """Boolean mask of the rows to keep, or None when every row is kept."""
        if self.empty:
            return None
        conds: list[pa.Array] = []
        if self.types:
            conds.append(pc.is_in(batch.column("type").dictionary_decode(), pa.array(sorted(self.types))))
        if self.peer_asns:
            conds.append(pc.is_in(batch.column("peer_asn"), pa.array(sorted(self.peer_asns), pa.uint32())))
        if self.origin_asns:
            conds.append(
                pc.fill_null(
                    pc.is_in(batch.column("origin_asn"), pa.array(sorted(self.origin_asns), pa.uint32())),
                    False,
                )
            )
        if self.prefixes:
            conds.append(self._prefix_mask(batch.column("prefix")))
        out = conds[0]
        for c in conds[1:]:
            out = pc.and_(out, c)
        return out

    def _prefix_mask(self, col: pa.DictionaryArray) -> pa.Array:
        # decide once per distinct prefix of the batch, then spread to rows through the indices
        keep = []
        for text in col.dictionary.to_pylist():
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                keep.append(False)
                continue
            keep.append(_matches(net, self.prefixes, self.prefix_match))
        per_value = pa.array(keep, pa.bool_())
        return pc.fill_null(pc.take(per_value, col.indices), False)

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        m = self.mask(batch)
        return batch if m is None else batch.filter(m)


def load_prefix_list(items: Iterable[str]) -> list[Network]:
    """Prefixes from command-line values; ``@FILE`` reads one prefix per line (``#`` comments)."""
    out: list[Network] = []
    for item in items:
        if item.startswith("@"):
            with open(item[1:], encoding="utf-8") as fh:
                for line in fh:
                    line = line.split("#", 1)[0].strip()
                    if line:
                        out.append(parse_prefix(line))
        else:
            out.append(parse_prefix(item))
    return out
