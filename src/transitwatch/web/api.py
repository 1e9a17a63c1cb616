"""The JSON API under /api: targets, a target's state, series, visibility and events.

Target routes take a path (``{target:path}``) because prefix targets contain "/"; the routes with a
suffix are declared before the bare one so ``KP/series`` is never read as a target name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from transitwatch.store import Store
from transitwatch.web import views
from transitwatch.web.access import request_store
from transitwatch.web.models import (
    ErrorBody,
    EventsPage,
    Series,
    TargetDetail,
    TargetList,
    Visibility,
)
from transitwatch.web.models import Event as EventModel
from transitwatch.web.params import (
    EventId,
    EventTypes,
    Limit,
    Offset,
    SearchText,
    Since,
    TargetName,
    Until,
    iso_utc,
    time_range,
)

StoreDep = Annotated[Store, Depends(request_store)]

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such target or event in the store."}
}
BUSY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "The store is missing or locked by a writer; retry."}
}

router = APIRouter(prefix="/api", tags=["api"], responses=BUSY)


def _filters(request: Request) -> dict[str, Any]:
    """The request's own filters, to carry into the next and previous links."""
    return {
        k: request.query_params.getlist(k) for k in ("since", "until", "type") if k in request.query_params
    }


@router.get("/targets", response_model=TargetList, summary="Targets in the store")
def list_targets(store: StoreDep, q: SearchText = None) -> dict[str, Any]:
    rows = views.target_summaries(store, q)
    return {"count": len(rows), "targets": rows}


@router.get(
    "/targets/{target:path}/series",
    response_model=Series,
    responses=NOT_FOUND,
    summary="Routes per upstream over time",
)
def target_series(
    store: StoreDep, target: TargetName, since: Since = None, until: Until = None
) -> dict[str, Any]:
    start, end = time_range(since, until)
    views.require_target(store, target)
    return {
        "target": target,
        "since": iso_utc(since),
        "until": iso_utc(until),
        "points": views.series_points(store, target, start, end),
    }


@router.get(
    "/targets/{target:path}/visibility",
    response_model=Visibility,
    responses=NOT_FOUND,
    summary="Visible prefixes over time, and outages",
)
def target_visibility(
    store: StoreDep, target: TargetName, since: Since = None, until: Until = None
) -> dict[str, Any]:
    start, end = time_range(since, until)
    return views.visibility(store, target, start, end)


@router.get(
    "/targets/{target:path}/events",
    response_model=EventsPage,
    responses=NOT_FOUND,
    summary="A target's events, a page at a time",
)
def target_events(
    request: Request,
    store: StoreDep,
    target: TargetName,
    since: Since = None,
    until: Until = None,
    types: EventTypes = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    start, end = time_range(since, until)
    views.require_target(store, target)
    return views.events_page(
        store,
        target,
        since=start,
        until=end,
        types=types,
        limit=limit,
        offset=offset,
        path=views.target_url(target, "/events", api=True),
        query=_filters(request),
    )


@router.get(
    "/targets/{target:path}",
    response_model=TargetDetail,
    responses=NOT_FOUND,
    summary="A target and its current upstreams, routes, dependency and outages",
)
def target_detail(store: StoreDep, target: TargetName) -> dict[str, Any]:
    return views.target_detail(store, target)


@router.get("/events", response_model=EventsPage, summary="Events of every target, a page at a time")
def all_events(
    request: Request,
    store: StoreDep,
    since: Since = None,
    until: Until = None,
    types: EventTypes = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    start, end = time_range(since, until)
    return views.events_page(
        store,
        None,
        since=start,
        until=end,
        types=types,
        limit=limit,
        offset=offset,
        path="/api/events",
        query=_filters(request),
    )


@router.get("/events/{event_id}", response_model=EventModel, responses=NOT_FOUND, summary="One event")
def one_event(store: StoreDep, event_id: EventId) -> dict[str, Any]:
    return views.require_event(store, event_id)
