"""Reading a collector's RIB dump and update files down to the rows that concern a target.

Each collector is read independently (its RIB and update sequence do not depend on other
collectors), which is what lets the work fan out over processes or a cluster; the rows are merged
by timestamp afterwards. Decoding is columnar; only rows for target prefixes become Python objects.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from transitwatch.model import SourceIssue
from transitwatch.mrt.reader import MrtReader
from transitwatch.routing.state import PeerTables, Row, rows_from_batch
from transitwatch.targets import Target, TargetSet


@dataclass
class CollectorInput:
    """What to read for one collector: the RIB at or before the window start, then updates."""

    name: str
    rib: str | None
    updates: list[str] = field(default_factory=list)
    rib_time: int | None = None


@dataclass
class CollectorRows:
    """The target's rows of one collector, plus what is needed to judge its peers."""

    name: str
    rib_time: int | None
    tables: PeerTables
    rib_rows: list[Row]
    update_rows: list[Row]
    issues: list[SourceIssue]
    stats: dict[str, int]


ProgressFn = Callable[[str, int], None]  # (file, elements read so far in it)


def read_collector(
    ci: CollectorInput,
    target: Target,
    end: float,
    *,
    on_issue: Callable[[SourceIssue], None] | None = None,
    progress: ProgressFn | None = None,
) -> CollectorRows:
    """Read one collector's files, keeping rows for target prefixes (and peer state changes)."""
    targets = TargetSet(target)  # this collector's own discovery: independent of read order
    tables = PeerTables.empty()
    issues: list[SourceIssue] = []
    stats = {"files": 0, "records": 0, "elements": 0, "damaged_records": 0}

    def report(issue: SourceIssue) -> None:
        issues.append(issue)
        if on_issue is not None:
            on_issue(issue)

    def read(path: str, is_rib: bool) -> Iterator[Row]:
        reader = MrtReader(path, collector=ci.name, on_issue=report)
        seen = 0
        for batch in reader.batches():
            if is_rib:
                tables.add_batch(batch, ci.name)
            mask = targets.candidate_mask(batch)
            if not is_rib:
                types: pa.DictionaryArray = batch.column("type")  # compared on the dictionary
                mask = pc.or_(mask, pc.take(pc.equal(types.dictionary, "S"), types.indices))
                mask = pc.and_(mask, pc.less(batch.column("timestamp"), _ts_scalar(end)))
            for row in rows_from_batch(batch, mask, ci.name):
                new = row.prefix is not None and row.prefix not in targets.prefixes and row.type in "RA"
                if new and (
                    targets.is_target_origin(row.origin_asn) or targets.within_explicit(row.prefix or "")
                ):
                    targets.add(row.prefix or "", row.time)
                yield row
            seen += batch.num_rows
            if progress is not None:
                progress(path, seen)
        stats["files"] += 1
        for k in ("records", "elements", "damaged_records"):
            stats[k] += reader.stats.get(k, 0)

    rib_rows = list(read(ci.rib, True)) if ci.rib else []
    update_rows: list[Row] = []
    for path in ci.updates:
        update_rows.extend(read(path, False))
    # update files are in time order and so are their records, but be sure: a stable sort
    update_rows.sort(key=lambda r: r.time)
    return CollectorRows(ci.name, ci.rib_time, tables, rib_rows, update_rows, issues, stats)


def _ts_scalar(t: float) -> pa.Scalar:
    return pa.scalar(round(t * 1_000_000), pa.timestamp("us", tz="UTC"))


def merge_updates(collectors: Iterable[CollectorRows]) -> Iterator[Row]:
    """All collectors' update rows in timestamp order; ties keep the collectors' order."""
    return heapq.merge(*(c.update_rows for c in collectors), key=lambda r: r.time)


def read_collectors(
    inputs: list[CollectorInput],
    target: Target,
    end: float,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    on_issue: Callable[[SourceIssue], None] | None = None,
    progress: ProgressFn | None = None,
) -> list[CollectorRows]:
    """Read every collector, in this process or fanned out; results keep the inputs' order."""
    if scheduler is not None or workers > 1:
        from transitwatch.analysis.fanout import map_collectors

        results = map_collectors(inputs, target, end, workers=workers, scheduler=scheduler)
        if on_issue is not None:
            for r in results:
                for issue in r.issues:
                    on_issue(issue)
        return results
    return [read_collector(ci, target, end, on_issue=on_issue, progress=progress) for ci in inputs]
