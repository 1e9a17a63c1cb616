"""The public route collectors and how to recognise them in paths and URLs."""

from __future__ import annotations

import re

_COLLECTOR_RE = re.compile(r"(?:^|[/\\])(rrc\d\d|route-views[\w.\-]*?)(?:[/\\]|$)")


def guess_collector(path: str) -> str | None:
    """``rrc00`` or ``route-views2`` from an archive path such as ``.../rrc00/2017.10/updates...``."""
    m = _COLLECTOR_RE.search(path)
    return m.group(1) if m else None
