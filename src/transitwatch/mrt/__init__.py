"""MRT (RFC 6396) reading and writing.

Reading: :class:`MrtReader` / :func:`read_batches` / :func:`read_elements`.
"""

from transitwatch.mrt.reader import MrtReader, batch_elements, read_batches, read_elements
from transitwatch.mrt.schema import SCHEMA, SCHEMA_WITH_BGPDUMP

__all__ = ["SCHEMA", "SCHEMA_WITH_BGPDUMP", "MrtReader", "batch_elements", "read_batches", "read_elements"]
