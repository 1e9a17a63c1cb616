"""Time in transitwatch: integer or float seconds since the epoch, UTC, printed as ISO 8601 with Z."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]00:?00)?$")


def iso(ts: float | None) -> str | None:
    """``2017-10-01T09:07:51Z``; microseconds are shown only when the time has them."""
    if ts is None:
        return None
    dt = datetime.fromtimestamp(ts, UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(value: float | str) -> float:
    """Seconds since the epoch from a number or from the ISO text :func:`iso` writes (its inverse)."""
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def parse_time(text: str) -> int:
    """Seconds since the epoch from ISO 8601 (UTC; ``Z`` optional) or a plain epoch number."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return int(float(text))
    if not _ISO_RE.match(text):
        raise ValueError(f"not an ISO 8601 UTC time: {text!r} (e.g. 2017-10-01T09:07:51Z)")
    t = text.replace("Z", "+00:00").replace(" ", "T")
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if dt.utcoffset():
        raise ValueError(f"times are UTC: {text!r}")
    return int(dt.timestamp())
