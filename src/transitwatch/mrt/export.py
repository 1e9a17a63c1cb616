"""Writing element batches: bgpdump -m text, JSON lines, Parquet."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any

import pyarrow as pa

from transitwatch.timeutil import iso

FORMATS = ("bgpdump", "jsonl", "parquet")


def bgpdump_lines(batch: pa.RecordBatch) -> list[str]:
    """The batch's elements as bgpdump -m prints them (elements bgpdump omits are left out)."""
    return [line for line in batch.column("bgpdump").to_pylist() if line is not None]


def json_rows(batch: pa.RecordBatch) -> Iterable[dict[str, Any]]:
    """Rows as JSON-ready dicts; times as ISO 8601 UTC, absent fields omitted."""
    names = [n for n in batch.schema.names if n != "bgpdump"]
    ts = batch.column("timestamp").view(pa.int64()).to_pylist()
    orig = batch.column("originated").view(pa.int64()).to_pylist()
    cols = {n: batch.column(n).to_pylist() for n in names if n not in ("timestamp", "originated")}
    for i in range(batch.num_rows):
        row: dict[str, Any] = {"type": cols["type"][i], "timestamp": iso(ts[i] / 1e6)}
        for n in names:
            if n in ("type", "timestamp"):
                continue
            v = cols[n][i] if n != "originated" else (iso(orig[i]) if orig[i] is not None else None)
            if v is not None:
                row[n] = v
        yield row


class ElementWriter:
    """Writes batches in one of :data:`FORMATS` to a text or binary stream."""

    def __init__(self, fmt: str, out: IO[Any], schema: pa.Schema | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        self.fmt = fmt
        self.out = out
        self._pq: Any = None
        self._schema = schema
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if self.fmt == "bgpdump":
            lines = bgpdump_lines(batch)
            if lines:
                self.out.write("\n".join(lines) + "\n")
            self.rows += len(lines)
        elif self.fmt == "jsonl":
            for row in json_rows(batch):
                self.out.write(json.dumps(row, separators=(",", ":")) + "\n")
                self.rows += 1
        else:
            import pyarrow.parquet as pq

            if "bgpdump" in batch.schema.names:
                batch = batch.drop_columns(["bgpdump"])
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.out, batch.schema, compression="zstd")
            self._pq.write_batch(batch)
            self.rows += batch.num_rows

    def close(self) -> None:
        if self.fmt == "parquet" and self._pq is None:  # no rows: still a valid, empty Parquet file
            import pyarrow.parquet as pq

            from transitwatch.mrt.schema import SCHEMA

            self._pq = pq.ParquetWriter(self.out, self._schema or SCHEMA, compression="zstd")
        if self._pq is not None:
            self._pq.close()
            self._pq = None
