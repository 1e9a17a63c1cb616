"""The Arrow schema of element batches, and how the decoder's column buffers become arrays.

Repeated strings are dictionary-encoded per batch: a RIB record's prefix is shared by all its
entries, and every attribute-derived string (path, next hop, communities...) points into a
dictionary of the batch's distinct attribute blocks. Values are exact: nothing is defaulted;
absent fields are null.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from transitwatch.mrt import _decoder

#: Element types, indexed by the decoder's codes.
TYPES = ["R", "A", "W", "S"]
#: Record types as bgpdump names them (its first column), indexed by the decoder's codes.
RECORD_TYPES: list[str] = _decoder.record_types()
ORIGINS = ["IGP", "EGP", "INCOMPLETE"]

_STR = pa.string()
_INT32 = pa.int32()
_DICT32 = pa.dictionary(_INT32, _STR)
_DICT8 = pa.dictionary(pa.int8(), _STR)
_UTC_US = pa.timestamp("us", tz="UTC")
_UTC_S = pa.timestamp("s", tz="UTC")

#: The element schema (without the optional ``bgpdump`` text column).
SCHEMA = pa.schema(
    [
        pa.field("type", _DICT8, nullable=False),
        pa.field("timestamp", _UTC_US, nullable=False),
        pa.field("record_type", _DICT8, nullable=False),
        pa.field("collector", _DICT8),
        pa.field("peer_address", _DICT32),
        pa.field("peer_asn", pa.uint32(), nullable=False),
        pa.field("prefix", _DICT32),
        pa.field("path_id", pa.uint32()),
        pa.field("as_path", _DICT32),
        pa.field("origin_asn", pa.uint32()),
        pa.field("origin", _DICT8),
        pa.field("next_hop", _DICT32),
        pa.field("local_pref", pa.uint32()),
        pa.field("med", pa.uint32()),
        pa.field("communities", _DICT32),
        pa.field("large_communities", _DICT32),
        pa.field("ext_communities", _DICT32),
        pa.field("atomic_aggregate", pa.bool_()),
        pa.field("aggregator_asn", pa.uint32()),
        pa.field("aggregator_address", _DICT32),
        pa.field("originated", _UTC_S),
        pa.field("safi", pa.uint8()),
        pa.field("old_state", pa.uint16()),
        pa.field("new_state", pa.uint16()),
    ]
)
SCHEMA_WITH_BGPDUMP = SCHEMA.append(pa.field("bgpdump", _STR))

_TYPES_ARR = pa.array(TYPES, _STR)
_RECTYPES_ARR = pa.array(RECORD_TYPES, _STR)
_ORIGINS_ARR = pa.array(ORIGINS, _STR)


def _strings(col: tuple[int, bytes, bytes]) -> pa.Array:
    count, offsets, data = col
    return pa.Array.from_buffers(_STR, count, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _prim(typ: pa.DataType, n: int, data: bytes, valid: bytes | None = None) -> pa.Array:
    return pa.Array.from_buffers(
        typ, n, [pa.py_buffer(valid) if valid is not None else None, pa.py_buffer(data)]
    )


def _dict(
    n: int, idx: bytes, valid: bytes | None, dictionary: pa.Array, itype: pa.DataType = _INT32
) -> pa.Array:
    indices = _prim(itype, n, idx, valid)
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def batch_from_columns(cols: dict[str, Any], collector: pa.Array) -> pa.RecordBatch:
    """Wrap one flushed decoder batch as an Arrow record batch (no copies of the big buffers)."""
    n: int = cols["n"]
    attr = cols["attr"]
    states = cols["state_valid"]
    coll_idx = pa.array([0] * n, pa.int8()) if len(collector) else pa.nulls(n, pa.int8())
    arrays = [
        _dict(n, cols["type"], None, _TYPES_ARR, pa.int8()),
        _prim(_UTC_US, n, cols["timestamp"]),
        _dict(n, cols["record_type"], None, _RECTYPES_ARR, pa.int8()),
        pa.DictionaryArray.from_arrays(coll_idx, collector if len(collector) else pa.array([], _STR)),
        _dict(n, cols["peer"], cols["peer_valid"], _strings(cols["d_peer"])),
        _prim(pa.uint32(), n, cols["peer_asn"]),
        _dict(n, cols["prefix"], cols["prefix_valid"], _strings(cols["d_prefix"])),
        _prim(pa.uint32(), n, cols["path_id"], cols["path_id_valid"]),
        _dict(n, attr, cols["as_path_valid"], _strings(cols["l_path"])),
        _prim(pa.uint32(), n, cols["origin_asn"], cols["origin_asn_valid"]),
        _dict(n, cols["origin"], cols["origin_valid"], _ORIGINS_ARR, pa.int8()),
        _dict(n, attr, cols["next_hop_valid"], _strings(cols["l_nh"])),
        _prim(pa.uint32(), n, cols["local_pref"], cols["local_pref_valid"]),
        _prim(pa.uint32(), n, cols["med"], cols["med_valid"]),
        _dict(n, attr, cols["communities_valid"], _strings(cols["l_comm"])),
        _dict(n, attr, cols["large_communities_valid"], _strings(cols["l_lcomm"])),
        _dict(n, attr, cols["ext_communities_valid"], _strings(cols["l_ecomm"])),
        pa.Array.from_buffers(
            pa.bool_(), n, [pa.py_buffer(cols["attr_valid"]), pa.py_buffer(cols["atomic_aggregate"])]
        ),
        _prim(pa.uint32(), n, cols["aggregator_asn"], cols["aggregator_valid"]),
        _dict(n, attr, cols["aggregator_valid"], _strings(cols["l_aggaddr"])),
        # the decoder keeps originated times in int64 seconds: the timestamp type's own layout
        _prim(_UTC_S, n, cols["originated"], cols["originated_valid"]),
        _prim(pa.uint8(), n, cols["safi"], cols["safi_valid"]),
        _prim(pa.uint16(), n, cols["old_state"], states),
        _prim(pa.uint16(), n, cols["new_state"], states),
    ]
    if "lines" in cols:
        arrays.append(
            pa.Array.from_buffers(
                _STR,
                n,
                [
                    pa.py_buffer(cols["lines_valid"]),
                    pa.py_buffer(cols["lines"][1]),
                    pa.py_buffer(cols["lines"][2]),
                ],
            )
        )
        return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA_WITH_BGPDUMP)
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)
