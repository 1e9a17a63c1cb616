"""Progress bars for long runs: on stderr, only when it is a terminal (never in pipes or logs)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def wanted(progress: bool | None) -> bool:
    """``None``: show bars when stderr is a terminal; ``True``/``False``: as asked."""
    return sys.stderr.isatty() if progress is None else progress


@contextmanager
def reading_files(total_files: int, enabled: bool) -> Iterator[Callable[[str, int], None] | None]:
    """A callback (file, elements read so far in it) that drives a bar of files and elements."""
    if not enabled or total_files == 0:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("reading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files, {task.fields[elements]:,} elements"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("read", total=total_files, elements=0)
        seen: dict[str, int] = {}

        def update(path: str, elements: int) -> None:
            first = path not in seen
            seen[path] = elements
            bar.update(task, advance=1 if first else 0, elements=sum(seen.values()))

        yield update
