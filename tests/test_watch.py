"""Live watch against a real websocket server replaying RIS Live messages, compared with `replay`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.conftest import REGISTRY, SCENARIOS
from transitwatch.mrt import MrtReader
from transitwatch.routing.state import Row
from transitwatch.sources.rislive import elements_to_ris_messages
from transitwatch.store import Store
from transitwatch.timeutil import parse_time
from transitwatch.watch.config import load_config
from transitwatch.watch.run import replay, watch

if TYPE_CHECKING:
    from tests.rislive_server import RisLiveReplayServer

pytest_plugins = ["tests.rislive_server"]

ARCHIVE = SCENARIOS / "kp-2017-ttk"
START, END = "2017-10-01T08:00:00Z", "2017-10-01T14:00:00Z"  # the day's events, to keep the test quick


def write_config(path: Path, storage: Path, url: str = "ws://127.0.0.1:1/", **extra: Any) -> Path:
    cfg = {
        "storage": str(storage),
        "registry": str(REGISTRY),
        "flush_interval": 0.05,
        "bootstrap": {"archive": str(ARCHIVE), "collectors": ["rrc00"], "at": START},
        "stream": {"url": url, "stale_after": 180},
        "targets": [{"target": "KP"}],
        **extra,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def stream_messages() -> list[dict[str, Any]]:
    """The rrc00 updates of the window as RIS Live messages (real schema)."""
    t0, t1 = parse_time(START), parse_time(END)
    files = sorted((ARCHIVE / "rrc00" / "2017.10").glob("updates.*.gz"))
    out: list[dict[str, Any]] = []
    for f in files:
        for batch in MrtReader(f, collector="rrc00").batches():
            out.extend(elements_to_ris_messages(batch, host="rrc00.ripe.net"))
    return [m for m in out if t0 <= float(m["data"]["timestamp"]) < t1]


def watched(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages a KP watcher's subscriptions let through (the server filters as RIS Live does)."""
    from tests.rislive_server import subscription_matches
    from transitwatch.sources.rislive import subscriptions_for

    subs = subscriptions_for(prefixes=["175.45.176.0/22"], origin_asns=[131279])
    return [m for m in messages if any(subscription_matches(s, m["data"]) for s in subs)]


def last_watched_time(messages: list[dict[str, Any]]) -> float:
    """Timestamp of the last message a KP watcher receives."""
    return max(float(m["data"]["timestamp"]) for m in watched(messages))


def events_of(store_path: Path) -> list[dict[str, Any]]:
    with Store(store_path, read_only=True) as s:
        return s.events("KP", limit=100_000)


DETECTED = ("upstream_added", "upstream_lost", "outage_start", "outage_end")


def key(e: dict[str, Any]) -> tuple[str, str, Any]:
    return (e["time"], e["type"], e.get("upstream", e.get("prefix")))


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    d = tmp_path_factory.mktemp("replay")
    cfg = load_config(write_config(d / "watch.yml", d / "replay.duckdb"))
    events = replay(cfg, str(ARCHIVE), parse_time(START), parse_time(END))
    assert {"upstream_added", "upstream_lost", "outage_start", "outage_end"} <= {e["type"] for e in events}
    return events


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def _no_wait(_seconds: float) -> None:
    await asyncio.sleep(0)


class Progress:
    """Lets a test wait until the watcher has applied rows up to a data time (seen at its flushes)."""

    def __init__(self) -> None:
        self.last_time = 0.0
        self.changed = asyncio.Event()

    def on_flush(self, w: Any) -> None:
        if w.last_time is not None and w.last_time > self.last_time:
            self.last_time = w.last_time
            self.changed.set()

    async def reached(self, t: float, task: asyncio.Task[Any]) -> None:
        async with asyncio.timeout(60):
            while self.last_time < t:
                self.changed.clear()
                waiter = asyncio.create_task(self.changed.wait())
                finished, _ = await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if task in finished:
                    task.result()
                    raise AssertionError("the watcher stopped early")


def run_live(
    cfg_path: Path,
    last_time: float,
    during: Callable[[FakeClock, Progress, asyncio.Task[Any]], Any] | None = None,
) -> None:
    cfg = load_config(cfg_path)
    clock = FakeClock(parse_time(START))  # the world's clock starts on the replayed data's day
    progress = Progress()

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            watch(cfg, clock=clock, stop=stop, on_flush=progress.on_flush,
                  client_options={"sleep": _no_wait, "backoff": lambda n: 0.0, "poll_interval": 0.01})
        )  # fmt: skip
        try:
            if during is not None:
                await during(clock, progress, task)
            await progress.reached(last_time, task)
        finally:
            stop.set()
            await task

    asyncio.run(scenario())


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 keeping every POST (headers and body)."""

    def __init__(self) -> None:
        import http.server
        import threading

        received = self.received = []  # type: list[tuple[dict[str, str], bytes]]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_live_with_drops_and_a_stall_equals_replay(
    rislive_server: RisLiveReplayServer, replayed: list[dict[str, Any]], tmp_path: Path
) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    from transitwatch.alerts.channels import verify_signature

    mails: list[Any] = []

    class Keep(Message):
        def handle_message(self, message: Any) -> None:
            mails.append(message)

    import socket

    with socket.socket() as sock:  # a free port: aiosmtpd's controller needs a fixed one
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    smtp = Controller(Keep(), hostname="127.0.0.1", port=port)
    smtp.start()
    hook = WebhookReceiver()
    messages = stream_messages()
    rislive_server.replay(messages)
    rislive_server.drop_after(1, messages=25)
    rislive_server.drop_after(2, messages=25)
    rislive_server.stall_after(3, messages=25)

    async def during(clock: FakeClock, progress: Progress, task: asyncio.Task[Any]) -> None:
        await rislive_server.until(lambda s: s.stalled, timeout=60)
        # once the watcher has everything sent before the stall, silence longer than stale_after
        await progress.reached(last_watched_time(messages[: rislive_server.position]), task)
        clock.advance(181.0)

    policy = {"rate_limit": 1000, "mute": 0, "types": list(DETECTED)}  # every event of these types
    alerts = {
        "hook": {"type": "webhook", "url": hook.url, "secret": "s3cret", **policy},
        "mail": {"type": "email", "host": "127.0.0.1", "port": port, "from": "tw@example.net",
                 "to": ["noc@example.net"], **policy},
    }  # fmt: skip
    cfg = write_config(
        tmp_path / "watch.yml", tmp_path / "live.duckdb", url=rislive_server.url, alerts=alerts,
        targets=[{"target": "KP", "alerts": ["hook", "mail"], "detectors": ["upstream", "outage"]}],
    )  # fmt: skip
    try:
        run_live(cfg, last_watched_time(messages), during)
    finally:
        hook.close()
        smtp.stop()
    live = events_of(tmp_path / "live.duckdb")
    # the alerts: one webhook POST and one mail per confirmed upstream and outage event
    alerted = [
        e for e in live if e["type"] in ("upstream_added", "upstream_lost", "outage_start", "outage_end")
    ]
    alerted = [e for e in alerted if e.get("confirmed", e["time"]) is not None]
    bodies = [json.loads(body) for _headers, body in hook.received]
    assert {b["event_id"] for b in bodies} == {e["id"] for e in alerted}
    assert len(bodies) == len({b["event_id"] + b["phase"] for b in bodies}), "each alert sent once"
    for headers, body in hook.received:
        sig, stamp = headers["X-Transitwatch-Signature"], headers["X-Transitwatch-Timestamp"]
        assert verify_signature("s3cret", body, sig, stamp, now=float(stamp))
    assert len(mails) == len(bodies)
    ttk_mail = next(m for m in mails if "AS20485" in m["Subject"] and "TRANSTELECOM" in m.get_payload())
    assert "of 18 full-feed peers" in ttk_mail.get_payload()
    gaps = [e for e in live if e["type"] == "data_gap"]
    assert len(gaps) == 3, gaps
    assert [g["reason"].split(":")[0].split(" ")[0] for g in gaps] == [
        "disconnected",
        "disconnected",
        "stale",
    ]
    got = sorted(key(e) for e in live if e["type"] != "data_gap")
    want = sorted(key(e) for e in replayed if e["type"] in DETECTED)
    assert got == want
    # and the events carry the same details, not just the same times
    by_key = {key(e): e for e in replayed}
    for e in live:
        if e["type"] in ("upstream_added", "upstream_lost"):
            assert e["peers"] == by_key[key(e)]["peers"] and e["prefixes"] == by_key[key(e)]["prefixes"]


def test_malformed_oversized_out_of_order_messages_are_counted_and_skipped(
    rislive_server: RisLiveReplayServer, replayed: list[dict[str, Any]], tmp_path: Path
) -> None:
    messages = stream_messages()
    rislive_server.replay(messages)
    rislive_server.inject(1, after=10, payload="{not json")
    rislive_server.inject(1, after=20, payload={"type": "ris_message", "data": {"type": "UPDATE", "peer": 7}})
    rislive_server.inject(1, after=30, payload="x" * (2 << 20))
    rislive_server.inject_out_of_order(1, after=40)
    cfg = write_config(tmp_path / "watch.yml", tmp_path / "live.duckdb", url=rislive_server.url)
    with Store(tmp_path / "live.duckdb") as s:  # a row journaled by a run bootstrapped a day earlier
        s.append_journal(
            [Row(parse_time(START) - 86400, "rrc00", "192.0.2.1", 64496, "S", None, None, None, 1)]
        )
    run_live(cfg, last_watched_time(messages))
    with Store(tmp_path / "live.duckdb", read_only=True) as s:
        counters = s.state("", "stream_counters")
        journal = s.journal_rows()
    assert counters["malformed"] == 2 and counters["oversized"] == 1 and counters["out_of_order"] == 1
    # the new bootstrap's RIB holds the old row's effect: it was dropped; this run's rows were kept
    assert journal and min(r.time for r in journal) >= parse_time(START)
    live = events_of(tmp_path / "live.duckdb")
    assert sorted(key(e) for e in live if e["type"] != "data_gap") == sorted(key(e) for e in replayed)


def _wait_for_line(proc: subprocess.Popen[str], predicate: Callable[[str], bool], lines: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if predicate(line):
            return
    raise AssertionError("the watcher ended before:\n" + "".join(lines[-20:]))


def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(
    rislive_server: RisLiveReplayServer, replayed: list[dict[str, Any]], tmp_path: Path
) -> None:
    messages = stream_messages()
    last_ts = last_watched_time(messages)
    sent = watched(messages)
    half = len(sent) // 2
    rislive_server.replay(messages)
    rislive_server.stall_after(1, messages=half)  # the first process gets half the stream, then silence
    cfg = write_config(tmp_path / "watch.yml", tmp_path / "live.duckdb", url=rislive_server.url)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "transitwatch.cli", "watch", "--config", str(cfg), "-v"]
    lines: list[str] = []
    first = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        rislive_server.wait_until(lambda s: s.stalled, timeout=60)
        half_ts = float(sent[half - 1]["data"]["timestamp"])
        _wait_for_line(first, lambda ln: "flushed:" in ln and _data_time(ln) >= half_ts, lines)
        # the watcher opens its store only to write: another process (serve) can read meanwhile
        with Store(tmp_path / "live.duckdb", read_only=True, lock_timeout=10) as reader:
            assert reader.count_events("KP") > 0
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    stored_before = events_of(tmp_path / "live.duckdb")
    assert stored_before, "events were stored before the kill"
    second = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for_line(second, lambda ln: "started at" in ln, lines)
        assert "journaled rows restored" in lines[-1] and " 0 journaled" not in lines[-1]
        rislive_server.wait_until(lambda s: s.connections >= 2, timeout=60)
        rislive_server.resume()
        _wait_for_line(second, lambda ln: "flushed:" in ln and _data_time(ln) >= last_ts, lines)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    live = events_of(tmp_path / "live.duckdb")
    ids = [e["id"] for e in live]
    assert len(ids) == len(set(ids)), "no duplicated event"
    assert {e["id"] for e in stored_before} <= set(ids), "no stored event lost"
    assert sorted(key(e) for e in live if e["type"] != "data_gap") == sorted(key(e) for e in replayed)


def _data_time(line: str) -> float:
    # "flushed: N rows applied, data time 2017-10-01T12:00:00Z"
    text = line.rsplit("data time ", 1)[-1].strip()
    return parse_time(text) if text and text != "None" else 0.0


def test_replay_json_and_check_config(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from transitwatch.cli import main

    cfg = write_config(tmp_path / "watch.yml", tmp_path / "r.duckdb")
    ok = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert ok.exit_code == 0 and "OK: 1 target (KP)" in ok.output
    res = CliRunner().invoke(
        main,
        [
            "replay",
            "--config",
            str(cfg),
            "--archive",
            str(ARCHIVE),
            "--from",
            START,
            "--to",
            END,
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    events = json.loads(res.stdout)
    ttk = [e for e in events if e["type"] == "upstream_added" and e["upstream"] == 20485]
    assert ttk[0]["time"] == "2017-10-01T09:07:51Z" and ttk[0]["target"] == "KP"
    bad = tmp_path / "bad.yml"
    bad.write_text(
        yaml.safe_dump({"targets": [{"target": "KP", "min_peers": 0, "alerts": ["nope"]}], "typo": 1})
    )
    res = CliRunner().invoke(main, ["check-config", str(bad)])
    assert res.exit_code == 1
    assert "targets[0].min_peers" in res.output and "typo" in res.output


class StepClock:
    """A clock that moves ``step`` seconds each time it is read: replay then flushes every few rows."""

    def __init__(self, now: float, step: float) -> None:
        self.now, self.step = now, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_many_targets_and_frequent_flushes_store_the_same_events(
    tmp_path: Path, replayed: list[dict[str, Any]]
) -> None:
    """Targets that share space each get their rows (one radix lookup for all of them), and flushing
    every few rows (events upserted only when new or changed) stores exactly what one flush stores."""
    from transitwatch.analysis.feed import merge_updates
    from transitwatch.watch.run import open_watcher, read_archive

    targets = [{"target": "KP"}, {"target": "AS131279"}, {"target": "175.45.178.0/24"}]
    cfg = load_config(write_config(tmp_path / "w.yml", tmp_path / "w.duckdb", targets=targets))
    clock = StepClock(parse_time(END), 0.02)  # flush_interval 0.05: a flush every third read
    events = replay(cfg, str(ARCHIVE), parse_time(START), parse_time(END), clock=clock)
    by_target: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_target.setdefault(e["target"], []).append(e)
    assert by_target["KP"] == replayed
    added = {
        (e["time"], e.get("upstream")) for e in by_target["175.45.178.0/24"] if e["type"] == "upstream_added"
    }
    assert ("2017-10-01T09:07:51Z", 20485) in added
    assert {e["type"] for e in by_target["AS131279"]} >= {"upstream_added", "outage_start", "outage_end"}

    # the watcher routes each row to exactly the targets whose prefixes or watched space hold it
    watcher, store, union, _ = open_watcher(cfg, on_events=lambda _e, _n: None)
    try:
        rows, _gaps = read_archive(cfg, str(ARCHIVE), union, parse_time(START), parse_time(END))
        watcher.bootstrap(rows, parse_time(START))
        checked = 0
        for row in merge_updates(rows):
            if row.type == "S" or row.prefix is None:
                continue
            engines = [wt.engine for wt in watcher.targets]
            expected = [
                wt
                for wt, eng in zip(watcher.targets, engines, strict=True)
                if eng is not None
                and (
                    (row.origin_asn is not None and row.origin_asn in wt.target.asns)
                    or row.prefix in eng.targets.prefixes
                    or eng.targets.within_watch(row.prefix)
                )
            ]
            assert {wt.label for wt in watcher._targets_for(row)} == {wt.label for wt in expected}, row
            watcher.process([row])  # discoveries grow the watched space as the rows go
            checked += 1
        assert checked > 100
    finally:
        store.close()


def test_rows_go_to_every_target_holding_their_prefix(tmp_path: Path) -> None:
    """Nested and disjoint target spaces: a row reaches each target whose space holds its prefix (at
    whatever depth of the one radix tree), or whose AS originates it, and no other."""
    from transitwatch.analysis.feed import CollectorRows
    from transitwatch.routing.state import PeerKey, PeerTables
    from transitwatch.watch.run import open_watcher

    targets = [
        {"target": "10.0.0.0/8"},
        {"target": "10.1.0.0/16"},
        {"target": "10.1.2.0/24,AS64500"},
        {"target": "2001:db8::/32"},
    ]
    cfg = load_config(write_config(tmp_path / "w.yml", tmp_path / "w.duckdb", targets=targets))
    watcher, store, _union, _ = open_watcher(cfg, on_events=lambda _e, _n: None)
    try:
        tables = PeerTables.empty()
        tables.v4[PeerKey("rrc00", "192.0.2.1", 64496)] = 10  # one full-feed peer
        watcher.bootstrap([CollectorRows("rrc00", None, tables, [], [], [], {})], 1_500_000_000)

        def row(prefix: str, origin: int) -> Row:
            return Row(
                1_500_000_001.0, "rrc00", "192.0.2.1", 64496, "A", prefix, f"64496 {origin}", origin, None
            )

        def labels(prefix: str, origin: int = 65000) -> list[str]:
            return sorted(wt.label for wt in watcher._targets_for(row(prefix, origin)))

        assert labels("10.1.2.128/25") == ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24,AS64500"]
        assert labels("10.1.3.0/24") == ["10.0.0.0/8", "10.1.0.0/16"]
        assert labels("10.2.0.0/16") == ["10.0.0.0/8"]
        assert labels("10.0.0.0/7") == []  # covers a target, is not inside one
        assert labels("192.0.2.0/24") == []
        assert labels("192.0.2.0/24", origin=64500) == ["10.1.2.0/24,AS64500"]
        assert labels("2001:db8:1::/48") == ["2001:db8::/32"]
        # AS64500 originates a prefix outside every target's space: its target discovers it, and its
        # more-specifics from any origin are watched from then on
        assert labels("198.51.100.128/25") == []
        watcher.process([row("198.51.100.0/24", 64500)])
        assert labels("198.51.100.128/25") == ["10.1.2.0/24,AS64500"]
        assert labels("10.1.2.128/25") == ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24,AS64500"]
    finally:
        store.close()


def test_each_flush_stores_the_events_of_the_rows_since_the_last(tmp_path: Path) -> None:
    """Flushes within one series bin: the engine's revision moves with every route change, so a
    watcher that skips unchanged targets still stores each event at the first flush after it."""
    from transitwatch.analysis.feed import CollectorRows
    from transitwatch.routing.state import PeerKey, PeerTables
    from transitwatch.watch.run import open_watcher

    targets = [{"target": "10.1.2.0/24,AS64500", "min_peers": 1}, {"target": "192.0.2.0/24"}]
    cfg = load_config(write_config(tmp_path / "w.yml", tmp_path / "w.duckdb", targets=targets))
    watcher, store, _union, _ = open_watcher(cfg, on_events=lambda _e, _n: None)
    try:
        tables = PeerTables.empty()
        tables.v4[PeerKey("rrc00", "192.0.2.1", 64496)] = 10  # one full-feed peer
        t0 = 1_500_000_000  # a series bin boundary: the rows below stay inside the first bin
        watcher.bootstrap([CollectorRows("rrc00", None, tables, [], [], [], {})], t0)
        assert watcher.flush() == []

        def announce(t: int, prefix: str, origin: int) -> list[tuple[str, str]]:
            watcher.process(
                [Row(t, "rrc00", "192.0.2.1", 64496, "A", prefix, f"64496 {origin}", origin, None)]
            )
            return sorted((e["type"], e["time"]) for e in watcher.flush())

        first = announce(t0 + 1, "10.1.2.0/24", 64500)
        assert ("upstream_added", "2017-07-14T02:40:01Z") in first  # and unexpected_space: not delegated
        new = announce(t0 + 2, "10.1.2.0/25", 65000)
        assert ("more_specific", "2017-07-14T02:40:02Z") in new and (
            "origin_change",
            "2017-07-14T02:40:02Z",
        ) in new
        assert announce(t0 + 3, "198.51.100.0/24", 65001) == []  # no target's: nothing new
        assert store.count_events() == len(first) + len(new)
    finally:
        store.close()
