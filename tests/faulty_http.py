"""A real HTTP server for tests: serves a folder like Apache or nginx, with faults injected per path.

    server = FaultyHTTPServer(SCENARIOS / "kp-2017-ttk").start()
    server.fault("rrc00/2017.10/updates.20171001.0800.gz", status=500, times=2)   # 500 twice, then OK
    server.fault("rrc00/2017.10/bview.20171001.0800.gz", cut_after=100_000)        # drop the connection
    server.fault("route-views2/bgpdata/2017.10/RIBS/rib.20171001.0800.bz2", delay=0.2, chunk_delay=0.01)
    server.requests("rrc00/2017.10/updates.20171001.0800.gz")                      # GETs so far
    server.stop()

Or use the ``faulty_http`` fixture (import ``faulty_http_fixture`` into the test module), which starts
servers on demand and stops them after the test: ``server = faulty_http(root)``. Directory listings
are Apache-style (``index_style="apache"``) or nginx-style (``"nginx"``); Range requests are honoured
with 206 unless a fault says otherwise.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest


@dataclass
class Fault:
    """What to do wrong for one path. Counts (``times``) say for how many requests; -1 means always."""

    status: int | None = None  # answer this status instead of the file ...
    times: int = -1  # ... for this many requests
    retry_after: int | None = None  # with a Retry-After header
    cut_after: int | None = None  # send this many body bytes, then drop the connection ...
    cut_times: int = 1  # ... for this many requests
    delay: float = 0.0  # seconds before the response headers ...
    chunk_delay: float = 0.0  # ... and between body chunks ...
    slow_times: int = -1  # ... for this many requests
    ignore_range: bool = False  # answer Range requests with 200 and the whole file


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FaultyHTTPServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up mid-response (timeouts) are part of the tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real archives
    disable_nagle_algorithm = True  # else small answers wait for delayed ACKs (40 ms each)
    server: _Server

    def do_GET(self) -> None:
        self.server.owner._serve(self, send_body=True)

    def do_HEAD(self) -> None:
        self.server.owner._serve(self, send_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _human_size(n: int) -> str:
    """Apache's ``-h`` sizes: 812, 3.4K, 576K, 1.2M."""
    if n < 1024:
        return str(n)
    size = float(n)
    for unit in "KMG":
        size /= 1024
        if size < 1024 or unit == "G":
            break
    return f"{size:.1f}{unit}" if size < 10 else f"{size:.0f}{unit}"


class FaultyHTTPServer:
    """A threaded HTTP server on 127.0.0.1 (ephemeral port) serving ``root``."""

    def __init__(self, root: str | Path, *, index_style: str = "apache", chunk_size: int = 16384) -> None:
        self.root = Path(root).resolve()
        self.index_style = index_style
        self.chunk_size = chunk_size
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.log: list[Request] = []
        self._active = 0
        self.max_active = 0  # the most requests served at the same time
        self.routes: dict[str, Callable[[str], tuple[int, str, bytes]]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- control ---

    def start(self) -> FaultyHTTPServer:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="faulty-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultyHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url_for(self, path: str) -> str:
        return f"{self.url}/{quote(path.lstrip('/'))}"

    def fault(self, path: str, **kwargs: Any) -> Fault:
        """Inject a fault for ``path`` (relative to the root); replaces an earlier one."""
        fault = Fault(**kwargs)
        with self._lock:
            self._faults["/" + path.lstrip("/")] = fault
        return fault

    def not_found(self, path: str) -> None:
        self.fault(path, status=404)

    def route(self, path: str, handler: Callable[[str], tuple[int, str, bytes]]) -> None:
        """Answer ``path`` with ``handler(query) -> (status, content type, body)`` (a fake API)."""
        self.routes["/" + path.lstrip("/")] = handler

    def requests(self, path: str) -> int:
        """How many GET requests ``path`` (file, or folder with its trailing slash) has had."""
        with self._lock:
            return self._counts["/" + path.lstrip("/")]

    def total_requests(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    # --- serving ---

    def _take(self, fault: Fault | None, field: str) -> bool:
        """Does the fault's ``field`` count allow one more faulty answer? (called under the lock)"""
        if fault is None:
            return False
        left = getattr(fault, field)
        if left == 0:
            return False
        if left > 0:
            setattr(fault, field, left - 1)
        return True

    def _serve(self, h: _Handler, send_body: bool) -> None:
        url = urlsplit(h.path)
        path = unquote(url.path)
        with self._lock:
            if h.command == "GET":
                self._counts[path] += 1
            fault = self._faults.get(path)
            fail = fault is not None and fault.status is not None and self._take(fault, "times")
            cut = fault is not None and fault.cut_after is not None and self._take(fault, "cut_times")
            slow = (
                fault is not None
                and (fault.delay or fault.chunk_delay) > 0
                and self._take(fault, "slow_times")
            )
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        try:
            self._answer(h, path, url.query, fault, fail, cut, slow, send_body)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True
        finally:
            with self._lock:
                self._active -= 1

    def _answer(
        self,
        h: _Handler,
        path: str,
        query: str,
        fault: Fault | None,
        fail: bool,
        cut: bool,
        slow: bool,
        send_body: bool,
    ) -> None:
        if slow and fault is not None and fault.delay:
            time.sleep(fault.delay)  # a deliberately slow server
        if fail and fault is not None and fault.status is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self._send(
                h, path, fault.status, "text/plain", f"fault {fault.status}\n".encode(), headers, send_body
            )
            return
        if path in self.routes:
            status, ctype, body = self.routes[path](query)
            self._send(h, path, status, ctype, body, {}, send_body)
            return
        target = (self.root / path.lstrip("/")).resolve()
        if target != self.root and self.root not in target.parents:
            self._send(h, path, 404, "text/plain", b"outside the root\n", {}, send_body)
        elif target.is_dir():
            if not path.endswith("/"):
                self._send(h, path, 301, "text/plain", b"", {"Location": path + "/"}, send_body)
            else:
                self._send(h, path, 200, "text/html", self._index(path, target).encode(), {}, send_body)
        elif not target.is_file():
            self._send(h, path, 404, "text/html", b"<html><body>Not Found</body></html>", {}, send_body)
        else:
            self._send_file(h, path, target.read_bytes(), fault, cut, slow, send_body)

    def _send_file(
        self, h: _Handler, path: str, data: bytes, fault: Fault | None, cut: bool, slow: bool, send_body: bool
    ) -> None:
        status, headers, body = 200, {"Accept-Ranges": "bytes"}, data
        wanted = h.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
        if m and not (fault is not None and fault.ignore_range):
            first = int(m.group(1))
            last = min(int(m.group(2)), len(data) - 1) if m.group(2) else len(data) - 1
            if first >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                self._send(h, path, 416, "text/plain", b"", headers, send_body)
                return
            status, body = 206, data[first : last + 1]
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        self._log(h, path, status)
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            h.send_header(name, value)
        h.end_headers()
        if not send_body:
            return
        if cut and fault is not None and fault.cut_after is not None:
            h.wfile.write(body[: fault.cut_after])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)  # the client sees the body end early
            return
        chunk_delay = fault.chunk_delay if (slow and fault is not None) else 0.0
        for i in range(0, len(body), self.chunk_size):
            if chunk_delay and i:
                time.sleep(chunk_delay)
            h.wfile.write(body[i : i + self.chunk_size])

    def _send(
        self,
        h: _Handler,
        path: str,
        status: int,
        ctype: str,
        body: bytes,
        headers: dict[str, str],
        send_body: bool,
    ) -> None:
        self._log(h, path, status)
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            h.send_header(name, value)
        h.end_headers()
        if send_body:
            h.wfile.write(body)

    def _log(self, h: _Handler, path: str, status: int) -> None:
        with self._lock:
            self.log.append(Request(h.command, path, h.headers.get("Range"), status))

    def _index(self, path: str, folder: Path) -> str:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
        rows = []
        for entry in entries:
            name = entry.name + ("/" if entry.is_dir() else "")
            stat = entry.stat()
            when = datetime.fromtimestamp(stat.st_mtime, UTC)
            if self.index_style == "nginx":
                size = "-" if entry.is_dir() else str(stat.st_size)
                stamp = when.strftime("%d-%b-%Y %H:%M")
                rows.append(
                    f'<a href="{quote(name)}">{escape(name)}</a>{" " * (50 - len(name))} {stamp} {size:>19}'
                )
            else:
                size = "-" if entry.is_dir() else _human_size(stat.st_size)
                stamp = when.strftime("%Y-%m-%d %H:%M")
                rows.append(
                    f'<a href="{quote(name)}">{escape(name)}</a>{" " * (30 - len(name))} {stamp}  {size:>4}  '
                )
        title = f"Index of {escape(path)}"
        if self.index_style == "nginx":
            return (
                f"<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1><hr><pre>"
                f'<a href="../">../</a>\n' + "\n".join(rows) + "\n</pre><hr></body>\n</html>\n"
            )
        parent = path.rstrip("/").rpartition("/")[0] + "/"
        return (
            '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
            f"<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n<h1>{title}</h1>\n"
            '<pre>      <a href="?C=N;O=D">Name</a>                    <a href="?C=M;O=A">Last modified</a>'
            '      <a href="?C=S;O=A">Size</a>  <a href="?C=D;O=A">Description</a><hr>'
            f'      <a href="{parent}">Parent Directory</a>                             -   \n'
            + "\n".join(rows)
            + "\n<hr></pre>\n<address>Apache/2.4.41 (Ubuntu) Server at 127.0.0.1 Port 80</address>\n"
            + "</body></html>\n"
        )


@pytest.fixture(name="faulty_http")
def faulty_http_fixture() -> Iterator[Callable[..., FaultyHTTPServer]]:
    """``faulty_http(root, index_style="apache")`` starts a server; all are stopped after the test."""
    servers: list[FaultyHTTPServer] = []

    def start(root: str | Path, **kwargs: Any) -> FaultyHTTPServer:
        server = FaultyHTTPServer(root, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
