"""Fuzzing the MRT reader with hypothesis: random bytes, and real records (sliced from the shared
files) mutated, truncated and concatenated.

Properties: no exception escapes; every input is decoded quickly; the counters agree with the
batches and the issues; the bgpdump column stays aligned with the element columns; how the stream
is cut into chunks changes nothing; and well-formed records, in any mix, decode as bgpdump
decodes them and as each decodes alone.

The default run is bounded (about 200 examples per property); for a longer one set
``TRANSITWATCH_FUZZ_EXAMPLES``, e.g. ``TRANSITWATCH_FUZZ_EXAMPLES=20000 pytest tests/test_mrt_fuzz.py``.
"""

from __future__ import annotations

import faulthandler
import functools
import gzip
import ipaddress
import itertools
import os
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import mrt_files
from transitwatch.mrt import SCHEMA_WITH_BGPDUMP, MrtReader

EXAMPLES = int(os.environ.get("TRANSITWATCH_FUZZ_EXAMPLES", "200"))
#: an input of a few kilobytes decodes in well under a millisecond; this is the bound per example
DEADLINE = timedelta(seconds=2)
#: a decoder stuck in a loop would hang the run: past this, stop the process with tracebacks instead
HANG_SECONDS = 120 + EXAMPLES * DEADLINE.total_seconds() / 4

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: how much of each shared file the corpus is sliced from (its first records)
CORPUS_PREFIX_BYTES = 256 * 1024
RECORDS_PER_KIND = 3
#: bigger units (a 4,096-prefix withdrawal, full peer tables) make examples slow and add little
MAX_UNIT_BYTES = 4096


# ------------------------------------------------------------------------------------------------
# the corpus: real records, each with what it needs to be decoded alone


def _records(data: bytes) -> list[tuple[int, int]]:
    """Complete records of ``data`` by their headers' lengths, stopping at the first that is not a
    known MRT type or runs past the end (the damaged rrc00 file's first damaged record)."""
    records = []
    pos = 0
    while pos + 12 <= len(data):
        _, rtype, _, length = struct.unpack_from(">IHHI", data, pos)
        end = pos + 12 + length
        if rtype not in (5, 12, 13, 16, 17) or end > len(data):
            break
        records.append((pos, end))
        pos = end
    return records


def _as_extended_time(record: bytes, microseconds: int) -> bytes:
    """A BGP4MP record rewritten as BGP4MP_ET: the same body after a microsecond field."""
    ts, _, subtype, length = struct.unpack_from(">IHHI", record)
    return struct.pack(">IHHII", ts, 17, subtype, length + 4, microseconds) + record[12:]


@functools.cache
def corpus() -> tuple[bytes, ...]:
    """Units that decode on their own: one record, or a RIB record after its PEER_INDEX_TABLE."""
    units: list[bytes] = []
    for path in mrt_files():
        with open(path, "rb") as fh:
            compressed = fh.read(2) == b"\x1f\x8b"
        with gzip.open(path) if compressed else open(path, "rb") as fh:
            data = fh.read(CORPUS_PREFIX_BYTES)
        by_kind: dict[tuple[int, int], list[bytes]] = {}
        peer_index = b""
        for lo, hi in _records(data):
            _, rtype, subtype = struct.unpack_from(">IHH", data, lo)
            record = data[lo:hi]
            if (rtype, subtype) == (13, 1):
                peer_index = record
                continue
            unit = peer_index + record if rtype == 13 else record
            kind = by_kind.setdefault((rtype, subtype), [])
            if len(kind) < RECORDS_PER_KIND and len(unit) <= MAX_UNIT_BYTES:
                kind.append(unit)
        for kind_units in by_kind.values():
            units.extend(kind_units)
        # microsecond timestamps: no shared file has them, so derive some from real BGP4MP records
        for (rtype, _), kind_units in by_kind.items():
            if rtype == 16 and kind_units:
                # both ends of the microsecond range, alternately
                units.append(_as_extended_time(kind_units[0], 999_999 if len(units) % 2 else 1))
    assert len(units) > 50, "the shared MRT files are missing or unreadable"
    return tuple(units)


# ------------------------------------------------------------------------------------------------
# decoding and the properties every decode must have


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def decode(path: Path, *, bgpdump: bool = True) -> tuple[list[dict[str, Any]], MrtReader]:
    reader = MrtReader(path, bgpdump=bgpdump)
    rows: list[dict[str, Any]] = []
    for batch in reader.batches():
        batch.validate(full=True)  # buffers, offsets and lengths of every column agree
        if bgpdump:
            assert batch.schema == SCHEMA_WITH_BGPDUMP
            assert len(batch.column("bgpdump")) == batch.num_rows
        rows.extend(batch.to_pylist())
    return rows, reader


COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh")
BGPDUMP_TYPES = {"B": "R", "A": "A", "W": "W", "STATE": "S"}


def assert_line_is_the_row(line: str, row: dict[str, Any]) -> None:
    """The bgpdump text of a row describes that row (not a neighbour's)."""
    fields = line.split("|")
    assert fields[0] == row["record_type"], (line, row)
    assert BGPDUMP_TYPES[fields[2]] == row["type"], (line, row)
    assert int(fields[4]) == row["peer_asn"], (line, row)
    # bgpdump prints 0.0.0.0 where a (Zebra-shortened) record has no peer address, and IPv6
    # addresses as its inet_ntop does, not always in RFC 5952's form
    peer = row["peer_address"] or "0.0.0.0"
    assert fields[3] == peer or ipaddress.ip_address(fields[3]) == ipaddress.ip_address(peer), (line, row)
    seconds, _, micros = fields[1].partition(".")
    printed = datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=int(micros or 0))
    assert printed == row["timestamp"], (line, row)


def check_decode(data: bytes, path: Path) -> tuple[list[dict[str, Any]], MrtReader]:
    """Decode ``data`` and check every property that holds whatever the bytes are."""
    path.write_bytes(data)
    rows, reader = decode(path)
    stats, issues = reader.stats, reader.issues

    assert stats["elements"] == len(rows)
    # the decoder counts its own issues; "error" issues are the reader's (the input could not be read)
    from_decoder = [i for i in issues if i.severity != "error"]
    assert stats["issues"] == len(from_decoder) + stats["issues_not_kept"]
    damaged = sorted((i.offset, i.skipped_bytes) for i in issues if i.severity == "damaged")
    if not stats["issues_not_kept"]:
        assert stats["damaged_records"] == len(damaged)
        assert stats["skipped_bytes"] == sum(n for _, n in damaged)
    if data.startswith(COMPRESSED_MAGIC):
        # fuzzing the decompressors too: offsets count decompressed bytes, and a broken stream is an error
        assert all(i.severity != "error" or i.offset is not None for i in issues), issues
    else:
        assert {i.severity for i in issues} <= {"damaged", "unsupported", "warning"}, issues
        assert all(i.offset is not None and 0 <= i.offset <= len(data) for i in issues), issues
        assert stats["skipped_bytes"] <= len(data)
        end = 0
        for offset, skipped in damaged:  # skipped ranges are disjoint and inside the input
            assert offset >= end and offset + skipped <= len(data), damaged
            end = offset + skipped

    for row in rows:
        if row["bgpdump"] is not None:
            assert_line_is_the_row(row["bgpdump"], row)
    # the optional text column changes nothing else
    plain_rows, plain_reader = decode(path, bgpdump=False)
    assert plain_rows == [{k: v for k, v in row.items() if k != "bgpdump"} for row in rows]
    assert plain_reader.issues == issues
    return rows, reader


# ------------------------------------------------------------------------------------------------
# strategies


def units() -> st.SearchStrategy[list[bytes]]:
    return st.lists(st.sampled_from(corpus()), min_size=1, max_size=6)


POSITION = st.integers(min_value=0, max_value=2**31)
MUTATION = st.one_of(
    st.tuples(st.just("flip"), POSITION, st.integers(0, 7)),
    st.tuples(st.just("insert"), POSITION, st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("delete"), POSITION, st.integers(1, 64)),
    st.tuples(st.just("truncate"), POSITION),
)
# a record's length field: a little off, or anything at all
LENGTH_CHANGE = st.tuples(POSITION, st.one_of(st.integers(-40, 40), st.integers(0, 2**32 - 1)))


def mutate(
    parts: list[bytes], length_changes: list[tuple[int, int]], mutations: list[tuple[Any, ...]]
) -> bytes:
    data = bytearray(b"".join(parts))
    starts = []
    pos = 0
    while pos + 12 <= len(data):
        starts.append(pos)
        pos += 12 + struct.unpack_from(">I", data, pos + 8)[0]
    for which, change in length_changes:
        at = starts[which % len(starts)] + 8
        (length,) = struct.unpack_from(">I", data, at)
        struct.pack_into(">I", data, at, (length + change) % 2**32)
    for kind, position, *arg in mutations:
        at = position % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << arg[0]
        elif kind == "insert":
            data[at:at] = arg[0]
        elif kind == "delete":
            del data[at : at + arg[0]]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


@contextmanager
def scratch() -> Iterator[Path]:
    # hypothesis runs many examples per test, so function-scoped tmp_path will not do
    with tempfile.TemporaryDirectory(prefix="transitwatch-fuzz-") as tmp:
        yield Path(tmp)


# ------------------------------------------------------------------------------------------------
# properties


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    with scratch() as tmp:
        check_decode(data, tmp / "random.mrt")


@FUZZ
@given(
    parts=units(),
    length_changes=st.lists(LENGTH_CHANGE, max_size=2),
    mutations=st.lists(MUTATION, max_size=4),
)
def test_mutated_records(
    parts: list[bytes], length_changes: list[tuple[int, int]], mutations: list[Any]
) -> None:
    with scratch() as tmp:
        check_decode(mutate(parts, length_changes, mutations), tmp / "mutated.mrt")


@FUZZ
@given(
    parts=units(),
    length_changes=st.lists(LENGTH_CHANGE, max_size=1),
    mutations=st.lists(MUTATION, max_size=3),
    cuts=st.lists(POSITION, max_size=8),
)
def test_chunking_changes_nothing(
    parts: list[bytes], length_changes: list[tuple[int, int]], mutations: list[Any], cuts: list[int]
) -> None:
    # Each gzip member reaches the decoder as a chunk of its own, so members cut at arbitrary points
    # feed it the same bytes in arbitrary pieces.
    data = mutate(parts, length_changes, mutations)
    assume(not data.startswith(COMPRESSED_MAGIC))  # as a plain file, that would be read as compressed
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    members = b"".join(gzip.compress(data[a:b]) for a, b in itertools.pairwise(points))
    with scratch() as tmp:
        rows, reader = check_decode(data, tmp / "whole.mrt")
        (tmp / "chunked.mrt.gz").write_bytes(members or gzip.compress(b""))
        chunked_rows, chunked = decode(tmp / "chunked.mrt.gz")
    assert chunked_rows == rows
    assert [(i.offset, i.severity, i.reason, i.skipped_bytes) for i in chunked.issues] == [
        (i.offset, i.severity, i.reason, i.skipped_bytes) for i in reader.issues
    ]
    assert chunked.stats == reader.stats


@FUZZ
@given(parts=units())
def test_well_formed_records_decode_as_bgpdump_and_alone(bgpdump_bin: str, parts: list[bytes]) -> None:
    with scratch() as tmp:
        rows, reader = check_decode(b"".join(parts), tmp / "mix.mrt")
        assert not [i for i in reader.issues if i.severity == "damaged"], reader.issues
        alone = []
        for n, part in enumerate(parts):
            (tmp / f"part{n}.mrt").write_bytes(part)
            alone.extend(decode(tmp / f"part{n}.mrt")[0])
        assert rows == alone
        proc = subprocess.run(
            [bgpdump_bin, "-m", str(tmp / "mix.mrt")], capture_output=True, text=True, check=True, timeout=30
        )
    assert [row["bgpdump"] for row in rows if row["bgpdump"] is not None] == proc.stdout.splitlines()


def test_corpus_covers_every_record_kind() -> None:
    """The fuzzers draw from every kind of record in the shared files (and BGP4MP_ET)."""
    kinds = set()
    for unit in corpus():
        pos = 0
        while pos < len(unit):
            _, rtype, subtype, length = struct.unpack_from(">IHHI", unit, pos)
            kinds.add((rtype, subtype))
            pos += 12 + length
    assert {(5, 1), (12, 1), (13, 1), (13, 2), (13, 4), (13, 8), (16, 0), (16, 1), (16, 4)} <= kinds
    assert {(16, 5), (17, 1), (17, 4)} <= kinds
