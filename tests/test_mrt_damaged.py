"""Damaged MRT data: every damaged record is reported (file, byte offset, reason), skipped, and
reading goes on, recovering at least every element bgpdump recovers.

Nothing here is compared with numbers our reader produced earlier: the references are the real
``bgpdump -m`` run on byte ranges of the same files, an independent walk of the 12-byte MRT headers,
and, for synthetic damage, our own decoding of the undamaged parts of the file.
"""

from __future__ import annotations

import gzip
import random
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.conftest import MRT_DIR
from transitwatch.model import SourceIssue
from transitwatch.mrt import SCHEMA_WITH_BGPDUMP, MrtReader

RRC00 = MRT_DIR / "damaged" / "updates.20000325.0345.rrc00.gz"
RRC01 = MRT_DIR / "damaged" / "updates.20001104.0124.rrc01.gz"
DAMAGED_FILES = [RRC00, RRC01]

Rows = list[dict[str, Any]]


# ------------------------------------------------------------------------------------------------
# helpers


def decompressed(path: Path) -> bytes:
    with gzip.open(path) as fh:
        return fh.read()


def header(data: bytes, offset: int) -> tuple[int, int, int, int]:
    """(timestamp, type, subtype, length) of the MRT header at ``offset``."""
    return struct.unpack_from(">IHHI", data, offset)


def walk(data: bytes, start: int = 0) -> list[tuple[int, int]]:
    """Records as bgpdump reads them: from ``start``, each 12-byte header's declared length leads to
    the next. A record that runs past the end of the data is cut there (bgpdump reads no further)."""
    records = []
    pos = start
    while pos + 12 <= len(data):
        end = pos + 12 + header(data, pos)[3]
        records.append((pos, min(end, len(data))))
        pos = end
    if pos < len(data):  # a partial header at the end
        records.append((pos, len(data)))
    return records


def boundaries(data: bytes, start: int) -> set[int]:
    """Every offset the header walk from ``start`` lands on (record starts and the final end)."""
    out = {start}
    pos = start
    while pos + 12 <= len(data):
        pos += 12 + header(data, pos)[3]
        out.add(pos)
    return out


def run_bgpdump(bgpdump_bin: str, data: bytes, path: Path) -> list[str]:
    path.write_bytes(data)
    proc = subprocess.run(
        [bgpdump_bin, "-m", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    return proc.stdout.splitlines()


def read(path: Path) -> tuple[list[str], MrtReader, list[SourceIssue]]:
    """bgpdump-format lines, the reader (stats, issues) and the issues seen by on_issue."""
    seen: list[SourceIssue] = []
    reader = MrtReader(path, bgpdump=True, on_issue=seen.append)
    lines: list[str] = []
    for batch in reader.batches():
        lines.extend(line for line in batch.column("bgpdump").to_pylist() if line is not None)
    return lines, reader, seen


def damaged_issues(reader: MrtReader) -> list[SourceIssue]:
    return [i for i in reader.issues if i.severity == "damaged"]


def assert_in_order(needles: list[str], haystack: list[str], what: str) -> None:
    """Every line of ``needles`` appears in ``haystack``, in the same order (a subsequence)."""
    pos = 0
    for n, line in enumerate(needles):
        try:
            pos = haystack.index(line, pos) + 1
        except ValueError:
            pytest.fail(
                f"{what}: line {n + 1} of {len(needles)} is missing from our output "
                f"(searched from our line {pos + 1} of {len(haystack)}):\n  {line}"
            )


def first_row_difference(ours: Rows, expected: Rows) -> str:
    for i, (a, b) in enumerate(zip(ours, expected, strict=False)):
        if a != b:
            return f"row {i}: ours {a.get('bgpdump')!r}, expected {b.get('bgpdump')!r}"
    return f"ours has {len(ours)} rows, expected {len(expected)}"


# ------------------------------------------------------------------------------------------------
# (a) the real damaged files: each damaged record reported with file, byte offset and reason


def test_each_damaged_record_is_reported_with_file_offset_and_reason() -> None:
    data = decompressed(RRC00)
    _, reader, seen = read(RRC00)  # must not raise
    damaged = damaged_issues(reader)
    # the data README: "two damaged MRT record boundaries"
    assert len(damaged) == 2, reader.issues
    assert seen == reader.issues
    for issue in damaged:
        assert issue.source == str(RRC00)
        assert issue.reason
        assert issue.offset is not None and 0 <= issue.offset < len(data)
        assert issue.skipped_bytes > 0
        assert f"{RRC00} at byte {issue.offset}" in str(issue) and issue.reason in str(issue)
    # The skipped ranges and the spans between them must tile the file: walking the headers from the
    # start (or from where reading resumed) lands exactly on the next damaged record, the damaged
    # record's declared length leads elsewhere, and the walk from the last resumption ends exactly
    # at the end of the file.
    resume = 0
    for issue in damaged:
        assert issue.offset in boundaries(data, resume), f"{issue} is not at a record boundary"
        resumed = issue.offset + issue.skipped_bytes
        declared_end = issue.offset + 12 + header(data, issue.offset)[3]
        assert declared_end not in boundaries(data, resumed), f"{issue}: its declared length fits the framing"
        resume = resumed
    assert len(data) in boundaries(data, resume)
    assert reader.stats["damaged_records"] == len(damaged)
    assert reader.stats["skipped_bytes"] == sum(i.skipped_bytes for i in damaged)


# ------------------------------------------------------------------------------------------------
# (b) at least every element bgpdump recovers


@pytest.mark.parametrize("path", DAMAGED_FILES, ids=lambda p: p.name)
def test_intact_spans_decode_as_bgpdump_decodes_them(path: Path, bgpdump_bin: str, tmp_path: Path) -> None:
    data = decompressed(path)
    ours, reader, _ = read(path)
    skipped = sorted((i.offset, i.offset + i.skipped_bytes) for i in damaged_issues(reader))
    spans = []
    start = 0
    for lo, hi in skipped:
        assert start <= lo, f"skipped ranges overlap: {skipped}"
        spans.append((start, lo))
        start = hi
    spans.append((start, len(data)))
    theirs: list[str] = []
    for n, (lo, hi) in enumerate(spans):
        span_lines = run_bgpdump(bgpdump_bin, data[lo:hi], tmp_path / f"span{n}.mrt")
        assert_in_order(span_lines, ours, f"bgpdump's lines for bytes {lo}-{hi}")
        theirs.extend(span_lines)
    # the skipped bytes add nothing of their own
    assert ours == theirs, "our output has lines bgpdump does not print for the intact spans"


@pytest.mark.parametrize("path", DAMAGED_FILES, ids=lambda p: p.name)
def test_output_contains_bgpdumps_except_for_damaged_records(
    path: Path, bgpdump_bin: str, tmp_path: Path
) -> None:
    data = decompressed(path)
    ours, reader, _ = read(path)
    whole = run_bgpdump(bgpdump_bin, data, tmp_path / "whole.mrt")
    with gzip.open(f"{path}.bgp.gz", "rt") as fh:
        assert whole == fh.read().splitlines(), "the installed bgpdump is not the one the reference came from"

    damaged_ranges = [(i.offset, i.offset + i.skipped_bytes) for i in damaged_issues(reader)]

    def reported_damaged(record: tuple[int, int]) -> bool:
        return any(lo <= record[0] < hi for lo, hi in damaged_ranges)

    # Attribute bgpdump's lines to the records it reads: runs of records we do not report as damaged
    # are decoded together (one bgpdump run each), the others one by one.
    groups: list[tuple[bool, int, int]] = []
    for record in walk(data):
        bad = reported_damaged(record)
        if groups and not bad and not groups[-1][0]:
            groups[-1] = (False, groups[-1][1], record[1])
        else:
            groups.append((bad, *record))
    attributed: list[str] = []
    kept: list[str] = []
    for n, (bad, lo, hi) in enumerate(groups):
        lines = run_bgpdump(bgpdump_bin, data[lo:hi], tmp_path / f"group{n}.mrt")
        attributed.extend(lines)
        if not bad:
            kept.extend(lines)
    assert attributed == whole, "bgpdump's lines could not be attributed to its records"
    assert_in_order(kept, ours, "bgpdump's output outside the records we report as damaged")


# ------------------------------------------------------------------------------------------------
# (c) the Zebra workarounds of the rrc01 file


def test_zebra_workarounds_are_warnings_not_drops(bgpdump_bin: str, tmp_path: Path) -> None:
    data = decompressed(RRC01)
    records = walk(data)
    # the framing is intact: the header walk ends exactly at the end of the file
    assert records[-1][1] == len(data) and len(data) in boundaries(data, 0)
    zebra = []
    for lo, _hi in records:
        _, rtype, subtype, length = header(data, lo)
        body = data[lo + 12 : lo + 12 + length]
        # 8-byte STATE_CHANGE: no interface index, AFI or addresses
        shortened_state = (rtype, subtype, length) == (16, 0, 8)
        # BGP4MP_MESSAGE whose BGP marker follows the two AS numbers directly
        shortened_message = (rtype, subtype) == (16, 1) and body[4:20] == b"\xff" * 16
        if shortened_state or shortened_message:
            zebra.append(lo)
    assert zebra, "no Zebra-shortened records found: wrong file?"

    ours, reader, _ = read(RRC01)
    assert damaged_issues(reader) == []
    assert reader.stats["damaged_records"] == 0 and reader.stats["skipped_bytes"] == 0
    warnings = [i for i in reader.issues if i.severity == "warning"]
    assert sorted(i.offset for i in warnings) == zebra
    assert reader.stats["warnings"] == len(warnings)
    assert ours == run_bgpdump(bgpdump_bin, data, tmp_path / "whole.mrt")
    # and what bgpdump makes of those records alone is in our output
    alone = run_bgpdump(
        bgpdump_bin, b"".join(data[lo:hi] for lo, hi in records if lo in zebra), tmp_path / "z.mrt"
    )
    assert alone, "bgpdump prints nothing for the Zebra records: nothing to compare"
    assert_in_order(alone, ours, "bgpdump's lines for the Zebra records")


# ------------------------------------------------------------------------------------------------
# (d) synthetic damage on real files

UPDATES = MRT_DIR / "ris" / "updates.20100722.2015.gz"
RIB = MRT_DIR / "routeviews" / "rib.20140523.0600_firstMB.trimmed.gz"
RIB_RECORDS = 300  # the first records of the RIB (its PEER_INDEX_TABLE first): enough, and fast


@dataclass(frozen=True)
class Damage:
    """A damaged copy of the data and where the damage is.

    ``first``/``after``: the records [first, after) of the original that the damage touches; all others
    must be decoded as in the undamaged file. ``region``: the damaged bytes in the damaged copy, from
    the start of the first touched record to the end of the last one (or of the inserted bytes).
    """

    data: bytes
    first: int
    after: int
    region: tuple[int, int]


def _set_length(data: bytes, recs: list[tuple[int, int]], k: int, length: int) -> Damage:
    lo, hi = recs[k]
    return Damage(data[: lo + 8] + struct.pack(">I", length) + data[lo + 12 :], k, k + 1, (lo, hi))


def length_larger(data: bytes, recs: list[tuple[int, int]], k: int) -> Damage:
    return _set_length(data, recs, k, recs[k][1] - recs[k][0] - 12 + 7)


def length_much_larger(data: bytes, recs: list[tuple[int, int]], k: int) -> Damage:
    return _set_length(data, recs, k, recs[k][1] - recs[k][0] - 12 + 5000)


def length_smaller(data: bytes, recs: list[tuple[int, int]], k: int) -> Damage:
    return _set_length(data, recs, k, recs[k][1] - recs[k][0] - 12 - 7)


def implausible_header(data: bytes, recs: list[tuple[int, int]], k: int) -> Damage:
    lo, hi = recs[k]
    return Damage(data[: lo + 4] + b"\x77\x77" + data[lo + 6 :], k, k + 1, (lo, hi))


def zeroed(data: bytes, recs: list[tuple[int, int]], k: int) -> Damage:
    """Zeros from the middle of record k to the end of the next record's header."""
    lo, hi = recs[k]
    start, stop = (lo + hi) // 2, hi + 12
    return Damage(data[:start] + bytes(stop - start) + data[stop:], k, k + 2, (lo, recs[k + 1][1]))


def cut_short(data: bytes, recs: list[tuple[int, int]], k: int) -> Damage:
    """Record k loses its last 5 bytes; the next record follows at once."""
    lo, hi = recs[k]
    return Damage(data[: hi - 5] + data[hi:], k, k + 1, (lo, hi - 5))


def garbage_inserted(data: bytes, recs: list[tuple[int, int]], k: int) -> Damage:
    """37 random bytes between record k and the next."""
    hi = recs[k][1]
    garbage = random.Random(k).randbytes(37)
    return Damage(data[:hi] + garbage + data[hi:], k + 1, k + 1, (hi, hi + len(garbage)))


def file_cut_in_last_record(data: bytes, recs: list[tuple[int, int]], k: int) -> Damage:
    """The file ends in the middle of record k, its last."""
    lo, hi = recs[k]
    assert k == len(recs) - 1
    cut = (lo + hi) // 2
    return Damage(data[:cut], k, k + 1, (lo, cut))


DAMAGES: dict[str, Callable[[bytes, list[tuple[int, int]], int], Damage]] = {
    f.__name__: f
    for f in (
        length_larger,
        length_much_larger,
        length_smaller,
        implausible_header,
        zeroed,
        cut_short,
        garbage_inserted,
        file_cut_in_last_record,
    )
}

# (damage, where): every kind of damage in the middle of the file, plus a length that runs past the end
SITUATIONS = [(name, "middle") for name in DAMAGES if name != "file_cut_in_last_record"]
SITUATIONS += [("file_cut_in_last_record", "last"), ("length_much_larger", "second_to_last")]
CASES = [
    pytest.param(
        source,
        name,
        where,
        id=f"{source}-{name}-{where}",
    )
    for source in ("updates", "rib")
    for name, where in SITUATIONS
]


@pytest.fixture(scope="module")
def originals() -> dict[str, tuple[bytes, list[tuple[int, int]]]]:
    updates = decompressed(UPDATES)
    rib_all = decompressed(RIB)
    rib_records = walk(rib_all)[:RIB_RECORDS]
    rib = rib_all[: rib_records[-1][1]]
    out = {"updates": (updates, walk(updates)), "rib": (rib, rib_records)}
    for data, recs in out.values():
        assert recs[-1][1] == len(data)
    return out


DECODED_SCHEMA = pa.schema(
    [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in SCHEMA_WITH_BGPDUMP]
)


def decode(data: bytes, path: Path) -> tuple[pa.Table, MrtReader]:
    """All elements as one table, dictionary columns decoded so that tables compare by value."""
    path.write_bytes(data)
    reader = MrtReader(path, bgpdump=True)
    batches = [
        pa.RecordBatch.from_arrays(
            [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns],
            schema=DECODED_SCHEMA,
        )
        for batch in reader.batches()
    ]
    return pa.Table.from_batches(batches, schema=DECODED_SCHEMA).combine_chunks(), reader


def assert_same_elements(ours: pa.Table, expected: pa.Table, what: str) -> None:
    if expected.num_rows == 0:
        return
    if ours.num_rows == expected.num_rows and ours.equals(expected):
        return
    mine, theirs = ours.to_pylist(), expected.to_pylist()
    pytest.fail(f"{what}: {first_row_difference(mine, theirs)}")


@pytest.mark.parametrize(("source", "damage_name", "where"), CASES)
def test_synthetic_damage_is_reported_and_skipped(
    originals: dict[str, tuple[bytes, list[tuple[int, int]]]],
    source: str,
    damage_name: str,
    where: str,
    tmp_path: Path,
) -> None:
    data, recs = originals[source]
    k = {"middle": len(recs) // 2, "second_to_last": len(recs) - 2, "last": len(recs) - 1}[where]
    damage = DAMAGES[damage_name](data, recs, k)
    # a RIB's entries need its PEER_INDEX_TABLE (record 0), so it heads every piece decoded alone
    table = data[: recs[0][1]] if source == "rib" else b""
    assert damage.first > 0 or not table

    # The reference: the undamaged records before and after the damage, decoded on their own, and
    # checked to be exactly the undamaged file's elements around those of the touched records.
    before, _ = decode(data[: recs[damage.first][0]], tmp_path / "before.mrt")
    tail = data[recs[damage.after - 1][1] :] if damage.after < len(recs) else b""
    after, _ = decode(table + tail if tail else b"", tmp_path / "after.mrt")
    touched, _ = decode(
        table + data[recs[damage.first][0] : recs[damage.after - 1][1]], tmp_path / "touched.mrt"
    )
    full, _ = decode(data, tmp_path / "full.mrt")
    assert full.num_rows == before.num_rows + touched.num_rows + after.num_rows
    assert_same_elements(full.slice(0, before.num_rows), before, "reference, before the damage")
    assert_same_elements(full.slice(full.num_rows - after.num_rows), after, "reference, after the damage")

    rows, reader = decode(damage.data, tmp_path / "damaged.mrt")  # must not raise

    damaged = damaged_issues(reader)
    lo, hi = damage.region
    assert damaged, f"{damage_name}: no damage reported; issues: {reader.issues}"
    assert any(lo <= i.offset <= hi for i in damaged), f"no damage reported in bytes {lo}-{hi}: {damaged}"
    for issue in damaged:
        # skipped bytes are all inside the damaged region: no intact record was skipped
        assert lo <= issue.offset and issue.offset + issue.skipped_bytes <= hi, (
            f"damage reported outside bytes {lo}-{hi}: {issue}"
        )
    assert rows.num_rows >= before.num_rows + after.num_rows, (
        f"{before.num_rows + after.num_rows - rows.num_rows} or more intact elements lost"
    )
    assert_same_elements(rows.slice(0, before.num_rows), before, "records before the damage")
    assert_same_elements(rows.slice(rows.num_rows - after.num_rows), after, "records after the damage")
    assert reader.stats["elements"] == rows.num_rows
