"""The evidence behind one event, for its page: who saw what, where and when.

Upstream events carry their first peer, peer and prefix counts and collectors; the per-prefix links
of the upstream (when each target prefix started and stopped being carried through it) come from the
target's ``links`` state. Anomaly events carry the peers that saw them with their AS paths.
"""

from __future__ import annotations

from typing import Any

from transitwatch.report.text import as_label, format_duration
from transitwatch.store import Store, event_time
from transitwatch.timeutil import epoch

SHARE_SHIFT_FIELDS = {
    "since",
    "share_before",
    "share_after",
    "routes_before",
    "routes_after",
    "routes_total_before",
    "routes_total_after",
}


def _episode_end(store: Store, ev: dict[str, Any]) -> float | None:
    """When the upstream added by ``ev`` was next lost (None: still there at the window end)."""
    t = event_time(ev)
    later = store.events(ev["target"], since=t, types=["upstream_lost"], limit=1000)
    ends = [event_time(e) for e in later if e.get("upstream") == ev["upstream"] and event_time(e) >= t]
    return min(ends) if ends else None


def prefix_links(store: Store, ev: dict[str, Any]) -> list[dict[str, Any]]:
    """The upstream's per-prefix links that this event sums up: those that came up in the episode an
    ``upstream_added`` opens, or went down in the decline an ``upstream_lost`` closes."""
    links = [
        lk for lk in store.state(ev["target"], "links") or [] if lk.get("upstream") == ev.get("upstream")
    ]
    t = event_time(ev)
    if ev["type"] == "upstream_added":
        end = _episode_end(store, ev)
        return [
            lk
            for lk in links
            if lk.get("up") and t <= epoch(lk["up"]) and (end is None or epoch(lk["up"]) < end)
        ]
    start = epoch(ev["decline_start"]) if ev.get("decline_start") else t
    return [lk for lk in links if lk.get("down") and start <= epoch(lk["down"]) <= t]


def facts(ev: dict[str, Any], full_feed_peers: int | None) -> list[tuple[str, str]]:
    """Label and value pairs for the event's own fields, in reading order."""
    out: list[tuple[str, str]] = []
    of_peers = f" of {full_feed_peers} full-feed peers" if full_feed_peers else " peers"
    if "upstream" in ev:
        out.append(("Upstream", as_label(ev["upstream"], ev.get("name"), ev.get("country"))))
    if "prefix" in ev:
        out.append(("Prefix", str(ev["prefix"])))
    if "suspect_origin" in ev:
        origin = as_label(ev["suspect_origin"], ev.get("suspect_name"), ev.get("suspect_country"))
        out.append(("Suspect origin", origin))
    if ev.get("severity"):
        out.append(("Severity", str(ev["severity"])))
    if ev["type"] == "share_shift" and ev.keys() >= SHARE_SHIFT_FIELDS:
        before = f"{ev['routes_before']}/{ev['routes_total_before']} routes"
        after = f"{ev['routes_after']}/{ev['routes_total_after']} routes"
        out.append(("Share before", f"{100 * ev['share_before']:.1f}% ({before}) at {ev['since']}"))
        out.append(("Share after", f"{100 * ev['share_after']:.1f}% ({after})"))
    for key, label in (("start", "Start"), ("end", "End"), ("decline_start", "Decline began")):
        if key in ev:
            out.append((label, str(ev[key]) if ev[key] else "(still going at the window end)"))
    if ev["type"] == "upstream_lost" and "since" in ev:
        out.append(("Up since", str(ev["since"]) if ev["since"] else "(before the window)"))
    if ev.get("duration_s") is not None:
        out.append(("Duration", format_duration(float(ev["duration_s"]))))
    if "peers" in ev:
        out.append(("Peers", f"{ev['peers']}{of_peers}"))
    if ev.get("first_peer"):
        fp = ev["first_peer"]
        out.append(("First peer", f"{fp.get('collector')} {fp.get('address')} AS{fp.get('asn')}"))
    if ev.get("confirmed"):
        out.append(("Confirmed", f"{ev['confirmed']} (when enough peers had seen it)"))
    if "lowest" in ev and "baseline" in ev:
        out.append(
            ("Visible at worst", f"{ev['lowest']:g} of the usual {ev['baseline']:g} {ev.get('unit', '')}")
        )
    if ev.get("collectors"):
        out.append(("Collectors", ", ".join(str(c) for c in ev["collectors"])))
    if ev.get("prefixes"):
        out.append(("Prefixes", ", ".join(str(p) for p in ev["prefixes"])))
    return out


def event_evidence(store: Store, ev: dict[str, Any], full_feed_peers: int | None) -> dict[str, Any]:
    return {
        "facts": facts(ev, full_feed_peers),
        "peers_seen": ev.get("evidence") or [],
        "links": prefix_links(store, ev) if ev["type"] in ("upstream_added", "upstream_lost") else [],
    }
