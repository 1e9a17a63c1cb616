"""The dispatcher: decides which events become alerts on which channels, and delivers them.

Detectors never send anything; they hand every event they know to :meth:`Dispatcher.dispatch`
(again and again, as a live watch does at each flush), with the time ``now`` made explicit. The
dispatcher:

1. keeps events that warrant an alert: confirmed ones (types with a ``confirmed`` key wait for it);
   an event has an ``open`` phase and, for an outage's end or an anomaly's ``end``, a ``close`` one;
2. routes each to the channels of its target (``routes``; "*" for every other target) that take its
   type (the channel's ``types``);
3. skips every (event id, channel, phase) the store's ``alerts_sent`` table already has, so an alert
   is sent once, across restarts;
4. queues the rest in a bounded queue (``queue_size``). Drop policy: when the queue is full a new
   alert is refused (counted as ``dropped_queue_full``, logged); it is not marked, so the next
   ``dispatch`` with the same event offers it again. What is queued keeps its order;
5. delivers, per channel, in order: an alert identical (same target, phase and subject) to one sent
   less than ``mute`` seconds before is muted; beyond ``rate_limit`` alerts per ``rate_window``
   seconds per target the alert is suppressed. Muted and suppressed alerts are counted and sent
   later as one "N more alerts suppressed" message, once the target's window has room (and, for
   muted ones, the mute is over);
6. marks an alert in ``alerts_sent`` only once its channel accepted it (or it was muted or
   suppressed, which is final). A channel that fails is logged and left alone until its backoff
   (``retry_initial_s``, doubling to ``retry_max_s``) has passed; the alert stays queued and is tried
   again then, up to ``max_attempts``. Channels are served by separate threads, so one that fails
   or hangs delays no other.

Rate-limit, mute and pending-summary state is saved in the store's state table (target
``(alerts)``, one key per channel), so a restart neither repeats a muted message nor forgets a
summary owed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from transitwatch.alerts.channels import POLICY_SETTINGS, Channel, ChannelConfigError, make_channel
from transitwatch.alerts.messages import (
    SUMMARY,
    Alert,
    MessageContext,
    build_alert,
    phases,
    summary_alert,
)
from transitwatch.store import Store, event_id
from transitwatch.timeutil import epoch

logger = logging.getLogger("transitwatch.alerts")

#: the store's state table holds the dispatcher's per-channel state under this pseudo-target
STATE_TARGET = "(alerts)"
SUMMARY_EXAMPLES = 10  # suppressed alerts listed by name in a summary

#: counters kept per channel (see :meth:`Dispatcher.stats`)
COUNTERS = (
    "queued",
    "sent",
    "muted",
    "rate_limited",
    "summaries",
    "dropped_queue_full",
    "failed_attempts",
    "given_up",
)


@dataclass(frozen=True)
class ChannelPolicy:
    """How often a channel may speak: the ``rate_limit``, ``rate_window``, ``mute`` and ``types`` keys."""

    rate_limit: int = 10
    rate_window_s: float = 3600.0
    mute_s: float = 900.0
    types: frozenset[str] | None = None  # None: every type

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> ChannelPolicy:
        defaults = {s.name: s.default for s in POLICY_SETTINGS}
        o = {k: config.get(k, defaults[k]) for k in defaults}
        if int(o["rate_limit"]) < 1 or float(o["rate_window"]) <= 0 or float(o["mute"]) < 0:
            raise ChannelConfigError(
                f"channel {name!r}: rate_limit must be >= 1, rate_window > 0 and mute >= 0 "
                f"(got {o['rate_limit']}, {o['rate_window']}, {o['mute']})"
            )
        types = o["types"]
        return cls(
            int(o["rate_limit"]),
            float(o["rate_window"]),
            float(o["mute"]),
            frozenset([types] if isinstance(types, str) else types) if types else None,
        )


@dataclass(frozen=True)
class DispatcherSettings:
    queue_size: int = 10_000  # deliveries waiting, all channels together
    retry_initial_s: float = 30.0  # a failed channel's first pause
    retry_max_s: float = 1800.0  # its longest pause
    max_attempts: int = 100  # per alert and channel; then it is given up (and offered again if resubmitted)
    parallel: bool = True  # one thread per channel during delivery


@dataclass
class Delivery:
    """One alert waiting for one channel."""

    alert: Alert
    channel: str
    attempts: int = 0


@dataclass
class DeliveryReport:
    """What one :meth:`Dispatcher.deliver` did, all channels together."""

    sent: int = 0
    muted: int = 0
    rate_limited: int = 0
    summaries: int = 0
    failed: int = 0  # failed attempts (the alert stays queued)
    given_up: int = 0
    pending: int = 0  # still queued afterwards
    errors: list[str] = field(default_factory=list)


@dataclass
class _Health:
    failures: int = 0  # consecutive
    retry_at: float = float("-inf")


class Dispatcher:
    """Events in, alerts out: once per (event, channel, phase), within each channel's limits.

    Call it from one thread (the watcher's); it runs the channels in threads of its own.
    """

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        routes: Mapping[str, Sequence[str]] | None = None,
        policies: Mapping[str, ChannelPolicy] | None = None,
        context: MessageContext | None = None,
        min_peers: Mapping[str, int] | None = None,
        settings: DispatcherSettings | None = None,
    ) -> None:
        self.store = store
        self.min_peers = dict(min_peers or {})  # per target, when it differs from the context's
        self.channels = dict(channels)
        self.routes = {t: list(chs) for t, chs in routes.items()} if routes is not None else None
        for target, names in (self.routes or {}).items():
            missing = [n for n in names if n not in self.channels]
            if missing:
                raise ChannelConfigError(
                    f"target {target!r} routes to undefined channel(s) {', '.join(missing)}"
                )
        self.policies = {n: (policies or {}).get(n, ChannelPolicy()) for n in self.channels}
        self.context = context or MessageContext()
        self.settings = settings or DispatcherSettings()
        self._queue: dict[tuple[str, str, str], Delivery] = {}  # insertion order is delivery order
        self._handled: set[tuple[str, str, str]] = set()  # known to be in alerts_sent
        self._unconfirmed: set[str] = set()
        self._health = {n: _Health() for n in self.channels}
        self._state: dict[str, dict[str, Any]] = {}  # channel -> target -> rate/mute/summary state
        self._counters = {n: Counter({c: 0 for c in COUNTERS}) for n in self.channels}
        self._pool: ThreadPoolExecutor | None = None
        self._owned_store: Store | None = None  # opened by build_dispatcher, closed with the dispatcher

    @classmethod
    def from_config(
        cls,
        store: Store,
        channels: Mapping[str, Mapping[str, Any]],
        *,
        routes: Mapping[str, Sequence[str]] | None = None,
        base_url: str | None = None,
        min_peers: int = 3,
        settings: DispatcherSettings | None = None,
    ) -> Dispatcher:
        """From the config file's channel sections (name -> {type, ...}) and target -> channel names."""
        built = {name: make_channel(name, cfg) for name, cfg in channels.items()}
        policies = {name: ChannelPolicy.from_config(name, cfg) for name, cfg in channels.items()}
        return cls(
            store,
            built,
            routes=routes,
            policies=policies,
            context=MessageContext(base_url=base_url, min_peers=min_peers),
            settings=settings,
        )

    # ---- intake -----------------------------------------------------------------------------
    def channels_for(self, target: str, kind: str) -> list[str]:
        if self.routes is None:
            names = list(self.channels)
        else:
            names = self.routes.get(target, self.routes.get("*", []))
        out = []
        for n in names:
            types = self.policies[n].types
            if types is None or kind in types:
                out.append(n)
        return out

    def submit(
        self, events: Iterable[Mapping[str, Any]], now: float, *, full_feed_peers: int | None = None
    ) -> int:
        """Queue the alerts ``events`` call for that are not sent or queued yet; returns how many."""
        contexts: dict[str, MessageContext] = {}
        queued = 0
        with self.store.session():  # one connection for every lookup (not one per alert)
            queued = self._submit(events, now, full_feed_peers, contexts)
        return queued

    def _submit(
        self,
        events: Iterable[Mapping[str, Any]],
        now: float,
        full_feed_peers: int | None,
        contexts: dict[str, MessageContext],
    ) -> int:
        queued = 0
        for ev in events:
            eid = event_id(dict(ev))
            wanted = phases(ev)
            if not wanted:
                self._unconfirmed.add(eid)
                continue
            self._unconfirmed.discard(eid)
            target = str(ev.get("target", ""))
            for phase in wanted:
                alert: Alert | None = None
                for ch in self.channels_for(target, str(ev["type"])):
                    key = (eid, ch, phase)
                    if key in self._handled or key in self._queue:
                        continue
                    if self.store.alert_sent(eid, ch, phase):
                        self._handled.add(key)
                        continue
                    if len(self._queue) >= self.settings.queue_size:
                        self._counters[ch]["dropped_queue_full"] += 1
                        logger.warning(
                            "alert queue full (%d): %s %s for %s refused; offered again at the next dispatch",
                            self.settings.queue_size, ev["type"], eid, ch,
                        )  # fmt: skip
                        continue
                    if target not in contexts:
                        contexts[target] = self._context(target, full_feed_peers)
                    alert = alert or build_alert(ev, phase, contexts[target])
                    self._queue[key] = Delivery(alert, ch)
                    self._counters[ch]["queued"] += 1
                    queued += 1
        return queued

    def _context(self, target: str, full_feed_peers: int | None) -> MessageContext:
        """The message context for a target: the counts given, else what the store's targets table
        says (``watch`` records each target's full-feed peers and prefixes there), else the defaults."""
        ctx = self.context
        if target in self.min_peers:
            ctx = replace(ctx, min_peers=self.min_peers[target])
        info = self.store.target(target) or {}
        if full_feed_peers is None and ctx.full_feed_peers is None:
            full_feed_peers = info.get("full_feed_peers")
        if full_feed_peers is not None:
            ctx = replace(ctx, full_feed_peers=int(full_feed_peers))
        if ctx.target_prefixes is None and isinstance(info.get("prefixes"), list):
            ctx = replace(ctx, target_prefixes=len(info["prefixes"]))
        return ctx

    # ---- delivery ---------------------------------------------------------------------------
    def deliver(self, now: float) -> DeliveryReport:
        """Send what is due at ``now``: queued alerts and owed summaries, each channel on its own."""
        work: dict[str, list[Delivery]] = {}
        for (_eid, ch, _phase), d in self._queue.items():
            work.setdefault(ch, []).append(d)
        busy = [
            ch
            for ch in self.channels
            if self._health[ch].retry_at <= now and (work.get(ch) or self._owes_summary(ch, now))
        ]
        if self.settings.parallel and len(busy) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=len(self.channels), thread_name_prefix="alerts")
            results = list(self._pool.map(lambda ch: self._serve(ch, work.get(ch, []), now), busy))
        else:
            results = [self._serve(ch, work.get(ch, []), now) for ch in busy]
        report = DeliveryReport()
        for r in results:
            for name in ("sent", "muted", "rate_limited", "summaries", "failed", "given_up"):
                setattr(report, name, getattr(report, name) + getattr(r, name))
            report.errors += r.errors
        report.pending = len(self._queue)
        return report

    def dispatch(
        self, events: Iterable[Mapping[str, Any]], now: float, *, full_feed_peers: int | None = None
    ) -> DeliveryReport:
        """:meth:`submit` then :meth:`deliver`; fits the watcher's ``on_events(events, now)``."""
        self.submit(events, now, full_feed_peers=full_feed_peers)
        return self.deliver(now)

    def process(self, events: Iterable[Mapping[str, Any]], now: float) -> None:
        """The watcher's ``on_events`` callback: :meth:`dispatch`, the report logged."""
        report = self.dispatch(events, now)
        if report.sent or report.failed or report.muted or report.rate_limited:
            r = report
            logger.info(
                "alerts: %d sent, %d muted, %d rate-limited, %d summaries, %d failed attempts, %d pending",
                r.sent, r.muted, r.rate_limited, r.summaries, r.failed, r.pending,
            )  # fmt: skip

    def _serve(self, ch: str, items: list[Delivery], now: float) -> DeliveryReport:
        """One channel's turn: in queue order, stopping at its first failure."""
        report = DeliveryReport()
        policy = self.policies[ch]
        state = self._channel_state(ch)
        changed = False
        try:
            for d in items:
                a = d.alert
                key = (a.event_id, ch, a.phase)
                tstate = state.setdefault(a.target, {"sent": [], "mute": {}})
                self._prune(tstate, policy, now)
                if not self._send_summary(ch, a.target, tstate, now, report):
                    return report
                changed = True
                reason = None
                last = tstate["mute"].get(a.dedup_key)
                if last is not None and now - last < policy.mute_s:
                    reason = "duplicate"
                elif len(tstate["sent"]) >= policy.rate_limit:
                    reason = "rate"
                if reason is not None:
                    # a summary of muted duplicates waits until the mute is over, else it would be noise
                    due = last + policy.mute_s if reason == "duplicate" and last is not None else now
                    self._suppress(tstate, a, reason, due)
                    self.store.mark_alert_sent(a.event_id, ch, a.phase, now)
                    self._done(key)
                    kind = "muted" if reason == "duplicate" else "rate_limited"
                    self._counters[ch][kind] += 1
                    setattr(report, kind, getattr(report, kind) + 1)
                    continue
                if not self._send(ch, a, report, now):
                    self._failed(d, report)
                    return report
                self.store.mark_alert_sent(a.event_id, ch, a.phase, now)
                self._done(key)
                tstate["sent"].append(now)
                tstate["mute"][a.dedup_key] = now
                self._counters[ch]["sent"] += 1
                report.sent += 1
            # summaries now due, for targets with or without alerts queued
            for target, tstate in list(state.items()):
                self._prune(tstate, policy, now)
                changed = True
                if not self._send_summary(ch, target, tstate, now, report):
                    return report
                if not (tstate["sent"] or tstate["mute"] or tstate.get("suppressed")):
                    del state[target]  # nothing left to remember about it
            return report
        finally:
            if changed:
                self.store.set_state(STATE_TARGET, ch, state, now)

    def _send(self, ch: str, alert: Alert, report: DeliveryReport, now: float) -> bool:
        try:
            self.channels[ch].send(alert)
        except Exception as exc:  # any failure of a channel is that channel's, never the dispatcher's
            health = self._health[ch]
            health.failures += 1
            pause = min(self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** (health.failures - 1))
            health.retry_at = now + pause
            msg = f"channel {ch}: {alert.subject!r} not sent: {exc}; next try in {pause:g} s"
            logger.warning("%s", msg)
            report.errors.append(msg)
            self._counters[ch]["failed_attempts"] += 1
            report.failed += 1
            return False
        self._health[ch] = _Health()
        return True

    def _failed(self, d: Delivery, report: DeliveryReport) -> None:
        d.attempts += 1
        if d.attempts >= self.settings.max_attempts:
            logger.error(
                "channel %s: giving up on %r after %d attempts", d.channel, d.alert.subject, d.attempts
            )
            self._queue.pop((d.alert.event_id, d.channel, d.alert.phase), None)
            self._counters[d.channel]["given_up"] += 1
            report.given_up += 1

    def _done(self, key: tuple[str, str, str]) -> None:
        self._queue.pop(key, None)
        self._handled.add(key)

    # ---- rate limit, mute, summaries --------------------------------------------------------
    def _channel_state(self, ch: str) -> dict[str, Any]:
        if ch not in self._state:
            self._state[ch] = self.store.state(STATE_TARGET, ch) or {}
        return self._state[ch]

    @staticmethod
    def _prune(tstate: dict[str, Any], policy: ChannelPolicy, now: float) -> None:
        tstate["sent"] = [t for t in tstate["sent"] if now - t < policy.rate_window_s]
        tstate["mute"] = {k: t for k, t in tstate["mute"].items() if now - t < policy.mute_s}

    @staticmethod
    def _suppress(tstate: dict[str, Any], alert: Alert, reason: str, due: float) -> None:
        t = epoch(alert.time)
        s = tstate.setdefault("suppressed", {})
        if not s:
            s.update(count=0, rate=0, duplicate=0, first=t, last=t, types={}, examples=[], due=due)
        s["due"] = max(s["due"], due)
        s["count"] += 1
        s[reason] += 1
        s["first"], s["last"] = min(s["first"], t), max(s["last"], t)
        s["types"][alert.type] = s["types"].get(alert.type, 0) + 1
        if len(s["examples"]) < SUMMARY_EXAMPLES:
            s["examples"].append([alert.time, alert.subject])

    def _owes_summary(self, ch: str, now: float | None = None) -> bool:
        """A summary is owed (and, given ``now``, due: its mute is over; the rate window is checked later)."""
        return any(
            t.get("suppressed") and (now is None or now >= t["suppressed"]["due"])
            for t in self._channel_state(ch).values()
        )

    def _send_summary(
        self, ch: str, target: str, tstate: dict[str, Any], now: float, report: DeliveryReport
    ) -> bool:
        """Send the target's owed summary if its window has room; False only when sending failed."""
        policy = self.policies[ch]
        suppressed = tstate.get("suppressed")
        if not suppressed or now < suppressed["due"] or len(tstate["sent"]) >= policy.rate_limit:
            return True
        alert = summary_alert(target, ch, suppressed, policy.rate_limit, policy.rate_window_s, policy.mute_s)
        if not self.store.alert_sent(alert.event_id, ch, SUMMARY):  # sent before a crash lost the state
            if not self._send(ch, alert, report, now):
                return False
            self.store.mark_alert_sent(alert.event_id, ch, SUMMARY, now)
            tstate["sent"].append(now)
            self._counters[ch]["summaries"] += 1
            report.summaries += 1
        del tstate["suppressed"]
        return True

    # ---- introspection ----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Queue length, events waiting for confirmation, and per-channel counters (since start)."""
        return {
            "queue": len(self._queue),
            "queue_size": self.settings.queue_size,
            "unconfirmed": len(self._unconfirmed),
            "channels": {
                ch: {
                    **dict(self._counters[ch]),
                    "pending": sum(1 for k in self._queue if k[1] == ch),
                    "retry_at": self._health[ch].retry_at if self._health[ch].failures else None,
                    "owed_summary": self._owes_summary(ch),
                }
                for ch in self.channels
            },
        }

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for channel in self.channels.values():
            channel.close()
        if self._owned_store is not None:
            self._owned_store.close()
            self._owned_store = None

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_dispatcher(
    config: Any, store: Store | None = None, *, settings: DispatcherSettings | None = None
) -> Dispatcher:
    """The dispatcher for a watch config (:class:`transitwatch.watch.config.WatchConfig`): its
    ``alerts`` channel sections, each target's ``alerts`` list as its routes (keyed by the target's
    label, the events' ``target``), its ``min_peers``, and ``public_url`` for the links. Without a
    ``store`` it opens the one at ``storage`` and closes it in :meth:`Dispatcher.close`."""
    targets = list(config.targets)
    routes = {t.label: list(t.alerts) for t in targets}
    dispatcher = Dispatcher.from_config(
        store if store is not None else Store(config.storage),
        config.alerts,
        routes=routes,
        base_url=config.public_url,
        settings=settings,
    )
    dispatcher.min_peers = {t.label: int(t.min_peers) for t in targets}
    if store is None:
        dispatcher._owned_store = dispatcher.store
    return dispatcher
