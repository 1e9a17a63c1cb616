"""Streaming MRT reader: sources -> record batches of elements (-> Element rows).

    reader = MrtReader("updates.20160811.1600.gz", collector="rrc21")
    for batch in reader.batches():      # pyarrow.RecordBatch, schema transitwatch.mrt.SCHEMA
        ...
    reader.issues                        # every damaged or undecoded record, with its byte offset
    reader.stats                         # records, elements, damaged_records, skipped_bytes, ...

Memory is bounded by one decompressed chunk plus one batch, whatever the file size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from transitwatch.model import Element, ElementType, SourceIssue
from transitwatch.mrt import _decoder
from transitwatch.mrt.io import TruncatedInput, open_chunks
from transitwatch.mrt.schema import batch_from_columns

DEFAULT_BATCH_SIZE = 65536


class MrtReader:
    """Reads one MRT file or URL. Iterate :meth:`batches` (columns) or the reader itself (rows).

    ``collector`` fills the element's collector column (MRT files do not name their collector).
    ``bgpdump=True`` adds a ``bgpdump`` column: each element exactly as ``bgpdump -m`` prints it
    (null for elements bgpdump does not print, such as multicast RIB entries).
    ``on_issue`` is called for each issue as soon as it is found; all are also kept in ``issues``.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        collector: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        bgpdump: bool = False,
        on_issue: Callable[[SourceIssue], None] | None = None,
    ) -> None:
        self.source = os.fspath(source)
        self.collector = collector
        self.batch_size = batch_size
        self.bgpdump = bgpdump
        self.on_issue = on_issue
        self.issues: list[SourceIssue] = []
        self.stats: dict[str, int] = {}
        self._collector_dict = pa.array([collector] if collector else [], pa.string())

    def _report(self, issue: SourceIssue) -> None:
        self.issues.append(issue)
        if self.on_issue is not None:
            self.on_issue(issue)

    def _drain_issues(self, dec: Any) -> None:
        for offset, skipped, severity, reason, rtype, rsub in dec.take_issues():
            self._report(
                SourceIssue(
                    self.source,
                    offset,
                    severity,
                    reason,
                    rtype if rtype >= 0 else None,
                    rsub if rsub >= 0 else None,
                    skipped,
                )
            )

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield element batches in file order. Issues are reported as they are found."""
        dec = _decoder.Decoder(bgpdump=self.bgpdump, batch_size=self.batch_size)
        try:
            chunks = open_chunks(self.source)
        except OSError as exc:
            self._report(SourceIssue(self.source, None, "error", f"cannot open: {exc}"))
            self.stats = dec.stats()
            return
        buf = bytearray()
        base = pos = 0
        eof = False
        while True:
            pos, status = dec.decode(buf, pos, base, eof)
            self._drain_issues(dec)
            if status == 1:
                cols = dec.flush()
                if cols is not None:
                    yield batch_from_columns(cols, self._collector_dict)
                continue
            if eof:
                break
            try:
                chunk = next(chunks)
            except StopIteration:
                eof = True
                continue
            except TruncatedInput as exc:
                self._report(SourceIssue(self.source, base + len(buf), "error", str(exc)))
                eof = True
                continue
            except OSError as exc:  # network errors, unreadable files
                self._report(SourceIssue(self.source, base + len(buf), "error", f"read failed: {exc}"))
                eof = True
                continue
            if pos:
                del buf[:pos]
                base += pos
                pos = 0
            buf += chunk
        cols = dec.flush()
        self._drain_issues(dec)
        self.stats = dec.stats()
        if cols is not None:
            yield batch_from_columns(cols, self._collector_dict)

    def __iter__(self) -> Iterator[Element]:
        for batch in self.batches():
            yield from batch_elements(batch)


_FIELDS = [f for f in Element.__slots__ if f not in ("type", "timestamp", "originated")]


def batch_elements(batch: pa.RecordBatch) -> Iterator[Element]:
    """Row view of a batch: one :class:`Element` per row."""
    ts = batch.column("timestamp").view(pa.int64()).to_pylist()
    orig = batch.column("originated").view(pa.int64()).to_pylist()
    types = batch.column("type").to_pylist()
    cols = {name: batch.column(name).to_pylist() for name in _FIELDS}
    for i in range(batch.num_rows):
        kw = {name: cols[name][i] for name in _FIELDS}
        o = orig[i]
        yield Element(
            type=ElementType(types[i]),
            timestamp=ts[i] / 1e6,
            originated=float(o) if o is not None else None,
            **kw,
        )


def read_batches(source: str | os.PathLike[str], **kwargs: Any) -> Iterator[pa.RecordBatch]:
    """Shortcut for ``MrtReader(source, **kwargs).batches()``."""
    return MrtReader(source, **kwargs).batches()


def read_elements(source: str | os.PathLike[str], **kwargs: Any) -> Iterator[Element]:
    """Shortcut for ``iter(MrtReader(source, **kwargs))``."""
    return iter(MrtReader(source, **kwargs))
