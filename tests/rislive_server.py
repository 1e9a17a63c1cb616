"""A RIS Live stand-in for tests: a real websocket server on 127.0.0.1 that replays ris_messages.

Per connection it waits for the client's ris_subscribe messages, answers ris_subscribe_ok, and sends
the replay's messages that match the subscriptions, in order, from the stream's current position: the
position is shared by all connections, as the real stream goes on in time whoever listens. Faults are
scripted per connection (1 = the first connection):

    server.replay(messages)
    server.drop_after(1, messages=30, lose=5)   # close after 30 messages; 5 pass while the client is away
    server.stall_after(2, messages=10, lose=4)  # go silent without closing, until resume() or the close
    server.inject(3, after=5, payload="garbage")  # an extra frame after the 5th message
    server.inject_out_of_order(3, after=8, age=3600.0)

Observation: ``connections``, ``subscriptions`` (per connection), ``sent`` (per connection),
``sent_messages`` (every replay message sent, in order), ``stalled`` and ``wait_until(predicate)``.
The ``rislive_server`` fixture runs one in a background thread with its own event loop (a test module
gets it with ``pytest_plugins = ["tests.rislive_server"]``). One client at a time: connections share
the stream position.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class _Fault:
    kind: str  # "drop" or "stall"
    after: int
    lose: int
    error: str | None = None


def _short_host(host: Any) -> str:
    return str(host).split(".", 1)[0]


def _flat_path(path: Sequence[Any]) -> list[int]:
    flat: list[int] = []
    for hop in path:
        if isinstance(hop, list):
            flat.extend(int(a) for a in hop)
        else:
            flat.append(int(hop))
    return flat


def path_matches(pattern: str, path: Sequence[Any]) -> bool:
    """RIS Live's AS path filter: comma-separated ASes, ``^`` anchors at the peer, ``$`` at the origin."""
    anchored_start, anchored_end = pattern.startswith("^"), pattern.endswith("$")
    wanted = [int(a) for a in pattern.strip("^$").split(",") if a.strip()]
    flat = _flat_path(path)
    starts = [0] if anchored_start else range(len(flat) - len(wanted) + 1)
    for i in starts:
        if flat[i : i + len(wanted)] == wanted and (not anchored_end or i + len(wanted) == len(flat)):
            return True
    return False


def _covers(outer: IPNetwork, inner: IPNetwork) -> bool:
    """Whether ``inner`` is ``outer`` or a more specific of it."""
    return (
        inner.version == outer.version
        and inner.prefixlen >= outer.prefixlen
        and inner.supernet(new_prefix=outer.prefixlen) == outer
    )


def subscription_matches(sub: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    """Whether one ris_subscribe filter selects a ris_message's data (the filters of RIS Live's manual)."""
    if "type" in sub and data.get("type") != sub["type"]:
        return False
    if sub.get("host") and _short_host(data.get("host")) != _short_host(sub["host"]):
        return False
    if sub.get("peer") and data.get("peer") != sub["peer"]:
        return False
    if sub.get("require") and not data.get(sub["require"]):
        return False
    if sub.get("prefix"):
        wanted = sub["prefix"] if isinstance(sub["prefix"], list) else [sub["prefix"]]
        nets = [ipaddress.ip_network(p) for p in wanted]
        prefixes = [p for a in data.get("announcements", []) for p in a["prefixes"]]
        prefixes += data.get("withdrawals", [])
        more, less = sub.get("moreSpecific", True), sub.get("lessSpecific", False)

        def selected(text: str) -> bool:
            net = ipaddress.ip_network(text)
            return any(
                net == want or (more and _covers(want, net)) or (less and _covers(net, want)) for want in nets
            )

        if not any(selected(p) for p in prefixes):
            return False
    return not (sub.get("path") and not path_matches(sub["path"], data.get("path", [])))


class RisLiveReplayServer:
    """See the module docstring. Control and observation methods are thread-safe."""

    def __init__(self, messages: Sequence[Mapping[str, Any]] = (), expect_subscriptions: int = 1) -> None:
        self.messages: list[Mapping[str, Any]] = list(messages)
        #: replay starts once this many ris_subscribe messages came (the client sends them all at once)
        self.expect_subscriptions = expect_subscriptions
        self.position = 0
        self.connections = 0
        self.subscriptions: list[list[dict[str, Any]]] = []
        self.sent: list[int] = []
        self.sent_messages: list[Mapping[str, Any]] = []
        self.stalled = False
        self._faults: dict[int, _Fault] = {}
        self._injections: dict[int, list[tuple[int, Callable[[], str]]]] = {}
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resume: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws/?client=transitwatch-tests"

    # ---- scripting (from the test thread)

    def replay(self, messages: Sequence[Mapping[str, Any]]) -> None:
        with self._cond:
            self.messages = list(messages)
            self.position = 0

    def drop_after(self, connection: int, messages: int, lose: int = 0, error: str | None = None) -> None:
        """Close ``connection`` after it got ``messages`` messages (sending a ris_error first if
        ``error``); the next ``lose`` replay messages pass while the client is away."""
        with self._cond:
            self._faults[connection] = _Fault("drop", messages, lose, error)

    def stall_after(self, connection: int, messages: int, lose: int = 0) -> None:
        """Stop sending on ``connection`` after ``messages`` messages, without closing, until
        :meth:`resume` or the client closes; in the latter case ``lose`` replay messages pass."""
        with self._cond:
            self._faults[connection] = _Fault("stall", messages, lose)

    def resume(self) -> None:
        loop, event = self._loop, self._resume
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    def inject(self, connection: int, after: int, payload: str | bytes | Mapping[str, Any]) -> None:
        """Send an extra frame on ``connection`` once it got ``after`` replay messages."""
        text = payload if isinstance(payload, str | bytes) else json.dumps(payload)
        frame = text.decode() if isinstance(text, bytes) else text
        self._add_injection(connection, after, lambda: frame)

    def inject_out_of_order(self, connection: int, after: int, age: float = 3600.0) -> None:
        """Send the last message of ``connection`` again with its timestamp ``age`` seconds earlier."""

        def frame() -> str:
            old = copy.deepcopy(dict(self.sent_messages[-1]))
            old["data"]["timestamp"] -= age
            return json.dumps(old)

        self._add_injection(connection, after, frame)

    def _add_injection(self, connection: int, after: int, frame: Callable[[], str]) -> None:
        with self._cond:
            self._injections.setdefault(connection, []).append((after, frame))

    # ---- observation

    def wait_until(self, predicate: Callable[[RisLiveReplayServer], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate(self)`` holds; AssertionError after ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"server condition not met within {timeout} s")

    async def until(self, predicate: Callable[[RisLiveReplayServer], bool], timeout: float = 5.0) -> None:
        """:meth:`wait_until` for coroutines, without blocking their event loop."""
        await asyncio.to_thread(self.wait_until, predicate, timeout)

    # ---- lifecycle

    def start(self) -> None:
        started = threading.Event()

        def run() -> None:
            asyncio.run(self._main(started))

        self._thread = threading.Thread(target=run, name="rislive-replay-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("replay server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self, started: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._resume = asyncio.Event()
        server: Server
        # no size limit here: tests send oversized messages on purpose
        async with serve(self._handler, "127.0.0.1", 0, max_size=None) as server:
            self.port = server.sockets[0].getsockname()[1] if server.sockets else 0
            started.set()
            await self._stop.wait()

    # ---- one connection

    def _changed(self, update: Callable[[], None]) -> None:
        with self._cond:
            update()
            self._cond.notify_all()

    async def _handler(self, ws: ServerConnection) -> None:
        subs: list[dict[str, Any]] = []
        subscribed = asyncio.Event()
        with self._cond:
            self.connections += 1
            conn = self.connections
            self.subscriptions.append(subs)
            self.sent.append(0)
            self._cond.notify_all()
        reader = asyncio.create_task(self._read(ws, subs, subscribed))
        try:
            await subscribed.wait()
            await self._send_replay(ws, conn, subs)
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()

    async def _read(
        self, ws: ServerConnection, subs: list[dict[str, Any]], subscribed: asyncio.Event
    ) -> None:
        try:
            async for text in ws:
                msg = json.loads(text)
                if msg.get("type") == "ris_subscribe":
                    with self._cond:
                        subs.append(msg.get("data", {}))
                        self._cond.notify_all()
                    await ws.send(json.dumps({"type": "ris_subscribe_ok", "data": msg.get("data", {})}))
                    if len(subs) >= self.expect_subscriptions:
                        subscribed.set()
                elif msg.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong", "data": {}}))
        except ConnectionClosed:
            pass
        finally:
            subscribed.set()  # a closed connection ends the replay too

    async def _send_replay(self, ws: ServerConnection, conn: int, subs: list[dict[str, Any]]) -> None:
        with self._cond:
            fault = self._faults.get(conn)
            injections = sorted(self._injections.get(conn, []), key=lambda item: item[0])
        while True:
            count = self.sent[conn - 1]
            while injections and injections[0][0] <= count:
                await ws.send(injections.pop(0)[1]())
            if fault is not None and count >= fault.after:
                fault_now, fault = fault, None
                if await self._fault(ws, fault_now):
                    return
            with self._cond:
                if self.position >= len(self.messages):
                    break
                msg = self.messages[self.position]
            matched = any(subscription_matches(sub, msg["data"]) for sub in subs)
            if matched:
                await ws.send(json.dumps(msg))
            with self._cond:  # position and counts change together, so observers see them agree
                self.position += 1
                if matched:
                    self.sent[conn - 1] += 1
                    self.sent_messages.append(msg)
                self._cond.notify_all()
        # the replay is over: stay connected and quiet, like a quiet stream
        await ws.wait_closed()

    async def _fault(self, ws: ServerConnection, fault: _Fault) -> bool:
        """Carry out a fault; True if the connection is over."""
        if fault.kind == "drop":
            if fault.error:
                await ws.send(json.dumps({"type": "ris_error", "data": {"message": fault.error}}))
            await ws.close()
            self._changed(lambda: self._lose(fault.lose))
            return True
        assert self._resume is not None
        self._resume.clear()

        def stall() -> None:
            self.stalled = True

        self._changed(stall)
        closed = asyncio.create_task(ws.wait_closed())
        resumed = asyncio.create_task(self._resume.wait())
        await asyncio.wait([closed, resumed], return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        resumed.cancel()

        def unstall() -> None:
            self.stalled = False
            if not self._resume_set():
                self._lose(fault.lose)

        self._changed(unstall)
        return not self._resume_set()

    def _resume_set(self) -> bool:
        return self._resume is not None and self._resume.is_set()

    def _lose(self, count: int) -> None:
        self.position = min(len(self.messages), self.position + count)


@pytest.fixture
def rislive_server() -> Iterator[RisLiveReplayServer]:
    """A started :class:`RisLiveReplayServer` with nothing to replay yet (see ``replay``)."""
    server = RisLiveReplayServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
