"""The MRT writer: every record kind it writes is decoded by bgpdump and by our reader.

Each test writes a small file, checks that our reader's bgpdump column equals `bgpdump -m` line
for line, and that the decoded fields are the ones written. Byte-level checks pin the encodings
that neither decoder shows (attribute flags, AS_TRANS, abbreviated MP_REACH_NLRI, ET lengths).
"""

from __future__ import annotations

import gzip
import io
import ipaddress
import itertools
import struct
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transitwatch.mrt.reader import MrtReader
from transitwatch.mrt.writer import (
    AS_CONFED_SEQUENCE,
    AS_CONFED_SET,
    AS_SEQUENCE,
    AS_SET,
    AS_TRANS,
    AsPathSegment,
    Attributes,
    MrtWriter,
    Peer,
    RawAttribute,
    RibEntry,
    Session,
    encode_attributes,
    encode_update,
    format_as_path,
    open_for_write,
    parse_as_path,
)

TS = 1_700_000_000
RRC = Peer("192.0.2.1", 64500, bgp_id="192.0.2.1")
RRC6 = Peer("2001:db8::1", 4_200_000_000, bgp_id="192.0.2.2")
SESSION = Session("192.0.2.1", 64500, "192.0.2.254", 12654)
SESSION6 = Session("2001:db8::1", 4_200_000_001, "2001:db8::fe", 12654)
BIG_AS = 4_200_000_000  # needs 4 bytes

# ------------------------------------------------------------------------------------------
# helpers


def bgpdump_m(bgpdump_bin: str, path: Path) -> list[str]:
    run = subprocess.run([bgpdump_bin, "-m", "-q", str(path)], capture_output=True, text=True, check=True)
    return run.stdout.splitlines()


def decode(path: Path) -> tuple[list[dict[str, Any]], MrtReader]:
    """Rows of our reader, times as integers (microseconds; originated in seconds)."""
    reader = MrtReader(path, bgpdump=True)
    rows = []
    for batch in reader.batches():
        ts = batch.column("timestamp").cast(pa.int64()).to_pylist()
        orig = batch.column("originated").cast(pa.int64()).to_pylist()
        for row, t, o in zip(batch.to_pylist(), ts, orig, strict=True):
            row["timestamp"], row["originated"] = t, o
            rows.append(row)
    return rows, reader


def decode_both(path: Path, bgpdump_bin: str) -> list[dict[str, Any]]:
    """Decode with both decoders, check they print the same lines, return our rows."""
    rows, reader = decode(path)
    assert reader.issues == []
    ours = [r["bgpdump"] for r in rows if r["bgpdump"] is not None]
    assert ours == bgpdump_m(bgpdump_bin, path)
    return rows


def pick(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: row[n] for n in names}


def records(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(timestamp, type, subtype, body) of each record of an uncompressed MRT stream."""
    out, pos = [], 0
    while pos < len(data):
        ts, mrt_type, subtype, length = struct.unpack_from("!IHHI", data, pos)
        out.append((ts, mrt_type, subtype, data[pos + 12 : pos + 12 + length]))
        pos += 12 + length
    assert pos == len(data)
    return out


def split_attributes(block: bytes) -> list[tuple[int, int, bytes]]:
    """(flags, type code, value) of each path attribute in a block."""
    out, pos = [], 0
    while pos < len(block):
        flags, code = block[pos], block[pos + 1]
        if flags & 0x10:
            (length,) = struct.unpack_from("!H", block, pos + 2)
            pos += 4
        else:
            length = block[pos + 2]
            pos += 3
        out.append((flags, code, block[pos : pos + length]))
        pos += length
    return out


def update_attributes(message: bytes) -> list[tuple[int, int, bytes]]:
    """The path attributes of a BGP UPDATE message."""
    (withdrawn_len,) = struct.unpack_from("!H", message, 19)
    (attr_len,) = struct.unpack_from("!H", message, 21 + withdrawn_len)
    return split_attributes(message[23 + withdrawn_len : 23 + withdrawn_len + attr_len])


def as_path_segments(value: bytes, asn_size: int) -> list[tuple[int, list[int]]]:
    out, pos = [], 0
    fmt = "!I" if asn_size == 4 else "!H"
    while pos < len(value):
        seg_type, count = value[pos], value[pos + 1]
        asns = [struct.unpack_from(fmt, value, pos + 2 + i * asn_size)[0] for i in range(count)]
        out.append((seg_type, asns))
        pos += 2 + count * asn_size
    return out


ATTRIBUTE_FIELDS = (
    "as_path",
    "origin_asn",
    "origin",
    "next_hop",
    "local_pref",
    "med",
    "communities",
    "large_communities",
    "ext_communities",
    "atomic_aggregate",
    "aggregator_asn",
    "aggregator_address",
)

# ------------------------------------------------------------------------------------------
# TABLE_DUMP_V2


def test_rib_dump_with_ipv4_and_ipv6_peers(tmp_path: Path, bgpdump_bin: str) -> None:
    path = tmp_path / "rib.mrt"
    small6 = Peer("2001:db8::2", 65010, bgp_id="192.0.2.3")
    with open_for_write(path) as w:
        w.peer_index_table(TS, [RRC, RRC6, small6], collector_id="198.51.100.1", view="rrc99", as4=False)
        v4 = Attributes("64500 3356 13335", next_hop="192.0.2.1", med=5, communities=["64500:1", "no-export"])
        v6 = Attributes([BIG_AS, 6939, 13335], next_hop="2001:db8::1", local_pref=200)
        w.rib(TS, "1.1.1.0/24", [RibEntry(RRC, v4, originated=TS - 3600), RibEntry(small6, v4)])
        w.rib(TS, "2606:4700::/32", [RibEntry(RRC6, v6, originated=TS - 60)])
    rows = decode_both(path, bgpdump_bin)

    index_body = records(path.read_bytes())[0][3]
    # collector id, view name, count, then (type, bgp id, address, AS) per peer: 2-byte AS for 65010
    assert index_body[:13] == bytes([198, 51, 100, 1, 0, 5]) + b"rrc99" + b"\x00\x03"
    assert (index_body[13], index_body[24], index_body[49]) == (0x00, 0x03, 0x01)  # IPv6 and AS4 bits
    columns = ("type", "record_type", "peer_address", "peer_asn", "prefix", "originated")
    assert [pick(r, *columns) for r in rows] == [
        dict(type="R", record_type="TABLE_DUMP2", peer_address="192.0.2.1", peer_asn=64500,
             prefix="1.1.1.0/24", originated=TS - 3600),
        dict(type="R", record_type="TABLE_DUMP2", peer_address="2001:db8::2", peer_asn=65010,
             prefix="1.1.1.0/24", originated=TS),
        dict(type="R", record_type="TABLE_DUMP2", peer_address="2001:db8::1", peer_asn=BIG_AS,
             prefix="2606:4700::/32", originated=TS - 60),
    ]  # fmt: skip
    assert pick(rows[0], "as_path", "origin_asn", "next_hop", "med", "communities", "local_pref") == dict(
        as_path="64500 3356 13335", origin_asn=13335, next_hop="192.0.2.1", med=5,
        communities="64500:1 no-export", local_pref=None,
    )  # fmt: skip
    assert pick(rows[2], "as_path", "origin_asn", "next_hop", "local_pref", "timestamp") == dict(
        as_path=f"{BIG_AS} 6939 13335", origin_asn=13335, next_hop="2001:db8::1", local_pref=200,
        timestamp=TS * 1_000_000,
    )  # fmt: skip


@pytest.mark.parametrize("link_local", [None, "fe80::1"])
def test_rib_ipv6_next_hop_uses_abbreviated_mp_reach(
    tmp_path: Path, bgpdump_bin: str, link_local: str | None
) -> None:
    path = tmp_path / "rib6.mrt"
    attrs = Attributes("64500 13335", next_hop="2001:db8::1", link_local=link_local)
    with open_for_write(path) as w:
        w.peer_index_table(TS, [RRC6])
        w.rib(TS, "2606:4700::/32", [RibEntry(RRC6, attrs)])
    rows = decode_both(path, bgpdump_bin)

    body = records(path.read_bytes())[1][3]
    (attr_len,) = struct.unpack_from("!H", body, 4 + 1 + 4 + 2 + 6)
    attributes = split_attributes(body[4 + 1 + 4 + 2 + 8 :][:attr_len])
    next_hop = ipaddress.IPv6Address("2001:db8::1").packed
    if link_local:
        next_hop += ipaddress.IPv6Address(link_local).packed
    # RFC 6396 4.3.4: only the next hop length and next hop, no AFI/SAFI/NLRI; no NEXT_HOP attribute
    assert (0x80, 14, bytes([len(next_hop)]) + next_hop) in attributes
    assert [code for _, code, _ in attributes] == [1, 2, 14]
    assert rows[0]["next_hop"] == "2001:db8::1"


@pytest.mark.parametrize(
    ("prefix", "multicast", "addpath", "subtype"),
    [
        ("10.0.0.0/8", False, False, 2),
        ("10.0.0.0/8", True, False, 3),
        ("2001:db8::/32", False, False, 4),
        ("2001:db8::/32", True, False, 5),
        ("10.0.0.0/8", False, True, 8),
        ("10.0.0.0/8", True, True, 9),
        ("2001:db8::/32", False, True, 10),
        ("2001:db8::/32", True, True, 11),
    ],
)
def test_rib_subtypes(
    tmp_path: Path, bgpdump_bin: str, prefix: str, multicast: bool, addpath: bool, subtype: int
) -> None:
    path = tmp_path / "rib.mrt"
    nh = "192.0.2.1" if ":" not in prefix else "2001:db8::1"
    entries = [
        RibEntry(RRC, Attributes([64500, 3356], next_hop=nh), path_id=7 if addpath else None),
        RibEntry(RRC, Attributes([64500, 174], next_hop=nh), path_id=9 if addpath else None),
    ]
    with open_for_write(path) as w:
        w.peer_index_table(TS, [RRC])
        w.rib(TS, prefix, entries, multicast=multicast)
        w.rib(TS, prefix, entries[:1], multicast=multicast, seq=41)
        w.rib(TS, prefix, entries[:1], multicast=multicast)
    rows = decode_both(path, bgpdump_bin)

    written = records(path.read_bytes())
    assert [(t, s) for _, t, s, _ in written] == [(13, 1)] + [(13, subtype)] * 3
    assert [struct.unpack_from("!I", body)[0] for *_, body in written[1:]] == [0, 41, 42]  # sequence numbers
    record_type = "TABLE_DUMP2_AP" if addpath else "TABLE_DUMP2"

    def element(path_id: int, as_path: str) -> dict[str, Any]:
        return dict(prefix=prefix, path_id=path_id if addpath else None, as_path=as_path,
                    safi=2 if multicast else 1, record_type=record_type)  # fmt: skip

    got = [pick(r, "prefix", "path_id", "as_path", "safi", "record_type") for r in rows]
    assert got == [
        element(7, "64500 3356"),
        element(9, "64500 174"),
        element(7, "64500 3356"),
        element(7, "64500 3356"),
    ]
    # bgpdump prints unicast entries only: the line comparison above covered them
    assert sum(r["bgpdump"] is not None for r in rows) == (0 if multicast else 4)


def test_rib_entry_can_name_a_raw_peer_index(tmp_path: Path) -> None:
    path = tmp_path / "rib.mrt"
    with open_for_write(path) as w:
        w.peer_index_table(TS, [RRC])
        damaged_at = w.offset
        w.rib(TS, "10.0.0.0/8", [RibEntry(5, Attributes([1], next_hop="192.0.2.1"))])  # no peer 5: damaged
        with pytest.raises(ValueError, match="not in the last peer index table"):
            w.rib(TS, "10.0.0.0/8", [RibEntry(RRC6, Attributes([1]))])
    rows, reader = decode(path)
    assert rows == []
    assert [(i.severity, i.offset) for i in reader.issues] == [("damaged", damaged_at)]
    assert "refers to peer 5" in reader.issues[0].reason


# ------------------------------------------------------------------------------------------
# TABLE_DUMP (v1)


@pytest.mark.parametrize(
    ("prefix", "peer", "next_hop", "as4", "subtype"),
    [
        ("10.0.0.0/8", Peer("192.0.2.1", 64500), "192.0.2.1", False, 1),
        ("2001:db8::/32", Peer("2001:db8::1", 64500), "2001:db8::1", False, 2),
        ("10.0.0.0/8", Peer("192.0.2.1", BIG_AS), "192.0.2.1", True, 3),
        ("2001:db8::/32", Peer("2001:db8::1", BIG_AS), "2001:db8::1", True, 4),
    ],
)
def test_table_dump_v1(
    tmp_path: Path, bgpdump_bin: str, prefix: str, peer: Peer, next_hop: str, as4: bool, subtype: int
) -> None:
    path = tmp_path / "bview.mrt"
    attrs = Attributes(
        [peer.asn, 3356, BIG_AS], next_hop=next_hop, aggregator=(BIG_AS, "10.9.9.9"), communities=[(3356, 2)]
    )
    with open_for_write(path) as w:
        w.table_dump_v1(TS, prefix, peer, attrs, originated=TS - 100, as4=as4)
        w.table_dump_v1(TS, prefix, peer, attrs, as4=as4, view=3, seq=9)
    rows = decode_both(path, bgpdump_bin)

    written = records(path.read_bytes())
    assert [(t, s) for _, t, s, _ in written] == [(12, subtype)] * 2
    assert [struct.unpack_from("!HH", body) for *_, body in written] == [(0, 0), (3, 9)]  # view, sequence
    assert [r["originated"] for r in rows] == [TS - 100, TS]
    # 2-byte subtypes carry the 4-byte ASNs in AS4_PATH / AS4_AGGREGATOR: merged back on reading
    assert pick(rows[0], "record_type", "peer_address", "peer_asn", "prefix", "as_path", "next_hop") == dict(
        record_type="TABLE_DUMP", peer_address=peer.ip, peer_asn=peer.asn, prefix=prefix,
        as_path=f"{peer.asn} 3356 {BIG_AS}", next_hop=next_hop,
    )  # fmt: skip
    assert pick(rows[0], "aggregator_asn", "aggregator_address", "communities") == dict(
        aggregator_asn=BIG_AS, aggregator_address="10.9.9.9", communities="3356:2"
    )


def test_table_dump_v1_peer_as_needs_as4_for_big_asn(tmp_path: Path, bgpdump_bin: str) -> None:
    path = tmp_path / "bview.mrt"
    with open_for_write(path) as w:
        w.table_dump_v1(
            TS, "10.0.0.0/8", Peer("192.0.2.1", BIG_AS), Attributes([BIG_AS], next_hop="192.0.2.1")
        )
    rows = decode_both(path, bgpdump_bin)
    assert pick(rows[0], "peer_asn", "as_path") == dict(peer_asn=AS_TRANS, as_path=str(BIG_AS))


# ------------------------------------------------------------------------------------------
# BGP4MP / BGP4MP_ET


def record_type_name(et: bool, local: bool, addpath: bool) -> str:
    """bgpdump's first column: it names MESSAGE_(AS4_)LOCAL_ADDPATH like the received ADD-PATH ones."""
    return (
        "BGP4MP"
        + ("_ET" if et else "")
        + ("_LOCAL" if local and not addpath else "")
        + ("_AP" if addpath else "")
    )


@pytest.mark.parametrize(("as4", "local", "addpath", "et"), list(itertools.product([False, True], repeat=4)))
@pytest.mark.parametrize("session", [SESSION, SESSION6], ids=["ipv4", "ipv6"])
def test_bgp4mp_message_subtypes(
    tmp_path: Path, bgpdump_bin: str, session: Session, as4: bool, local: bool, addpath: bool, et: bool
) -> None:
    path = tmp_path / "updates.mrt"
    attrs = Attributes(
        "64500 3356 4200000000", next_hop="192.0.2.1", mp_next_hop="2001:db8::1", communities=["64500:7"]
    )
    ann: list[Any] = ["10.0.0.0/8", "2001:db8:1::/48"]
    wd: list[Any] = ["11.0.0.0/8", "2001:db8:2::/48"]
    if addpath:
        ann, wd = [(ann[0], 1), (ann[1], 2)], [(wd[0], 3), (wd[1], 4)]
    usec = 123_456 if et else None
    with open_for_write(path) as w:
        w.update(TS, session, announce=ann, withdraw=wd, attributes=attrs, as4=as4, local=local, et_usec=usec)
        w.state_change(TS + 1, session, "Established", "Idle", as4=as4, et_usec=usec)
    rows = decode_both(path, bgpdump_bin)

    (_, mrt_type, subtype, body), (_, state_type, state_subtype, _) = records(path.read_bytes())
    expected_subtype = {(0, 0, 0): 1, (1, 0, 0): 4, (0, 1, 0): 6, (1, 1, 0): 7}.get((as4, local, addpath))
    expected_subtype = expected_subtype or 8 + as4 + 2 * local
    assert (mrt_type, subtype) == (17 if et else 16, expected_subtype)
    assert (state_type, state_subtype) == (17 if et else 16, 5 if as4 else 0)
    if et:  # the ET length covers the microseconds, which lead the body
        assert struct.unpack_from("!I", body)[0] == 123_456
    asn_size = 4 if as4 else 2
    peer_asn = session.peer_asn if as4 or session.peer_asn <= 0xFFFF else AS_TRANS
    assert body[(4 if et else 0) :][: 2 * asn_size] == struct.pack(
        "!II" if as4 else "!HH", peer_asn, session.local_asn
    )

    ts = TS * 1_000_000 + (usec or 0)
    name = record_type_name(et, local, addpath)
    common = dict(record_type=name, peer_address=session.peer_ip, peer_asn=peer_asn, timestamp=ts, safi=1)
    got = [pick(r, "type", "prefix", "path_id", "next_hop", "as_path", *common) for r in rows[:-1]]

    def pid(n: int) -> int | None:
        return n if addpath else None

    path_text = "64500 3356 4200000000"
    assert got == [
        dict(type="W", prefix="11.0.0.0/8", path_id=pid(3), next_hop=None, as_path=None, **common),
        dict(type="W", prefix="2001:db8:2::/48", path_id=pid(4), next_hop=None, as_path=None, **common),
        dict(
            type="A", prefix="10.0.0.0/8", path_id=pid(1), next_hop="192.0.2.1", as_path=path_text, **common
        ),
        dict(
            type="A",
            prefix="2001:db8:1::/48",
            path_id=pid(2),
            next_hop="2001:db8::1",
            as_path=path_text,
            **common,
        ),
    ]
    state = rows[-1]
    assert pick(state, "type", "old_state", "new_state", "timestamp", "peer_address") == dict(
        type="S",
        old_state=6,
        new_state=1,
        timestamp=(TS + 1) * 1_000_000 + (usec or 0),
        peer_address=session.peer_ip,
    )


def test_update_with_every_attribute(tmp_path: Path, bgpdump_bin: str) -> None:
    path = tmp_path / "updates.mrt"
    unknown = RawAttribute(99, b"\x01\x02\x03")
    attrs = Attributes(
        "64500 3356 {64512,4200000005}",
        next_hop="192.0.2.1",
        origin="EGP",
        med=0,
        local_pref=4_000_000_000,
        atomic_aggregate=True,
        aggregator=(BIG_AS, "10.0.0.1"),
        communities=[(64500, 1), "3356:100", "no-export", "no-advertise", "local-AS", (65535, 65281)],
        large_communities=[(BIG_AS, 1, 2), "64500:0:4294967295"],
        ext_communities=[
            "rt:64500:100",
            "rt:192.0.2.1:7",
            "rt:4200000000:9",
            "soo:64500:1",
            b"\x03\x0c\x00\x00\x00\x00\x00\x08",
            0x0006_0000_0000_0001,
            "0x4002000000010001",
        ],
        other=[unknown],
    )
    with open_for_write(path) as w:
        w.update(TS, SESSION, announce=["192.0.2.0/24", "0.0.0.0/0", "10.1.2.3/32"], attributes=attrs)
    rows = decode_both(path, bgpdump_bin)

    assert [r["prefix"] for r in rows] == ["192.0.2.0/24", "0.0.0.0/0", "10.1.2.3/32"]
    assert pick(rows[0], *ATTRIBUTE_FIELDS) == dict(
        as_path="64500 3356 {64512,4200000005}",
        origin_asn=None,  # the path ends in a set
        origin="EGP",
        next_hop="192.0.2.1",
        local_pref=4_000_000_000,
        med=0,
        communities="64500:1 3356:100 no-export no-advertise local-AS no-export",
        large_communities=f"{BIG_AS}:1:2 64500:0:4294967295",
        ext_communities="rt:64500:100 rt:192.0.2.1:7 rt:4200000000:9 soo:64500:1 0x030c000000000008 "
        "0x0006000000000001 rt:0:65537",  # 0x40 0x02: a non-transitive two-octet-AS route target
        atomic_aggregate=True,
        aggregator_asn=BIG_AS,
        aggregator_address="10.0.0.1",
    )
    message = records(path.read_bytes())[0][3][20:]
    codes = [(flags, code) for flags, code, _ in update_attributes(message)]
    assert codes == [(0x40, 1), (0x40, 2), (0x40, 3), (0x80, 4), (0x40, 5), (0x40, 6), (0xC0, 7), (0xC0, 8),
                     (0xC0, 16), (0xC0, 32), (0xC0, 99)]  # fmt: skip
    assert update_attributes(message)[-1] == (0xC0, 99, b"\x01\x02\x03")


def test_extended_length_and_long_paths(tmp_path: Path, bgpdump_bin: str) -> None:
    path = tmp_path / "updates.mrt"
    long_path = [BIG_AS + i for i in range(1000)]  # 11,000 characters: bgpdump cuts its line near 8000
    attrs = Attributes(long_path, next_hop="192.0.2.1", communities=[(1, i) for i in range(100)])
    with open_for_write(path) as w:
        w.update(TS, SESSION, announce=["10.0.0.0/8"], attributes=attrs)
    rows = decode_both(path, bgpdump_bin)

    found = update_attributes(records(path.read_bytes())[0][3][20:])
    as_path_flags, _, as_path_value = next(a for a in found if a[1] == 2)
    communities_flags, _, communities_value = next(a for a in found if a[1] == 8)
    assert as_path_flags == 0x50 and communities_flags == 0xD0  # extended length (value > 255 bytes)
    assert len(communities_value) == 400
    assert [(t, len(asns)) for t, asns in as_path_segments(as_path_value, 4)] == [(2, 255)] * 3 + [(2, 235)]
    assert rows[0]["as_path"] == " ".join(map(str, long_path))
    assert rows[0]["origin_asn"] == long_path[-1]
    assert rows[0]["bgpdump"].split("|")[6].endswith("...")
    assert rows[0]["communities"] == " ".join(f"1:{i}" for i in range(100))


def test_as_set_over_255_asns_is_split_into_two_sets(tmp_path: Path, bgpdump_bin: str) -> None:
    path = tmp_path / "updates.mrt"
    big_set = AsPathSegment(AS_SET, tuple(range(1, 300)))
    with open_for_write(path) as w:
        w.update(
            TS,
            SESSION,
            announce=["10.0.0.0/8"],
            attributes=Attributes([64500, big_set], next_hop="192.0.2.1"),
        )
    rows = decode_both(path, bgpdump_bin)
    first, second = ",".join(map(str, range(1, 256))), ",".join(map(str, range(256, 300)))
    assert rows[0]["as_path"] == f"64500 {{{first}}} {{{second}}}"


def test_two_byte_session_uses_as_trans_and_as4_attributes(tmp_path: Path, bgpdump_bin: str) -> None:
    """RFC 6793: AS_TRANS in AS_PATH and AGGREGATOR, the real ASNs in AS4_PATH / AS4_AGGREGATOR."""
    path = tmp_path / "updates.mrt"
    attrs = Attributes(
        "64500 4200000000 {1,4200000001}", next_hop="192.0.2.1", aggregator=(BIG_AS + 9, "10.0.0.9")
    )
    plain = Attributes("64500 3356", next_hop="192.0.2.1", aggregator=(3356, "10.0.0.3"))
    with open_for_write(path) as w:
        w.update(TS, SESSION, announce=["10.0.0.0/8"], attributes=attrs, as4=False)
        w.update(TS, SESSION, announce=["11.0.0.0/8"], attributes=plain, as4=False)
    rows = decode_both(path, bgpdump_bin)

    first, second = (body[16:] for *_, body in records(path.read_bytes()))  # 2-byte ASNs: 16-byte header
    found = {code: value for _, code, value in update_attributes(first)}
    assert as_path_segments(found[2], 2) == [(2, [64500, AS_TRANS]), (1, [1, AS_TRANS])]
    assert as_path_segments(found[17], 4) == [(2, [64500, BIG_AS]), (1, [1, BIG_AS + 1])]
    assert found[7] == struct.pack("!H", AS_TRANS) + bytes([10, 0, 0, 9])
    assert found[18] == struct.pack("!I", BIG_AS + 9) + bytes([10, 0, 0, 9])
    assert sorted(code for _, code, _ in update_attributes(second)) == [1, 2, 3, 7]  # no AS4_* needed
    # both decoders merge the real ASNs back
    assert pick(rows[0], "as_path", "origin_asn", "aggregator_asn", "aggregator_address") == dict(
        as_path="64500 4200000000 {1,4200000001}", origin_asn=None, aggregator_asn=BIG_AS + 9,
        aggregator_address="10.0.0.9",
    )  # fmt: skip
    assert pick(rows[1], "as_path", "aggregator_asn") == dict(as_path="64500 3356", aggregator_asn=3356)


def test_as4_aggregator_is_merged_without_as_path(tmp_path: Path, bgpdump_bin: str) -> None:
    path = tmp_path / "updates.mrt"
    with open_for_write(path) as w:
        w.update(TS, SESSION, announce=["10.0.0.0/8"], as4=False,
                 attributes=Attributes(next_hop="192.0.2.1", aggregator=(65536, "10.0.0.1")))  # fmt: skip
    assert bgpdump_m(bgpdump_bin, path)[0].endswith("|NAG|65536 10.0.0.1|")
    rows = decode(path)[0]
    assert rows[0]["aggregator_asn"] == 65536
    assert [r["bgpdump"] for r in rows] == bgpdump_m(bgpdump_bin, path)


def test_confederation_segments_stay_out_of_as4_path() -> None:
    attrs = Attributes("(65001 4200000000) [65003] 64500 4200000001", next_hop="10.0.0.1")
    found = {code: value for _, code, value in split_attributes(encode_attributes(attrs, as4=False))}
    assert as_path_segments(found[2], 2) == [(3, [65001, AS_TRANS]), (4, [65003]), (2, [64500, AS_TRANS])]
    assert as_path_segments(found[17], 4) == [(2, [64500, BIG_AS + 1])]  # RFC 6793 4.2.2


def test_confederation_segments_are_written_with_rfc_5065_codes(bgpdump_bin: str, tmp_path: Path) -> None:
    path = tmp_path / "updates.mrt"
    attrs = Attributes("(65001 65002) [65003,65004] 3356", next_hop="192.0.2.1")
    with open_for_write(path) as w:
        w.update(TS, SESSION, announce=["10.0.0.0/8"], attributes=attrs)
    found = {code: value for _, code, value in update_attributes(records(path.read_bytes())[0][3][20:])}
    assert as_path_segments(found[2], 4) == [(3, [65001, 65002]), (4, [65003, 65004]), (2, [3356])]
    # bgpdump names type 3 (AS_CONFED_SEQUENCE) "(...)" and type 4 (AS_CONFED_SET) "[...]"
    assert bgpdump_m(bgpdump_bin, path)[0].split("|")[6] == "(65001 65002) [65003,65004] 3356"


def test_confederation_segments_are_printed_as_bgpdump_does(tmp_path: Path, bgpdump_bin: str) -> None:
    path = tmp_path / "confed.mrt"
    confed_attrs = [
        Attributes(text, next_hop="192.0.2.1") for text in ["(65001 65002) 3356", "[65001,65002] 3356"]
    ]
    two_byte = Attributes("(65001 65002) 3356 4200000000", next_hop="192.0.2.1")
    with open_for_write(path) as w:
        w.peer_index_table(TS, [RRC])
        w.rib(TS, "10.0.0.0/8", [RibEntry(RRC, confed_attrs[0])])
        w.rib(TS, "11.0.0.0/8", [RibEntry(RRC, confed_attrs[1])])
        w.update(TS, SESSION, announce=["12.0.0.0/8"], attributes=two_byte, as4=False)
    rows = decode(path)[0]
    assert [r["bgpdump"] for r in rows] == bgpdump_m(bgpdump_bin, path)
    assert [r["as_path"] for r in rows] == [
        "(65001 65002) 3356",
        "[65001,65002] 3356",
        "(65001 65002) 3356 4200000000",
    ]


def test_ipv4_in_mp_reach_and_multicast_updates(tmp_path: Path, bgpdump_bin: str) -> None:
    path = tmp_path / "updates.mrt"
    attrs = Attributes([64500, 3356], next_hop="192.0.2.1")
    with open_for_write(path) as w:
        w.update(
            TS, SESSION, announce=["10.0.0.0/8"], withdraw=["11.0.0.0/8"], attributes=attrs, mp_ipv4=True
        )
        w.update(TS, SESSION, announce=["12.0.0.0/8"], attributes=attrs, safi=2)
        w.update(TS, SESSION, withdraw=["2001:db8::/32"], safi=2)
    rows = decode_both(path, bgpdump_bin)

    first = records(path.read_bytes())[0][3][20:]
    assert first[19:21] == b"\x00\x00"  # no classic withdrawals
    (attributes_length,) = struct.unpack_from("!H", first, 21)
    assert attributes_length == len(first) - 23  # no classic NLRI after the attributes
    found = {code: value for _, code, value in update_attributes(first)}
    assert 3 not in found  # the next hop is MP_REACH_NLRI's
    assert found[14] == b"\x00\x01\x01\x04" + bytes([192, 0, 2, 1]) + b"\x00" + b"\x08\x0a"
    assert found[15] == b"\x00\x01\x01" + b"\x08\x0b"
    assert [pick(r, "type", "prefix", "safi", "next_hop") for r in rows] == [
        dict(type="W", prefix="11.0.0.0/8", safi=1, next_hop=None),
        dict(type="A", prefix="10.0.0.0/8", safi=1, next_hop="192.0.2.1"),
        dict(type="A", prefix="12.0.0.0/8", safi=2, next_hop="192.0.2.1"),
        dict(type="W", prefix="2001:db8::/32", safi=2, next_hop=None),
    ]


def test_ipv6_next_hop_with_link_local(tmp_path: Path, bgpdump_bin: str) -> None:
    path = tmp_path / "updates.mrt"
    attrs = Attributes([64501, 6939], next_hop="2001:db8::1", link_local="fe80::1:2")
    with open_for_write(path) as w:
        w.update(TS, SESSION6, announce=["2001:db8:100::/40"], attributes=attrs)
    rows = decode_both(path, bgpdump_bin)
    found = {code: value for _, code, value in update_attributes(records(path.read_bytes())[0][3][44:])}
    assert found[14][:4] == b"\x00\x02\x01\x20"  # AFI 2, SAFI 1, 32-byte next hop
    assert found[14][20:36] == ipaddress.IPv6Address("fe80::1:2").packed
    assert rows[0]["next_hop"] == "2001:db8::1"


@pytest.mark.parametrize("as4", [False, True])
def test_state_changes(tmp_path: Path, bgpdump_bin: str, as4: bool) -> None:
    path = tmp_path / "updates.mrt"
    names = ["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established", "Clearing", "Deleted"]
    with open_for_write(path) as w:
        for i, (old, new) in enumerate(itertools.pairwise([*names, "Idle"])):
            w.state_change(
                TS + i, SESSION6 if i % 2 else SESSION, old, new, as4=as4, et_usec=i if i > 5 else None
            )
        w.state_change(TS, SESSION, 6, 1, as4=as4)
    rows = decode_both(path, bgpdump_bin)
    assert [(r["type"], r["old_state"], r["new_state"]) for r in rows] == [
        ("S", 1, 2), ("S", 2, 3), ("S", 3, 4), ("S", 4, 5), ("S", 5, 6), ("S", 6, 7), ("S", 7, 8),
        ("S", 8, 1), ("S", 6, 1),
    ]  # fmt: skip
    microseconds = [r["timestamp"] - TS * 1_000_000 for r in rows]
    assert microseconds == [0, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000, 6_000_006, 7_000_007, 0]
    assert [r["record_type"] for r in rows[5:8]] == ["BGP4MP", "BGP4MP_ET", "BGP4MP_ET"]
    assert rows[1]["peer_address"] == "2001:db8::1"
    assert rows[1]["peer_asn"] == (SESSION6.peer_asn if as4 else AS_TRANS)


def test_open_keepalive_notification(tmp_path: Path, bgpdump_bin: str) -> None:
    path = tmp_path / "updates.mrt"
    with open_for_write(path) as w:
        w.open_message(TS, SESSION6, hold_time=90, bgp_id="10.1.1.1")
        w.open_message(TS, SESSION, local=True, as4=False)
        w.keepalive(TS, SESSION, et_usec=5)
        w.notification(TS, SESSION, 2, 2, b"\x00\x01")
    rows, reader = decode(path)
    assert rows == [] and reader.issues == []
    assert reader.stats["bgp_messages"] == 4
    assert bgpdump_m(bgpdump_bin, path) == []

    human = subprocess.run([bgpdump_bin, "-q", str(path)], capture_output=True, text=True, check=True).stdout
    blocks = [b for b in human.split("\n\n") if b.strip()]
    assert "TYPE: BGP4MP/MESSAGE/Open" in blocks[0]
    assert "AS: 23456\nHOLD_TIME: 90\nID: 10.1.1.1\nOPT_PARM_LEN: 16" in blocks[0]  # MP, route refresh, AS4
    assert "TYPE: BGP4MP/MESSAGE_LOCAL/Open" in blocks[1]
    assert "AS: 12654\nHOLD_TIME: 180\nID: 192.0.2.254\nOPT_PARM_LEN: 10" in blocks[1]  # no AS4 capability
    assert "TYPE: BGP4MP_ET/MESSAGE/Keepalive" in blocks[2] and ".000005" in blocks[2]
    assert "ERROR CODE  : 2 (OPEN Message Error)\n    SUB ERROR   : 2 (Bad Peer AS)" in blocks[3]

    open_message = records(path.read_bytes())[0][3][44:]
    multiprotocol_ipv6, route_refresh = b"\x01\x04\x00\x02\x00\x01", b"\x02\x00"
    four_octet_as = b"\x41\x04" + struct.pack("!I", SESSION6.peer_asn)
    assert open_message[29:] == b"\x02\x0e" + multiprotocol_ipv6 + route_refresh + four_octet_as


# ------------------------------------------------------------------------------------------
# damaged fixtures


def test_raw_records_and_damage(tmp_path: Path) -> None:
    path = tmp_path / "damaged.mrt"
    good = Attributes([64500], next_hop="192.0.2.1")
    header = struct.pack("!IIHH", 64500, 12654, 0, 1) + bytes([192, 0, 2, 1, 192, 0, 2, 254])
    message = encode_update(announce=["11.0.0.0/8"], attributes=good)
    with open_for_write(path) as w:
        w.update(TS, SESSION, announce=["10.0.0.0/8"], attributes=good)
        lying_at = w.offset
        w.raw(TS, 16, 4, header + message, length=len(header + message) + 3)  # 3 bytes too long
        w.write_bytes(b"\x00\x01\x02")
        w.update(TS + 1, SESSION, announce=["12.0.0.0/8"], attributes=good)
        garbage_at = w.offset
        w.write_bytes(b"\xee" * 7)
        w.update(TS + 2, SESSION, announce=["13.0.0.0/8"], attributes=good)
        cut_at = w.offset
        w.raw(TS + 3, 16, 4, header + message[:10], length=len(header + message))  # the stream ends inside
    rows, reader = decode(path)

    data = path.read_bytes()
    assert data[lying_at : lying_at + 12] == struct.pack("!IHHI", TS, 16, 4, len(header + message) + 3)
    assert data[lying_at + 12 : lying_at + 12 + len(header + message)] == header + message
    assert [r["prefix"] for r in rows] == ["10.0.0.0/8", "12.0.0.0/8", "13.0.0.0/8"]
    assert [(i.severity, i.offset) for i in reader.issues] == [
        ("damaged", lying_at),
        ("damaged", garbage_at),
        ("damaged", cut_at),
    ]
    assert [i.skipped_bytes for i in reader.issues[1:]] == [7, len(data) - cut_at]


def test_writer_on_any_binary_stream() -> None:
    stream = io.BytesIO()
    writer = MrtWriter(stream)
    writer.raw(TS, 16, 5, b"\x01\x02")
    writer.keepalive(TS, SESSION)
    writer.close()  # a stream the writer did not open stays open
    assert stream.getvalue()[:14] == struct.pack("!IHHI", TS, 16, 5, 2) + b"\x01\x02"
    assert writer.records == 2 and writer.offset == len(stream.getvalue())


# ------------------------------------------------------------------------------------------
# files


def write_sample(w: MrtWriter) -> None:
    w.peer_index_table(TS, [RRC, RRC6])
    w.rib(TS, "10.0.0.0/8", [RibEntry(RRC, Attributes([64500, 3356], next_hop="192.0.2.1"))])
    w.update(TS, SESSION6, announce=["2001:db8::/32"], attributes=Attributes([64501], next_hop="2001:db8::1"))


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2"])
def test_open_for_write_compresses_by_suffix_and_is_deterministic(
    tmp_path: Path, bgpdump_bin: str, suffix: str
) -> None:
    first, second = tmp_path / f"a.mrt{suffix}", tmp_path / "again" / f"b.mrt{suffix}"
    second.parent.mkdir()
    for path in (first, second):
        with open_for_write(path) as w:
            write_sample(w)
    plain = io.BytesIO()
    write_sample(MrtWriter(plain))

    assert first.read_bytes() == second.read_bytes()  # no name or time in the output
    magic = {"": plain.getvalue()[:4], ".gz": b"\x1f\x8b", ".bz2": b"BZh"}[suffix]
    assert first.read_bytes().startswith(magic)
    if suffix == ".gz":
        assert first.read_bytes()[4:8] == b"\x00\x00\x00\x00"  # gzip mtime
        assert gzip.decompress(first.read_bytes()) == plain.getvalue()
    rows = decode_both(first, bgpdump_bin)
    assert [(r["type"], r["prefix"]) for r in rows] == [("R", "10.0.0.0/8"), ("A", "2001:db8::/32")]


# ------------------------------------------------------------------------------------------
# input checks and text forms


def test_as_path_text() -> None:
    assert parse_as_path("3356 1299 {64512,64513} (65001 65002) [7, 8] 9") == (
        AsPathSegment(AS_SEQUENCE, (3356, 1299)),
        AsPathSegment(AS_SET, (64512, 64513)),
        AsPathSegment(AS_CONFED_SEQUENCE, (65001, 65002)),
        AsPathSegment(AS_CONFED_SET, (7, 8)),
        AsPathSegment(AS_SEQUENCE, (9,)),
    )
    for text in ["3356 {64512,64513}", "(65001 65002) 3356", "[65001,65002]", "", "{1}"]:
        assert format_as_path(text) == text
    assert format_as_path([1, 2, AsPathSegment(AS_SET, (3, 4)), 5]) == "1 2 {3,4} 5"
    for bad in ["1 {2", "1 }", "{1 (2)}", "1,2", "(1,2)", "1 x", "4294967296"]:
        with pytest.raises(ValueError):
            parse_as_path(bad)


def test_bad_inputs_are_refused_where_they_are_made() -> None:
    with pytest.raises(ValueError, match="AS path"):
        Attributes("1 {2")
    with pytest.raises(ValueError, match="community"):
        Attributes(communities=["65536:1"])
    with pytest.raises(ValueError, match="large community"):
        Attributes(large_communities=["1:2"])
    with pytest.raises(ValueError, match="extended community"):
        Attributes(ext_communities=["xx:1:2"])
    with pytest.raises(ValueError, match="ORIGIN"):
        Attributes(origin="BGP")
    with pytest.raises(ValueError, match="host bits"):
        encode_update(announce=["10.0.0.1/8"], attributes=Attributes([1], next_hop="192.0.2.1"))
    with pytest.raises(ValueError, match="without ADD-PATH"):
        encode_update(announce=[("10.0.0.0/8", 1)], attributes=Attributes([1], next_hop="192.0.2.1"))
    with pytest.raises(ValueError, match="mp_ipv4=True"):
        encode_update(announce=["10.0.0.0/8"], attributes=Attributes([1], next_hop="2001:db8::1"))
    with pytest.raises(ValueError, match="MP_REACH_NLRI needs a next hop"):
        encode_update(announce=["2001:db8::/32"], attributes=Attributes([1]))
    with pytest.raises(ValueError, match="share an MP attribute"):
        encode_update(announce=["10.0.0.0/8", "2001:db8::/32"], attributes=Attributes([1], next_hop="::1"),
                      mp_ipv4=True)  # fmt: skip
    with pytest.raises(ValueError, match="BGP state"):
        MrtWriter(io.BytesIO()).state_change(TS, SESSION, "Up", "Idle")
    with pytest.raises(ValueError, match="address families differ"):
        MrtWriter(io.BytesIO()).keepalive(TS, Session("192.0.2.1", 1, "2001:db8::1"))


def test_two_byte_as_path_keeps_small_asns_and_needs_no_as4_path() -> None:
    block = encode_attributes(Attributes("64500 {1,2}", next_hop="192.0.2.1"), as4=False)
    found = {code: value for _, code, value in split_attributes(block)}
    assert as_path_segments(found[2], 2) == [(2, [64500]), (1, [1, 2])]
    assert 17 not in found


# ------------------------------------------------------------------------------------------
# property: random valid records survive the round trip through both decoders

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
asns = st.one_of(st.integers(1, 0xFFFF), st.integers(0x10000, 0xFFFF_FFFF))
ipv4 = st.integers(0, 0xFFFF_FFFF).map(lambda i: str(ipaddress.IPv4Address(i)))
# global unicast space: outside ::/96 and ::ffff:0:0/96, which glibc prints with dotted quads
ipv6 = st.integers(0x2000 << 112, (0x4000 << 112) - 1).map(lambda i: str(ipaddress.IPv6Address(i)))
link_local = st.integers(1, 0xFFFF_FFFF).map(lambda i: str(ipaddress.IPv6Address((0xFE80 << 112) + i)))
ipv4_prefixes = st.builds(
    lambda a, n: str(ipaddress.IPv4Network((a, n), strict=False)),
    st.integers(0, 0xFFFF_FFFF),
    st.integers(0, 32),
)
ipv6_prefixes = st.builds(
    lambda a, n: str(ipaddress.IPv6Network((a, n), strict=False)),
    st.integers(0x2000 << 112, (0x4000 << 112) - 1),
    st.integers(0, 128),
)
segments = st.one_of(
    st.lists(asns, min_size=1, max_size=6).map(lambda a: AsPathSegment(AS_SEQUENCE, tuple(a))),
    st.lists(asns, min_size=1, max_size=4).map(lambda a: AsPathSegment(AS_SET, tuple(a))),
)
WELL_KNOWN = {0xFFFFFF01: "no-export", 0xFFFFFF02: "no-advertise", 0xFFFFFF03: "local-AS"}


def community_text(asn: int, value: int) -> str:
    return WELL_KNOWN.get(asn << 16 | value, f"{asn}:{value}")


# extended communities: (what is written, how the reader prints it)
kinds = st.sampled_from(["rt", "soo"])
named_ext = st.one_of(st.tuples(kinds, u16, u32), st.tuples(kinds, ipv4, u16), st.tuples(kinds, asns, u16))
opaque_ext = st.builds(
    lambda t, b: bytes([t]) + b, st.sampled_from([0x03, 0x06, 0x80, 0x8A]), st.binary(min_size=7, max_size=7)
)
ext_communities = st.one_of(
    named_ext.map(lambda t: (f"{t[0]}:{t[1]}:{t[2]}",) * 2), opaque_ext.map(lambda b: (b, "0x" + b.hex()))
)
unknown_attributes = st.builds(
    RawAttribute,
    st.sampled_from([21, 33, 99, 128, 254]),
    st.binary(max_size=300),
    st.sampled_from([0xC0, 0xD0]),
)


@st.composite
def attribute_sets(
    draw: st.DrawFn,
    next_hop: str | None,
    mp_next_hop: str | None = None,
    link_local: str | None = None,
    as4: bool = True,
) -> tuple[Attributes, dict[str, Any]]:
    """Random attributes and the fields a decoder should give back (next hop of the prefix's family).

    2-byte sessions always get an AS_PATH: without one the reader does not merge AS4_AGGREGATOR
    (see test_as4_aggregator_is_merged_without_as_path)."""
    path = draw(st.lists(segments, max_size=4) if not as4 else st.none() | st.lists(segments, max_size=4))
    origin = draw(st.sampled_from([None, 0, 1, 2, "IGP", "EGP", "INCOMPLETE"]))
    med, local_pref = draw(st.none() | u32), draw(st.none() | u32)
    aggregator = draw(st.none() | st.tuples(asns, ipv4))
    communities = draw(st.lists(st.tuples(u16, u16), max_size=5))
    large = draw(st.lists(st.tuples(u32, u32, u32), max_size=3))
    ext = draw(st.lists(ext_communities, max_size=3))
    atomic = draw(st.booleans())
    attrs = Attributes(
        as_path=path,
        next_hop=next_hop,
        origin=origin,
        med=med,
        local_pref=local_pref,
        atomic_aggregate=atomic,
        aggregator=aggregator,
        communities=communities,
        large_communities=large,
        ext_communities=[written for written, _ in ext],
        link_local=link_local,
        mp_next_hop=mp_next_hop,
        other=draw(st.lists(unknown_attributes, max_size=2)),
    )
    origin_code = {"IGP": 0, "EGP": 1, "INCOMPLETE": 2}.get(origin, origin)
    last = path[-1] if path else None
    expected = dict(
        as_path=None if path is None else path_text(path),
        origin_asn=last.asns[-1] if last is not None and last.type == AS_SEQUENCE else None,
        origin=None if origin_code is None else ["IGP", "EGP", "INCOMPLETE"][origin_code],
        local_pref=local_pref,
        med=med,
        communities=" ".join(community_text(a, v) for a, v in communities) or None,
        large_communities=" ".join(f"{a}:{b}:{c}" for a, b, c in large) or None,
        ext_communities=" ".join(text for _, text in ext) or None,
        atomic_aggregate=atomic,
        aggregator_asn=aggregator[0] if aggregator else None,
        aggregator_address=aggregator[1] if aggregator else None,
    )
    return attrs, expected


def path_text(path: list[AsPathSegment]) -> str:
    return " ".join(
        " ".join(map(str, s.asns)) if s.type == AS_SEQUENCE else "{" + ",".join(map(str, s.asns)) + "}"
        for s in path
    )


@st.composite
def update_records(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Keyword arguments of one MrtWriter.update call and the elements it should decode to."""
    session = draw(
        st.builds(Session, ipv4, asns, ipv4, asns, u16) | st.builds(Session, ipv6, asns, ipv6, asns, u16)
    )
    as4, addpath, local = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    usec = draw(st.none() | st.integers(0, 999_999))
    ann4, ann6 = draw(st.lists(ipv4_prefixes, max_size=3)), draw(st.lists(ipv6_prefixes, max_size=3))
    wd4, wd6 = draw(st.lists(ipv4_prefixes, max_size=3)), draw(st.lists(ipv6_prefixes, max_size=3))
    mp_ipv4 = not ann6 and not wd6 and draw(st.booleans())
    nh4, nh6 = draw(ipv4), draw(ipv6)
    attrs, fields = None, {}
    if ann4 or ann6:
        attrs, fields = draw(
            attribute_sets(
                next_hop=nh4 if ann4 else nh6,
                mp_next_hop=nh6 if ann4 and ann6 else None,
                link_local=draw(st.none() | link_local) if ann6 else None,
                as4=as4,
            )
        )

    def with_ids(prefixes: list[str]) -> list[tuple[str, int | None]]:
        return [(p, draw(u32) if addpath else None) for p in prefixes]

    ann4_ids, ann6_ids, wd4_ids, wd6_ids = with_ids(ann4), with_ids(ann6), with_ids(wd4), with_ids(wd6)
    ts = draw(st.integers(0, 2**32 - 1))
    common = dict(
        record_type=record_type_name(usec is not None, local, addpath),
        timestamp=ts * 1_000_000 + (usec or 0),
        peer_address=session.peer_ip,
        peer_asn=session.peer_asn if as4 or session.peer_asn <= 0xFFFF else AS_TRANS,
        safi=1,
        originated=None,
    )
    no_attributes = dict.fromkeys(ATTRIBUTE_FIELDS)
    expected = [
        dict(type="W", prefix=p, path_id=pid, **common, **no_attributes) for p, pid in wd4_ids + wd6_ids
    ]
    expected += [
        dict(type="A", prefix=p, path_id=pid, next_hop=nh4, **common, **fields) for p, pid in ann4_ids
    ]
    expected += [
        dict(type="A", prefix=p, path_id=pid, next_hop=nh6, **common, **fields) for p, pid in ann6_ids
    ]
    kwargs = dict(
        ts=ts,
        session=session,
        announce=[(p, pid) if addpath else p for p, pid in ann4_ids + ann6_ids],
        withdraw=[(p, pid) if addpath else p for p, pid in wd4_ids + wd6_ids],
        attributes=attrs,
        as4=as4,
        addpath=addpath,
        local=local,
        et_usec=usec,
        mp_ipv4=mp_ipv4,
    )
    return kwargs, expected


PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def compare_rows(rows: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert {k: row[k] for k in want} == want


@PROPERTY_SETTINGS
@given(st.lists(update_records(), min_size=1, max_size=4))
def test_random_updates_round_trip(tmp_path: Path, bgpdump_bin: str, updates: list[Any]) -> None:
    path = tmp_path / "updates.mrt"
    with open_for_write(path) as w:
        for kwargs, _ in updates:
            w.update(**kwargs)
    rows = decode_both(path, bgpdump_bin)
    compare_rows(rows, [e for _, expected in updates for e in expected])


@st.composite
def rib_dumps(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """A peer index table, RIB records, and the elements they should decode to."""
    peers = draw(
        st.lists(st.builds(Peer, ipv4 | ipv6, asns, ipv4), min_size=1, max_size=4, unique_by=lambda p: p.ip)
    )
    ts = draw(st.integers(0, 2**32 - 1))
    index = dict(
        ts=ts, peers=peers, collector_id=draw(ipv4), view=draw(st.text(max_size=8)), as4=draw(st.booleans())
    )
    ribs, expected = [], []
    for _ in range(draw(st.integers(1, 4))):
        v6 = draw(st.booleans())
        prefix = draw(ipv6_prefixes if v6 else ipv4_prefixes)
        addpath, multicast = draw(st.booleans()), draw(st.booleans())
        entries = []
        for _ in range(draw(st.integers(0, 3))):
            peer = draw(st.sampled_from(peers))
            next_hop = draw(ipv6) if v6 else draw(st.none() | ipv4)
            attrs, fields = draw(
                attribute_sets(next_hop=next_hop, link_local=draw(st.none() | link_local) if v6 else None)
            )
            originated = draw(st.none() | u32)
            path_id = draw(u32) if addpath else None
            entries.append(RibEntry(peer, attrs, originated, path_id))
            expected.append(
                dict(type="R", record_type="TABLE_DUMP2_AP" if addpath else "TABLE_DUMP2",
                     timestamp=ts * 1_000_000, peer_address=peer.ip, peer_asn=peer.asn, prefix=prefix,
                     path_id=path_id, next_hop=next_hop, originated=ts if originated is None else originated,
                     safi=2 if multicast else 1, **fields)
            )  # fmt: skip
        ribs.append(dict(ts=ts, prefix=prefix, entries=entries, multicast=multicast, addpath=addpath))
    return index, ribs, expected


@PROPERTY_SETTINGS
@given(rib_dumps())
def test_random_rib_dumps_round_trip(tmp_path: Path, bgpdump_bin: str, dump: Any) -> None:
    index, ribs, expected = dump
    path = tmp_path / "rib.mrt"
    with open_for_write(path) as w:
        w.peer_index_table(**index)
        for rib in ribs:
            w.rib(**rib)
    rows = decode_both(path, bgpdump_bin)
    compare_rows(rows, expected)
