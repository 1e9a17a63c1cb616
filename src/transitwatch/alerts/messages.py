"""Alert messages: what changed and when, seen by how many peers at which collectors, with a link.

An :class:`Alert` is built once per (event, phase) from the event dict the detectors produce. Its
text is exact: every count carries its denominator ("31 of 38 full-feed peers"), ASes are named
with their country, and anomalies list their evidence (peer, collector, AS path). Channels render
the same alert as plain text (email, file), Slack mrkdwn or one syslog line.

The full-feed peer count is not part of the events, so it comes from the caller (the event's own
``full_feed_peers`` key wins when present); without it the text says the total is unknown rather
than guessing. Likewise the confirmation threshold (``min_peers``) and the number of the target's
prefixes (``target_prefixes``, the denominator of prefix counts).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from transitwatch.report.text import as_label, format_duration
from transitwatch.store import event_id
from transitwatch.timeutil import epoch, iso

#: phase of an event that starts something (upstream change, outage start, anomaly seen)
OPEN = "open"
#: phase of the end of something (outage_end, an anomaly's ``end``)
CLOSE = "close"
#: phase of the "N more alerts suppressed" message
SUMMARY = "summary"

SEVERITIES = ("info", "warning", "critical")
ANOMALY_TYPES = frozenset({"origin_change", "moas", "more_specific", "unexpected_space"})
EVIDENCE_SHOWN = 10  # evidence lines in a message; the event page has the rest


@dataclass(frozen=True)
class MessageContext:
    """What the message text needs beyond the event itself."""

    base_url: str | None = None  # `transitwatch serve`'s public URL, for links to the event page
    min_peers: int = 3  # the confirmation threshold the detectors ran with
    full_feed_peers: int | None = None  # the denominator of every peer count
    target_prefixes: int | None = None  # how many prefixes the target has: the prefix counts' denominator


@dataclass(frozen=True, eq=False)
class Alert:
    """One message about one phase of one event (or a summary of suppressed alerts)."""

    event_id: str
    phase: str  # OPEN, CLOSE or SUMMARY
    target: str
    type: str  # the event type, or "alerts_suppressed" for a summary
    severity: str  # info, warning or critical
    time: str  # when the change happened (ISO 8601 UTC); for a summary, the last suppressed alert
    subject: str  # short, no times: identical subjects are muted as duplicates
    lines: tuple[str, ...]  # the body, one sentence per line
    evidence: tuple[str, ...] = ()  # "time collector peer AS path" lines (anomalies)
    evidence_title: str = ""
    url: str | None = None
    event: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique per event and phase; webhooks get it as an idempotency key."""
        return f"{self.event_id}:{self.phase}"

    @property
    def dedup_key(self) -> str:
        """Identical messages (same target, phase and subject) share this key."""
        return hashlib.sha1(f"{self.target}|{self.phase}|{self.subject}".encode()).hexdigest()[:16]

    @property
    def text(self) -> str:
        """The plain-text body: sentences, evidence, link."""
        out = list(self.lines)
        if self.evidence:
            out += ["", self.evidence_title, *(f"  {e}" for e in self.evidence)]
        if self.url:
            out += ["", f"Event: {self.url}"]
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.key,
            "event_id": self.event_id,
            "phase": self.phase,
            "target": self.target,
            "type": self.type,
            "severity": self.severity,
            "time": self.time,
            "subject": self.subject,
            "text": self.text,
            "url": self.url,
            "event": dict(self.event),
        }


# ---- helpers ------------------------------------------------------------------------------------


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _peers(n: int, n_full: int | None) -> str:
    if n_full is None:
        return f"{_plural(n, 'full-feed peer')} (total of full-feed peers not known)"
    return f"{n} of {_plural(n_full, 'full-feed peer')}"


def _collectors(names: Sequence[str]) -> str:
    return _plural(len(names), "collector") + (f" ({', '.join(names)})" if names else "")


def _prefixes(prefixes: Sequence[str], total: int | None = None, shown: int = 8) -> str:
    listed = ", ".join(prefixes[:shown])
    more = f" and {len(prefixes) - shown} more" if len(prefixes) > shown else ""
    if total is not None and total >= len(prefixes):
        count = f"{len(prefixes)} of {total} target prefixes"
    else:
        count = _plural(len(prefixes), "prefix", "prefixes")
    return count + (f": {listed}{more}" if prefixes else "")


def _lasted(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    return f" (lasted {format_duration(epoch(end) - epoch(start))})"


def event_url(base_url: str | None, eid: str) -> str | None:
    return f"{base_url.rstrip('/')}/events/{eid}" if base_url else None


# ---- which phases an event has ----------------------------------------------------------------


def phases(ev: Mapping[str, Any]) -> list[str]:
    """The phases of ``ev`` that warrant an alert now; [] while it waits for confirmation.

    Types with a ``confirmed`` key alert only once it is set. ``outage_end`` is the close of an
    outage (its own event); an anomaly closes when its ``end`` is set.
    """
    if "confirmed" in ev and not ev["confirmed"]:
        return []
    if ev.get("type") == "outage_end":
        return [CLOSE]
    if ev.get("type") in ANOMALY_TYPES and ev.get("end"):
        return [OPEN, CLOSE]
    return [OPEN]


# ---- building -----------------------------------------------------------------------------------


def build_alert(ev: Mapping[str, Any], phase: str, ctx: MessageContext) -> Alert:
    """The alert for one phase of one event, with the text its type calls for."""
    n_full = ev.get("full_feed_peers", ctx.full_feed_peers)
    if "min_peers" in ev:
        ctx = replace(ctx, min_peers=int(ev["min_peers"]))
    if "target_prefixes" in ev:
        ctx = replace(ctx, target_prefixes=int(ev["target_prefixes"]))
    eid = event_id(dict(ev))
    kind = str(ev["type"])
    target = str(ev.get("target", ""))
    builder = _BUILDERS.get(kind, _generic)
    severity, subject, lines, evidence = builder(ev, phase, n_full, ctx)
    title = ""
    if evidence:
        total = ev.get("peers")
        if isinstance(total, int) and total > len(evidence):
            title = f"Evidence (the first {len(evidence)} of the {total} peers that saw it):"
        else:
            title = f"Evidence (the {_plural(len(evidence), 'peer')} that saw it):"
    when = ev.get("end") if phase == CLOSE and ev.get("end") else ev["time"]
    return Alert(
        event_id=eid,
        phase=phase,
        target=target,
        type=kind,
        severity=severity,
        time=str(when),
        subject=f"{target}: {subject}" if target else subject,
        lines=tuple(lines),
        evidence=tuple(evidence),
        evidence_title=title,
        url=event_url(ctx.base_url, eid),
        event=copy.deepcopy(dict(ev)),  # the caller may reuse its dicts; a queued alert must not change
    )


_Built = tuple[str, str, list[str], list[str]]  # severity, subject, lines, evidence


def _upstream(ev: Mapping[str, Any], phase: str, n_full: int | None, ctx: MessageContext) -> _Built:
    who = as_label(ev["upstream"], ev.get("name"), ev.get("country"))
    target = ev.get("target", "the target")
    colls = list(ev.get("collectors") or [])
    prefixes = list(ev.get("prefixes") or [])
    if ev["type"] == "upstream_added":
        lines = [
            f"{who} started carrying routes to {target} at {ev['time']}.",
            f"Seen by up to {_peers(ev['peers'], n_full)} at {_collectors(colls)}, "
            f"for {_prefixes(prefixes, ctx.target_prefixes)}.",
        ]
        confirm = f"Confirmed at {ev['confirmed']}, when {ctx.min_peers} full-feed peers had seen it"
        fp = ev.get("first_peer")
        if fp:
            confirm += f"; first seen by peer {fp['address']} (AS{fp['asn']}) at {fp['collector']}"
        lines.append(confirm + ".")
        return "info", f"new upstream {who}", lines, []
    since = ev.get("since")
    lines = [
        f"{who} no longer carries any route to {target} since {ev['time']}"
        + (f"; the decline began at {ev['decline_start']}" if ev.get("decline_start") else "")
        + ".",
        f"It had routes from {_peers(ev['peers'], n_full)} at {_collectors(colls)}, "
        f"for {_prefixes(prefixes, ctx.target_prefixes)}"
        + (
            f"; it had carried them since {since} ({format_duration(ev['duration_s'])})"
            if since and ev.get("duration_s") is not None
            else "; it carried them since before the watch began"
        )
        + ".",
        f"Loss confirmed at {ev['confirmed']}, when {ctx.min_peers} full-feed peers had lost it.",
    ]
    return "warning", f"lost upstream {who}", lines, []


def _outage(ev: Mapping[str, Any], phase: str, n_full: int | None, ctx: MessageContext) -> _Built:
    target = ev.get("target", "the target")
    prefixes = list(ev.get("prefixes") or [])
    severity = str(ev.get("severity", "partial"))
    if ev["type"] == "outage_end":
        dur = format_duration(ev["duration_s"])
        lines = [
            f"{target} restored at {ev['time']} after {dur}: the {severity} outage began at {ev['start']}.",
            f"Affected: {_prefixes(prefixes, ctx.target_prefixes)}; "
            f"{_peers(ev['peers'], n_full)} lost a route meanwhile.",
        ]
        return "info", f"restored after {dur} ({severity} outage)", lines, []
    share = ev.get("visible_share")
    pct = "" if share is None else f" ({100 * share:.0f}%)"
    lines = [
        f"{severity.capitalize()} outage of {target} since {ev['time']}: at worst {ev['lowest']:g} "
        f"of the usual {ev['baseline']:g} {ev.get('unit', '')} visible{pct}.",
        f"Not visible: {_prefixes(prefixes, ctx.target_prefixes)}; {_peers(ev['peers'], n_full)} "
        f"at {_collectors(list(ev.get('collectors') or []))} lost a route.",
    ]
    if ev.get("end"):
        lines.append(f"It ended at {ev['end']}{_lasted(ev['time'], ev['end'])}.")
    return ("critical" if severity == "total" else "warning"), f"{severity} outage", lines, []


def _anomaly(ev: Mapping[str, Any], phase: str, n_full: int | None, ctx: MessageContext) -> _Built:
    kind = ev["type"]
    prefix = ev["prefix"]
    who = (
        as_label(ev["suspect_origin"], ev.get("suspect_name"), ev.get("suspect_country"))
        if "suspect_origin" in ev
        else ""
    )
    if kind == "origin_change":
        expected = ", ".join(f"AS{a}" for a in ev.get("expected", []))
        what = f"possible hijack of {prefix} by {who}"
        first = f"{prefix} is originated by {who} instead of {expected or 'the expected origin'}."
        severity = "critical"
    elif kind == "moas":
        origins = ", ".join(f"AS{a}" for a in ev.get("origins", []))
        what = f"{prefix} originated by several ASes ({origins})"
        first = f"{prefix} is originated by several ASes at once: {origins}."
        severity = "warning"
    elif kind == "more_specific":
        what = f"new more-specific {prefix} from {who}"
        first = f"{who} announces {prefix}, a more-specific of {ev.get('covering')}."
        severity = "warning"
    else:  # unexpected_space
        what = f"{who} originates {prefix} outside its delegations"
        first = f"{who} originates {prefix}, outside the address space delegated to the target."
        severity = "warning"
    rule = (
        f"two origins were each seen by {ctx.min_peers} full-feed peers"
        if kind == "moas"
        else f"{ctx.min_peers} full-feed peers had seen it"
    )
    seen = (
        f"Seen by {_peers(ev['peers'], n_full)} at {_collectors(list(ev.get('collectors') or []))}; "
        f"first at {ev['time']}, confirmed at {ev['confirmed']} when {rule}."
    )
    shown = list(ev.get("evidence") or [])[:EVIDENCE_SHOWN]
    width = max((len(str(e["collector"])) for e in shown), default=0)
    evidence = [
        f"{e['time']}  {str(e['collector']).ljust(width)}  peer {e['peer_address']} AS{e['peer_asn']}  "
        f"path {e['as_path']}"
        for e in shown
    ]
    if phase == CLOSE:
        lines = [
            f"Over at {ev['end']}{_lasted(ev['time'], ev['end'])}: "
            "no full-feed peer holds such a route any more.",
            f"It was: {first}",
            seen,
        ]
        return "info", f"over: {what}", lines, evidence
    lines = [first, seen]
    lines.append(f"It ended at {ev['end']}." if ev.get("end") else "It was still there when this was sent.")
    return severity, what, lines, evidence


def _share_shift(ev: Mapping[str, Any], phase: str, n_full: int | None, ctx: MessageContext) -> _Built:
    who = as_label(ev["upstream"], ev.get("name"), ev.get("country"))
    before, after = float(ev["share_before"]), float(ev["share_after"])
    lines = [
        f"{who}'s share of the routes to {ev.get('target', 'the target')} went from {100 * before:.1f}% "
        f"({ev['routes_before']} of {ev['routes_total_before']} routes) at {ev['since']} "
        f"to {100 * after:.1f}% ({ev['routes_after']} of {ev['routes_total_after']} routes) at {ev['time']}."
    ]
    direction = "up" if after > before else "down"
    return "info", f"{who} share {direction} to {100 * after:.0f}%", lines, []


def _data_gap(ev: Mapping[str, Any], phase: str, n_full: int | None, ctx: MessageContext) -> _Built:
    lines = [
        f"No data from {ev['time']} to {ev.get('end') or 'now'}"
        + (f" ({format_duration(ev['duration_s'])})" if ev.get("duration_s") is not None else "")
        + f": {ev.get('reason') or 'reason not given'}. Changes in that interval may be missing."
    ]
    return "warning", "data gap", lines, []


def _generic(ev: Mapping[str, Any], phase: str, n_full: int | None, ctx: MessageContext) -> _Built:
    details = ", ".join(f"{k}={v}" for k, v in sorted(ev.items()) if k not in ("type", "time", "target"))
    return "info", str(ev["type"]), [f"{ev['type']} at {ev['time']}: {details}."], []


_BUILDERS = {
    "upstream_added": _upstream,
    "upstream_lost": _upstream,
    "outage_start": _outage,
    "outage_end": _outage,
    "origin_change": _anomaly,
    "moas": _anomaly,
    "more_specific": _anomaly,
    "unexpected_space": _anomaly,
    "share_shift": _share_shift,
    "data_gap": _data_gap,
}


def summary_alert(
    target: str,
    channel: str,
    suppressed: Mapping[str, Any],
    rate_limit: int,
    rate_window_s: float,
    mute_s: float,
) -> Alert:
    """The "N more alerts suppressed" message: what a channel did not send for a target, and why."""
    count = int(suppressed["count"])
    first, last = iso(suppressed["first"]), iso(suppressed["last"])
    reasons = []
    if suppressed.get("rate"):
        reasons.append(
            f"{suppressed['rate']} over the rate limit ({rate_limit} per {format_duration(rate_window_s)})"
        )
    if suppressed.get("duplicate"):
        reasons.append(
            f"{suppressed['duplicate']} identical to one sent less than {format_duration(mute_s)} before"
        )
    types = ", ".join(f"{t} {n}" for t, n in sorted(suppressed.get("types", {}).items()))
    lines = [
        f"{_plural(count, 'alert')} about {target}, on changes from {first} to {last}, "
        f"{'was' if count == 1 else 'were'} not sent on this channel: {'; '.join(reasons)}.",
        f"By type: {types}.",
    ]
    examples = list(suppressed.get("examples", []))
    evidence = [f"{t}  {s}" for t, s in examples]
    if count > len(examples):
        evidence.append(f"... and {count - len(examples)} more")
    key = f"{target}|{channel}|{suppressed['first']}"
    return Alert(
        event_id="suppressed-" + hashlib.sha1(key.encode()).hexdigest()[:16],
        phase=SUMMARY,
        target=target,
        type="alerts_suppressed",
        severity="info",
        time=str(last),
        subject=f"{target}: {count} more alert{'s' if count != 1 else ''} suppressed",
        lines=tuple(lines),
        evidence=tuple(evidence),
        evidence_title="Not sent:" if evidence else "",
        event={},
    )


# ---- renderings -------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    # the three characters Slack's mrkdwn reserves for links and mentions
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(alert: Alert) -> str:
    """The alert in Slack mrkdwn: bold subject, the sentences, evidence as code, a link."""
    out = [f"*{_slack_escape(alert.subject)}*", *(_slack_escape(line) for line in alert.lines)]
    if alert.evidence:
        out.append(_slack_escape(alert.evidence_title))
        out.append("```" + "\n".join(_slack_escape(e) for e in alert.evidence) + "```")
    if alert.url:
        out.append(f"<{alert.url}|Event page>")
    return "\n".join(out)


def one_line(alert: Alert) -> str:
    """Subject, sentences and link on one line (syslog); evidence stays on the event page."""
    return " ".join([f"{alert.subject}:", *alert.lines, *([alert.url] if alert.url else [])])
