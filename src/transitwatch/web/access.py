"""Reading the store from the web app: a read-only connection held only while requests need it.

DuckDB lets a file have one writer or any number of readers, and a reader holds the file's lock as
long as its connection is open. Holding one for the life of the server would lock ``upstreams
--store`` and ``replay`` out of their own store; opening one per request costs 15-20 ms. So the
requests in flight share one read-only connection, which is closed once no request has used it for
``idle_close_s``: a writer gets in whenever the site is idle. While a writer holds the file,
requests get a 503 with a Retry-After instead of an error page.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from fastapi import Request

from transitwatch.store import Store, StoreBusy

IDLE_CLOSE_S = 0.5


class StoreUnavailable(Exception):
    """The store cannot be read right now (missing, or locked by a writer)."""

    def __init__(self, reason: str, retry_after_s: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class StoreAccess:
    """Lends the store at ``path``, read-only, for the duration of a ``with`` block."""

    def __init__(self, path: str | os.PathLike[str], idle_close_s: float = IDLE_CLOSE_S) -> None:
        self.path = os.fspath(path)
        self.idle_close_s = idle_close_s
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._users = 0
        self._closer: threading.Timer | None = None

    def _connect(self) -> Store:
        try:
            # wait briefly for a writer between its flushes (`watch` opens the file only to write)
            return Store(self.path, read_only=True, lock_timeout=0.3)
        except FileNotFoundError as exc:
            raise StoreUnavailable(f"no store at {self.path}", retry_after_s=10) from exc
        except (duckdb.Error, StoreBusy) as exc:
            # the usual cause: a writer holds the file's lock (IOException from another process,
            # ConnectionException from this one)
            raise StoreUnavailable("the store is busy or unreadable; retry shortly", retry_after_s=2) from exc

    @contextmanager
    def open(self) -> Iterator[Store]:
        with self._lock:
            if self._closer is not None:
                self._closer.cancel()
                self._closer = None
            if self._store is None:
                self._store = self._connect()
            self._users += 1
            store = self._store
        try:
            yield store
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._closer = threading.Timer(self.idle_close_s, self._close_if_idle)
                    self._closer.daemon = True
                    self._closer.start()

    def _close_if_idle(self) -> None:
        with self._lock:
            if self._users == 0 and self._store is not None:
                self._store.close()
                self._store = None
            self._closer = None

    def close(self) -> None:
        """Let go of the file now (server shutdown)."""
        with self._lock:
            if self._closer is not None:
                self._closer.cancel()
                self._closer = None
            if self._store is not None:
                self._store.close()
                self._store = None


def request_store(request: Request) -> Iterator[Store]:
    """FastAPI dependency: the store, read-only, for one request."""
    access: StoreAccess = request.app.state.store_access
    with access.open() as store:
        yield store
