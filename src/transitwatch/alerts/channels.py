"""Alert channels: where alerts go. Each is a small class with one job, ``send(alert)``, that either
delivers the alert or raises :class:`ChannelError` saying which channel failed and why.

Channels are built from a plain dict, the channel's section of the config file
(``{"type": "webhook", "url": ...}``); :func:`make_channel` picks the class by ``type``. Each class
lists its keys in ``SETTINGS`` (name, default, help), which docs/alerts.md documents and a test
checks. Channels know nothing of rate limits, muting or retries over time: the dispatcher does that.

- ``jsonl``: one JSON object per line appended to a file, fsynced;
- ``webhook``: JSON POST, signed with HMAC-SHA256 when a secret is set, retried on 5xx/timeouts;
- ``slack``: a Slack-compatible incoming webhook (``{"text": ...}`` in mrkdwn);
- ``email``: plain-text mail over SMTP, STARTTLS or implicit TLS optional, login optional;
- ``syslog``: RFC 5424 or RFC 3164 datagrams over UDP or a unix socket.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import random
import smtplib
import socket
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, ClassVar

import httpx

from transitwatch import __version__
from transitwatch.alerts.messages import Alert, one_line, slack_text

logger = logging.getLogger("transitwatch.alerts")

SIGNATURE_HEADER = "X-Transitwatch-Signature"
TIMESTAMP_HEADER = "X-Transitwatch-Timestamp"
DELIVERY_HEADER = "X-Transitwatch-Delivery"
USER_AGENT = f"transitwatch/{__version__}"


class ChannelError(Exception):
    """A send failed. The message names the channel and the cause; the alert was not delivered."""


class ChannelConfigError(ValueError):
    """A channel's config section cannot be used; the message names the channel and the key."""


@dataclass(frozen=True)
class Setting:
    """One config key of a channel: its default (``REQUIRED`` when it has none) and what it does."""

    name: str
    default: Any
    help: str


REQUIRED = object()

#: keys every channel section may have; the dispatcher reads them, the channel ignores them
POLICY_SETTINGS = (
    Setting("rate_limit", 10, "most alerts per target per rate_window; the excess is summarised later"),
    Setting("rate_window", 3600.0, "seconds of the rate limit's sliding window"),
    Setting("mute", 900.0, "seconds an identical message (same target, phase, subject) stays muted"),
    Setting("types", None, "event types this channel gets (default: all)"),
)


def _options(name: str, config: Mapping[str, Any], settings: tuple[Setting, ...]) -> dict[str, Any]:
    known = {s.name for s in (*settings, *POLICY_SETTINGS)} | {"type"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ChannelConfigError(
            f"channel {name!r}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    out: dict[str, Any] = {}
    for s in settings:
        if s.name in config and config[s.name] is not None:
            out[s.name] = config[s.name]
        elif s.default is REQUIRED:
            raise ChannelConfigError(f"channel {name!r}: {s.name} is required ({s.help})")
        else:
            out[s.name] = s.default
    return out


def _secret(name: str, opts: dict[str, Any], key: str) -> str | None:
    """A secret given inline (``key``) or by the name of an environment variable (``key_env``)."""
    env = opts.get(f"{key}_env")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ChannelConfigError(f"channel {name!r}: {key}_env names {env}, which is not set")
        return value
    value = opts.get(key)
    return str(value) if value is not None else None


class Channel(ABC):
    """Delivers alerts somewhere. ``send`` returns when delivered and raises ChannelError otherwise."""

    type: ClassVar[str]
    SETTINGS: ClassVar[tuple[Setting, ...]]

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def send(self, alert: Alert) -> None: ...

    def close(self) -> None:  # noqa: B027 (most channels hold no connection)
        """Release connections; the default has none."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


# ---- JSON lines file ----------------------------------------------------------------------------


class JsonLinesChannel(Channel):
    """Appends each alert as one JSON object per line; fsynced, so a line written survives a crash."""

    type = "jsonl"
    SETTINGS = (
        Setting("path", REQUIRED, "file to append to; its folder must exist"),
        Setting("fsync", True, "fsync after each line (off: faster, but a crash can lose the last lines)"),
    )

    def __init__(self, name: str, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        super().__init__(name)
        self.path = os.fspath(path)
        self.fsync = fsync

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> JsonLinesChannel:
        o = _options(name, config, cls.SETTINGS)
        return cls(name, o["path"], fsync=bool(o["fsync"]))

    def send(self, alert: Alert) -> None:
        line = (json.dumps(alert.to_json(), sort_keys=True, ensure_ascii=False) + "\n").encode()
        try:
            # one write() on an O_APPEND descriptor: concurrent writers never interleave within a line
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ChannelError(f"channel {self.name!r}: cannot append to {self.path}: {exc}") from exc


# ---- HTTP webhooks ------------------------------------------------------------------------------


def signature(secret: str | bytes, body: bytes) -> str:
    """The ``X-Transitwatch-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    body: bytes,
    signature_header: str,
    timestamp_header: str,
    *,
    now: float | None = None,
    tolerance_s: float = 300.0,
) -> bool:
    """What a receiver does: the HMAC matches (constant-time compare), the body's ``sent_at`` is the
    timestamp header (the body is signed, so the timestamp is too) and it is recent (no replays)."""
    if not hmac.compare_digest(signature(secret, body), signature_header):
        return False
    try:
        sent_at = int(json.loads(body)["sent_at"])
        stamp = int(timestamp_header)
    except (ValueError, KeyError, TypeError):
        return False
    current = time.time() if now is None else now
    return sent_at == stamp and abs(current - stamp) <= tolerance_s


_HTTP_SETTINGS = (
    Setting("url", REQUIRED, "where to POST"),
    Setting("timeout", 10.0, "seconds for connecting and for the response"),
    Setting("retries", 3, "further attempts on a 5xx, 429, timeout or connection error"),
    Setting("backoff", 1.0, "seconds before the first retry; doubles each time, with jitter"),
    Setting("backoff_max", 30.0, "longest wait between attempts, seconds"),
    Setting("headers", None, "extra HTTP headers (a mapping), e.g. an Authorization header"),
)


class _HttpChannel(Channel):
    """POSTs JSON; retries with exponential backoff and jitter on 5xx, 429, timeouts and connection
    errors (a 429's Retry-After is honoured up to ``backoff_max``); other 4xx fail at once."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name)
        if not url.startswith(("http://", "https://")):
            raise ChannelConfigError(f"channel {name!r}: url must be http:// or https://, not {url!r}")
        self.url = url
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.backoff_max = float(backoff_max)
        self.headers = dict(headers or {})
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT})
        self.sleep = sleep
        self.jitter = jitter
        self.clock = clock

    @staticmethod
    def _http_options(
        name: str, config: Mapping[str, Any], extra: tuple[Setting, ...] = ()
    ) -> dict[str, Any]:
        o = _options(name, config, _HTTP_SETTINGS + extra)
        if o["headers"] is not None and not isinstance(o["headers"], Mapping):
            raise ChannelConfigError(f"channel {name!r}: headers must be a mapping of header names to values")
        return o

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def delay(self, attempt: int) -> float:
        """Seconds before retry ``attempt`` (1-based): exponential, capped, between half and all of it."""
        base = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
        return base / 2 + base / 2 * self.jitter()

    @abstractmethod
    def request(self, alert: Alert) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt (built per attempt: a signature carries its time)."""

    def send(self, alert: Alert) -> None:
        failures: list[str] = []
        for attempt in range(1, self.retries + 2):
            body, headers = self.request(alert)
            try:
                resp = self.client.post(
                    self.url,
                    content=body,
                    headers={"Content-Type": "application/json", **self.headers, **headers},
                )
            except httpx.TimeoutException as exc:
                failures.append(f"timed out ({type(exc).__name__})")
                wait = self.delay(attempt)
            except httpx.TransportError as exc:
                failures.append(f"cannot connect: {exc}")
                wait = self.delay(attempt)
            else:
                if resp.is_success:
                    return
                failures.append(f"HTTP {resp.status_code}: {resp.text[:200]}")
                if resp.status_code == 429:
                    wait = self._retry_after(resp, attempt)
                elif resp.status_code >= 500:
                    wait = self.delay(attempt)
                else:
                    raise ChannelError(
                        f"channel {self.name!r}: {self.url} rejected the alert: {failures[-1]}"
                    )
            if attempt <= self.retries:
                logger.info(
                    "channel %s: attempt %d of %d failed (%s); next in %.1f s",
                    self.name, attempt, self.retries + 1, failures[-1], wait,
                )  # fmt: skip
                self.sleep(wait)
        raise ChannelError(
            f"channel {self.name!r}: {self.url} failed after {len(failures)} attempts: {'; '.join(failures)}"
        )

    def _retry_after(self, resp: httpx.Response, attempt: int) -> float:
        try:
            return min(self.backoff_max, max(0.0, float(resp.headers.get("Retry-After", ""))))
        except ValueError:
            return self.delay(attempt)


class WebhookChannel(_HttpChannel):
    """The alert as JSON (``Alert.to_json()`` plus ``sent_at``), signed when a secret is set.

    Headers: ``X-Transitwatch-Timestamp`` (Unix seconds, equal to the body's ``sent_at``),
    ``X-Transitwatch-Delivery`` (``<event id>:<phase>``, the same on every retry, for receivers to
    drop duplicates) and, with a secret, ``X-Transitwatch-Signature: sha256=<hex HMAC of the body>``.
    """

    type = "webhook"
    SETTINGS = (
        *_HTTP_SETTINGS,
        Setting("secret", None, "HMAC-SHA256 key for the X-Transitwatch-Signature header"),
        Setting("secret_env", None, "name of an environment variable holding the secret (instead of secret)"),
    )

    def __init__(self, name: str, url: str, *, secret: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, url, **kwargs)
        self.secret = secret

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any], **kwargs: Any) -> WebhookChannel:
        o = cls._http_options(name, config, cls.SETTINGS[len(_HTTP_SETTINGS) :])
        secret = _secret(name, o, "secret")
        o.pop("secret_env")
        o.pop("secret")
        return cls(name, o.pop("url"), secret=secret, **o, **kwargs)

    def request(self, alert: Alert) -> tuple[bytes, dict[str, str]]:
        sent_at = int(self.clock())
        body = json.dumps({**alert.to_json(), "sent_at": sent_at}, sort_keys=True).encode()
        headers = {TIMESTAMP_HEADER: str(sent_at), DELIVERY_HEADER: alert.key}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        return body, headers


class SlackChannel(_HttpChannel):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): ``{"text": mrkdwn}``."""

    type = "slack"
    SETTINGS = _HTTP_SETTINGS

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any], **kwargs: Any) -> SlackChannel:
        o = cls._http_options(name, config)
        return cls(name, o.pop("url"), **o, **kwargs)

    def request(self, alert: Alert) -> tuple[bytes, dict[str, str]]:
        return json.dumps({"text": slack_text(alert)}).encode(), {}


# ---- email --------------------------------------------------------------------------------------


class EmailChannel(Channel):
    """A plain-text mail per alert over SMTP. With ``starttls`` the session is upgraded before
    anything else is said and a server that does not offer STARTTLS is an error (never a silent
    fallback to clear text); ``ssl`` is implicit TLS (port 465). A login needs one of them."""

    type = "email"
    SETTINGS = (
        Setting("host", REQUIRED, "SMTP server"),
        Setting("port", None, "default 25, or 465 with ssl"),
        Setting("from", REQUIRED, "sender address"),
        Setting("to", REQUIRED, "recipient address, or a list of them"),
        Setting("starttls", False, "upgrade to TLS with STARTTLS (port 587 or 25)"),
        Setting("ssl", False, "implicit TLS from the first byte (port 465)"),
        Setting("ca_file", None, "PEM file of CAs to trust instead of the system's (self-signed servers)"),
        Setting("username", None, "login name (needs starttls or ssl)"),
        Setting("password", None, "login password"),
        Setting("password_env", None, "name of an environment variable holding the password"),
        Setting("timeout", 30.0, "seconds for each SMTP exchange"),
        Setting("subject_prefix", "[transitwatch] ", "put before every subject"),
    )

    def __init__(
        self,
        name: str,
        host: str,
        sender: str,
        to: list[str],
        *,
        port: int | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
        ca_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        subject_prefix: str = "[transitwatch] ",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name)
        if starttls and use_ssl:
            raise ChannelConfigError(f"channel {name!r}: starttls and ssl exclude each other; choose one")
        if username and not (starttls or use_ssl):
            raise ChannelConfigError(
                f"channel {name!r}: a login needs starttls or ssl, else the password crosses in clear text"
            )
        if not to:
            raise ChannelConfigError(f"channel {name!r}: to needs at least one address")
        self.host = host
        self.port = port if port is not None else (465 if use_ssl else 25)
        self.sender = sender
        self.to = list(to)
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.ca_file = ca_file
        self.username = username
        self.password = password
        self.timeout = timeout
        self.subject_prefix = subject_prefix
        self.clock = clock

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> EmailChannel:
        o = _options(name, config, cls.SETTINGS)
        to = o["to"]
        return cls(
            name,
            str(o["host"]),
            str(o["from"]),
            [to] if isinstance(to, str) else [str(t) for t in to],
            port=int(o["port"]) if o["port"] is not None else None,
            starttls=bool(o["starttls"]),
            use_ssl=bool(o["ssl"]),
            ca_file=o["ca_file"],
            username=o["username"],
            password=_secret(name, o, "password"),
            timeout=float(o["timeout"]),
            subject_prefix=str(o["subject_prefix"]),
        )

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = self.subject_prefix + alert.subject
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(self.clock(), usegmt=True)
        msg["Message-ID"] = make_msgid("transitwatch")
        msg["X-Transitwatch-Event"] = alert.event_id
        msg["X-Transitwatch-Phase"] = alert.phase
        msg.set_content(alert.text + "\n")
        return msg

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def send(self, alert: Alert) -> None:
        msg = self.message(alert)
        try:
            smtp: smtplib.SMTP
            if self.use_ssl:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=self._tls())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(msg, self.sender, self.to)
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(
                f"channel {self.name!r}: SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}"
            ) from exc
        if refused:
            # accepted for some recipients only: reported, yet the alert was delivered
            logger.warning("channel %s: recipients refused: %s", self.name, ", ".join(sorted(refused)))


# ---- syslog -------------------------------------------------------------------------------------

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
    "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22,
    "local7": 23,
}  # fmt: skip
#: syslog severity per alert severity: crit, warning, notice
SYSLOG_SEVERITY = {"critical": 2, "warning": 4, "info": 5}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class SyslogChannel(Channel):
    """One datagram per alert: subject, sentences and link on one line (evidence stays on the event
    page), cut at ``max_bytes``. UDP confirms nothing: a send only fails when the datagram cannot
    leave; a unix socket fails when nobody listens."""

    type = "syslog"
    SETTINGS = (
        Setting(
            "address", "/dev/log", "HOST:PORT for UDP ([v6]:PORT for IPv6), or the path of a unix socket"
        ),
        Setting("format", "rfc5424", "rfc5424 or rfc3164"),
        Setting("facility", "daemon", "daemon, user, local0 ... local7, ..."),
        Setting("app_name", "transitwatch", "APP-NAME (RFC 5424) or TAG (RFC 3164)"),
        Setting("hostname", None, "HOSTNAME field (default: this machine's name)"),
        Setting("max_bytes", None, "longest datagram (default 2048 for rfc5424, 1024 for rfc3164)"),
    )

    def __init__(
        self,
        name: str,
        address: str = "/dev/log",
        *,
        format: str = "rfc5424",
        facility: str = "daemon",
        app_name: str = "transitwatch",
        hostname: str | None = None,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name)
        if format not in ("rfc5424", "rfc3164"):
            raise ChannelConfigError(f"channel {name!r}: format must be rfc5424 or rfc3164, not {format!r}")
        if facility not in FACILITIES:
            raise ChannelConfigError(
                f"channel {name!r}: unknown facility {facility!r} (one of {', '.join(FACILITIES)})"
            )
        self.address = address
        self.target = _syslog_target(name, address)
        self.format = format
        self.facility = FACILITIES[facility]
        self.app_name = app_name
        self.hostname = hostname or socket.gethostname() or "-"
        self.max_bytes = max_bytes or (2048 if format == "rfc5424" else 1024)
        self.clock = clock

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> SyslogChannel:
        o = _options(name, config, cls.SETTINGS)
        return cls(
            name,
            str(o["address"]),
            format=str(o["format"]),
            facility=str(o["facility"]),
            app_name=str(o["app_name"]),
            hostname=o["hostname"],
            max_bytes=int(o["max_bytes"]) if o["max_bytes"] is not None else None,
        )

    def datagram(self, alert: Alert) -> bytes:
        pri = self.facility * 8 + SYSLOG_SEVERITY.get(alert.severity, 5)
        now = datetime.fromtimestamp(self.clock(), UTC)
        text = one_line(alert)
        if self.format == "rfc5424":
            stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
            msgid = "".join(c for c in alert.type if 33 <= ord(c) <= 126)[:32] or "-"
            host, app = _field(self.hostname, 255), _field(self.app_name, 48)
            head = f"<{pri}>1 {stamp} {host} {app} {os.getpid()} {msgid} - "  # "-": no structured data
            # RFC 5424 6.4: a UTF-8 MSG starts with a BOM; plain ASCII is MSG-ANY and needs none
            body = text.encode() if text.isascii() else b"\xef\xbb\xbf" + text.encode()
        else:
            stamp = f"{_MONTHS[now.month - 1]} {now.day:2d} {now:%H:%M:%S}"
            head = f"<{pri}>{stamp} {_field(self.hostname, 255)} {_field(self.app_name, 32)}[{os.getpid()}]: "
            body = text.encode()
        packet = head.encode() + body
        if len(packet) > self.max_bytes:
            packet = packet[: self.max_bytes].decode("utf-8", "ignore").encode()  # never cut a character
        return packet

    def send(self, alert: Alert) -> None:
        packet = self.datagram(alert)
        family, addr = self.target
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.sendto(packet, addr)
        except OSError as exc:
            raise ChannelError(f"channel {self.name!r}: syslog to {self.address}: {exc}") from exc


def _field(value: str, limit: int) -> str:
    """A header field: printable ASCII without spaces, ``-`` when empty."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def _syslog_target(name: str, address: str) -> tuple[int, Any]:
    if address.startswith("/") or address.startswith("."):
        return socket.AF_UNIX, address
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ChannelConfigError(
            f"channel {name!r}: address must be HOST:PORT or a socket path, not {address!r}"
        )
    host = host.strip("[]")
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET  # a host name: resolved at each send by sendto
    return family, (host, int(port))


# ---- the registry -------------------------------------------------------------------------------

CHANNEL_TYPES: dict[str, Any] = {
    cls.type: cls for cls in (JsonLinesChannel, WebhookChannel, SlackChannel, EmailChannel, SyslogChannel)
}


def make_channel(name: str, config: Mapping[str, Any]) -> Channel:
    """A channel from its config section; ``type`` picks the class."""
    kind = config.get("type")
    cls = CHANNEL_TYPES.get(str(kind))
    if cls is None:
        raise ChannelConfigError(
            f"channel {name!r}: unknown type {kind!r} (one of {', '.join(sorted(CHANNEL_TYPES))})"
        )
    channel: Channel = cls.from_config(name, config)
    return channel
