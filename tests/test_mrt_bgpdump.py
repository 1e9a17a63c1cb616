"""Every real MRT file (outside damaged/) decodes to exactly what `bgpdump -m` prints for it.

The expected output is the ``X.bgp.gz`` beside each file ``X`` (bgpdump 1.6.2's own output), compared
line for line; the reader's counters are checked against an independent walk of the MRT headers.
"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import mrt_files
from transitwatch.mrt import MrtReader

CLEAN_FILES = [p for p in mrt_files() if p.parent.name != "damaged"]
CONSOLE_SCRIPT = Path(sys.executable).with_name("transitwatch")


def file_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def expected_lines(path: Path) -> list[str]:
    with gzip.open(f"{path}.bgp.gz", "rt", encoding="utf-8") as fh:
        return fh.read().splitlines()


def decompressed(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def record_count(data: bytes) -> int:
    """Records found by walking the 12-byte MRT headers by their declared lengths."""
    count = pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos + 8)
        pos += 12 + length
        count += 1
    assert pos == len(data), f"the last record overruns the file by {pos - len(data)} bytes"
    return count


def assert_same_lines(ours: list[str], theirs: list[str], what: str) -> None:
    """Every line compared; on failure, show the first lines that differ (not a 100k-line diff)."""
    if ours == theirs:
        return
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if a != b:
            pytest.fail(
                f"{what}: first difference at line {i + 1} "
                f"(ours has {len(ours)} lines, bgpdump {len(theirs)})\n  ours:    {a}\n  bgpdump: {b}"
            )
    shorter, longer, who = (ours, theirs, "bgpdump") if len(ours) < len(theirs) else (theirs, ours, "ours")
    pytest.fail(
        f"{what}: identical for {len(shorter)} lines, then only {who} goes on "
        f"({len(longer) - len(shorter)} more), starting with\n  {longer[len(shorter)]}"
    )


@pytest.mark.parametrize("path", CLEAN_FILES, ids=file_id)
def test_reader_output_is_bgpdumps(path: Path) -> None:
    seen = []
    reader = MrtReader(path, bgpdump=True, on_issue=seen.append)
    lines: list[str] = []
    rows = 0
    for batch in reader.batches():
        rows += batch.num_rows
        lines.extend(line for line in batch.column("bgpdump").to_pylist() if line is not None)

    assert_same_lines(lines, expected_lines(path), file_id(path))
    stats = reader.stats
    assert stats["elements"] == rows
    assert stats["damaged_records"] == 0
    assert stats["skipped_bytes"] == 0
    assert [i for i in reader.issues if i.severity in ("damaged", "error")] == []
    assert seen == reader.issues, "on_issue must see every issue the reader keeps"
    # every record was decoded or reported as not decodable, none lost
    assert stats["records"] == record_count(decompressed(path))


def test_console_script_prints_bgpdumps_output_for_every_file() -> None:
    assert CONSOLE_SCRIPT.exists(), f"{CONSOLE_SCRIPT} missing: is the package installed in this environment?"
    proc = subprocess.run(
        [str(CONSOLE_SCRIPT), "dump", "--format", "bgpdump", "-q", *map(str, CLEAN_FILES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    # with several inputs the output is each file's output in turn
    expected = [line for path in CLEAN_FILES for line in expected_lines(path)]
    assert_same_lines(proc.stdout.splitlines(), expected, "transitwatch dump (all files)")
