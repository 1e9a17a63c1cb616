"""What the API and the pages show, assembled from the store once for both faces."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import HTTPException

from transitwatch.report.text import describe_event
from transitwatch.store import Store, event_time
from transitwatch.timeutil import epoch, iso

LATEST_ADDED_SCAN = 10_000  # upstream_added events read to find each upstream's latest


def target_url(target: str, suffix: str = "", *, api: bool = False) -> str:
    """The path of a target's page or API resource; "/" in prefixes stays (routes take paths)."""
    base = "/api/targets/" if api else "/targets/"
    return base + quote(target, safe="/,") + suffix


def event_url(event_id: str, *, api: bool = False) -> str:
    return ("/api/events/" if api else "/events/") + quote(event_id, safe="")


def require_target(store: Store, target: str) -> dict[str, Any]:
    info = store.target(target)
    if info is None:
        raise HTTPException(status_code=404, detail=f"no target {target!r} in the store")
    return info


def target_summary(store: Store, info: dict[str, Any]) -> dict[str, Any]:
    """One row of the target list: who it is, its upstreams now, how many events it has."""
    target = info["target"]
    upstreams = store.state(target, "upstreams") or []
    return {
        "target": target,
        "country": info.get("country"),
        "asns": info.get("asns") or [],
        "prefixes": len(info.get("prefixes") or []),
        "window": info.get("window"),
        "updated": iso(info.get("updated")),
        "events": store.count_events(target),
        "upstreams": [
            {k: u.get(k) for k in ("asn", "name", "country", "share", "routes")} for u in upstreams
        ],
        "url": target_url(target, api=True),
        "page": target_url(target),
    }


def search_text(summary: dict[str, Any]) -> str:
    """What the search box looks in: the same haystack for the API's ``q`` and the page's filter."""
    words = [summary["target"], summary.get("country") or ""]
    words += [f"AS{a}" for a in summary["asns"]]
    for u in summary["upstreams"]:
        words += [f"AS{u['asn']}", u.get("name") or "", u.get("country") or ""]
    return " ".join(w for w in words if w).lower()


def matches(summary: dict[str, Any], query: str | None) -> bool:
    """Every word of the query is part of the haystack (``4837`` finds AS4837, ``cn`` China)."""
    if not query:
        return True
    haystack = search_text(summary)
    return all(word in haystack for word in re.split(r"[\s,]+", query.lower()) if word)


def target_summaries(store: Store, query: str | None = None) -> list[dict[str, Any]]:
    rows = [target_summary(store, info) for info in store.targets()]
    return [r for r in rows if matches(r, query)]


def target_detail(store: Store, target: str) -> dict[str, Any]:
    """A target with its current state: upstreams (with ``since``), routes, dependency, outages."""
    info = require_target(store, target)
    detail = {
        "target": target,
        "spec": info.get("spec", target),
        "country": info.get("country"),
        "asns": info.get("asns") or [],
        "prefixes": info.get("prefixes") or [],
        "collectors": info.get("collectors") or [],
        "full_feed_peers": info.get("full_feed_peers"),
        "window": info.get("window"),
        "updated": iso(info.get("updated")),
        "routes": store.state(target, "routes"),
        "upstreams": store.state(target, "upstreams") or [],
        "dependency": store.state(target, "dependency"),
        "outages": store.state(target, "outages") or [],
        "events": store.count_events(target),
        "links": {
            "series": target_url(target, "/series", api=True),
            "visibility": target_url(target, "/visibility", api=True),
            "events": target_url(target, "/events", api=True),
            "page": target_url(target),
        },
    }
    detail["upstreams"] = current_upstreams(store, target, detail)
    return detail


def series_points(
    store: Store, target: str, since: float | None, until: float | None
) -> list[dict[str, Any]]:
    return [
        {
            "time": iso(p["time"]),
            "routes": p["routes"],
            "visible_prefixes": p["visible_prefixes"],
            "by_upstream": p["by_upstream"],
        }
        for p in store.series(target, since, until)
    ]


def _within(t: str, since: float | None, until: float | None) -> bool:
    x = epoch(t)
    return (since is None or x >= since) and (until is None or x <= until)


def visibility(store: Store, target: str, since: float | None, until: float | None) -> dict[str, Any]:
    """Visible prefixes at each change in the range (and the last change before it, which holds at
    its start), and the outages that overlap the range."""
    info = require_target(store, target)
    all_changes = store.state(target, "visibility") or []
    empty = since is not None and until is not None and until < since
    before = [v for v in all_changes if since is not None and not empty and event_time(v) < since]
    changes = before[-1:] + [v for v in all_changes if _within(v["time"], since, until)]
    outages = [
        o
        for o in store.state(target, "outages") or []
        if (until is None or _within(o["start"], None, until))
        and (since is None or o.get("end") is None or _within(o["end"], since, None))
    ]
    return {
        "target": target,
        "prefixes": len(info.get("prefixes") or []),
        "changes": changes,
        "outages": outages,
    }


def page_link(path: str, params: dict[str, Any]) -> str:
    query = urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
    return f"{path}?{query}" if query else path


def events_page(
    store: Store,
    target: str | None,
    *,
    since: float | None,
    until: float | None,
    types: list[str] | None,
    limit: int,
    offset: int,
    path: str,
    query: dict[str, Any],
) -> dict[str, Any]:
    """One page of events with the total and the links to the pages before and after it."""
    total = store.count_events(target, since=since, until=until, types=types)
    events = store.events(target, since=since, until=until, types=types, limit=limit, offset=offset)
    nxt = (
        page_link(path, {**query, "limit": limit, "offset": offset + limit})
        if offset + limit < total
        else None
    )
    prev = (
        page_link(path, {**query, "limit": limit, "offset": max(0, offset - limit)}) if offset > 0 else None
    )
    return {
        "target": target,
        "total": total,
        "limit": limit,
        "offset": offset,
        "events": events,
        "next": nxt,
        "previous": prev,
    }


def require_event(store: Store, event_id: str) -> dict[str, Any]:
    ev = store.event(event_id)
    if ev is None:
        raise HTTPException(status_code=404, detail=f"no event {event_id!r} in the store")
    return ev


def summary_sentence(ev: dict[str, Any], full_feed_peers: int | None) -> str:
    """The report's sentence for an event; events written by newer detectors fall back to their type."""
    try:
        return describe_event(ev, full_feed_peers or 0)
    except (KeyError, TypeError, ValueError):
        return ev.get("type", "event").replace("_", " ")


def current_upstreams(store: Store, target: str, detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The upstreams at the window end, each with ``since``: the start of its current episode (its
    latest ``upstream_added``), or the window start when it was in the first RIB and never lost."""
    total = store.count_events(target, types=["upstream_added"])
    added = store.events(
        target, types=["upstream_added"], limit=LATEST_ADDED_SCAN, offset=max(0, total - LATEST_ADDED_SCAN)
    )
    latest = {ev["upstream"]: ev["time"] for ev in added}  # in time order, so the last one wins
    window_start = (detail.get("window") or {}).get("from")
    rows = []
    for u in detail["upstreams"]:
        since = latest.get(u["asn"]) or (window_start if u.get("in_first_rib") else u.get("first_seen"))
        rows.append({**u, "since": since})
    return rows
