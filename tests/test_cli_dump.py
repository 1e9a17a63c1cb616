"""`transitwatch dump`: JSON lines and Parquet output, the element filters, usage errors and exit status.

Filtered output is checked against the unfiltered JSON lines filtered again here, with the ipaddress
module; times against what bgpdump prints for the same elements.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import re
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from tests.conftest import MRT_DIR
from transitwatch.cli import main

UPDATES = MRT_DIR / "ris" / "updates.20100722.2015.gz"  # IPv4 and IPv6 announcements, withdrawals, states
RIBS = [MRT_DIR / "ris" / "bview.ipv6_unicast_add_path.gz", MRT_DIR / "routers" / "quagga_rib"]
SOURCES = [UPDATES, *RIBS]
DAMAGED = MRT_DIR / "damaged" / "updates.20000325.0345.rrc00.gz"
ZEBRA = MRT_DIR / "damaged" / "updates.20001104.0124.rrc01.gz"

Row = dict[str, Any]
ISO_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
ISO_MICROSECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def dump(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, ["dump", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def jsonl(*args: str | Path) -> list[Row]:
    result = dump("--format", "jsonl", *args)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def iso(when: datetime) -> str:
    """ISO 8601 UTC with Z, microseconds only when there are any: what the JSON output promises."""
    text = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{when.microsecond:06d}Z" if when.microsecond else f"{text}Z"


def bgpdump_fields(path: Path) -> list[list[str]]:
    with gzip.open(f"{path}.bgp.gz", "rt") as fh:
        return [line.split("|") for line in fh.read().splitlines()]


@pytest.fixture(scope="module")
def unfiltered() -> list[Row]:
    rows = jsonl(*SOURCES)
    assert len({r["type"] for r in rows}) == 4, "the inputs should hold all four element types"
    return rows


# ------------------------------------------------------------------------------------------------
# JSON lines and Parquet


def test_jsonl_rows_are_bgpdumps_elements_with_iso_times(unfiltered: list[Row]) -> None:
    expected = [fields for path in SOURCES for fields in bgpdump_fields(path)]
    assert len(unfiltered) == len(expected)  # bgpdump prints every element of these files
    kinds = {"A": "A", "W": "W", "STATE": "S", "B": "R"}
    for row, fields in zip(unfiltered, expected, strict=True):
        assert ISO_SECONDS.fullmatch(row["timestamp"]), row  # whole seconds: no fraction
        assert row["timestamp"] == iso(datetime.fromtimestamp(int(fields[1]), UTC))
        assert (row["record_type"], row["type"], row["peer_asn"]) == (
            fields[0],
            kinds[fields[2]],
            int(fields[4]),
        )
        if row["type"] != "S":
            assert row["prefix"] == fields[5]
        if "originated" in row:
            assert ISO_SECONDS.fullmatch(row["originated"]), row
    assert any("originated" in row for row in unfiltered)


def _extended_time_copy(source: Path, target: Path, microseconds: list[int]) -> None:
    """The first records of a real BGP4MP file rewritten as BGP4MP_ET with the given microseconds."""
    data = gzip.decompress(source.read_bytes())
    out = bytearray()
    pos = 0
    for usec in microseconds:
        ts, _, subtype, length = struct.unpack_from(">IHHI", data, pos)
        out += struct.pack(">IHHII", ts, 17, subtype, length + 4, usec) + data[pos + 12 : pos + 12 + length]
        pos += 12 + length
    target.write_bytes(bytes(out))


def test_jsonl_times_have_microseconds_only_when_present(tmp_path: Path, bgpdump_bin: str) -> None:
    et = tmp_path / "et.mrt"
    _extended_time_copy(
        MRT_DIR / "ris" / "updates.20160811.1600.gz", et, [0, 1, 999_999, 500_000, 0, 123_456]
    )
    rows = jsonl(et)
    printed = subprocess.run([bgpdump_bin, "-m", str(et)], capture_output=True, text=True, check=True).stdout
    times = [line.split("|")[1] for line in printed.splitlines()]
    assert len(rows) == len(times) >= 6
    for row, stamp in zip(rows, times, strict=True):
        seconds, usec = (int(part) for part in stamp.split("."))
        if usec:
            assert ISO_MICROSECONDS.fullmatch(row["timestamp"]), row
        else:
            assert ISO_SECONDS.fullmatch(row["timestamp"]), row
        assert row["timestamp"] == iso(datetime.fromtimestamp(seconds, UTC).replace(microsecond=usec))
    assert {r["timestamp"][-8:] for r in rows} >= {".000001Z", ".999999Z", ".500000Z"}


def test_parquet_holds_the_same_rows_as_jsonl(tmp_path: Path) -> None:
    et = tmp_path / "et.mrt"
    _extended_time_copy(UPDATES, et, [0, 250_000, 7])
    sources = [*SOURCES, et]
    out = tmp_path / "elements.parquet"
    result = dump("--format", "parquet", "--output", out, *sources)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    table = pq.read_table(out)
    assert "bgpdump" not in table.column_names
    from_parquet = [
        {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items() if v is not None}
        for row in table.to_pylist()
    ]
    assert from_parquet == jsonl(*sources)


def test_output_option_writes_what_stdout_gets(tmp_path: Path) -> None:
    for fmt in ("bgpdump", "jsonl"):
        out = tmp_path / f"out.{fmt}"
        to_file = dump("--format", fmt, "--output", out, UPDATES)
        assert to_file.exit_code == 0 and to_file.stdout == ""
        assert out.read_text() == dump("--format", fmt, UPDATES).stdout


# ------------------------------------------------------------------------------------------------
# filters, each checked against the unfiltered output filtered here

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def network(row: Row) -> Network | None:
    return ipaddress.ip_network(row["prefix"]) if "prefix" in row else None


def prefix_matches(row: Row, wanted: list[Network], how: str) -> bool:
    net = network(row)
    if net is None:
        return False
    for w in wanted:
        if net.version != w.version:
            continue
        inside = net.network_address in w and net.prefixlen >= w.prefixlen  # net is w or more specific
        covers = w.network_address in net and w.prefixlen >= net.prefixlen  # net is w or less specific
        if {"exact": inside and covers, "more": inside, "less": covers, "any": inside or covers}[how]:
            return True
    return False


def origin_asn(row: Row) -> int | None:
    """The last AS of the path, if the path ends in a plain AS sequence (not a set or confederation)."""
    last = row.get("as_path", "").split(" ")[-1]
    return int(last) if last.isdigit() else None


@dataclass(frozen=True)
class Picks:
    """Filter values chosen from the data so that every filter keeps some rows and drops others."""

    v4: Network  # announced, with more and less specifics announced too
    v6: Network  # covers several announced IPv6 prefixes
    peers: tuple[int, int]
    origin: int
    v6_peer: int  # a peer with announcements or withdrawals under v6


@pytest.fixture(scope="module")
def picks(unfiltered: list[Row]) -> Picks:
    nets = sorted({n for r in unfiltered if (n := network(r)) is not None}, key=lambda n: (n.version, n))

    def related(n: Network) -> tuple[int, int]:
        same = [m for m in nets if m.version == n.version and m != n]
        return sum(m.subnet_of(n) for m in same), sum(n.subnet_of(m) for m in same)

    v4 = max((n for n in nets if n.version == 4), key=lambda n: min(related(n)))
    assert min(related(v4)) > 0, "no announced prefix with both more and less specifics"
    v6_counts = Counter(
        ipaddress.ip_network(f"{n.network_address}/16", strict=False) for n in nets if n.version == 6
    )
    v6 = v6_counts.most_common(1)[0][0]
    peers = [asn for asn, _ in Counter(r["peer_asn"] for r in unfiltered).most_common(2)]
    origin = Counter(o for r in unfiltered if (o := origin_asn(r)) is not None).most_common(1)[0][0]
    v6_routes = [r for r in unfiltered if r["type"] in ("A", "W") and prefix_matches(r, [v6], "more")]
    v6_peer = Counter(r["peer_asn"] for r in v6_routes).most_common(1)[0][0]
    return Picks(v4, v6, (peers[0], peers[1]), origin, v6_peer)


FilterCase = Callable[[Picks, Path], tuple[list[str], Callable[[Row], bool]]]

FILTERS: dict[str, FilterCase] = {
    **{
        f"prefix-{how}": (
            lambda p, _, how=how: (
                ["--prefix", str(p.v4), "--match", how],
                lambda r: prefix_matches(r, [p.v4], how),
            )
        )
        for how in ("exact", "more", "less", "any")
    },
    "prefix-default-is-more": lambda p, _: (
        ["--prefix", str(p.v6)],
        lambda r: prefix_matches(r, [p.v6], "more"),
    ),
    "two-prefixes": lambda p, _: (
        ["--prefix", str(p.v4), "--prefix", str(p.v6), "--match", "any"],
        lambda r: prefix_matches(r, [p.v4, p.v6], "any"),
    ),
    "prefix-file": lambda p, listing: (
        ["--prefix", f"@{listing}", "--match", "less"],
        lambda r: prefix_matches(r, [p.v4, p.v6], "less"),
    ),
    "peer-asn": lambda p, _: (["--peer-asn", str(p.peers[0])], lambda r: r["peer_asn"] == p.peers[0]),
    "two-peer-asns": lambda p, _: (
        ["--peer-asn", str(p.peers[0]), "--peer-asn", str(p.peers[1])],
        lambda r: r["peer_asn"] in p.peers,
    ),
    "origin-asn": lambda p, _: (["--origin-asn", str(p.origin)], lambda r: origin_asn(r) == p.origin),
    "type-W": lambda p, _: (["--type", "W"], lambda r: r["type"] == "W"),
    "type-R": lambda p, _: (["--type", "R"], lambda r: r["type"] == "R"),
    "types-A-and-S": lambda p, _: (["--type", "A", "--type", "S"], lambda r: r["type"] in ("A", "S")),
    "type-peer-origin": lambda p, _: (
        [
            "--type",
            "A",
            "--peer-asn",
            str(p.peers[0]),
            "--peer-asn",
            str(p.peers[1]),
            "--origin-asn",
            str(p.origin),
        ],
        lambda r: r["type"] == "A" and r["peer_asn"] in p.peers and origin_asn(r) == p.origin,
    ),
    "prefix-peer-type": lambda p, _: (
        ["--prefix", str(p.v6), "--peer-asn", str(p.v6_peer), "--type", "A", "--type", "W"],
        lambda r: (
            prefix_matches(r, [p.v6], "more") and r["peer_asn"] == p.v6_peer and r["type"] in ("A", "W")
        ),
    ),
}


@pytest.mark.parametrize("case", FILTERS)
def test_filter(case: str, picks: Picks, unfiltered: list[Row], tmp_path: Path) -> None:
    listing = tmp_path / "prefixes.txt"
    listing.write_text(f"# prefixes to watch\n\n{picks.v4}   # IPv4\n  {picks.v6}\n")
    args, keep = FILTERS[case](picks, listing)
    expected = [r for r in unfiltered if keep(r)]
    assert 0 < len(expected) < len(unfiltered), "the filter values do not test anything"
    assert jsonl(*args, *SOURCES) == expected


def test_filters_apply_to_bgpdump_output_too(picks: Picks) -> None:
    kept = dump("--prefix", str(picks.v4), "--match", "any", UPDATES).stdout.splitlines()
    everything = dump(UPDATES).stdout.splitlines()
    routes = [line for line in everything if line.split("|")[2] in ("A", "W")]
    wanted = [line for line in routes if prefix_matches({"prefix": line.split("|")[5]}, [picks.v4], "any")]
    assert kept == wanted and kept


# ------------------------------------------------------------------------------------------------
# usage errors and exit status


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prefix", "10.0.0.1/8"], "10.0.0.1/8 has host bits set"),
        (["--prefix", "not-a-prefix"], "'not-a-prefix' does not appear to be an IPv4 or IPv6 network"),
        (["--prefix", "@/nonexistent/prefixes.txt"], "/nonexistent/prefixes.txt"),
        (["--format", "parquet"], "--format parquet needs --output FILE"),
        (["--match", "sideways"], "'sideways' is not one of"),
        (["--type", "X"], "'X' is not one of"),
        (["--peer-asn", "AS3356"], "'AS3356' is not a valid integer"),
    ],
    ids=[
        "host-bits",
        "not-a-prefix",
        "missing-prefix-file",
        "parquet-without-output",
        "match",
        "type",
        "asn",
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = dump(*args, UPDATES)
    assert result.exit_code == 2
    assert "Error:" in result.stderr and message in result.stderr, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args", [["--peer-asn", "-1"], ["--origin-asn", "4294967296"]], ids=["negative", "too-big"]
)
def test_out_of_range_asn_is_a_usage_error(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["dump", *args, str(UPDATES)])
    assert result.exit_code == 2, repr(result.exception)
    assert "Error:" in result.stderr


def test_parquet_with_no_rows_is_still_a_parquet_file(tmp_path: Path) -> None:
    out = tmp_path / "none.parquet"
    result = dump("--format", "parquet", "--output", out, "--type", "R", UPDATES)
    assert result.exit_code == 0
    assert pq.read_table(out).num_rows == 0


def test_truncated_input_exits_1_after_writing_what_it_could(tmp_path: Path, bgpdump_bin: str) -> None:
    compressed = UPDATES.read_bytes()
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(compressed[: len(compressed) // 2])
    # what bgpdump prints for the bytes that are there
    available = tmp_path / "available.mrt"
    available.write_bytes(zlib.decompressobj(wbits=31).decompress(truncated.read_bytes()))
    before_cut = subprocess.run(
        [bgpdump_bin, "-m", str(available)], capture_output=True, text=True, check=True
    )
    assert before_cut.stdout

    result = dump(truncated, RIBS[1])  # the next input is still read
    assert result.exit_code == 1
    with gzip.open(f"{RIBS[1]}.bgp.gz", "rt") as fh:
        assert result.stdout == before_cut.stdout + fh.read()
    assert f"transitwatch: {truncated}" in result.stderr and ": error: " in result.stderr


def test_missing_input_exits_1_with_a_message(tmp_path: Path) -> None:
    result = dump(tmp_path / "missing.gz")
    assert result.exit_code == 1
    assert f"{tmp_path / 'missing.gz'}: error: cannot open" in result.stderr


def test_damaged_records_are_reported_but_exit_0() -> None:
    result = dump(DAMAGED)
    assert result.exit_code == 0
    damaged_lines = [line for line in result.stderr.splitlines() if ": damaged: " in line]
    assert len(damaged_lines) == 2 and all(f"{DAMAGED} at byte " in line for line in damaged_lines)
    assert "2 damaged records" in result.stderr


def test_quiet_hides_warnings_only() -> None:
    loud, quiet = dump(ZEBRA), dump("-q", ZEBRA)
    assert loud.exit_code == quiet.exit_code == 0
    assert loud.stdout == quiet.stdout
    assert any(": warning: " in line for line in loud.stderr.splitlines())
    assert quiet.stderr == ""
