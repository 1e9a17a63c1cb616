"""Alerts: messages, every channel against a real receiver on loopback, and the dispatcher on a real
store (sent once, nothing again after a restart, rate limit and its summary, mute, confirmation,
routing, the bounded queue, a failing channel that blocks nobody and is retried).

Receivers: http.server in a thread (webhook, Slack), aiosmtpd (SMTP, plain, STARTTLS and implicit
TLS with a certificate made here), UDP and unix datagram sockets (syslog). Time is injected: the
dispatcher takes ``now``, the HTTP channels take ``sleep`` and ``jitter``; nothing waits for real.
"""

from __future__ import annotations

import copy
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from transitwatch.alerts import (
    CHANNEL_TYPES,
    CLOSE,
    OPEN,
    POLICY_SETTINGS,
    Alert,
    ChannelConfigError,
    ChannelError,
    ChannelPolicy,
    Dispatcher,
    DispatcherSettings,
    EmailChannel,
    JsonLinesChannel,
    MessageContext,
    SlackChannel,
    SyslogChannel,
    WebhookChannel,
    build_alert,
    build_dispatcher,
    make_channel,
    phases,
    verify_signature,
)
from transitwatch.store import Store, event_id, event_time

BASE_URL = "https://tw.example.net"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "alerts.md"

# ---- real events --------------------------------------------------------------------------------
# From `transitwatch upstreams KP --archive ../shared/scenarios/kp-2017-ttk --from 2017-10-01T08:00:00Z
# --to 2017-10-02T12:00:00Z --registry ../shared/registry --format json` (38 full-feed peers).
N_FULL = 38
PREFIXES = ["175.45.176.0/24", "175.45.177.0/24", "175.45.178.0/24", "175.45.179.0/24"]
TTK_ADDED: dict[str, Any] = {
    "time": "2017-10-01T09:07:51Z", "type": "upstream_added", "upstream": 20485, "peers": 31,
    "prefixes": ["175.45.176.0/24", "175.45.178.0/24", "175.45.179.0/24"],
    "collectors": ["route-views2", "rrc00"], "confirmed": "2017-10-01T09:07:54Z",
    "first_peer": {"collector": "rrc00", "address": "80.26.106.5", "asn": 6762},
    "name": "TRANSTELECOM", "country": "RU", "target": "KP",
}  # fmt: skip
TTK_LOST: dict[str, Any] = {
    "time": "2017-10-01T10:15:47Z", "type": "upstream_lost", "upstream": 20485, "peers": 31,
    "prefixes": ["175.45.176.0/24", "175.45.178.0/24", "175.45.179.0/24"],
    "collectors": ["route-views2", "rrc00"], "confirmed": "2017-10-01T10:15:16Z",
    "decline_start": "2017-10-01T10:14:45Z", "since": "2017-10-01T09:07:51Z", "duration_s": 4076.0,
    "name": "TRANSTELECOM", "country": "RU", "target": "KP",
}  # fmt: skip
OUTAGE_START: dict[str, Any] = {
    "time": "2017-10-01T10:47:35Z", "type": "outage_start", "severity": "total", "baseline": 4.0,
    "lowest": 0, "visible_share": 0.0, "unit": "/24", "prefixes": PREFIXES, "peers": 38,
    "collectors": ["route-views2", "rrc00"], "end": "2017-10-01T10:50:21Z", "duration_s": 166.0,
    "target": "KP",
}  # fmt: skip
UNICOM_LOST: dict[str, Any] = {
    "time": "2017-10-01T10:48:14Z", "type": "upstream_lost", "upstream": 4837, "peers": 38,
    "prefixes": PREFIXES, "collectors": ["route-views2", "rrc00"], "confirmed": "2017-10-01T10:47:41Z",
    "decline_start": "2017-10-01T10:47:12Z", "since": None, "name": "CHINA169-BACKBONE", "country": "CN",
    "target": "KP",
}  # fmt: skip
UNICOM_LOST_AGAIN: dict[str, Any] = {
    "time": "2017-10-01T11:13:07Z", "type": "upstream_lost", "upstream": 4837, "peers": 38,
    "prefixes": PREFIXES, "collectors": ["route-views2", "rrc00"], "confirmed": "2017-10-01T11:12:38Z",
    "decline_start": "2017-10-01T11:12:05Z", "since": "2017-10-01T10:49:40Z", "duration_s": 1407.0,
    "name": "CHINA169-BACKBONE", "country": "CN", "target": "KP",
}  # fmt: skip
UNICOM_ADDED: dict[str, Any] = {
    "time": "2017-10-01T10:49:40Z", "type": "upstream_added", "upstream": 4837, "peers": 38,
    "prefixes": PREFIXES, "collectors": ["route-views2", "rrc00"], "confirmed": "2017-10-01T10:49:45Z",
    "first_peer": {"collector": "rrc00", "address": "80.32.255.15", "asn": 8447},
    "name": "CHINA169-BACKBONE", "country": "CN", "target": "KP",
}  # fmt: skip
OUTAGE_END: dict[str, Any] = {
    "time": "2017-10-01T10:50:21Z", "type": "outage_end", "severity": "total",
    "start": "2017-10-01T10:47:35Z", "duration_s": 166.0, "prefixes": PREFIXES, "peers": 38,
    "notice": "KP restored after 2 min 46 s (total outage from 2017-10-01T10:47:35Z to "
    "2017-10-01T10:50:21Z; 4 prefixes affected)",
    "target": "KP",
}  # fmt: skip
# From `transitwatch anomalies KP` on the "hijack" world of tests/test_anomalies.py (AS64500, a
# documentation AS, announces 175.45.178.0/24 to half the peers; 10 full-feed peers).
HIJACK: dict[str, Any] = {
    "time": "2017-10-01T08:30:00Z", "type": "origin_change", "prefix": "175.45.178.0/24",
    "suspect_origin": 64500, "suspect_name": "EXAMPLE-HIJACK", "suspect_country": "NL",
    "expected": [131279], "peers": 6, "collectors": ["route-views2", "rrc00"],
    "confirmed": "2017-10-01T08:30:12Z", "end": "2017-10-01T09:10:58Z",
    "evidence": [
        {"collector": "route-views2", "peer_address": "81.5.19.3", "peer_asn": 1299,
         "time": "2017-10-01T08:30:00Z", "as_path": "1299 12956 64500"},
        {"collector": "route-views2", "peer_address": "81.33.44.2", "peer_asn": 8492,
         "time": "2017-10-01T08:30:09Z", "as_path": "8492 6762 64500"},
        {"collector": "rrc00", "peer_address": "80.9.193.2", "peer_asn": 2497,
         "time": "2017-10-01T08:30:12Z", "as_path": "2497 7018 64500"},
        {"collector": "rrc00", "peer_address": "80.27.27.5", "peer_asn": 6939,
         "time": "2017-10-01T08:30:14Z", "as_path": "6939 174 64500"},
        {"collector": "route-views2", "peer_address": "81.12.58.1", "peer_asn": 3130,
         "time": "2017-10-01T08:30:29Z", "as_path": "3130 12956 64500"},
        {"collector": "rrc00", "peer_address": "80.5.19.4", "peer_asn": 1299,
         "time": "2017-10-01T08:30:49Z", "as_path": "1299 7018 64500"},
    ],
    "target": "KP",
}  # fmt: skip
HIJACK_N_FULL = 10

KP_EVENTS = [TTK_ADDED, TTK_LOST, OUTAGE_START, UNICOM_LOST, UNICOM_ADDED, OUTAGE_END]
T0 = event_time({"time": "2017-10-01T12:00:00Z"})  # the dispatcher's clock in these tests


def unconfirmed(ev: dict[str, Any]) -> dict[str, Any]:
    """The same event as the tracker first reports it, before --min-peers peers have seen it."""
    return {**copy.deepcopy(ev), "confirmed": None}


def alert(ev: dict[str, Any] = TTK_ADDED, phase: str = OPEN, n_full: int = N_FULL) -> Alert:
    return build_alert(ev, phase, MessageContext(base_url=BASE_URL, full_feed_peers=n_full))


# ---- messages -----------------------------------------------------------------------------------


def test_upstream_added_says_what_when_by_how_many_where_and_links_the_event() -> None:
    a = alert(TTK_ADDED)
    assert a.subject == "KP: new upstream AS20485 TRANSTELECOM (RU)"
    assert a.lines[0] == "AS20485 TRANSTELECOM (RU) started carrying routes to KP at 2017-10-01T09:07:51Z."
    assert (
        "Seen by up to 31 of 38 full-feed peers at 2 collectors (route-views2, rrc00), for 3 prefixes: "
        "175.45.176.0/24, 175.45.178.0/24, 175.45.179.0/24." in a.lines
    )
    assert "first seen by peer 80.26.106.5 (AS6762) at rrc00" in a.text
    assert a.url == f"{BASE_URL}/events/{event_id(TTK_ADDED)}"
    assert a.text.endswith(f"Event: {a.url}")
    assert a.severity == "info" and a.phase == OPEN


def test_upstream_lost_gives_how_long_it_carried_routes() -> None:
    a = alert(TTK_LOST)
    assert a.subject == "KP: lost upstream AS20485 TRANSTELECOM (RU)"
    assert "31 of 38 full-feed peers" in a.text
    assert "since 2017-10-01T09:07:51Z (1 h 7 min 56 s)" in a.text  # 4076 s
    assert a.severity == "warning"


def test_restoration_notice_gives_the_outage_duration() -> None:
    assert phases(OUTAGE_END) == [CLOSE]
    a = alert(OUTAGE_END, CLOSE)
    assert a.subject == "KP: restored after 2 min 46 s (total outage)"
    assert a.lines[0] == (
        "KP restored at 2017-10-01T10:50:21Z after 2 min 46 s: "
        "the total outage began at 2017-10-01T10:47:35Z."
    )
    assert "38 of 38 full-feed peers lost a route meanwhile" in a.text


def test_outage_start_counts_against_the_baseline() -> None:
    a = alert(OUTAGE_START)
    assert a.subject == "KP: total outage" and a.severity == "critical"
    assert "at worst 0 of the usual 4 /24 visible (0%)" in a.text


def test_hijack_alert_lists_its_evidence_and_closes_when_over() -> None:
    assert phases(HIJACK) == [OPEN, CLOSE]  # its end is known
    a = alert(HIJACK, n_full=HIJACK_N_FULL)
    assert a.subject == "KP: possible hijack of 175.45.178.0/24 by AS64500 EXAMPLE-HIJACK (NL)"
    assert a.severity == "critical"
    assert "Seen by 6 of 10 full-feed peers at 2 collectors (route-views2, rrc00)" in a.text
    assert a.evidence_title == "Evidence (the 6 peers that saw it):"
    assert len(a.evidence) == 6
    for line, ev in zip(a.evidence, HIJACK["evidence"], strict=True):
        assert line.startswith(ev["time"]) and ev["collector"] in line
        assert f"peer {ev['peer_address']} AS{ev['peer_asn']}" in line and line.endswith(
            f"path {ev['as_path']}"
        )
    closed = alert(HIJACK, CLOSE, n_full=HIJACK_N_FULL)
    assert closed.subject == "KP: over: possible hijack of 175.45.178.0/24 by AS64500 EXAMPLE-HIJACK (NL)"
    assert closed.lines[0].startswith("Over at 2017-10-01T09:10:58Z (lasted 40 min 58 s)")
    assert closed.time == "2017-10-01T09:10:58Z"


def test_evidence_beyond_what_a_message_shows_is_counted() -> None:
    many = copy.deepcopy(HIJACK)
    many["evidence"] = many["evidence"] * 3  # 18 lines
    many["peers"] = 25
    a = alert(many, n_full=40)
    assert len(a.evidence) == 10
    assert a.evidence_title == "Evidence (the first 10 of the 25 peers that saw it):"


def test_without_the_full_feed_total_the_text_says_so_instead_of_guessing() -> None:
    a = build_alert(TTK_ADDED, OPEN, MessageContext())
    assert "31 full-feed peers (total of full-feed peers not known)" in a.text
    assert a.url is None and "Event:" not in a.text
    # the event's own count wins over the context's
    assert (
        "31 of 40 full-feed peers"
        in build_alert({**TTK_ADDED, "full_feed_peers": 40}, OPEN, MessageContext()).text
    )


def test_unconfirmed_events_have_no_phase_to_alert() -> None:
    assert phases(unconfirmed(TTK_ADDED)) == []
    assert phases(unconfirmed(HIJACK)) == []
    assert phases({**HIJACK, "end": None}) == [OPEN]
    assert phases(OUTAGE_START) == [OPEN]  # outages have no confirmation step


# ---- receivers ----------------------------------------------------------------------------------


@dataclass
class HttpReceiver:
    """A real HTTP server on 127.0.0.1: records each request and answers with the next status."""

    statuses: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)  # in order; then 200
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    rec = HttpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            answer = rec.statuses.pop(0) if rec.statuses else 200
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
            reply = b"ok" if status < 400 else b"server says no"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


class Sleeps(list[float]):
    """An injected sleep: records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def webhook(url: str, **kwargs: Any) -> WebhookChannel:
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("jitter", lambda: 0.5)
    return WebhookChannel("hook", url, **kwargs)


# ---- JSON lines ---------------------------------------------------------------------------------


def test_jsonl_appends_one_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    ch = make_channel("file", {"type": "jsonl", "path": str(path)})
    ch.send(alert(TTK_ADDED))
    ch.send(alert(OUTAGE_END, CLOSE))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["type"], r["phase"]) for r in rows] == [("upstream_added", "open"), ("outage_end", "close")]
    assert rows[0]["event_id"] == event_id(TTK_ADDED) and rows[0]["event"]["peers"] == 31
    assert rows[1]["text"] == alert(OUTAGE_END, CLOSE).text


def test_jsonl_into_a_missing_folder_is_a_channel_error(tmp_path: Path) -> None:
    ch = JsonLinesChannel("file", tmp_path / "no-such-folder" / "alerts.jsonl")
    with pytest.raises(ChannelError, match="'file': cannot append to"):
        ch.send(alert())


# ---- webhook and Slack --------------------------------------------------------------------------


def test_webhook_posts_the_alert_signed_with_hmac_of_the_body(http_receiver: HttpReceiver) -> None:
    ch = webhook(http_receiver.url, secret="s3cret", clock=lambda: 1_700_000_000.0)
    ch.send(alert(HIJACK, n_full=HIJACK_N_FULL))
    [(path, headers, body)] = http_receiver.requests
    assert path == "/hook" and headers["content-type"] == "application/json"
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["x-transitwatch-signature"] == expected
    assert headers["x-transitwatch-timestamp"] == "1700000000"
    assert headers["x-transitwatch-delivery"] == f"{event_id(HIJACK)}:open"
    payload = json.loads(body)
    assert payload["sent_at"] == 1_700_000_000 and payload["type"] == "origin_change"
    assert payload["url"] == f"{BASE_URL}/events/{event_id(HIJACK)}"
    assert payload["event"]["evidence"] == HIJACK["evidence"]
    assert "6 of 10 full-feed peers" in payload["text"]
    # what a receiver does: accept this, refuse a changed body, a wrong key, an old or moved timestamp
    sig, ts = headers["x-transitwatch-signature"], headers["x-transitwatch-timestamp"]
    assert verify_signature("s3cret", body, sig, ts, now=1_700_000_060)
    assert not verify_signature("s3cret", body.replace(b"EXAMPLE", b"EXAMPLF"), sig, ts, now=1_700_000_060)
    assert not verify_signature("other", body, sig, ts, now=1_700_000_060)
    assert not verify_signature("s3cret", body, sig, ts, now=1_700_001_000)
    assert not verify_signature("s3cret", body, sig, "1700000001", now=1_700_000_060)


def test_the_docs_verification_code_accepts_a_real_delivery_and_nothing_else(
    http_receiver: HttpReceiver,
) -> None:
    section = DOCS.read_text().split("## Verifying a webhook's signature", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    verify = namespace["verify"]
    webhook(http_receiver.url, secret="s3cret", clock=lambda: 1_700_000_000.0).send(alert())
    [(_, headers, body)] = http_receiver.requests
    assert verify(b"s3cret", body, headers, now=1_700_000_100)
    assert not verify(b"s3cret", body + b" ", headers, now=1_700_000_100)
    assert not verify(b"wrong", body, headers, now=1_700_000_100)
    assert not verify(b"s3cret", body, headers, now=1_700_000_400)


def test_the_docs_example_request_is_signed_as_it_says() -> None:
    block = DOCS.read_text().split("POST /tw HTTP/1.1\n", 1)[1].split("\n```", 1)[0]
    head, body = block.split("\n\n", 1)
    headers = dict(line.split(": ", 1) for line in head.splitlines())
    raw = body.encode()
    assert headers["X-Transitwatch-Signature"] == "sha256=" + hmac.new(b"s3cret", raw, "sha256").hexdigest()
    assert json.loads(raw)["sent_at"] == int(headers["X-Transitwatch-Timestamp"])
    # and it is what the channel sends for that alert at that time
    ctx = MessageContext(base_url=BASE_URL, full_feed_peers=N_FULL, target_prefixes=4)
    channel = WebhookChannel(
        "hook", "https://hooks.example.net/tw", secret="s3cret", clock=lambda: 1506859200
    )
    assert channel.request(build_alert(TTK_ADDED, OPEN, ctx)) == (
        raw,
        {k: v for k, v in headers.items() if k.startswith("X-")},
    )


def test_webhook_without_a_secret_sends_no_signature(http_receiver: HttpReceiver) -> None:
    webhook(http_receiver.url).send(alert())
    [(_, headers, _)] = http_receiver.requests
    assert "x-transitwatch-signature" not in headers and "x-transitwatch-timestamp" in headers


def test_webhook_secret_from_the_environment(
    http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_HOOK_SECRET", "from-env")
    ch = make_channel("hook", {"type": "webhook", "url": http_receiver.url, "secret_env": "TW_HOOK_SECRET"})
    ch.send(alert())
    [(_, headers, body)] = http_receiver.requests
    assert (
        headers["x-transitwatch-signature"] == "sha256=" + hmac.new(b"from-env", body, "sha256").hexdigest()
    )
    monkeypatch.delenv("TW_HOOK_SECRET")
    with pytest.raises(ChannelConfigError, match="TW_HOOK_SECRET, which is not set"):
        make_channel("hook", {"type": "webhook", "url": http_receiver.url, "secret_env": "TW_HOOK_SECRET"})


def test_webhook_retries_on_5xx_with_backoff_then_succeeds(http_receiver: HttpReceiver) -> None:
    http_receiver.statuses = [500, 503]
    sleeps = Sleeps()
    ch = webhook(http_receiver.url, secret="k", retries=3, backoff=1.0, sleep=sleeps, jitter=lambda: 0.5)
    ch.send(alert())
    assert len(http_receiver.requests) == 3
    assert sleeps == [0.75, 1.5]  # 1 s then 2 s, each between half and all of it (jitter 0.5)
    # the same delivery id each time, and every attempt signed afresh
    assert {h["x-transitwatch-delivery"] for _, h, _ in http_receiver.requests} == {
        f"{event_id(TTK_ADDED)}:open"
    }
    for _, h, body in http_receiver.requests:
        assert h["x-transitwatch-signature"] == "sha256=" + hmac.new(b"k", body, "sha256").hexdigest()


def test_webhook_backoff_is_capped_and_jittered() -> None:
    ch = webhook("http://127.0.0.1:9/", backoff=2.0, backoff_max=5.0, jitter=lambda: 1.0)
    assert [ch.delay(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 5.0, 5.0]
    ch.jitter = lambda: 0.0
    assert ch.delay(3) == 2.5


def test_webhook_gives_up_after_its_retries(http_receiver: HttpReceiver) -> None:
    http_receiver.statuses = [500, 500, 500]
    with pytest.raises(ChannelError, match=r"failed after 3 attempts: HTTP 500"):
        webhook(http_receiver.url, retries=2).send(alert())
    assert len(http_receiver.requests) == 3


def test_webhook_4xx_is_not_retried(http_receiver: HttpReceiver) -> None:
    http_receiver.statuses = [400]
    with pytest.raises(ChannelError, match="rejected the alert: HTTP 400: server says no"):
        webhook(http_receiver.url, retries=3).send(alert())
    assert len(http_receiver.requests) == 1


def test_webhook_429_waits_as_told_up_to_backoff_max(http_receiver: HttpReceiver) -> None:
    http_receiver.statuses = [(429, {"Retry-After": "3"}), (429, {"Retry-After": "100"}), 429]
    sleeps = Sleeps()
    webhook(http_receiver.url, sleep=sleeps, backoff_max=7.0).send(alert())
    # as told, capped at backoff_max, and the usual backoff without a Retry-After (third retry: 4 s)
    assert sleeps == [3.0, 7.0, 3.0] and len(http_receiver.requests) == 4


def test_webhook_timeouts_and_refused_connections_are_retried() -> None:
    # a socket that listens but never answers: the kernel completes the handshake, the reply never comes
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    try:
        sleeps = Sleeps()
        ch = webhook(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout=0.05, retries=1, sleep=sleeps)
        with pytest.raises(ChannelError, match=r"failed after 2 attempts: timed out .*; timed out"):
            ch.send(alert())
        assert len(sleeps) == 1
        ch = webhook(f"http://127.0.0.1:{refused.getsockname()[1]}/", retries=2)
        with pytest.raises(ChannelError, match=r"failed after 3 attempts: cannot connect"):
            ch.send(alert())
    finally:
        silent.close()
        refused.close()


def test_slack_posts_the_message_as_mrkdwn_text(http_receiver: HttpReceiver) -> None:
    ch = make_channel("slack", {"type": "slack", "url": http_receiver.url})
    assert isinstance(ch, SlackChannel)
    ch.send(alert(HIJACK, n_full=HIJACK_N_FULL))
    [(_, _, body)] = http_receiver.requests
    payload = json.loads(body)
    assert list(payload) == ["text"]
    text = payload["text"]
    assert text.startswith("*KP: possible hijack of 175.45.178.0/24 by AS64500 EXAMPLE-HIJACK (NL)*\n")
    assert "Seen by 6 of 10 full-feed peers" in text
    assert "```2017-10-01T08:30:00Z  route-views2  peer 81.5.19.3 AS1299  path 1299 12956 64500\n" in text
    assert text.endswith(f"<{BASE_URL}/events/{event_id(HIJACK)}|Event page>")


def test_slack_escapes_what_mrkdwn_reserves(http_receiver: HttpReceiver) -> None:
    ev = {**TTK_ADDED, "name": "A&B <NET>"}
    SlackChannel("slack", http_receiver.url, sleep=Sleeps()).send(alert(ev))
    text = json.loads(http_receiver.requests[0][2])["text"]
    assert "AS20485 A&amp;B &lt;NET&gt; (RU)" in text and "<NET>" not in text


# ---- email --------------------------------------------------------------------------------------


@dataclass
class Tls:
    cert: Path
    server: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1 and localhost, made for this test run."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "transitwatch test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    return Tls(cert_path, ctx)


@dataclass
class SmtpReceiver:
    host: str
    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    tls_seen: list[bool] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpReceiver]]:
    """Starts aiosmtpd on 127.0.0.1 with the given options; stops it after the test."""
    started: list[Controller] = []

    def start(**kwargs: Any) -> SmtpReceiver:
        rec = SmtpReceiver("127.0.0.1", 0)

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                assert isinstance(msg, EmailMessage)
                rec.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
                rec.tls_seen.append(session.ssl is not None)
                return "250 OK"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"noc", b"pw")
            if ok:
                rec.logins.append(data.login.decode())
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

        for _ in range(5):  # the free port may be taken between finding and binding it
            port = _free_port()
            ctl = Controller(
                Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator, **kwargs
            )
            try:
                ctl.start()
            except OSError:
                continue
            started.append(ctl)
            rec.port = port
            return rec
        raise RuntimeError("no free port for the SMTP server")

    yield start
    for ctl in started:
        ctl.stop()


def test_email_over_plain_smtp(smtp_server: Callable[..., SmtpReceiver]) -> None:
    rec = smtp_server()
    ch = make_channel(
        "mail",
        {
            "type": "email",
            "host": rec.host,
            "port": rec.port,
            "from": "tw@example.net",
            "to": "noc@example.net",
        },
    )
    ch.send(alert(OUTAGE_END, CLOSE))
    [(sender, rcpts, msg)] = rec.messages
    assert sender == "tw@example.net" and rcpts == ["noc@example.net"]
    assert msg["Subject"] == "[transitwatch] KP: restored after 2 min 46 s (total outage)"
    assert msg["X-Transitwatch-Event"] == event_id(OUTAGE_END) and msg["X-Transitwatch-Phase"] == "close"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().replace("\r\n", "\n") == alert(OUTAGE_END, CLOSE).text + "\n"
    assert rec.tls_seen == [False]


def test_email_with_starttls_and_login(smtp_server: Callable[..., SmtpReceiver], tls: Tls) -> None:
    rec = smtp_server(tls_context=tls.server, require_starttls=True)
    ch = make_channel(
        "mail",
        {
            "type": "email", "host": rec.host, "port": rec.port, "from": "tw@example.net",
            "to": ["noc@example.net", "oncall@example.net"], "starttls": True, "ca_file": str(tls.cert),
            "username": "noc", "password": "pw",
        },
    )  # fmt: skip
    ch.send(alert(HIJACK, n_full=HIJACK_N_FULL))
    [(_, rcpts, msg)] = rec.messages
    assert rcpts == ["noc@example.net", "oncall@example.net"]
    assert rec.tls_seen == [True] and rec.logins == ["noc"]
    body = msg.get_content()
    assert "Evidence (the 6 peers that saw it):" in body
    assert "rrc00         peer 80.5.19.4 AS1299  path 1299 7018 64500" in body


def test_email_wrong_password_is_a_channel_error(smtp_server: Callable[..., SmtpReceiver], tls: Tls) -> None:
    rec = smtp_server(tls_context=tls.server, require_starttls=True)
    ch = EmailChannel(
        "mail", rec.host, "tw@example.net", ["noc@example.net"], port=rec.port, starttls=True,
        ca_file=str(tls.cert), username="noc", password="wrong",
    )  # fmt: skip
    with pytest.raises(ChannelError, match="SMTPAuthenticationError"):
        ch.send(alert())
    assert rec.messages == []


def test_email_with_implicit_tls(smtp_server: Callable[..., SmtpReceiver], tls: Tls) -> None:
    rec = smtp_server(ssl_context=tls.server)
    ch = EmailChannel(
        "mail", rec.host, "tw@example.net", ["noc@example.net"], port=rec.port, use_ssl=True,
        ca_file=str(tls.cert),
    )  # fmt: skip
    ch.send(alert())
    assert len(rec.messages) == 1


def test_email_starttls_never_falls_back_to_clear_text(smtp_server: Callable[..., SmtpReceiver]) -> None:
    rec = smtp_server()  # offers no STARTTLS
    ch = EmailChannel("mail", rec.host, "tw@example.net", ["noc@example.net"], port=rec.port, starttls=True)
    with pytest.raises(ChannelError, match="STARTTLS extension not supported"):
        ch.send(alert())
    assert rec.messages == []


def test_email_refuses_an_untrusted_certificate(smtp_server: Callable[..., SmtpReceiver], tls: Tls) -> None:
    rec = smtp_server(tls_context=tls.server, require_starttls=True)
    ch = EmailChannel("mail", rec.host, "tw@example.net", ["noc@example.net"], port=rec.port, starttls=True)
    with pytest.raises(ChannelError, match="CERTIFICATE_VERIFY_FAILED"):
        ch.send(alert())
    assert rec.messages == []


def test_email_config_errors() -> None:
    with pytest.raises(ChannelConfigError, match="a login needs starttls or ssl"):
        make_channel("mail", {"type": "email", "host": "h", "from": "a@b", "to": "c@d", "username": "u"})
    with pytest.raises(ChannelConfigError, match="'mail': from is required"):
        make_channel("mail", {"type": "email", "host": "h", "to": "c@d"})
    with pytest.raises(ChannelConfigError, match="starttls and ssl exclude each other"):
        make_channel(
            "mail", {"type": "email", "host": "h", "from": "a@b", "to": "c@d", "starttls": 1, "ssl": 1}
        )


# ---- syslog -------------------------------------------------------------------------------------

RFC5424 = re.compile(
    rb"^<(?P<pri>\d+)>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<host>\S+) (?P<app>\S+) "
    rb"(?P<pid>\d+) (?P<msgid>\S+) - (?P<msg>.*)$",
    re.S,
)
RFC3164 = re.compile(
    rb"^<(?P<pri>\d+)>(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) (?P<tag>[^\[]+)\[\d+\]: "
    rb"(?P<msg>.*)$",
    re.S,
)
SENT_AT = event_time({"time": "2017-10-01T10:50:30.250Z"})


@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)  # a bound on a datagram already sent, not a wait
    yield sock
    sock.close()


def test_syslog_rfc5424_over_udp(udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    ch = make_channel(
        "log", {"type": "syslog", "address": f"127.0.0.1:{port}", "facility": "local0", "hostname": "tw1"}
    )
    assert isinstance(ch, SyslogChannel)
    ch.clock = lambda: SENT_AT
    ch.send(alert(HIJACK, n_full=HIJACK_N_FULL))
    data = udp_receiver.recv(65535)
    m = RFC5424.match(data)
    assert m, data
    assert int(m["pri"]) == 16 * 8 + 2  # local0, crit
    assert m["ts"] == b"2017-10-01T10:50:30.250Z" and m["host"] == b"tw1" and m["app"] == b"transitwatch"
    assert m["msgid"] == b"origin_change"
    msg = m["msg"].decode()
    assert msg.startswith("KP: possible hijack of 175.45.178.0/24 by AS64500 EXAMPLE-HIJACK (NL): 175.45")
    assert "Seen by 6 of 10 full-feed peers" in msg and msg.endswith(f"{BASE_URL}/events/{event_id(HIJACK)}")
    assert "\n" not in msg


def test_syslog_rfc3164_over_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        ch = SyslogChannel(
            "log", path, format="rfc3164", facility="daemon", hostname="tw1", clock=lambda: SENT_AT
        )
        ch.send(alert(OUTAGE_END, CLOSE))
        data = sock.recv(65535)
    m = RFC3164.match(data)
    assert m, data
    assert int(m["pri"]) == 3 * 8 + 5  # daemon, notice
    assert m["ts"] == b"Oct  1 10:50:30" and m["host"] == b"tw1" and m["tag"] == b"transitwatch"
    assert m["msg"].startswith(b"KP: restored after 2 min 46 s (total outage): KP restored at")


def test_syslog_cuts_long_messages_without_splitting_a_character(udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    ev = {**TTK_ADDED, "name": "Ä" * 400}  # two bytes each in UTF-8
    ch = SyslogChannel("log", f"127.0.0.1:{port}", max_bytes=301, hostname="h", clock=lambda: SENT_AT)
    ch.send(alert(ev))
    data = udp_receiver.recv(65535)
    assert len(data) in (300, 301)
    m = RFC5424.match(data)
    assert m and m["msg"].startswith(b"\xef\xbb\xbf")  # UTF-8 MSG starts with a BOM (RFC 5424 6.4)
    data.decode("utf-8")  # whole characters only


def test_syslog_to_a_missing_unix_socket_is_a_channel_error(tmp_path: Path) -> None:
    ch = SyslogChannel("log", str(tmp_path / "nobody.sock"))
    with pytest.raises(ChannelError, match="'log': syslog to"):
        ch.send(alert())


def test_syslog_config_errors() -> None:
    with pytest.raises(ChannelConfigError, match="unknown facility 'local9'"):
        make_channel("log", {"type": "syslog", "facility": "local9"})
    with pytest.raises(ChannelConfigError, match="HOST:PORT or a socket path"):
        make_channel("log", {"type": "syslog", "address": "syslog.example.net"})
    with pytest.raises(ChannelConfigError, match="rfc5424 or rfc3164"):
        make_channel("log", {"type": "syslog", "format": "json"})


# ---- configuration ------------------------------------------------------------------------------


def test_channel_config_names_the_channel_and_the_key() -> None:
    with pytest.raises(ChannelConfigError, match=r"'x': unknown type 'pager' \(one of email, jsonl"):
        make_channel("x", {"type": "pager"})
    with pytest.raises(ChannelConfigError, match=r"'f': unknown key pth \(known: "):
        make_channel("f", {"type": "jsonl", "pth": "/tmp/x"})
    with pytest.raises(ChannelConfigError, match="'f': path is required"):
        make_channel("f", {"type": "jsonl"})
    # the dispatcher's keys are accepted by every channel
    make_channel("f", {"type": "jsonl", "path": "/tmp/x", "rate_limit": 5, "mute": 60, "types": ["moas"]})
    with pytest.raises(ChannelConfigError, match="rate_limit must be >= 1"):
        ChannelPolicy.from_config("f", {"rate_limit": 0})


def test_docs_describe_every_channel_key() -> None:
    docs = DOCS.read_text()
    for kind, cls in CHANNEL_TYPES.items():
        assert f"`{kind}`" in docs
        for s in cls.SETTINGS:
            assert f"`{s.name}`" in docs, f"docs/alerts.md does not describe {kind}'s key {s.name}"
    for s in POLICY_SETTINGS:
        assert f"`{s.name}`" in docs


# ---- dispatcher ---------------------------------------------------------------------------------


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "tw.duckdb") as s:
        yield s


def file_dispatcher(
    store: Store, tmp_path: Path, *, name: str = "file", **policy: Any
) -> tuple[Dispatcher, Path]:
    path = tmp_path / f"{name}.jsonl"
    disp = Dispatcher.from_config(
        store, {name: {"type": "jsonl", "path": str(path), **policy}}, base_url=BASE_URL
    )
    return disp, path


def test_each_alert_is_sent_once(store: Store, tmp_path: Path) -> None:
    disp, path = file_dispatcher(store, tmp_path, rate_limit=100, mute=0)
    report = disp.dispatch(KP_EVENTS, T0, full_feed_peers=N_FULL)
    assert report.sent == 6 and report.pending == 0
    rows = lines_of(path)
    assert [(r["type"], r["phase"]) for r in rows] == [
        ("upstream_added", "open"), ("upstream_lost", "open"), ("outage_start", "open"),
        ("upstream_lost", "open"), ("upstream_added", "open"), ("outage_end", "close"),
    ]  # fmt: skip
    assert "31 of 38 full-feed peers" in rows[0]["text"]
    for ev in KP_EVENTS:
        assert store.alert_sent(event_id(ev), "file", phases(ev)[0])
    # a live watch hands over every event again at each flush: nothing more is sent
    again = disp.dispatch(KP_EVENTS, T0 + 1, full_feed_peers=N_FULL)
    assert again.sent == 0 and len(lines_of(path)) == 6
    assert disp.stats()["channels"]["file"]["sent"] == 6


def test_a_restarted_dispatcher_sends_nothing_again(tmp_path: Path) -> None:
    db = tmp_path / "tw.duckdb"
    with Store(db) as store:
        disp, path = file_dispatcher(store, tmp_path, rate_limit=100, mute=0)
        assert disp.dispatch([*KP_EVENTS, HIJACK], T0).sent == 8  # the hijack opens and closes
        disp.close()
    with Store(db) as store:  # a new process on the same store
        disp, path = file_dispatcher(store, tmp_path, rate_limit=100, mute=0)
        report = disp.dispatch([*KP_EVENTS, HIJACK], T0 + 60)
        assert report.sent == 0 and report.pending == 0
        assert len(lines_of(path)) == 8
        # an event it has not seen before still goes out
        assert disp.dispatch([UNICOM_LOST_AGAIN], T0 + 120).sent == 1


def test_unconfirmed_events_wait_for_confirmation(store: Store, tmp_path: Path) -> None:
    disp, path = file_dispatcher(store, tmp_path)
    report = disp.dispatch([unconfirmed(TTK_ADDED), unconfirmed(HIJACK)], T0)
    assert report.sent == 0 and lines_of(path) == []
    assert disp.stats()["unconfirmed"] == 2
    assert not store.alert_sent(event_id(TTK_ADDED), "file", OPEN)
    # the same events once confirmed (same ids: the id does not depend on the confirmation)
    assert disp.dispatch([TTK_ADDED, {**HIJACK, "end": None}], T0 + 5).sent == 2
    assert [r["event_id"] for r in lines_of(path)] == [event_id(TTK_ADDED), event_id(HIJACK)]
    assert disp.stats()["unconfirmed"] == 0
    # the anomaly's end arrives later: its close phase is sent, the open one not again
    assert disp.dispatch([HIJACK], T0 + 10).sent == 1
    assert [r["phase"] for r in lines_of(path)] == ["open", "open", "close"]


def test_rate_limit_suppresses_the_excess_and_summarises_it_later(store: Store, tmp_path: Path) -> None:
    disp, path = file_dispatcher(store, tmp_path, rate_limit=2, rate_window=3600, mute=0)
    report = disp.dispatch(KP_EVENTS, T0, full_feed_peers=N_FULL)
    assert (report.sent, report.rate_limited, report.summaries) == (2, 4, 0)
    assert [r["type"] for r in lines_of(path)] == ["upstream_added", "upstream_lost"]
    # suppressed alerts are final: marked in the store, never sent one by one
    for ev in KP_EVENTS[2:]:
        assert store.alert_sent(event_id(ev), "file", phases(ev)[0])
    # the window is still full: the summary waits
    assert disp.deliver(T0 + 1800).summaries == 0
    # the window has room: one summary, no more
    later = disp.deliver(T0 + 3600)
    assert later.summaries == 1
    summary = lines_of(path)[-1]
    assert summary["type"] == "alerts_suppressed" and summary["phase"] == "summary"
    assert summary["subject"] == "KP: 4 more alerts suppressed"
    assert (
        "4 alerts about KP, on changes from 2017-10-01T10:47:35Z to 2017-10-01T10:50:21Z, were not sent "
        "on this channel: 4 over the rate limit (2 per 1 h)." in summary["text"]
    )
    assert "By type: outage_end 1, outage_start 1, upstream_added 1, upstream_lost 1." in summary["text"]
    assert "2017-10-01T10:48:14Z  KP: lost upstream AS4837 CHINA169-BACKBONE (CN)" in summary["text"]
    assert disp.deliver(T0 + 7200).summaries == 0
    assert disp.dispatch(KP_EVENTS, T0 + 7200).sent == 0
    assert len(lines_of(path)) == 3
    assert disp.stats()["channels"]["file"]["rate_limited"] == 4


def test_rate_limit_is_per_target(store: Store, tmp_path: Path) -> None:
    disp, path = file_dispatcher(store, tmp_path, rate_limit=1, mute=0)
    other = {**TTK_ADDED, "target": "AS131279"}
    report = disp.dispatch([TTK_ADDED, UNICOM_ADDED, other], T0)
    assert (report.sent, report.rate_limited) == (2, 1)
    assert [r["target"] for r in lines_of(path)] == ["KP", "AS131279"]


def test_owed_summary_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "tw.duckdb"
    with Store(db) as store:
        disp, path = file_dispatcher(store, tmp_path, rate_limit=1, mute=0)
        assert disp.dispatch([TTK_ADDED, TTK_LOST, UNICOM_LOST], T0).rate_limited == 2
    with Store(db) as store:
        disp, path = file_dispatcher(store, tmp_path, rate_limit=1, mute=0)
        assert disp.stats()["channels"]["file"]["owed_summary"]
        assert disp.deliver(T0 + 600).summaries == 0  # the window persisted too
        assert disp.deliver(T0 + 3600).summaries == 1
    assert lines_of(path)[-1]["subject"] == "KP: 2 more alerts suppressed"


def test_identical_messages_are_muted_and_counted(store: Store, tmp_path: Path) -> None:
    disp, path = file_dispatcher(store, tmp_path, rate_limit=10, mute=900)
    # AS4837 lost twice: the same subject
    report = disp.dispatch([UNICOM_LOST, UNICOM_LOST_AGAIN], T0)
    assert (report.sent, report.muted) == (1, 1)
    assert alert(UNICOM_LOST).subject == alert(UNICOM_LOST_AGAIN).subject
    # once the mute is over, the same message goes out again, after the summary of what was muted
    third = {**UNICOM_LOST_AGAIN, "time": "2017-10-01T11:41:24Z"}
    report = disp.dispatch([third], T0 + 900)
    assert (report.sent, report.summaries) == (1, 1)
    rows = lines_of(path)
    assert [r["type"] for r in rows] == ["upstream_lost", "alerts_suppressed", "upstream_lost"]
    assert "1 identical to one sent less than 15 min before" in rows[1]["text"]


def test_failing_channel_blocks_no_other_and_is_retried(
    store: Store, tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    path = tmp_path / "file.jsonl"
    http_receiver.statuses = [500]  # the hook fails once, then works
    channels = {
        "hook": WebhookChannel("hook", http_receiver.url, retries=0, sleep=Sleeps()),
        "file": JsonLinesChannel("file", path),
    }
    disp = Dispatcher(store, channels, settings=DispatcherSettings(retry_initial_s=60))
    events = [TTK_ADDED, TTK_LOST, OUTAGE_START]
    report = disp.dispatch(events, T0, full_feed_peers=N_FULL)
    assert report.sent == 3 and report.failed == 1 and report.pending == 3
    assert "HTTP 500" in report.errors[0]
    assert len(lines_of(path)) == 3  # the file channel got everything
    assert len(http_receiver.requests) == 1  # the hook stopped at its first failure
    assert not any(store.alert_sent(event_id(ev), "hook", OPEN) for ev in events)
    # before the channel's pause is over nothing is tried
    assert disp.deliver(T0 + 59).sent == 0 and len(http_receiver.requests) == 1
    # then everything goes, in order, the failed one first
    report = disp.deliver(T0 + 60)
    assert report.sent == 3 and report.pending == 0
    posted = [json.loads(body)["event_id"] for _, _, body in http_receiver.requests]
    assert posted == [event_id(TTK_ADDED), *(event_id(ev) for ev in events)]
    assert all(store.alert_sent(event_id(ev), "hook", OPEN) for ev in events)
    assert disp.stats()["channels"]["hook"]["failed_attempts"] == 1
    disp.close()


class Exploding:
    """A channel whose send raises something other than ChannelError."""

    name = "boom"
    calls = 0

    def send(self, alert: Alert) -> None:
        self.calls += 1
        raise RuntimeError("bug in a channel")

    def close(self) -> None:
        pass


def test_channel_backoff_doubles_and_an_alert_is_given_up_after_max_attempts(
    store: Store, tmp_path: Path
) -> None:
    boom = Exploding()
    disp = Dispatcher(
        store,
        {"boom": boom, "file": JsonLinesChannel("file", tmp_path / "f.jsonl")},  # type: ignore[dict-item]
        settings=DispatcherSettings(retry_initial_s=10, retry_max_s=25, max_attempts=3, parallel=False),
    )
    disp.dispatch([TTK_ADDED], T0)
    assert boom.calls == 1 and disp.stats()["channels"]["boom"]["retry_at"] == T0 + 10
    disp.deliver(T0 + 10)
    assert disp.stats()["channels"]["boom"]["retry_at"] == T0 + 30  # 20 s
    report = disp.deliver(T0 + 30)
    assert report.given_up == 1 and report.pending == 0 and boom.calls == 3
    assert not store.alert_sent(event_id(TTK_ADDED), "boom", OPEN)
    assert store.alert_sent(event_id(TTK_ADDED), "file", OPEN)
    # given up is not forgotten for ever: the next dispatch with the event offers it again
    assert disp.submit([TTK_ADDED], T0 + 40) == 1


def test_routes_and_types_pick_the_channels(store: Store, tmp_path: Path) -> None:
    disp = Dispatcher.from_config(
        store,
        {
            "kp-noc": {"type": "jsonl", "path": str(tmp_path / "kp.jsonl")},
            "hijacks": {"type": "jsonl", "path": str(tmp_path / "hijacks.jsonl"), "types": ["origin_change"]},
            "others": {"type": "jsonl", "path": str(tmp_path / "others.jsonl")},
        },
        routes={"KP": ["kp-noc", "hijacks"], "*": ["others"]},
    )
    elsewhere = {**TTK_ADDED, "target": "AS4837"}
    disp.dispatch([TTK_ADDED, {**HIJACK, "end": None}, elsewhere], T0)
    assert [r["type"] for r in lines_of(tmp_path / "kp.jsonl")] == ["upstream_added", "origin_change"]
    assert [r["type"] for r in lines_of(tmp_path / "hijacks.jsonl")] == ["origin_change"]
    assert [r["target"] for r in lines_of(tmp_path / "others.jsonl")] == ["AS4837"]
    with pytest.raises(ChannelConfigError, match="undefined channel"):
        Dispatcher(store, {}, routes={"KP": ["nowhere"]})


def test_full_queue_refuses_new_alerts_counts_them_and_takes_them_on_the_next_dispatch(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "file.jsonl"
    disp = Dispatcher(
        store,
        {"file": JsonLinesChannel("file", path)},
        policies={"file": ChannelPolicy(rate_limit=100, mute_s=0)},
        settings=DispatcherSettings(queue_size=2),
    )
    assert disp.submit(KP_EVENTS[:3], T0) == 2
    stats = disp.stats()
    assert stats["queue"] == 2 and stats["channels"]["file"]["dropped_queue_full"] == 1
    assert disp.deliver(T0).sent == 2
    # the refused alert was not marked: offered again, it goes out
    assert disp.dispatch(KP_EVENTS[:3], T0 + 1).sent == 1
    assert [r["event_id"] for r in lines_of(path)] == [event_id(ev) for ev in KP_EVENTS[:3]]


def test_denominators_come_from_the_store_when_watch_recorded_them(store: Store, tmp_path: Path) -> None:
    # `watch` records each target's full-feed peers and prefixes in the store's targets table
    store.upsert_target("KP", {"full_feed_peers": N_FULL, "prefixes": PREFIXES}, T0)
    disp, path = file_dispatcher(store, tmp_path)
    disp.dispatch([TTK_ADDED], T0)
    [row] = lines_of(path)
    assert (
        "Seen by up to 31 of 38 full-feed peers at 2 collectors (route-views2, rrc00), for 3 of 4 target "
        "prefixes: 175.45.176.0/24, 175.45.178.0/24, 175.45.179.0/24." in row["text"]
    )


def test_build_dispatcher_from_a_watch_config(tmp_path: Path) -> None:
    """The shape of transitwatch.watch.config.WatchConfig: channels, per-target routes and min_peers."""
    config = SimpleNamespace(
        storage=str(tmp_path / "watch.duckdb"),
        public_url=BASE_URL,
        alerts={"archive": {"type": "jsonl", "path": str(tmp_path / "alerts.jsonl")}},
        targets=[
            SimpleNamespace(label="KP", alerts=["archive"], min_peers=5),
            SimpleNamespace(label="china-unicom", alerts=[], min_peers=3),
        ],
    )
    disp = build_dispatcher(config)
    disp.process([TTK_ADDED, {**TTK_ADDED, "target": "china-unicom"}], T0)
    [row] = lines_of(tmp_path / "alerts.jsonl")
    assert row["target"] == "KP" and row["url"] == f"{BASE_URL}/events/{event_id(TTK_ADDED)}"
    assert "when 5 full-feed peers had seen it" in row["text"]
    disp.close()  # closes the store it opened: the file can be opened again
    with Store(config.storage, read_only=True) as store:
        assert store.alert_sent(event_id(TTK_ADDED), "archive", OPEN)
