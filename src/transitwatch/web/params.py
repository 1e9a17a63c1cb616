"""Path and query parameters of the API and pages, each bounded so that no input reaches the store
unchecked: bad values are 422s with a JSON body, unknown targets and events 404s."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from transitwatch.watch.config import DETECTOR_EVENTS

MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000
MAX_TYPES = 20
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")

# Target specs are country codes, AS numbers, prefixes (with "/") and separators; anything longer
# or with control characters cannot be a stored target, so it is refused before the store is asked.
TargetName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="A target as stored, e.g. `KP`, `AS131279,AS4837` or `175.45.176.0/22`.",
        examples=["KP"],
    ),
]
EventId = Annotated[
    str,
    Path(
        pattern=r"^[0-9a-f]{16}$", description="An event id (16 hex digits).", examples=["d7185e15d472f5a0"]
    ),
]


def _date_and_time(value: object) -> object:
    """A date and a time, as in every answer: a bare number (epoch seconds?) or a bare date is
    ambiguous here, so it is refused rather than guessed."""
    if isinstance(value, str) and not _DATE_TIME.match(value):
        raise ValueError("expected an ISO 8601 date and time such as 2017-10-01T09:07:51Z")
    return value


def _in_utc(value: datetime) -> datetime:
    """The time in UTC (no offset means UTC). A valid time that falls outside years 1 to 9999 once in
    UTC (0001-01-01T00:10+01:00) is taken as the first or last representable instant: as a range
    bound it selects the same data."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # whole seconds: the float epoch of datetime.max rounds up into year 10000
        return (datetime.min if value.year == 1 else datetime.max).replace(microsecond=0, tzinfo=UTC)


def _blank_is_none(value: object) -> object:
    """An empty field of a page's form means no bound."""
    return None if isinstance(value, str) and not value.strip() else value


UtcTime = Annotated[datetime, BeforeValidator(_date_and_time), AfterValidator(_in_utc)]
SINCE_HELP = "From this time (ISO 8601, UTC when no offset is given), inclusive."
UNTIL_HELP = "Up to this time (ISO 8601, UTC when no offset is given)."
Since = Annotated[UtcTime | None, Query(description=SINCE_HELP)]
Until = Annotated[UtcTime | None, Query(description=UNTIL_HELP)]
PageSince = Annotated[UtcTime | None, BeforeValidator(_blank_is_none), Query(description=SINCE_HELP)]
PageUntil = Annotated[UtcTime | None, BeforeValidator(_blank_is_none), Query(description=UNTIL_HELP)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Events per page.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Events to skip.")]
# every type a detector writes, and the watcher's data_gap
EVENT_TYPES = sorted({t for types in DETECTOR_EVENTS.values() for t in types} | {"data_gap"})


def _known_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise ValueError(f"unknown event type; one of {', '.join(EVENT_TYPES)}")
    return value


EventType = Annotated[
    str, AfterValidator(_known_type), WithJsonSchema({"type": "string", "enum": EVENT_TYPES})
]
EventTypes = Annotated[
    list[EventType] | None,
    Query(
        alias="type",
        max_length=MAX_TYPES,
        description="Only events of these types (repeat the parameter), e.g. `upstream_added`.",
    ),
]
SearchText = Annotated[
    str | None,
    Query(
        max_length=100,
        description="Only targets whose name, country, AS numbers or upstreams (AS, name, country) "
        "contain every word of this text.",
    ),
]


def epoch(t: datetime | None) -> float | None:
    return None if t is None else t.timestamp()


def iso_utc(t: datetime | None) -> str | None:
    """A validated time as the API writes times; four-digit years also before 1000 (0001-01-01...)."""
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def time_range(since: datetime | None, until: datetime | None) -> tuple[float | None, float | None]:
    """The range as epoch seconds; one that ends before it starts is empty, not an error."""
    return epoch(since), epoch(until)
