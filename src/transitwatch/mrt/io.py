"""Byte sources for the MRT reader: local files or http(s) URLs, plain, gzip or bzip2.

The compression is recognised by its magic bytes, not by the file name. Decompression is
incremental so that a stream cut short still yields every byte decoded before the cut, followed by
a :class:`TruncatedInput` error that says what happened.
"""

from __future__ import annotations

import bz2
import os
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 1 << 20

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"


def _isal_errors() -> tuple[type[BaseException], ...]:
    from isal import isal_zlib

    err = isal_zlib.error  # typed loosely in isal's stubs
    return (err,) if isinstance(err, type) and issubclass(err, BaseException) else (Exception,)


class TruncatedInput(Exception):
    """The compressed stream ended before its end-of-stream marker (or was corrupt)."""


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _raw_file_chunks(path: str | os.PathLike[str]) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


class NetworkError(OSError):
    """An http(s) source failed (status, connection, timeout); the message says how."""


def _raw_http_chunks(url: str, timeout: float = 60.0) -> Iterator[bytes]:
    import httpx  # only for URLs: it costs a third of a second to import

    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as resp:
            if resp.status_code >= 400:
                raise NetworkError(f"HTTP {resp.status_code} for {url}")
            yield from resp.iter_raw()  # as it arrives: a cut connection keeps what came
    except httpx.HTTPError as exc:
        raise NetworkError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc


def _gunzip(raw: Iterator[bytes]) -> Iterator[bytes]:
    """Multi-member gzip, decompressed with ISA-L (about twice zlib's speed)."""
    from isal import isal_zlib

    _ISAL_ERRORS = _isal_errors()
    dec = isal_zlib.decompressobj(wbits=31)
    member_done = False
    for chunk in raw:
        data = chunk
        while data:
            if member_done:
                # a new gzip member starts after the previous one (as `cat a.gz b.gz` makes)
                dec = isal_zlib.decompressobj(wbits=31)
                member_done = False
            try:
                out = dec.decompress(data)
            except _ISAL_ERRORS as exc:
                raise TruncatedInput(f"corrupt gzip data: {exc}") from exc
            if out:
                yield out
            if dec.eof:
                member_done = True
                data = dec.unused_data
                if data and not data.startswith(GZIP_MAGIC[:1]):
                    raise TruncatedInput(f"{len(data)} bytes of trailing garbage after the gzip stream")
            else:
                data = b""
    if not member_done:
        tail = dec.flush()
        if tail:
            yield tail
        raise TruncatedInput("the gzip stream ends before its end marker (truncated download?)")


def _bunzip(raw: Iterator[bytes]) -> Iterator[bytes]:
    dec = bz2.BZ2Decompressor()
    for chunk in _rechunk(raw, 8 * 1024):  # small pieces: a corrupt block then loses only itself
        data = chunk
        while data:
            if dec.eof:
                dec = bz2.BZ2Decompressor()  # concatenated bzip2 streams
            try:
                out = dec.decompress(data)
            except OSError as exc:
                raise TruncatedInput(f"corrupt bzip2 data: {exc}") from exc
            if out:
                yield out
            data = dec.unused_data if dec.eof else b""
    if not dec.eof:
        raise TruncatedInput("the bzip2 stream ends before its end marker (truncated download?)")


_bz2_threads: int | None = None  # None: every core


def set_bz2_threads(threads: int | None) -> None:
    """Cap the threads one process uses to decode a .bz2 file.

    Worker pools give each process its share of the cores; with every worker using them all, the
    pool oversubscribes the machine and runs no faster than one process.
    """
    global _bz2_threads
    _bz2_threads = None if threads is None else max(1, threads)


def _bunzip_parallel(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """Local .bz2 files: indexed_bzip2 decodes blocks on several cores (bzip2 is slow on one)."""
    import indexed_bzip2

    threads = _bz2_threads or max(1, os.cpu_count() or 1)
    try:
        fh: BinaryIO = indexed_bzip2.open(os.fspath(path), parallelization=threads)
    except Exception as exc:  # its own error types: fall back to the sequential decoder
        raise _FallBack() from exc
    with fh:
        while True:
            try:
                chunk = fh.read(4 * CHUNK)
            except Exception as exc:
                raise TruncatedInput(f"corrupt or truncated bzip2 data: {exc}") from exc
            if not chunk:
                return
            yield chunk


class _FallBack(Exception):
    pass


def _sniff(raw: Iterator[bytes]) -> tuple[bytes, Iterator[bytes]]:
    first = b""
    for chunk in raw:
        first = chunk
        if len(first) >= 3:
            break

    def rest() -> Iterator[bytes]:
        if first:
            yield first
        yield from raw

    return first[:3], rest()


def open_chunks(source: str | os.PathLike[str], *, parallel_bz2: bool = True) -> Iterator[bytes]:
    """Decompressed bytes of an MRT file or URL, in chunks of about a megabyte."""
    src = os.fspath(source)
    if is_url(src):
        magic, raw = _sniff(_raw_http_chunks(src))
    else:
        with open(src, "rb") as fh:
            magic = fh.read(3)
        if magic.startswith(BZIP2_MAGIC) and parallel_bz2 and _has_indexed_bzip2():
            return _verified_bz2(src)
        raw = _raw_file_chunks(src)
    if magic.startswith(GZIP_MAGIC):
        return _gunzip(raw)
    if magic.startswith(BZIP2_MAGIC):
        return _bunzip(raw)
    return raw


def _rechunk(raw: Iterator[bytes], size: int) -> Iterator[bytes]:
    for chunk in raw:
        for i in range(0, len(chunk), size):
            yield chunk[i : i + size]


def _has_indexed_bzip2() -> bool:
    try:
        import indexed_bzip2  # noqa: F401
    except ImportError:
        return False
    return True


def _verified_bz2(path: str) -> Iterator[bytes]:
    # indexed_bzip2 reads a truncated file without complaint; only the sequential decoder notices
    # a missing end marker, so check the tail first and use the sequential path for broken files.
    if not _bz2_tail_ok(path):
        yield from _bunzip(_raw_file_chunks(path))
        return
    given = 0
    try:
        for chunk in _bunzip_parallel(path):
            given += len(chunk)
            yield chunk
        return
    except (_FallBack, TruncatedInput):
        pass
    # the parallel decoder failed (a corrupt block loses its whole read): decode sequentially in
    # small steps from the start, skip what was already given, and stop at the bad block itself
    skip = given
    for chunk in _bunzip(_raw_file_chunks(path)):
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        yield chunk[skip:]
        skip = 0


_BZ2_EOS = 0x177245385090  # the 48-bit end-of-stream magic, not byte aligned


def _bz2_tail_ok(path: str) -> bool:
    """Does the file end with a bzip2 end-of-stream marker (at any bit offset)?"""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 16))
        tail = fh.read()
    bits = int.from_bytes(tail, "big")
    nbits = len(tail) * 8
    # marker (48 bits) + CRC (32 bits) + up to 7 padding bits at the very end
    for pad in range(8):
        shift = pad + 32
        if nbits >= shift + 48 and (bits >> shift) & ((1 << 48) - 1) == _BZ2_EOS:
            return True
    return False
