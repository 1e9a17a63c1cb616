"""AS paths: from bgpdump notation to AS numbers, and the upstream of a route.

Definitions follow ``shared/scenarios/README.md``: collapse repeated AS numbers (prepending), walk
from the origin end to the left past every target AS; the first AS that is not a target AS is the
upstream. AS_SET and confederation members are flattened in path order, so a route whose origin is
an AS_SET ``{a,b}`` has ``b`` as its last AS; such paths are rare and documented as such.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import lru_cache

_PUNCT = str.maketrans({"{": " ", "}": " ", "(": " ", ")": " ", "[": " ", "]": " ", ",": " "})


@lru_cache(maxsize=65536)
def parse_path(as_path: str) -> tuple[int, ...]:
    """``"3356 1299 1299 {64512,64513}"`` -> ``(3356, 1299, 1299, 64512, 64513)``."""
    if not as_path:
        return ()
    try:
        return tuple(int(tok) for tok in as_path.translate(_PUNCT).split())
    except ValueError:  # bgpdump's "! Error !" for malformed paths
        return ()


def collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    """Remove prepending: consecutive repeats of an AS become one."""
    out: list[int] = []
    for a in path:
        if not out or out[-1] != a:
            out.append(a)
    return tuple(out)


def upstream_of(path: tuple[int, ...], targets: Collection[int]) -> int | None:
    """The first AS left of the run of target ASes at the origin end, or None if there is none.

    ``targets`` are the target's AS numbers. For a prefix-defined target (no AS list), pass the
    route's own origin: the upstream is then the first AS before the (prepended) origin.
    """
    i = len(path) - 1
    while i >= 0 and path[i] in targets:
        i -= 1
    return path[i] if i >= 0 else None
