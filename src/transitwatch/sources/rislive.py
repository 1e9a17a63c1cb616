"""RIPE RIS Live: its messages as elements, a resilient stream client, and MRT elements as RIS Live messages.

    async with RisLiveClient(subscriptions=subscriptions_for(prefixes=["175.45.176.0/22"])) as client:
        async for event in client:
            if isinstance(event, Element): ...       # one per announced/withdrawn prefix, peer state
            elif isinstance(event, Gap): ...         # blind interval: the stream was down or stale
            elif isinstance(event, Lag): ...         # clock minus message timestamp
            elif isinstance(event, Counters): ...    # messages, elements, skipped messages by reason

Elements carry the same field values as the MRT reader's for the fields RIS Live has (``record_type`` is
``"RIS_LIVE"``; local preference, large and extended communities, ADD-PATH ids and ATOMIC_AGGREGATE are
not in the stream and stay ``None``). :func:`elements_to_ris_messages` goes the other way, for replays.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import random
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from types import TracebackType
from typing import Any

import orjson
import pyarrow as pa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException

from transitwatch.model import BGP_STATES, Element, ElementType
from transitwatch.mrt.reader import batch_elements

logger = logging.getLogger("transitwatch.rislive")

DEFAULT_URL = "wss://ris-live.ripe.net/v1/ws/?client=transitwatch"
#: ``Element.record_type`` of elements from the stream.
RECORD_TYPE = "RIS_LIVE"
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20

_ORIGINS = {"IGP", "EGP", "INCOMPLETE"}
# bgpdump (and so the MRT reader) names three well-known communities (RFC 1997)
_WELL_KNOWN_COMMUNITIES = {
    (65535, 65281): "no-export",
    (65535, 65282): "no-advertise",
    (65535, 65283): "local-AS",
}
_WELL_KNOWN_NAMES = {name: pair for pair, name in _WELL_KNOWN_COMMUNITIES.items()}
# RIS_PEER_STATE "state" values, mapped as libbgpstream maps them (from the collector's ExaBGP states)
_PEER_STATES = {"down": 1, "connected": 2, "up": 6} | {name.lower(): num for num, name in BGP_STATES.items()}
_SILENT_TYPES = {"OPEN", "NOTIFICATION", "KEEPALIVE"}
_CONTROL_TYPES = {"ris_subscribe_ok", "pong", "ris_rrc_list"}
# words of a ris_error that mean the server is dropping us for reading too slowly
_FELL_BEHIND_WORDS = ("behind", "slow", "queue", "buffer", "lag", "disconnect")


class RisLiveMessageError(ValueError):
    """A RIS Live message that cannot be read as the schema says; ``reason`` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------------------
# Parsing


@lru_cache(maxsize=1 << 16)
def _prefix(text: str) -> str:
    """Canonical prefix text, as the MRT reader prints it (inet_ntop: RFC 5952 for IPv6)."""
    # the stream's prefixes are nearly all canonical: inet_pton/inet_ntop take a microsecond where
    # ipaddress takes ten; anything unusual (a netmask, bad text) goes the slow, strict way
    addr, _, length = text.partition("/")
    family, bits = (socket.AF_INET6, 128) if ":" in addr else (socket.AF_INET, 32)
    if length.isascii() and length.isdigit() and int(length) <= bits:
        try:
            packed = socket.inet_pton(family, addr)
        except OSError:
            pass
        else:
            n = int(length)
            if not int.from_bytes(packed, "big") & ((1 << (bits - n)) - 1):  # no host bits set
                return f"{socket.inet_ntop(family, packed)}/{n}"
    if "%" in text:  # ipaddress takes an IPv6 scope id; a routed prefix has none
        raise RisLiveMessageError(f"bad prefix {text!r}: a scope id")
    try:
        net = ipaddress.ip_network(text)
    except ValueError as exc:
        raise RisLiveMessageError(f"bad prefix {text!r}: {exc}") from None
    family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
    return f"{socket.inet_ntop(family, net.network_address.packed)}/{net.prefixlen}"


@lru_cache(maxsize=1 << 14)
def _address(text: str) -> str:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise RisLiveMessageError(f"bad address {text!r}") from None
    return socket.inet_ntop(socket.AF_INET6 if addr.version == 6 else socket.AF_INET, addr.packed)


def _int(value: Any, what: str) -> int:
    # peer_asn arrives as a string; JSON numbers are accepted too, booleans and fractions are not
    if isinstance(value, bool):
        raise RisLiveMessageError(f"bad {what} {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise RisLiveMessageError(f"bad {what} {value!r}")
    if not 0 <= number < 1 << 32:
        raise RisLiveMessageError(f"{what} out of range: {value!r}")
    return number


def _timestamp(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RisLiveMessageError(f"bad timestamp {value!r}")
    try:
        ts = float(value)
    except ValueError:
        raise RisLiveMessageError(f"bad timestamp {value!r}") from None
    if not math.isfinite(ts) or ts < 0:
        raise RisLiveMessageError(f"bad timestamp {value!r}")
    return ts


def collector_name(host: str) -> str:
    """``rrc00.ripe.net`` and ``rrc00`` are both ``rrc00``."""
    return host.split(".", 1)[0]


def _as_path(path: Any) -> tuple[str, int | None]:
    """bgpdump notation and origin AS of a RIS Live path (AS_SETs are nested lists)."""
    if not isinstance(path, list):
        raise RisLiveMessageError(f"path is not a list: {path!r}")
    tokens = []
    for hop in path:
        if type(hop) is int and 0 <= hop < 1 << 32:  # nearly every hop: no call
            tokens.append(str(hop))
        elif isinstance(hop, list):
            tokens.append("{" + ",".join(str(_int(asn, "AS in AS_SET")) for asn in hop) + "}")
        else:
            tokens.append(str(_int(hop, "AS in path")))
    origin_asn = None
    if path and not isinstance(path[-1], list):
        origin_asn = int(tokens[-1])
    return " ".join(tokens), origin_asn


def _communities(value: Any) -> str | None:
    if not isinstance(value, list):
        raise RisLiveMessageError(f"community is not a list: {value!r}")
    texts = []
    for pair in value:
        if type(pair) is list and len(pair) == 2:
            asn, val = pair
            if type(asn) is int and type(val) is int and 0 <= asn <= 0xFFFF and 0 <= val <= 0xFFFF:
                texts.append(_WELL_KNOWN_COMMUNITIES.get((asn, val)) or f"{asn}:{val}")
                continue
        if not isinstance(pair, list) or len(pair) != 2:
            raise RisLiveMessageError(f"bad community {pair!r}")
        asn, val = _int(pair[0], "community AS"), _int(pair[1], "community value")
        if asn > 0xFFFF or val > 0xFFFF:
            raise RisLiveMessageError(f"community out of range: {pair!r}")
        texts.append(_WELL_KNOWN_COMMUNITIES.get((asn, val)) or f"{asn}:{val}")
    # an empty list is how the stream says "no communities"
    return " ".join(texts) or None


def _aggregator(value: Any) -> tuple[int, str]:
    if not isinstance(value, str) or ":" not in value:
        raise RisLiveMessageError(f"bad aggregator {value!r}")
    asn, _, addr = value.partition(":")
    return _int(asn, "aggregator AS"), _address(addr)


def _next_hops(value: Any) -> list[str]:
    # IPv6 next hops come as "global,link-local", or as two announcement entries with the same prefixes
    if not isinstance(value, str):
        raise RisLiveMessageError(f"bad next_hop {value!r}")
    return [_address(part.strip()) for part in value.split(",") if part.strip()]


def _is_link_local(addr: str) -> bool:
    return addr.lower().startswith("fe80:")


def _data(message: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    """The ``data`` of a ris_message, from its JSON text, the whole message or the data alone."""
    obj: Any = message
    if isinstance(message, str | bytes | bytearray):
        try:
            obj = orjson.loads(message)
        except ValueError as exc:  # orjson.JSONDecodeError is one
            raise RisLiveMessageError(f"not JSON: {exc}") from None
    if not isinstance(obj, Mapping):
        raise RisLiveMessageError(f"not a JSON object: {type(obj).__name__}")
    if "data" not in obj:
        return obj
    if obj.get("type", "ris_message") != "ris_message":
        raise RisLiveMessageError(f"not a ris_message: {obj.get('type')!r}")
    data = obj["data"]
    if not isinstance(data, Mapping):
        raise RisLiveMessageError("data is not an object")
    return data


def parse_ris_message(message: Mapping[str, Any] | str | bytes) -> list[Element]:
    """Elements of one ris_message (JSON text, the whole message, or its ``data``).

    One element per announced prefix (``A``) and per withdrawn prefix (``W``, listed first as in
    the MRT reader), one ``S`` element for RIS_PEER_STATE, none for OPEN, NOTIFICATION and KEEPALIVE
    or for a message without type and without announcements, withdrawals or state (the stream sends
    such messages). Raises :class:`RisLiveMessageError` for anything that breaks the schema.
    """
    return _parse_data(_data(message))[2]


def _parse_data(data: Mapping[str, Any]) -> tuple[float, tuple[str | None, str], list[Element]]:
    """(timestamp, (collector, peer), elements) of a ris_message's data."""
    if "timestamp" not in data:
        raise RisLiveMessageError("no timestamp")
    if "peer" not in data or "peer_asn" not in data:
        raise RisLiveMessageError("no peer or peer_asn")
    timestamp = _timestamp(data["timestamp"])
    if not isinstance(data["peer"], str):
        raise RisLiveMessageError(f"bad peer {data['peer']!r}")
    peer = _address(data["peer"])
    peer_asn = _int(data["peer_asn"], "peer_asn")
    host = data.get("host")
    if host is not None and not isinstance(host, str):
        raise RisLiveMessageError(f"bad host {host!r}")
    collector = collector_name(host) if host else None
    key = (collector, peer)

    kind = data.get("type")
    if kind is None:  # older messages may lack the type; infer it from the content
        if "announcements" in data or "withdrawals" in data:
            kind = "UPDATE"
        elif "state" in data:
            kind = "RIS_PEER_STATE"
        else:
            return timestamp, key, []
    if not isinstance(kind, str):
        raise RisLiveMessageError(f"bad type {kind!r}")
    kind = kind.upper()
    common: dict[str, Any] = {
        "timestamp": timestamp,
        "record_type": RECORD_TYPE,
        "collector": collector,
        "peer_address": peer,
        "peer_asn": peer_asn,
    }
    if kind in _SILENT_TYPES:
        return timestamp, key, []
    if kind == "RIS_PEER_STATE":
        state = data.get("state")
        if not isinstance(state, str) or state.lower() not in _PEER_STATES:
            raise RisLiveMessageError(f"unknown peer state {state!r}")
        return (
            timestamp,
            key,
            [Element(type=ElementType.STATE, new_state=_PEER_STATES[state.lower()], **common)],
        )
    if kind != "UPDATE":
        raise RisLiveMessageError(f"unknown message type {kind!r}")
    return timestamp, key, _update_elements(data, common)


def _update_elements(data: Mapping[str, Any], common: dict[str, Any]) -> list[Element]:
    withdrawals = data.get("withdrawals") or []
    announcements = data.get("announcements") or []
    if not isinstance(withdrawals, list) or not isinstance(announcements, list):
        raise RisLiveMessageError("announcements or withdrawals is not a list")
    elements = []
    for text in withdrawals:
        if not isinstance(text, str):
            raise RisLiveMessageError(f"bad withdrawn prefix {text!r}")
        elements.append(Element(type=ElementType.WITHDRAWAL, prefix=_prefix(text), safi=1, **common))
    if not announcements:
        return elements

    # next hops per prefix, prefixes in order of first appearance
    hops: dict[str, list[str]] = {}
    for entry in announcements:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("prefixes"), list):
            raise RisLiveMessageError(f"bad announcement {entry!r}")
        entry_hops = _next_hops(entry["next_hop"]) if entry.get("next_hop") is not None else []
        for text in entry["prefixes"]:
            if not isinstance(text, str):
                raise RisLiveMessageError(f"bad announced prefix {text!r}")
            hops.setdefault(_prefix(text), []).extend(entry_hops)

    attrs: dict[str, Any] = {"safi": 1}
    if data.get("path") is not None:
        attrs["as_path"], attrs["origin_asn"] = _as_path(data["path"])
    if data.get("origin") is not None:
        origin = data["origin"]
        if not isinstance(origin, str) or origin.upper() not in _ORIGINS:
            raise RisLiveMessageError(f"bad origin {origin!r}")
        attrs["origin"] = origin.upper()
    if data.get("med") is not None:
        attrs["med"] = _int(data["med"], "med")
    if data.get("community") is not None:
        attrs["communities"] = _communities(data["community"])
    if data.get("aggregator") is not None:
        attrs["aggregator_asn"], attrs["aggregator_address"] = _aggregator(data["aggregator"])
    for prefix, prefix_hops in hops.items():
        global_hops = [hop for hop in prefix_hops if not _is_link_local(hop)]
        next_hop = (global_hops or prefix_hops)[0] if prefix_hops else None
        elements.append(
            Element(type=ElementType.ANNOUNCEMENT, prefix=prefix, next_hop=next_hop, **common, **attrs)
        )
    return elements


# ---------------------------------------------------------------------------------------------------------
# Subscriptions


def subscriptions_for(
    prefixes: Iterable[str] = (),
    origin_asns: Iterable[int] = (),
    *,
    host: str | None = None,
    peer_states: bool = True,
) -> list[dict[str, Any]]:
    """ris_subscribe ``data`` filters for target prefixes (and their more specifics) and origin ASes.

    An origin filter (``"131279$"``) matches announcements only: withdrawals carry no path, so list
    the prefixes too to see them withdrawn. With neither, the filter is the whole stream (of ``host``).
    ``peer_states`` adds the RIS_PEER_STATE messages (of all peers: the stream cannot filter them by
    prefix), so that session resets are visible.
    """
    base: dict[str, Any] = {"host": host} if host else {}
    subs: list[dict[str, Any]] = []
    for prefix in prefixes:
        subs.append(
            {**base, "type": "UPDATE", "prefix": str(ipaddress.ip_network(prefix)), "moreSpecific": True}
        )
    for asn in origin_asns:
        subs.append({**base, "type": "UPDATE", "path": f"{int(asn)}$"})
    if not subs:
        subs.append({**base, "type": "UPDATE"})
    if peer_states:
        subs.append({**base, "type": "RIS_PEER_STATE"})
    return subs


# ---------------------------------------------------------------------------------------------------------
# Client


@dataclass(frozen=True, slots=True)
class Gap:
    """A blind interval: from the timestamp of the last message before the stream was lost (or the
    time it was lost, by the client's clock, if no message had come yet) to the timestamp of the first
    message after it came back. Changes in between were not seen."""

    start: float
    end: float
    reason: str


@dataclass(frozen=True, slots=True)
class Lag:
    """How far behind the stream is: the client's clock minus the latest message's timestamp."""

    seconds: float
    message_time: float


@dataclass(frozen=True, slots=True)
class Counters:
    """Running totals of one client. Skipped messages are counted by reason, never dropped silently."""

    connections: int = 0
    messages: int = 0  # ris_messages accepted
    elements: int = 0
    malformed: int = 0  # not JSON, not the schema, unknown server message types
    oversized: int = 0
    out_of_order: int = 0
    server_errors: int = 0  # ris_error messages
    stalls: int = 0  # reconnections because nothing came for stale_after seconds
    gaps: int = 0


RisLiveEvent = Element | Gap | Lag | Counters


class ExponentialBackoff:
    """Reconnection delays: ``initial * factor**attempt`` capped at ``maximum``, minus up to ``jitter``
    of it at random, so that many clients cut off together do not come back together."""

    def __init__(
        self,
        initial: float = 1.0,
        factor: float = 2.0,
        maximum: float = 60.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.initial, self.factor, self.maximum, self.jitter = initial, factor, maximum, jitter
        self.rng = rng or random.Random()

    def __call__(self, attempt: int) -> float:
        delay = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return delay * (1.0 - self.jitter * self.rng.random())


class _Reconnect(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RisLiveClient:
    """Follows RIS Live: subscribes, yields events, and reconnects when the stream breaks or stalls.

    ``subscriptions`` are ris_subscribe ``data`` filters (see :func:`subscriptions_for`; default: the
    whole stream). Time comes from ``clock`` (seconds since the epoch): staleness (nothing received for
    ``stale_after`` seconds), lag and report intervals use it, so tests can drive it. The client checks
    for staleness every ``poll_interval`` real seconds while the socket is quiet; a narrow subscription
    can be quiet for longer than the default 180 s, so raise ``stale_after`` for one. ``backoff(attempt)``
    gives the delay before reconnection attempt ``attempt`` (0 after a connection that delivered
    messages), waited with ``sleep``. Every ``report_every`` seconds of ``clock`` the client yields a
    :class:`Lag` and a :class:`Counters` with the next message.

    Messages larger than ``max_message_bytes`` (the websocket layer refuses 16 times that, and the
    connection is then reopened), malformed ones, and ones older than the last seen from the same peer by
    more than ``out_of_order_tolerance`` seconds are counted, logged and skipped.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        subscriptions: Sequence[Mapping[str, Any]] | None = None,
        *,
        stale_after: float = 180.0,
        clock: Callable[[], float] = time.time,
        backoff: Callable[[int], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        out_of_order_tolerance: float = 5.0,
        report_every: float = 10.0,
        poll_interval: float = 1.0,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
    ) -> None:
        self.url = url
        self.subscriptions = [
            dict(s) for s in (subscriptions if subscriptions is not None else subscriptions_for())
        ]
        self.stale_after = stale_after
        self.clock = clock
        self.backoff = backoff or ExponentialBackoff()
        self.sleep = sleep
        self.max_message_bytes = max_message_bytes
        self.out_of_order_tolerance = out_of_order_tolerance
        self.report_every = report_every
        self.poll_interval = poll_interval
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self._counts = {f.name: 0 for f in fields(Counters)}
        self._peer_last: dict[tuple[str | None, str], float] = {}
        self._last_message_time: float | None = None
        self._gap_start: float | None = None
        self._gap_reason = ""
        self._next_report: float | None = None
        self._attempt = 0
        self._events: AsyncGenerator[RisLiveEvent, None] | None = None

    @property
    def counters(self) -> Counters:
        """The totals so far."""
        return Counters(**self._counts)

    def __aiter__(self) -> AsyncIterator[RisLiveEvent]:
        if self._events is None:
            self._events = self._run()
        return self._events

    async def aclose(self) -> None:
        """Close the connection and end the iteration."""
        if self._events is not None:
            await self._events.aclose()

    async def __aenter__(self) -> RisLiveClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[RisLiveEvent, None]:
        while True:
            try:
                async with connect(
                    self.url,
                    max_size=16 * self.max_message_bytes,
                    open_timeout=self.open_timeout,
                    ping_interval=self.ping_interval,
                ) as ws:
                    self._counts["connections"] += 1
                    for sub in self.subscriptions:
                        await ws.send(json.dumps({"type": "ris_subscribe", "data": sub}))
                    logger.info("connected to %s, %d subscriptions", self.url, len(self.subscriptions))
                    async for event in self._receive(ws):
                        yield event
                    raise _Reconnect("stream ended")  # not reached: _receive ends by raising
            except InvalidURI:
                raise  # a configuration error: retrying cannot help
            except _Reconnect as exc:
                reason = exc.reason
            except ConnectionClosed as exc:
                reason = f"disconnected: {exc}"
            except (OSError, WebSocketException) as exc:  # refused, timed out, bad handshake
                reason = f"cannot connect: {exc}"
            self._open_gap(reason)
            delay = self.backoff(self._attempt)
            self._attempt += 1
            logger.warning("RIS Live stream lost (%s); reconnecting in %.1f s", reason, delay)
            await self.sleep(delay)

    async def _receive(self, ws: ClientConnection) -> AsyncIterator[RisLiveEvent]:
        last_frame_at = self.clock()
        while True:
            try:
                async with asyncio.timeout(self.poll_interval):
                    frame = await ws.recv(decode=False)
            except TimeoutError:
                idle = self.clock() - last_frame_at
                if idle >= self.stale_after:
                    self._counts["stalls"] += 1
                    raise _Reconnect(f"stale: nothing received for {idle:.0f} s") from None
                continue
            last_frame_at = self.clock()
            for event in self._handle(frame):
                yield event

    def _open_gap(self, reason: str) -> None:
        if self._gap_start is None:
            self._gap_start = self._last_message_time if self._last_message_time is not None else self.clock()
            self._gap_reason = reason

    def _skip(self, counter: str, why: str, frame: bytes) -> list[RisLiveEvent]:
        self._counts[counter] += 1
        logger.warning("skipped a RIS Live message (%s): %s: %.200r", counter, why, frame)
        return []

    def _handle(self, frame: bytes) -> list[RisLiveEvent]:
        if len(frame) > self.max_message_bytes:
            return self._skip("oversized", f"{len(frame)} bytes > {self.max_message_bytes}", frame[:200])
        try:
            obj = orjson.loads(frame)
        except ValueError as exc:
            return self._skip("malformed", f"not JSON: {exc}", frame)
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "ris_message":
            return self._message(obj, frame)
        if kind == "ris_error":
            self._counts["server_errors"] += 1
            data = obj.get("data")
            text = str(data.get("message", data) if isinstance(data, dict) else data)
            logger.warning("RIS Live error: %s", text)
            if any(word in text.lower() for word in _FELL_BEHIND_WORDS):
                raise _Reconnect(f"server error: {text}")
            return []
        if kind in _CONTROL_TYPES:
            logger.debug("RIS Live %s: %.200r", kind, frame)
            return []
        return self._skip("malformed", f"unknown message type {kind!r}", frame)

    def _message(self, obj: Mapping[str, Any], frame: bytes) -> list[RisLiveEvent]:
        try:
            timestamp, peer_key, elements = _parse_data(_data(obj))
        except RisLiveMessageError as exc:
            return self._skip("malformed", exc.reason, frame)
        last = self._peer_last.get(peer_key)
        if last is not None and timestamp < last - self.out_of_order_tolerance:
            return self._skip(
                "out_of_order", f"{timestamp} is {last - timestamp:.1f} s before the last", frame
            )
        self._peer_last[peer_key] = timestamp if last is None else max(last, timestamp)

        events: list[RisLiveEvent] = []
        if self._gap_start is not None:
            self._counts["gaps"] += 1
            gap = Gap(self._gap_start, max(timestamp, self._gap_start), self._gap_reason)
            logger.warning("RIS Live blind from %s to %s (%s)", gap.start, gap.end, gap.reason)
            events.append(gap)
            self._gap_start = None
        self._attempt = 0
        self._last_message_time = timestamp
        self._counts["messages"] += 1
        self._counts["elements"] += len(elements)
        now = self.clock()
        if self._next_report is None or now >= self._next_report:
            self._next_report = now + self.report_every
            events.append(Lag(now - timestamp, timestamp))
            events.append(self.counters)
        events.extend(elements)
        return events


# ---------------------------------------------------------------------------------------------------------
# MRT elements -> RIS Live messages


def _path_list(as_path: str) -> list[int | list[int]]:
    """bgpdump path text as RIS Live sends it: sets as nested lists (confederation sequences are
    flattened and confederation sets become lists: the stream does not distinguish them)."""
    path: list[int | list[int]] = []
    for token in as_path.replace("(", " ").replace(")", " ").split():
        if token[0] in "{[":
            path.append([int(asn) for asn in token.strip("{}[]").split(",") if asn])
        else:
            path.append(int(token))
    return path


def _community_list(text: str) -> list[list[int]]:
    pairs = []
    for token in text.split():
        if token in _WELL_KNOWN_NAMES:
            pairs.append(list(_WELL_KNOWN_NAMES[token]))
        else:
            asn, _, value = token.partition(":")
            pairs.append([int(asn), int(value)])
    return pairs


def _iter_elements(source: Iterable[pa.RecordBatch | Element] | pa.RecordBatch) -> Iterable[Element]:
    items: Iterable[pa.RecordBatch | Element] = [source] if isinstance(source, pa.RecordBatch) else source
    for item in items:
        if isinstance(item, pa.RecordBatch):
            yield from batch_elements(item)
        else:
            yield item


def elements_to_ris_messages(
    source: Iterable[pa.RecordBatch | Element] | pa.RecordBatch, host: str = "rrc00.ripe.net"
) -> list[dict[str, Any]]:
    """RIS Live ris_messages (whole ``{"type": "ris_message", "data": ...}`` objects) carrying the
    announcements and withdrawals of BGP4MP elements; other elements are left out.

    Consecutive elements of one peer at one time become one message while the attributes stay the
    same (withdrawals first, as in a BGP UPDATE), so :func:`parse_ris_message` gives back the
    elements in order with the MRT reader's values for every field RIS Live carries.
    """
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    key: tuple[Any, ...] | None = None
    attrs: tuple[Any, ...] | None = None
    withdrawn: set[str] = set()
    announced: set[str] = set()

    for el in _iter_elements(source):
        if el.type not in (ElementType.ANNOUNCEMENT, ElementType.WITHDRAWAL) or el.prefix is None:
            continue
        if not el.record_type.startswith("BGP4MP") or el.peer_address is None or el.peer_asn is None:
            continue
        el_key = (el.timestamp, el.peer_address, el.peer_asn)
        el_attrs = (el.as_path, el.origin, el.med, el.communities, el.aggregator_asn, el.aggregator_address)
        is_withdrawal = el.type == ElementType.WITHDRAWAL
        if (
            current is None
            or el_key != key
            or (is_withdrawal and (announced or el.prefix in withdrawn))
            or (not is_withdrawal and ((attrs is not None and el_attrs != attrs) or el.prefix in announced))
        ):
            current = _new_message(el, host, len(messages))
            messages.append(current)
            key, attrs = el_key, None
            withdrawn, announced = set(), set()
        data = current["data"]
        if is_withdrawal:
            data["withdrawals"].append(el.prefix)
            withdrawn.add(el.prefix)
            continue
        if attrs is None:
            attrs = el_attrs
            _set_attributes(data, el)
        entries = data["announcements"]
        if entries and entries[-1]["next_hop"] == el.next_hop:
            entries[-1]["prefixes"].append(el.prefix)
        else:
            entries.append({"next_hop": el.next_hop, "prefixes": [el.prefix]})
        announced.add(el.prefix)
    return messages


def _new_message(el: Element, host: str, number: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "timestamp": el.timestamp,
        "peer": el.peer_address,
        "peer_asn": str(el.peer_asn),
        "id": f"{el.peer_address}-{number:016x}",  # the stream's newer id format: peer, then a counter
        "host": host,
        "type": "UPDATE",
        "path": [],
        "community": [],
        "announcements": [],
        "withdrawals": [],
    }
    return {"type": "ris_message", "data": data}


def _set_attributes(data: dict[str, Any], el: Element) -> None:
    if el.as_path is None:
        del data["path"]
    else:
        data["path"] = _path_list(el.as_path)
    if el.communities:
        data["community"] = _community_list(el.communities)
    if el.origin is not None:
        data["origin"] = el.origin.lower()
    if el.med is not None:
        data["med"] = el.med
    if el.aggregator_asn is not None and el.aggregator_address is not None:
        data["aggregator"] = f"{el.aggregator_asn}:{el.aggregator_address}"


__all__ = [
    "DEFAULT_URL",
    "RECORD_TYPE",
    "Counters",
    "ExponentialBackoff",
    "Gap",
    "Lag",
    "RisLiveClient",
    "RisLiveEvent",
    "RisLiveMessageError",
    "collector_name",
    "elements_to_ris_messages",
    "parse_ris_message",
    "subscriptions_for",
]
