"""The HTML pages: the target list, a page per target and a page per event (Jinja2 templates)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from transitwatch.store import Store
from transitwatch.web import charts, evidence, views
from transitwatch.web.access import request_store
from transitwatch.web.params import (
    EventId,
    Offset,
    PageSince,
    PageUntil,
    SearchText,
    TargetName,
    iso_utc,
    time_range,
)

EVENTS_PER_PAGE = 200
CHART_EVENTS_MAX = 5000  # upstream events drawn on the share chart; the timeline pages through all
UPSTREAM_EVENTS = ["upstream_added", "upstream_lost"]

StoreDep = Annotated[Store, Depends(request_store)]


def script_json(value: Any) -> Markup:
    """JSON for a <script type="application/json"> block: "<", ">" and "&" escaped so that no value
    (an AS name, a path) can close the element."""
    text = json.dumps(value, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def percent(share: float | None) -> str:
    return "" if share is None else f"{100 * share:.1f}%"


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    templates.env.filters["percent"] = percent
    templates.env.globals["target_url"] = views.target_url
    templates.env.globals["event_url"] = views.event_url
    return templates


def make_router(templates: Jinja2Templates) -> APIRouter:
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

    @router.get("/")
    def index(request: Request, store: StoreDep, q: SearchText = None) -> HTMLResponse:
        rows = views.target_summaries(store)
        for row in rows:
            row["search"] = views.search_text(row)
            row["shown"] = views.matches(row, q)
        return templates.TemplateResponse(request, "index.html", {"targets": rows, "q": q or ""})

    @router.get("/targets/{target:path}")
    def target_page(
        request: Request,
        store: StoreDep,
        target: TargetName,
        since: PageSince = None,
        until: PageUntil = None,
        offset: Offset = 0,
    ) -> HTMLResponse:
        start, end = time_range(since, until)
        detail = views.target_detail(store, target)
        points = views.series_points(store, target, start, end)
        vis = views.visibility(store, target, start, end)
        upstream_events = store.events(
            target, since=start, until=end, types=UPSTREAM_EVENTS, limit=CHART_EVENTS_MAX
        )
        known: dict[int, dict[str, Any]] = {}
        for ev in upstream_events:  # names of upstreams that are gone by the window end
            known.setdefault(ev["upstream"], {"name": ev.get("name"), "country": ev.get("country")})
        for u in detail["upstreams"]:
            known[u["asn"]] = u
        window_end = iso_utc(until) if until is not None else (detail.get("window") or {}).get("to")
        query = {k: request.query_params.get(k) for k in ("since", "until")}
        timeline = views.events_page(
            store,
            target,
            since=start,
            until=end,
            types=None,
            limit=EVENTS_PER_PAGE,
            offset=offset,
            path=views.target_url(target),
            query=query,
        )
        for ev in timeline["events"]:
            ev["sentence"] = views.summary_sentence(ev, detail["full_feed_peers"])
        figures = {
            "share": charts.share_figure(points, known, upstream_events, detail["full_feed_peers"]),
            "visibility": charts.visibility_figure(
                vis["changes"], vis["outages"], vis["prefixes"], window_end
            ),
        }
        context = {
            "t": detail,
            "timeline": timeline,
            "figures": script_json(figures),
            "series_points": len(points),
            "since": query["since"] or "",
            "until": query["until"] or "",
        }
        return templates.TemplateResponse(request, "target.html", context)

    @router.get("/events/{event_id}")
    def event_page(request: Request, store: StoreDep, event_id: EventId) -> HTMLResponse:
        ev = views.require_event(store, event_id)
        info = store.target(ev["target"]) or {}
        full = info.get("full_feed_peers")
        context = {
            "ev": ev,
            "sentence": views.summary_sentence(ev, full),
            "evidence": evidence.event_evidence(store, ev, full),
            "raw": json.dumps(ev, indent=2, sort_keys=True),
            "target_known": bool(info),
        }
        return templates.TemplateResponse(request, "event.html", context)

    return router
