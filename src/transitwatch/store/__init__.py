"""The store: events, per-target time series and current state in one DuckDB file.

``watch``, ``replay`` and ``upstreams --store`` write it; ``serve`` and the Python API read it.
Events are keyed by a stable id (target, type, subject, time), so writing the same event twice
updates it instead of duplicating it, and every write is one transaction: a crash or ``kill -9``
loses nothing that was committed and a restart that replays the same data adds nothing twice.
Alerts already sent are recorded here too, so a restart does not send them again.

One process writes at a time (DuckDB's rule); readers open the file read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from transitwatch.timeutil import epoch

SCHEMA_VERSION = 1

_DDL = [
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS targets (
        target VARCHAR PRIMARY KEY, info JSON, updated DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS events (
        id VARCHAR PRIMARY KEY, target VARCHAR NOT NULL, type VARCHAR NOT NULL, subject VARCHAR,
        time DOUBLE NOT NULL, data JSON NOT NULL, source VARCHAR, first_stored DOUBLE, updated DOUBLE)""",
    """CREATE INDEX IF NOT EXISTS events_by_target_time ON events (target, time)""",
    """CREATE TABLE IF NOT EXISTS series (
        target VARCHAR NOT NULL, time DOUBLE NOT NULL, routes INTEGER, visible_prefixes INTEGER,
        by_upstream JSON, PRIMARY KEY (target, time))""",
    """CREATE TABLE IF NOT EXISTS state (
        target VARCHAR NOT NULL, key VARCHAR NOT NULL, value JSON, updated DOUBLE,
        PRIMARY KEY (target, key))""",
    """CREATE TABLE IF NOT EXISTS journal (
        seq BIGINT PRIMARY KEY, time DOUBLE NOT NULL, collector VARCHAR, peer_address VARCHAR,
        peer_asn UBIGINT, type VARCHAR, prefix VARCHAR, as_path VARCHAR, origin_asn UBIGINT,
        new_state INTEGER)""",
    """CREATE TABLE IF NOT EXISTS alerts_sent (
        event_id VARCHAR NOT NULL, channel VARCHAR NOT NULL, phase VARCHAR NOT NULL, sent DOUBLE,
        PRIMARY KEY (event_id, channel, phase))""",
]


def event_subject(ev: dict[str, Any]) -> str:
    """What an event is about, beyond its type and time: the upstream, the prefix and origin, ..."""
    kind = ev.get("type", "")
    if "upstream" in ev:  # upstream_added/lost, share_shift
        return f"AS{ev['upstream']}"
    if kind.startswith("outage_"):
        return ""
    if kind == "data_gap":
        return f"until {ev.get('end')}"
    parts = [str(ev.get("prefix", ""))]
    if "suspect_origin" in ev:
        parts.append(f"AS{ev['suspect_origin']}")
    return " ".join(p for p in parts if p)


def event_time(ev: dict[str, Any]) -> float:
    return epoch(ev["time"])


def event_id(ev: dict[str, Any]) -> str:
    """Stable id: the same event from replay, live watch or a rerun gets the same id."""
    key = f"{ev.get('target', '')}|{ev['type']}|{event_subject(ev)}|{event_time(ev):.6f}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


class StoreBusy(OSError):
    """Another process holds the store's file (DuckDB allows one writer, or readers, at a time)."""


class Store:
    """A DuckDB file of events, series and state. Use as a context manager, or call :meth:`close`.

    ``keep_open=False`` opens the file only for each operation (or :meth:`session`) and closes it
    after, so that other processes (``serve`` reading while ``watch`` writes) get their turn; opening
    waits up to ``lock_timeout`` seconds for a file another process holds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        keep_open: bool = True,
        lock_timeout: float = 30.0,
    ) -> None:
        self.path = os.fspath(path)
        self.read_only = read_only
        self.keep_open = keep_open
        self.lock_timeout = lock_timeout
        if read_only and not os.path.exists(self.path):
            raise FileNotFoundError(f"no store at {self.path}")
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.RLock()  # one connection; serialise the threads that share it
        self._depth = 0  # nesting of _tx(): only the outermost begins and commits
        self._sessions = 0
        with self.session():
            if not read_only:
                with self._tx() as con:
                    for ddl in _DDL:
                        con.execute(ddl)
                    con.execute(
                        "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                        [str(SCHEMA_VERSION)],
                    )

    def _connect(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        while True:
            try:
                return duckdb.connect(self.path, read_only=self.read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise StoreBusy(f"{self.path}: {exc}") from exc
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))  # another process's turn
                delay = min(delay * 2, 0.5)

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file open for the duration (nested sessions share it)."""
        with self._lock:
            if self._con is None:
                self._con = self._connect()
            self._sessions += 1
            try:
                yield self._con
            finally:
                self._sessions -= 1
                if not self.keep_open and self._sessions == 0 and self._depth == 0:
                    self._con.close()
                    self._con = None

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one transaction (one commit for a watcher's whole flush)."""
        with self._tx():
            yield

    @contextmanager
    def _tx(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock, self.session() as con:  # re-entrant: writes inside transaction() join it
            if self._depth:
                self._depth += 1
                try:
                    yield con
                finally:
                    self._depth -= 1
                return
            con.execute("BEGIN TRANSACTION")
            self._depth = 1
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            else:
                con.execute("COMMIT")
            finally:
                self._depth = 0

    @staticmethod
    def _with_batch(con: duckdb.DuckDBPyConnection, name: str, batch: Any, *statements: str) -> None:
        """Run statements that read an Arrow table registered as ``name`` (bulk writes)."""
        con.register(name, batch)
        try:
            for sql in statements:
                con.execute(sql)
        finally:
            con.unregister(name)

    def _query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock, self.session() as con:
            return con.execute(sql, params or []).fetchall()

    # ---- targets -----------------------------------------------------------------------------
    def upsert_target(self, target: str, info: dict[str, Any], now: float) -> None:
        with self._tx() as con:
            con.execute(
                "INSERT INTO targets VALUES (?, ?, ?) ON CONFLICT (target) DO UPDATE SET "
                "info = excluded.info, updated = excluded.updated",
                [target, json.dumps(info), now],
            )

    def targets(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT target, info, updated FROM targets ORDER BY target")
        return [{"target": t, **json.loads(info or "{}"), "updated": u} for t, info, u in rows]

    def target(self, target: str) -> dict[str, Any] | None:
        rows = self._query("SELECT info, updated FROM targets WHERE target = ?", [target])
        return {"target": target, **json.loads(rows[0][0] or "{}"), "updated": rows[0][1]} if rows else None

    # ---- events ------------------------------------------------------------------------------
    def upsert_events(self, events: Iterable[dict[str, Any]], source: str, now: float) -> list[str]:
        """Store events (insert or update by id); returns the ids that were new."""
        import pyarrow as pa

        rows: dict[str, tuple[Any, ...]] = {}
        for ev in events:
            eid = event_id(ev)
            data = json.dumps({**ev, "id": eid}, sort_keys=True)
            rows[eid] = (eid, ev.get("target", ""), ev["type"], event_subject(ev), event_time(ev), data)
        if not rows:
            return []
        cols = list(zip(*rows.values(), strict=True))
        batch = pa.table(
            {
                "id": pa.array(cols[0], pa.string()),
                "target": pa.array(cols[1], pa.string()),
                "type": pa.array(cols[2], pa.string()),
                "subject": pa.array(cols[3], pa.string()),
                "time": pa.array(cols[4], pa.float64()),
                "data": pa.array(cols[5], pa.string()),
            }
        )
        with self._tx() as con:
            con.register("event_batch", batch)
            try:
                have = {
                    r[0]
                    for r in con.execute("SELECT e.id FROM events e JOIN event_batch b USING (id)").fetchall()
                }
                con.execute(
                    "UPDATE events SET data = b.data, updated = ? FROM event_batch b "
                    "WHERE events.id = b.id AND events.data <> b.data",
                    [now],
                )
                con.execute(
                    "INSERT INTO events SELECT id, target, type, subject, time, data, ?, ?, ? "
                    "FROM event_batch WHERE id NOT IN (SELECT id FROM events)",
                    [source, now, now],
                )
            finally:
                con.unregister("event_batch")
        return [eid for eid in rows if eid not in have]

    def events(
        self,
        target: str | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
        types: list[str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        where, params = self._event_filter(target, since, until, types)
        rows = self._query(
            f"SELECT data FROM events {where} ORDER BY time, type, id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [json.loads(r[0]) for r in rows]

    def count_events(
        self,
        target: str | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
        types: list[str] | None = None,
    ) -> int:
        where, params = self._event_filter(target, since, until, types)
        return int(self._query(f"SELECT count(*) FROM events {where}", params)[0][0])

    @staticmethod
    def _event_filter(
        target: str | None, since: float | None, until: float | None, types: list[str] | None
    ) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        if target is not None:
            conds.append("target = ?")
            params.append(target)
        if since is not None:
            conds.append("time >= ?")
            params.append(since)
        if until is not None:
            conds.append("time < ?")
            params.append(until)
        if types:
            conds.append("type IN (" + ", ".join("?" for _ in types) + ")")
            params.extend(types)
        return ("WHERE " + " AND ".join(conds)) if conds else "", params

    def event(self, eid: str) -> dict[str, Any] | None:
        rows = self._query("SELECT data FROM events WHERE id = ?", [eid])
        return json.loads(rows[0][0]) if rows else None

    # ---- series and state ---------------------------------------------------------------------
    def write_series(self, target: str, points: Iterable[dict[str, Any]]) -> None:
        self.write_series_many([(target, p) for p in points])

    def write_series_many(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Series points of several targets, (target, point) pairs, in one statement."""
        import pyarrow as pa

        pts = list(items)
        if not pts:
            return
        batch = pa.table(
            {
                "target": pa.array([t for t, _p in pts], pa.string()),
                "time": pa.array([event_time(p) for _t, p in pts], pa.float64()),
                "routes": pa.array([p["routes"] for _t, p in pts], pa.int32()),
                "visible_prefixes": pa.array([p["visible_prefixes"] for _t, p in pts], pa.int32()),
                "by_upstream": pa.array([json.dumps(p["by_upstream"]) for _t, p in pts], pa.string()),
            }
        )
        with self._tx() as con:
            self._with_batch(
                con, "series_batch", batch, "INSERT OR REPLACE INTO series SELECT * FROM series_batch"
            )

    def series(
        self, target: str, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        conds: list[str] = ["target = ?"]
        params: list[Any] = [target]
        if since is not None:
            conds.append("time >= ?")
            params.append(since)
        if until is not None:
            conds.append("time <= ?")
            params.append(until)
        where = " AND ".join(conds)
        rows = self._query(
            f"SELECT time, routes, visible_prefixes, by_upstream FROM series WHERE {where} ORDER BY time",
            params,
        )
        return [
            {"time": t, "routes": r, "visible_prefixes": v, "by_upstream": json.loads(b or "{}")}
            for t, r, v, b in rows
        ]

    def set_state(self, target: str, key: str, value: Any, now: float) -> None:
        self.set_states([(target, key, value)], now)

    def set_states(self, items: Iterable[tuple[str, str, Any]], now: float) -> None:
        """Write several (target, key, value) states in one statement."""
        import pyarrow as pa

        rows = list(items)
        if not rows:
            return
        batch = pa.table(
            {
                "target": pa.array([r[0] for r in rows], pa.string()),
                "key": pa.array([r[1] for r in rows], pa.string()),
                "value": pa.array([json.dumps(r[2]) for r in rows], pa.string()),
                "updated": pa.array([now] * len(rows), pa.float64()),
            }
        )
        with self._tx() as con:
            self._with_batch(
                con, "state_batch", batch, "INSERT OR REPLACE INTO state SELECT * FROM state_batch"
            )

    def state(self, target: str, key: str) -> Any:
        rows = self._query("SELECT value FROM state WHERE target = ? AND key = ?", [target, key])
        return json.loads(rows[0][0]) if rows and rows[0][0] is not None else None

    # ---- journal ------------------------------------------------------------------------------
    def append_journal(self, rows: list[Any]) -> None:
        """Append the rows a watcher applied (routing.state.Row tuples), in order, in one transaction."""
        if not rows:
            return
        import pyarrow as pa

        with self._tx() as con:
            last = con.execute("SELECT coalesce(max(seq), 0) FROM journal").fetchall()
            first = int(last[0][0]) + 1
            cols = list(zip(*rows, strict=True))
            batch = pa.table(
                {
                    "seq": pa.array(range(first, first + len(rows)), pa.int64()),
                    "time": pa.array(cols[0], pa.float64()),
                    "collector": pa.array(cols[1], pa.string()),
                    "peer_address": pa.array(cols[2], pa.string()),
                    "peer_asn": pa.array(cols[3], pa.uint64()),
                    "type": pa.array(cols[4], pa.string()),
                    "prefix": pa.array(cols[5], pa.string()),
                    "as_path": pa.array(cols[6], pa.string()),
                    "origin_asn": pa.array(cols[7], pa.uint64()),
                    "new_state": pa.array(cols[8], pa.int32()),
                }
            )
            self._with_batch(con, "journal_batch", batch, "INSERT INTO journal SELECT * FROM journal_batch")

    def journal_rows(self, since: float | None = None) -> list[Any]:
        """The journaled rows in the order they were applied."""
        from transitwatch.routing.state import Row

        where, params = ("WHERE time >= ?", [since]) if since is not None else ("", [])
        rows = self._query(
            "SELECT time, collector, peer_address, peer_asn, type, prefix, as_path, origin_asn, new_state "
            f"FROM journal {where} ORDER BY seq",
            params,
        )
        return [Row(*r) for r in rows]

    def prune_journal(self, before: float) -> int:
        """Drop the journaled rows older than ``before`` (a new bootstrap's RIB time: the RIB holds
        their effect); returns how many."""
        with self._tx() as con:
            n = con.execute("SELECT count(*) FROM journal WHERE time < ?", [before]).fetchall()[0][0]
            if n:
                con.execute("DELETE FROM journal WHERE time < ?", [before])
        return int(n)

    def clear_journal(self) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM journal")

    # ---- alerts -------------------------------------------------------------------------------
    def alert_sent(self, eid: str, channel: str, phase: str) -> bool:
        return bool(
            self._query(
                "SELECT 1 FROM alerts_sent WHERE event_id = ? AND channel = ? AND phase = ?",
                [eid, channel, phase],
            )
        )

    def mark_alert_sent(self, eid: str, channel: str, phase: str, now: float) -> bool:
        """Record a sent alert; False if it was already recorded (so it must not be sent again)."""
        with self._tx() as con:
            if con.execute(
                "SELECT 1 FROM alerts_sent WHERE event_id = ? AND channel = ? AND phase = ?",
                [eid, channel, phase],
            ).fetchone():
                return False
            con.execute("INSERT INTO alerts_sent VALUES (?, ?, ?, ?)", [eid, channel, phase, now])
            return True
