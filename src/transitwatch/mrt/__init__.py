"""MRT (RFC 6396) reading and writing.

Reading: :class:`MrtReader` / :func:`read_batches` / :func:`read_elements`.
Writing: :class:`transitwatch.mrt.writer.MrtWriter` and :func:`transitwatch.mrt.writer.open_for_write`.
"""

from transitwatch.mrt.reader import MrtReader, batch_elements, read_batches, read_elements
from transitwatch.mrt.schema import SCHEMA, SCHEMA_WITH_BGPDUMP
from transitwatch.mrt.writer import Attributes, MrtWriter, Peer, RibEntry, Session, open_for_write

__all__ = [
    "SCHEMA",
    "SCHEMA_WITH_BGPDUMP",
    "Attributes",
    "MrtReader",
    "MrtWriter",
    "Peer",
    "RibEntry",
    "Session",
    "batch_elements",
    "open_for_write",
    "read_batches",
    "read_elements",
]
