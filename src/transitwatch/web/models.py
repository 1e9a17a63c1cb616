"""Response bodies of the JSON API, as they appear in /openapi.json (and are checked against it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    detail: str | list[dict[str, Any]] = Field(description="What was wrong with the request.")


class UpstreamBrief(BaseModel):
    asn: int
    name: str | None = None
    country: str | None = None
    share: float | None = Field(None, description="Share of the target's routes at the window end (0-1).")
    routes: int | None = None


class TargetSummary(BaseModel):
    target: str
    country: str | None
    asns: list[int]
    prefixes: int = Field(description="Number of target prefixes.")
    window: dict[str, str | None] | None = Field(description="Analysis window: from, to (ISO 8601).")
    updated: str | None = Field(description="When the store last wrote this target.")
    events: int = Field(description="Number of stored events.")
    upstreams: list[UpstreamBrief]
    url: str = Field(description="This target in the API.")
    page: str = Field(description="This target's web page.")


class TargetList(BaseModel):
    count: int
    targets: list[TargetSummary]


class TargetDetail(BaseModel):
    target: str
    spec: str
    country: str | None
    asns: list[int]
    prefixes: list[str]
    collectors: list[dict[str, Any]]
    full_feed_peers: int | None
    window: dict[str, str | None] | None
    updated: str | None
    routes: int | None = Field(description="Routes (full-feed peer x prefix) at the window end.")
    upstreams: list[dict[str, Any]] = Field(
        description="Upstreams at the window end: asn, name, country, routes, share, peers, prefixes, "
        "first_seen, in_first_rib, ..."
    )
    dependency: dict[str, Any] | None
    outages: list[dict[str, Any]]
    events: int
    links: dict[str, str]


class SeriesPoint(BaseModel):
    time: str
    routes: int | None
    visible_prefixes: int | None
    by_upstream: dict[str, int] = Field(description='Routes per upstream AS number, e.g. {"4837": 121}.')


class Series(BaseModel):
    target: str
    since: str | None
    until: str | None
    points: list[SeriesPoint]


class VisibilityChange(BaseModel):
    time: str
    visible_prefixes: int


class Visibility(BaseModel):
    target: str
    prefixes: int
    changes: list[VisibilityChange]
    outages: list[dict[str, Any]]


class Event(BaseModel):
    """An event as stored: these fields always, and the fields of its type (see the docs)."""

    model_config = ConfigDict(extra="allow")

    id: str
    target: str
    type: str
    time: str


class EventsPage(BaseModel):
    target: str | None
    total: int = Field(description="Events matching the filters, on all pages.")
    limit: int
    offset: int
    events: list[Event]
    next: str | None = Field(description="The next page (a path with its query), or null on the last.")
    previous: str | None = Field(description="The page before, or null on the first.")
