"""Byte sources of the MRT reader: plain, gzip (multi-member too) and bzip2 (concatenated streams
too) files, truncated files, http:// URLs (a real server on 127.0.0.1), missing files and URLs.

References are independent of the reader's I/O: the standard library's zlib and bz2 say which bytes
a truncated stream still holds, and the reader decoding those bytes from a plain file says which
elements they hold.
"""

from __future__ import annotations

import bz2
import gzip
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from tests.conftest import MRT_DIR
from tests.faulty_http import FaultyHTTPServer
from transitwatch.cli import main
from transitwatch.model import SourceIssue
from transitwatch.mrt import SCHEMA_WITH_BGPDUMP, MrtReader

UPDATES = MRT_DIR / "ris" / "updates.20100722.2015.gz"  # 227 kB decompressed, IPv4 and IPv6, 5,654 elements

DECODED_SCHEMA = pa.schema(
    [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in SCHEMA_WITH_BGPDUMP]
)


def read(source: str | Path) -> tuple[pa.Table, MrtReader]:
    """All elements of ``source`` (dictionary columns decoded, so tables compare by value)."""
    reader = MrtReader(source, bgpdump=True)
    batches = [
        pa.RecordBatch.from_arrays(
            [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns],
            schema=DECODED_SCHEMA,
        )
        for batch in reader.batches()
    ]
    return pa.Table.from_batches(batches, schema=DECODED_SCHEMA).combine_chunks(), reader


def where(issues: list[SourceIssue]) -> list[tuple[int | None, str, str]]:
    """Issues without their source (which names the path or URL)."""
    return [(i.offset, i.severity, i.reason) for i in issues]


def errors(reader: MrtReader) -> list[SourceIssue]:
    return [i for i in reader.issues if i.severity == "error"]


def assert_prefix_of(part: pa.Table, full: pa.Table) -> None:
    assert part.num_rows <= full.num_rows
    assert part.equals(full.slice(0, part.num_rows)), "the elements are not the first ones of the file"


@pytest.fixture(scope="module")
def plain_bytes() -> bytes:
    return gzip.decompress(UPDATES.read_bytes())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, plain_bytes: bytes) -> Path:
    """The same MRT bytes in every container the reader accepts."""
    folder = tmp_path_factory.mktemp("inputs")
    data = plain_bytes
    # cuts at arbitrary bytes, not record boundaries: members and streams split records
    a, b = 1000, len(data) // 2 + 7
    variants = {
        "plain.mrt": data,
        "single.gz": gzip.compress(data),
        "members.gz": gzip.compress(data[:a]) + gzip.compress(data[a:b]) + gzip.compress(data[b:]),
        "gzip-without-suffix.mrt": gzip.compress(data),  # recognised by its magic bytes
        "blocks.bz2": bz2.compress(data, compresslevel=1),  # 100 kB blocks: three of them
        "streams.bz2": bz2.compress(data[:a]) + bz2.compress(data[a:b]) + bz2.compress(data[b:]),
    }
    for name, content in variants.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture(scope="module")
def plain(inputs: Path) -> tuple[pa.Table, MrtReader]:
    table, reader = read(inputs / "plain.mrt")
    assert table.num_rows > 5000 and reader.issues == []
    return table, reader


@pytest.fixture(scope="module")
def server(inputs: Path) -> Iterator[FaultyHTTPServer]:
    with FaultyHTTPServer(inputs) as srv:
        yield srv


COMPRESSED = ["single.gz", "members.gz", "gzip-without-suffix.mrt", "blocks.bz2", "streams.bz2"]


@pytest.mark.parametrize("name", COMPRESSED)
def test_every_container_gives_the_same_elements(
    inputs: Path, plain: tuple[pa.Table, MrtReader], name: str
) -> None:
    table, reader = read(inputs / name)
    assert reader.issues == []
    assert table.equals(plain[0])
    assert reader.stats == plain[1].stats


def _gzip_available(data: bytes) -> bytes:
    """What zlib makes of a (possibly cut) gzip file: every byte it can decompress, member by member."""
    out = []
    while data:
        dec = zlib.decompressobj(wbits=31)
        out.append(dec.decompress(data))
        if not dec.eof:
            break
        data = dec.unused_data
    return b"".join(out)


def _bzip2_available(data: bytes) -> bytes:
    out = []
    while data:
        dec = bz2.BZ2Decompressor()
        out.append(dec.decompress(data))
        if not dec.eof:
            break
        data = dec.unused_data
    return b"".join(out)


TRUNCATIONS = [
    pytest.param(name, cut, id=f"{name}-{label}")
    for name in ("single.gz", "members.gz", "blocks.bz2", "streams.bz2")
    for cut, label in [
        (12, "in-the-header"),
        (1 / 3, "a-third"),
        (1 / 2, "half"),
        (2 / 3, "two-thirds"),
        (-6, "6-bytes-short"),
        (-1, "1-byte-short"),
    ]
]


@pytest.mark.parametrize(("name", "cut"), TRUNCATIONS)
def test_truncated_file_yields_everything_before_the_cut(
    inputs: Path, plain: tuple[pa.Table, MrtReader], tmp_path: Path, name: str, cut: float
) -> None:
    compressed = (inputs / name).read_bytes()
    size = (
        int(len(compressed) * cut) if 0 < cut < 1 else (int(cut) if cut > 0 else len(compressed) + int(cut))
    )
    truncated = compressed[:size]
    (tmp_path / name).write_bytes(truncated)
    available = (_gzip_available if name.endswith(".gz") else _bzip2_available)(truncated)
    (tmp_path / "available.mrt").write_bytes(available)
    expected, _ = read(tmp_path / "available.mrt")

    table, reader = read(tmp_path / name)  # must not raise

    assert table.equals(expected), f"{table.num_rows} elements, {expected.num_rows} decodable before the cut"
    assert_prefix_of(table, plain[0])
    [error] = errors(reader)
    assert error.source == str(tmp_path / name)
    assert "before its end marker" in error.reason or "truncated" in error.reason
    assert error.offset == len(available)
    # anything else reported is the record the cut went through, skipped to the end of what came
    others = [i for i in reader.issues if i is not error]
    assert [i.severity for i in others] in ([], ["damaged"]), reader.issues
    assert all(i.offset is not None and i.offset + i.skipped_bytes == len(available) for i in others)


def test_bzip2_with_a_corrupt_block_reports_an_error(inputs: Path, tmp_path: Path) -> None:
    damaged = bytearray((inputs / "blocks.bz2").read_bytes())
    damaged[len(damaged) // 2] ^= 0x55
    (tmp_path / "corrupt.bz2").write_bytes(damaged)
    _, reader = read(tmp_path / "corrupt.bz2")  # must not raise
    [error] = errors(reader)
    assert "bzip2" in error.reason


@pytest.mark.parametrize("truncated", [False, True], ids=["whole", "truncated too"])
def test_bzip2_with_a_corrupt_block_yields_the_blocks_before_it(
    inputs: Path, plain: tuple[pa.Table, MrtReader], tmp_path: Path, truncated: bool
) -> None:
    damaged = bytearray((inputs / "blocks.bz2").read_bytes())
    damaged[len(damaged) // 2] ^= 0x55
    if truncated:  # no end marker either: the reader takes its sequential path from the start
        del damaged[-100:]
    (tmp_path / "corrupt.bz2").write_bytes(damaged)
    # the standard library, fed small pieces, gives the intact first block before the error
    dec = bz2.BZ2Decompressor()
    good = []
    try:
        for i in range(0, len(damaged), 4096):
            good.append(dec.decompress(bytes(damaged[i : i + 4096])))
    except OSError:
        pass
    (tmp_path / "good.mrt").write_bytes(b"".join(good))
    expected, _ = read(tmp_path / "good.mrt")
    assert expected.num_rows > 1000

    table, _ = read(tmp_path / "corrupt.bz2")
    assert table.equals(expected), f"{table.num_rows} elements, {expected.num_rows} in the intact blocks"


# ------------------------------------------------------------------------------------------------
# http(s) URLs


@pytest.mark.parametrize("name", ["plain.mrt", "members.gz", "streams.bz2"])
def test_url_gives_the_same_output_as_the_local_file(
    inputs: Path, server: FaultyHTTPServer, name: str
) -> None:
    local, local_reader = read(inputs / name)
    remote, remote_reader = read(server.url_for(name))
    assert remote.equals(local)
    assert where(remote_reader.issues) == where(local_reader.issues) == []
    assert remote_reader.stats == local_reader.stats
    assert server.requests(name) >= 1


def test_url_of_a_truncated_file_is_read_like_the_local_file(inputs: Path, server: FaultyHTTPServer) -> None:
    compressed = (inputs / "single.gz").read_bytes()
    (inputs / "short.gz").write_bytes(compressed[: len(compressed) // 2])
    local, local_reader = read(inputs / "short.gz")
    remote, remote_reader = read(server.url_for("short.gz"))
    assert local.num_rows > 0
    assert remote.equals(local)
    assert where(remote_reader.issues) == where(local_reader.issues)
    [error] = errors(remote_reader)
    assert error.source == server.url_for("short.gz")


def test_missing_file_is_an_error_issue(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gz"
    table, reader = read(missing)  # must not raise
    assert table.num_rows == 0
    [error] = reader.issues
    assert (error.source, error.offset, error.severity) == (str(missing), None, "error")
    assert "cannot open" in error.reason and "No such file" in error.reason
    assert reader.stats["elements"] == 0


def test_404_url_is_an_error_issue(server: FaultyHTTPServer) -> None:
    url = server.url_for("missing.gz")
    table, reader = read(url)
    assert table.num_rows == 0
    [error] = reader.issues
    assert (error.source, error.severity) == (url, "error")
    assert "404" in error.reason


def test_refused_connection_is_an_error_issue() -> None:
    # a bound socket that does not listen: connections to it are refused, and no one else gets the port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/updates.gz"
        table, reader = read(url)
    assert table.num_rows == 0
    [error] = reader.issues
    assert error.severity == "error"


def test_connection_dropped_mid_download_yields_what_came_then_an_error(
    inputs: Path, plain: tuple[pa.Table, MrtReader], server: FaultyHTTPServer
) -> None:
    (inputs / "dropped.gz").write_bytes((inputs / "single.gz").read_bytes())
    server.fault("dropped.gz", cut_after=(inputs / "dropped.gz").stat().st_size // 2)
    table, reader = read(server.url_for("dropped.gz"))
    assert table.num_rows > 0
    assert_prefix_of(table, plain[0])
    [error] = errors(reader)
    assert error.offset is not None


def test_cli_on_a_404_url_exits_1_with_a_message(server: FaultyHTTPServer) -> None:
    url = server.url_for("missing.gz")
    result = CliRunner().invoke(main, ["dump", url])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), f"raised {result.exception!r}"
    assert url in result.stderr and "404" in result.stderr
