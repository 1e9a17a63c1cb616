"""RIS Live: message parsing (real messages and their drift), MRT -> RIS Live conversion round trips, and
the client against a real local websocket server replaying a real scenario with scripted faults."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import MRT_DIR, SCENARIOS, SHARED
from transitwatch.model import Element, ElementType
from transitwatch.mrt import MrtReader
from transitwatch.sources.rislive import (
    Counters,
    ExponentialBackoff,
    Gap,
    Lag,
    RisLiveClient,
    RisLiveEvent,
    RisLiveMessageError,
    elements_to_ris_messages,
    parse_ris_message,
    subscriptions_for,
)

if TYPE_CHECKING:
    from tests.rislive_server import RisLiveReplayServer

# the replay server and its fixture (imported by pytest, so that its asserts are rewritten too)
pytest_plugins = ["tests.rislive_server"]

EXAMPLES = SHARED / "data" / "rislive" / "examples.jsonl"
KP_RRC00 = SCENARIOS / "kp-2017-ttk" / "rrc00" / "2017.10"
# 09:00-09:15 holds TransTeleCom's first routes to AS131279 (09:07:51); 10:45 a burst of withdrawals
KP_UPDATES = [KP_RRC00 / f"updates.20171001.{hhmm}.gz" for hhmm in ("0900", "0905", "0910", "1045")]
#: the fields RIS Live carries, compared with the MRT reader's values
CARRIED = (
    "type",
    "timestamp",
    "collector",
    "peer_address",
    "peer_asn",
    "prefix",
    "as_path",
    "origin_asn",
    "origin",
    "next_hop",
    "med",
    "communities",
    "aggregator_asn",
    "aggregator_address",
    "safi",
)


def carried(elements: Iterable[Element]) -> list[tuple[Any, ...]]:
    return [tuple(getattr(e, name) for name in CARRIED) for e in elements]


def mrt_updates(path: Path, collector: str) -> list[Element]:
    return [
        e
        for e in MrtReader(path, collector=collector)
        if e.type in "AW" and e.record_type.startswith("BGP4MP")
    ]


@cache
def kp_messages() -> tuple[dict[str, Any], ...]:
    """The kp-2017-ttk rrc00 updates as RIS Live messages (shared by tests: never modify them)."""
    messages: list[dict[str, Any]] = []
    for path in KP_UPDATES:
        messages += elements_to_ris_messages(MrtReader(path, collector="rrc00").batches())
    return tuple(messages)


def elements_of(messages: Iterable[dict[str, Any]]) -> list[Element]:
    return [e for m in messages for e in parse_ris_message(m)]


def examples() -> list[dict[str, Any]]:
    return [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]


def update(**data: Any) -> dict[str, Any]:
    """A ris_message UPDATE with the given data fields over a plain default."""
    base = {
        "timestamp": 1700000000.5,
        "peer": "192.0.2.1",
        "peer_asn": "64496",
        "id": "00-192-0-2-1-1",
        "host": "rrc00.ripe.net",
        "type": "UPDATE",
        "path": [64496, 3356, 131279],
        "origin": "igp",
        "announcements": [{"next_hop": "192.0.2.1", "prefixes": ["175.45.176.0/24"]}],
    }
    base.update(data)
    return {"type": "ris_message", "data": {k: v for k, v in base.items() if v is not None}}


# ---------------------------------------------------------------------------------------------------------
# parsing


def test_examples_parse_with_their_drift() -> None:
    v6_dual_hop, prepended, untyped, v6_withdrawal = examples()

    (a,) = parse_ris_message(v6_dual_hop)  # one prefix listed under the global and the link-local hop
    assert (a.type, a.record_type, a.collector, a.peer_address, a.peer_asn) == (
        ElementType.ANNOUNCEMENT,
        "RIS_LIVE",
        "rrc20",
        "2001:7f8:24::82",
        58299,
    )
    assert (a.timestamp, a.prefix, a.next_hop) == (1636247118.76, "2602:fd9e:f00::/40", "2001:7f8:24::82")
    assert (a.as_path, a.origin_asn, a.origin, a.safi) == ("58299 49981 397666", 397666, "IGP", 1)

    (p,) = parse_ris_message(prepended)
    assert p.as_path == "199524 1299 3356 13904 13904 13904 13904 13904 13904"
    assert (p.origin_asn, p.aggregator_asn, p.aggregator_address) == (13904, 65000, "8.42.232.1")
    assert (p.prefix, p.next_hop, p.communities, p.med) == ("64.68.236.0/22", "37.49.237.175", None, None)

    assert parse_ris_message(untyped) == []  # no type, no path, nothing announced: nothing to report

    (w,) = parse_ris_message(v6_withdrawal)  # "rrc25.ripe.net", the newer id, a long-form IPv6 prefix
    assert (w.type, w.collector, w.peer_asn, w.timestamp) == (
        ElementType.WITHDRAWAL,
        "rrc25",
        13781,
        1740561857.91,
    )
    assert (w.prefix, w.as_path, w.origin, w.next_hop, w.safi) == ("2605:de00:bb::/48", None, None, None, 1)


def test_parse_accepts_text_bytes_message_and_data() -> None:
    line = EXAMPLES.read_text().splitlines()[1]
    obj = json.loads(line)
    expected = parse_ris_message(obj)
    assert len(expected) == 1
    assert parse_ris_message(line) == expected
    assert parse_ris_message(line.encode()) == expected
    assert parse_ris_message(obj["data"]) == expected


def test_parse_drifting_fields() -> None:
    (e,) = parse_ris_message(update(origin="Incomplete", peer_asn=64496, host="rrc00"))
    assert (e.origin, e.peer_asn, e.collector) == ("INCOMPLETE", 64496, "rrc00")

    # IPv6 next hops joined in one string, in either order: the global one is kept
    for hop in ("2001:db8::1,fe80::1", "fe80::1,2001:db8::1"):
        (e,) = parse_ris_message(update(announcements=[{"next_hop": hop, "prefixes": ["2001:db8:100::/40"]}]))
        assert e.next_hop == "2001:db8::1"

    (e,) = parse_ris_message(update(path=[64496, 3356, [131279, 4837]]))
    assert (e.as_path, e.origin_asn) == ("64496 3356 {131279,4837}", None)
    (e,) = parse_ris_message(update(path=[64496, [3356, 174], 131279], med=0))
    assert (e.as_path, e.origin_asn, e.med) == ("64496 {3356,174} 131279", 131279, 0)

    (e,) = parse_ris_message(update(community=[[65535, 65281], [3356, 2], [65535, 65283]]))
    assert e.communities == "no-export 3356:2 local-AS"

    # no type, but an update's content; a withdrawal and two announcements: withdrawals first
    message = update(
        type=None,
        withdrawals=["192.0.2.0/24"],
        announcements=[{"next_hop": "192.0.2.1", "prefixes": ["175.45.176.0/24", "175.45.178.0/24"]}],
    )
    got = parse_ris_message(message)
    assert [(e.type, e.prefix) for e in got] == [
        (ElementType.WITHDRAWAL, "192.0.2.0/24"),
        (ElementType.ANNOUNCEMENT, "175.45.176.0/24"),
        (ElementType.ANNOUNCEMENT, "175.45.178.0/24"),
    ]
    assert got[0].as_path is None and got[1].as_path == "64496 3356 131279"

    # a path-less announcement keeps its prefix; the path is unknown, not guessed
    (e,) = parse_ris_message(update(path=None))
    assert (e.as_path, e.origin_asn, e.prefix) == (None, None, "175.45.176.0/24")


def test_parse_peer_state_and_silent_types() -> None:
    state = update(type="RIS_PEER_STATE", state="down", path=None, origin=None, announcements=None)
    (s,) = parse_ris_message(state)
    assert (s.type, s.new_state, s.old_state, s.prefix, s.peer_asn) == (
        ElementType.STATE,
        1,
        None,
        None,
        64496,
    )
    state["data"]["state"] = "connected"
    assert parse_ris_message(state)[0].new_state == 2
    for kind in ("OPEN", "NOTIFICATION", "KEEPALIVE"):
        assert parse_ris_message(update(type=kind, announcements=None)) == []


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ({"type": "ris_error", "data": {"message": "oops"}}, "not a ris_message"),
        ({"type": "ris_message", "data": "x"}, "data is not an object"),
        (update(timestamp=None), "no timestamp"),
        (update(timestamp="soon"), "bad timestamp"),
        (update(peer=None), "no peer"),
        (update(peer="not-an-ip"), "bad address"),
        (update(peer_asn="AS64496"), "bad peer_asn"),
        (update(peer_asn="4294967296"), "out of range"),
        (update(peer_asn="²"), "bad peer_asn"),
        (update(type="SURPRISE"), "unknown message type"),
        (update(type="RIS_PEER_STATE", state="dancing"), "unknown peer state"),
        (update(withdrawals=["192.0.2.0/33"]), "bad prefix"),
        (update(withdrawals="192.0.2.0/24"), "not a list"),
        (update(announcements=[{"next_hop": "192.0.2.1"}]), "bad announcement"),
        (update(announcements=[{"next_hop": "x", "prefixes": ["192.0.2.0/24"]}]), "bad address"),
        (update(path=[64496, "x"]), "bad AS in path"),
        (update(path="64496 3356"), "path is not a list"),
        (update(origin="bgp"), "bad origin"),
        (update(med="high"), "bad med"),
        (update(community=[[3356]]), "bad community"),
        (update(community=[[3356, 70000]]), "community out of range"),
        (update(aggregator="65000"), "bad aggregator"),
        (update(path=[64496, True]), "bad AS in path"),
        (update(path=[64496, -1]), "out of range"),
        (update(community=[[True, 1]]), "bad community AS"),
        (update(community=[[65000, -1]]), "out of range"),
        (update(withdrawals=["192.0.2.1/24"]), "has host bits set"),
        (update(withdrawals=["010.0.0.0/8"]), "bad prefix"),
        (update(withdrawals=["192.0.2.0/ 24"]), "bad prefix"),
        (update(withdrawals=["2001:db8::/129"]), "bad prefix"),
        (update(withdrawals=["2001:db8::%eth0/32"]), "bad prefix"),
    ],
)
def test_parse_malformed_raises_with_reason(message: Any, reason: str) -> None:
    with pytest.raises(RisLiveMessageError) as info:
        parse_ris_message(message)
    assert reason in info.value.reason


def _canonical(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """How the MRT reader prints a prefix: inet_ntop of the address (RFC 5952 for IPv6), the length."""
    family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
    return f"{socket.inet_ntop(family, net.network_address.packed)}/{net.prefixlen}"


_networks = st.one_of(
    st.builds(
        lambda a, n: ipaddress.ip_network((a, n), strict=False),
        st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
        st.integers(0, 32),
    ),
    st.builds(
        lambda a, n: ipaddress.ip_network((a, n), strict=False),
        # mostly sparse addresses, so runs of zero groups (and their compression) are common
        st.lists(st.sampled_from([0, 0, 0, 1, 0xDB8, 0xFFFF, 0x2001]), min_size=8, max_size=8).map(
            lambda g: ipaddress.IPv6Address(sum(v << (16 * i) for i, v in enumerate(g)))
        ),
        st.integers(0, 128),
    ),
)


@settings(max_examples=400, deadline=None)
@given(net=_networks, style=st.sampled_from(["compressed", "exploded", "upper", "no length"]))
@example(net=ipaddress.ip_network("::8000:0/97"), style="compressed")  # printed ::128.0.0.0/97
@example(net=ipaddress.ip_network("::ffff:c000:200/120"), style="exploded")  # ::ffff:192.0.2.0/120
def test_prefix_text_is_canonical_in_every_spelling(net: Any, style: str) -> None:
    """The prefix fast path (inet_pton/inet_ntop) gives what ipaddress would, printed as the MRT reader
    prints it, whatever spelling the stream uses; and rejects what ipaddress rejects."""
    text = {
        "compressed": net.with_prefixlen,
        "exploded": net.exploded,
        "upper": net.with_prefixlen.upper(),
        "no length": str(net.network_address),
    }[style]
    expected = _canonical(net if style != "no length" else ipaddress.ip_network(net.network_address))
    [el] = parse_ris_message(update(withdrawals=[text], announcements=None))
    assert el.prefix == expected
    if "." not in expected or net.version == 4:  # inet_ntop (and bgpdump) print ::ffff:a.b.c.d and
        assert el.prefix == str(ipaddress.ip_network(text))  # ::a.b.c.d dotted, ipaddress in hex
    if net.prefixlen:  # the same address under a longer length has host bits set
        host = f"{net.network_address + 1}/{net.prefixlen}" if net.num_addresses > 1 else None
        if host is not None:
            with pytest.raises(RisLiveMessageError, match="bad prefix"):
                parse_ris_message(update(withdrawals=[host], announcements=None))


# ---------------------------------------------------------------------------------------------------------
# MRT elements -> RIS Live messages


def test_round_trip_kp_scenario_updates() -> None:
    elements = [e for path in KP_UPDATES for e in mrt_updates(path, "rrc00")]
    messages = kp_messages()
    assert len(elements) > 250
    assert carried(elements_of(messages)) == carried(elements)
    # several prefixes of one update share a message, as on the stream
    assert len(messages) < len(elements)
    assert any(len(a["prefixes"]) > 1 for m in messages for a in m["data"]["announcements"])
    data = messages[0]["data"]
    assert data["host"] == "rrc00.ripe.net" and data["type"] == "UPDATE"
    assert isinstance(data["peer_asn"], str) and isinstance(data["timestamp"], float)
    assert {m["data"].get("origin") for m in messages} <= {"igp", "egp", "incomplete", None}


def test_round_trip_real_collector_updates() -> None:
    # rrc21 2010: communities, MED, aggregators, INCOMPLETE/EGP origins, IPv6, 2- and 4-byte AS sessions
    path = MRT_DIR / "ris" / "updates.20100722.2015.gz"
    elements = mrt_updates(path, "rrc21")
    assert any(e.communities for e in elements) and any(e.aggregator_asn for e in elements)
    messages = elements_to_ris_messages(MrtReader(path, collector="rrc21").batches(), host="rrc21")
    assert carried(elements_of(messages)) == carried(elements)
    # peer state elements are not updates: left out
    assert sum(e.type == ElementType.STATE for e in MrtReader(path)) > 0
    assert all(m["data"]["type"] == "UPDATE" for m in messages)


_asn = st.integers(1, 2**32 - 1)
_segment = st.one_of(
    _asn.map(str), st.lists(_asn, min_size=1, max_size=3).map(lambda s: "{" + ",".join(map(str, s)) + "}")
)
_community = st.one_of(
    st.sampled_from(["no-export", "no-advertise", "local-AS"]),
    st.tuples(st.integers(0, 65535), st.integers(0, 65535))
    .filter(lambda p: p[0] != 65535 or p[1] not in (65281, 65282, 65283))  # the reader names those three
    .map(lambda p: f"{p[0]}:{p[1]}"),
)


@settings(max_examples=200, deadline=None)
@given(
    path=st.lists(_segment, max_size=6),
    communities=st.lists(_community, max_size=4),
    med=st.none() | st.integers(0, 2**32 - 1),
    origin=st.sampled_from(["IGP", "EGP", "INCOMPLETE"]),
    aggregator=st.none() | _asn,
    v6=st.booleans(),
)
def test_round_trip_attributes(
    path: list[str], communities: list[str], med: int | None, origin: str, aggregator: int | None, v6: bool
) -> None:
    as_path = " ".join(path)
    announced = Element(
        type=ElementType.ANNOUNCEMENT,
        timestamp=1506848871.25,
        record_type="BGP4MP_ET",
        collector="rrc00",
        peer_address="2001:db8::5" if v6 else "192.0.2.5",
        peer_asn=64496,
        prefix="2001:db8:100::/40" if v6 else "175.45.176.0/24",
        as_path=as_path,
        origin_asn=int(path[-1]) if path and path[-1].isdigit() else None,
        origin=origin,
        next_hop="2001:db8::5" if v6 else "192.0.2.5",
        med=med,
        communities=" ".join(communities) or None,
        aggregator_asn=aggregator,
        aggregator_address="198.51.100.1" if aggregator else None,
        safi=1,
    )
    withdrawn = Element(
        type=ElementType.WITHDRAWAL,
        timestamp=announced.timestamp,
        record_type="BGP4MP_ET",
        collector="rrc00",
        peer_address=announced.peer_address,
        peer_asn=64496,
        prefix="175.45.179.0/24",
        safi=1,
    )
    (message,) = elements_to_ris_messages([withdrawn, announced], host="rrc00")
    assert carried(parse_ris_message(json.dumps(message))) == carried([withdrawn, announced])


def test_subscriptions_for_targets() -> None:
    assert subscriptions_for(["175.45.176.0/22"], [131279], host="rrc00") == [
        {"host": "rrc00", "type": "UPDATE", "prefix": "175.45.176.0/22", "moreSpecific": True},
        {"host": "rrc00", "type": "UPDATE", "path": "131279$"},
        {"host": "rrc00", "type": "RIS_PEER_STATE"},
    ]
    assert subscriptions_for(peer_states=False) == [{"type": "UPDATE"}]


def test_exponential_backoff_grows_with_bounded_jitter() -> None:
    import random

    backoff = ExponentialBackoff(initial=1.0, factor=2.0, maximum=30.0, jitter=0.5, rng=random.Random(7))
    for attempt, full in [(0, 1.0), (1, 2.0), (3, 8.0), (4, 16.0), (5, 30.0), (50, 30.0)]:
        delays = [backoff(attempt) for _ in range(50)]
        assert all(full * 0.5 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert ExponentialBackoff(jitter=0.0)(2) == 4.0


# ---------------------------------------------------------------------------------------------------------
# the client against a local replay server


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Delays:
    """An injected sleep: records the backoff delays and returns at once."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.delays: list[float] = []
        self.on_sleep = on_sleep

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(len(self.delays))
        await asyncio.sleep(0)


class Consumer:
    """Iterates a client in a task and keeps its events; tests wait on them with deadlines."""

    def __init__(self, client: RisLiveClient) -> None:
        self.client = client
        self.events: list[RisLiveEvent] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Consumer:
        self._task = asyncio.create_task(self._consume())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task
        await self.client.aclose()

    async def _consume(self) -> None:
        async for event in self.client:
            self.events.append(event)
            self._changed.set()

    async def until(self, predicate: Callable[[Consumer], bool], timeout: float = 5.0) -> None:
        assert self._task is not None
        async with asyncio.timeout(timeout):
            while not predicate(self):
                if self._task.done():
                    self._task.result()  # raises the client's error
                    raise AssertionError("the client stopped")
                self._changed.clear()
                changed = asyncio.create_task(self._changed.wait())
                await asyncio.wait([changed, self._task], return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()

    @property
    def elements(self) -> list[Element]:
        return [e for e in self.events if isinstance(e, Element)]

    @property
    def gaps(self) -> list[Gap]:
        return [e for e in self.events if isinstance(e, Gap)]

    @property
    def lags(self) -> list[Lag]:
        return [e for e in self.events if isinstance(e, Lag)]


def make_client(server: RisLiveReplayServer, clock: FakeClock, **kwargs: Any) -> RisLiveClient:
    options: dict[str, Any] = {
        "clock": clock,
        "sleep": Delays(),
        "backoff": lambda n: 2.0**n,
        "poll_interval": 0.01,
    }
    options.update(kwargs)
    return RisLiveClient(server.url, **options)


def without(messages: Sequence[dict[str, Any]], lost: Iterable[range]) -> list[dict[str, Any]]:
    gone = {i for r in lost for i in r}
    return [m for i, m in enumerate(messages) if i not in gone]


def ts(message: dict[str, Any]) -> float:
    return float(message["data"]["timestamp"])


def test_client_receives_every_message(rislive_server: RisLiveReplayServer) -> None:
    messages = list(kp_messages())
    peer_down = update(
        type="RIS_PEER_STATE",
        state="down",
        timestamp=ts(messages[40]),
        announcements=None,
        path=None,
        origin=None,
    )
    messages.insert(41, peer_down)
    rislive_server.replay(messages)
    rislive_server.expect_subscriptions = 2
    clock = FakeClock(ts(messages[-1]) + 30.0)
    expected = elements_of(messages)

    async def scenario() -> None:
        client = make_client(rislive_server, clock, report_every=0.0)
        async with Consumer(client) as consumer:
            await consumer.until(lambda c: len(c.elements) >= len(expected))
            assert consumer.elements == expected
            assert ElementType.STATE in {e.type for e in consumer.elements}
            # report_every=0: a lag measurement with every message, from the message's own timestamp
            assert [lag.message_time for lag in consumer.lags] == [ts(m) for m in messages]
            assert all(lag.seconds == clock.now - lag.message_time for lag in consumer.lags)
            assert consumer.gaps == []
            counters = client.counters
            assert (counters.connections, counters.messages, counters.elements) == (
                1,
                len(messages),
                len(expected),
            )
            assert counters.malformed == counters.oversized == counters.out_of_order == counters.stalls == 0
            assert any(isinstance(e, Counters) for e in consumer.events)

    asyncio.run(scenario())
    assert rislive_server.subscriptions == [subscriptions_for()]


def test_client_subscription_filter(rislive_server: RisLiveReplayServer) -> None:
    messages = kp_messages()
    rislive_server.replay(messages)
    subscriptions = subscriptions_for(prefixes=["175.45.176.0/22"], origin_asns=[131279], peer_states=False)
    rislive_server.expect_subscriptions = len(subscriptions)

    def wanted(message: dict[str, Any]) -> bool:
        els = parse_ris_message(message)
        return any(e.prefix.startswith("175.45.17") or e.origin_asn == 131279 for e in els if e.prefix)

    selected = [m for m in messages if wanted(m)]
    expected = elements_of(selected)
    assert 0 < len(selected) < len(messages) / 2
    assert any(e.type == ElementType.WITHDRAWAL for e in expected)  # the prefix filter brings withdrawals

    async def scenario() -> None:
        client = make_client(rislive_server, FakeClock(ts(messages[-1])), subscriptions=subscriptions)
        async with Consumer(client) as consumer:
            await rislive_server.until(lambda s: s.position == len(messages))
            assert rislive_server.sent == [len(selected)]
            await consumer.until(lambda c: len(c.elements) >= len(expected))
            assert consumer.elements == expected

    asyncio.run(scenario())
    assert rislive_server.subscriptions == [subscriptions]


def test_client_reconnects_after_drops_and_a_stall(rislive_server: RisLiveReplayServer) -> None:
    messages = kp_messages()
    assert len(messages) > 100
    rislive_server.replay(messages)
    rislive_server.expect_subscriptions = 2
    rislive_server.drop_after(1, messages=20, lose=5)  # sends [0:20], loses [20:25]
    rislive_server.drop_after(
        2, messages=15, lose=7, error="You are consuming data too slowly"
    )  # [25:40], [40:47]
    rislive_server.stall_after(3, messages=10, lose=4)  # sends [47:57], silent; loses [57:61]
    received = without(messages, [range(20, 25), range(40, 47), range(57, 61)])
    clock = FakeClock(ts(messages[0]) + 60.0)
    sleep = Delays()

    async def scenario() -> None:
        client = make_client(rislive_server, clock, sleep=sleep, stale_after=180.0)
        async with Consumer(client) as consumer:
            before_stall = elements_of(received[: 20 + 15 + 10])
            await consumer.until(lambda c: len(c.elements) >= len(before_stall))
            await rislive_server.until(lambda s: s.stalled)
            assert consumer.elements == before_stall
            assert rislive_server.connections == 3 and client.counters.stalls == 0
            clock.advance(181.0)  # nothing for longer than stale_after by the injected clock
            expected = elements_of(received)
            await consumer.until(lambda c: len(c.elements) >= len(expected))
            assert consumer.elements == expected
            assert consumer.gaps[0] == Gap(ts(messages[19]), ts(messages[25]), consumer.gaps[0].reason)
            assert consumer.gaps[1] == Gap(ts(messages[39]), ts(messages[47]), consumer.gaps[1].reason)
            assert consumer.gaps[2] == Gap(ts(messages[56]), ts(messages[61]), consumer.gaps[2].reason)
            assert len(consumer.gaps) == 3
            assert consumer.gaps[0].reason.startswith("disconnected")
            assert consumer.gaps[1].reason == "server error: You are consuming data too slowly"
            assert consumer.gaps[2].reason.startswith("stale")
            # each gap is reported before the first element after it
            first_after = consumer.events.index(consumer.gaps[2]) + 1
            assert next(e for e in consumer.events[first_after:] if isinstance(e, Element)).timestamp == ts(
                messages[61]
            )
            counters = client.counters
            assert (counters.connections, counters.stalls, counters.gaps, counters.server_errors) == (
                4,
                1,
                3,
                1,
            )

    asyncio.run(scenario())
    assert rislive_server.connections == 4
    assert sleep.delays == [1.0, 1.0, 1.0]  # each reconnection followed a working connection: attempt 0


def test_client_skips_bad_messages_and_keeps_going(
    rislive_server: RisLiveReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    messages = kp_messages()[:40]
    rislive_server.replay(messages)
    rislive_server.expect_subscriptions = 2
    oversized = update()
    oversized["data"]["raw"] = "FF" * (1 << 20)  # over the default 1 MiB limit
    bad_schema = update(peer_asn="AS64496")
    rislive_server.inject(1, after=3, payload="{this is not JSON")
    rislive_server.inject(1, after=6, payload=oversized)
    rislive_server.inject_out_of_order(1, after=9, age=3600.0)
    rislive_server.inject(1, after=12, payload=bad_schema)
    rislive_server.inject(1, after=14, payload={"type": "ris_surprise", "data": {}})
    rislive_server.inject(1, after=16, payload={"type": "ris_error", "data": {"message": "Unknown filter"}})
    expected = elements_of(messages)

    async def scenario() -> None:
        client = make_client(rislive_server, FakeClock(ts(messages[-1])))
        async with Consumer(client) as consumer:
            await consumer.until(lambda c: len(c.elements) >= len(expected))
            assert consumer.elements == expected
            counters = client.counters
            assert (counters.malformed, counters.oversized, counters.out_of_order) == (3, 1, 1)
            assert (counters.connections, counters.messages, counters.server_errors) == (1, len(messages), 1)
            assert consumer.gaps == []

    with caplog.at_level(logging.WARNING, logger="transitwatch.rislive"):
        asyncio.run(scenario())
    skipped = [
        r.getMessage() for r in caplog.records if r.name == "transitwatch.rislive" and "skipped" in r.message
    ]
    assert len(skipped) == 5
    assert any("out_of_order" in line for line in skipped) and any("oversized" in line for line in skipped)
    assert any("Unknown filter" in r.getMessage() for r in caplog.records)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_client_backs_off_until_the_stream_is_reachable(rislive_server: RisLiveReplayServer) -> None:
    messages = kp_messages()[:10]
    rislive_server.replay(messages)
    rislive_server.expect_subscriptions = 2
    clock = FakeClock(ts(messages[0]) - 100.0)
    client = RisLiveClient(
        f"ws://127.0.0.1:{_closed_port()}/v1/ws/",
        clock=clock,
        backoff=lambda n: 10.0 * 2**n,
        poll_interval=0.01,
    )

    def on_sleep(count: int) -> None:
        if count == 3:  # the stream comes back after three refused attempts
            client.url = rislive_server.url

    client.sleep = sleep = Delays(on_sleep)
    expected = elements_of(messages)

    async def scenario() -> None:
        async with Consumer(client) as consumer:
            await consumer.until(lambda c: len(c.elements) >= len(expected))
            assert consumer.elements == expected
            # blind from the first failure (no message yet: the clock's time) to the first message
            (gap,) = consumer.gaps
            assert (gap.start, gap.end) == (clock.now, ts(messages[0]))
            assert gap.reason.startswith("cannot connect")

    asyncio.run(scenario())
    assert sleep.delays == [10.0, 20.0, 40.0]
    assert rislive_server.connections == 1
