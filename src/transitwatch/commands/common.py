"""Options and plumbing shared by the analysis commands (upstreams, outages, anomalies, whatif)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from transitwatch.model import SourceIssue
from transitwatch.timeutil import parse_time

F = TypeVar("F", bound=Callable[..., Any])


def issue_printer(quiet: bool = False) -> Callable[[SourceIssue], None]:
    def show(issue: SourceIssue) -> None:
        if quiet and issue.severity in ("warning", "unsupported"):
            return
        click.echo(f"transitwatch: {issue}", err=True)

    return show


def registry_dir(ctx: click.Context, value: str | None) -> str | None:
    """--registry given to the command, else to the group (``transitwatch --registry DIR cmd``)."""
    if value:
        return value
    obj = ctx.find_root().obj or {}
    return obj.get("registry")


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``20G``, ``500M``, ``64K`` or a number of bytes (binary units)."""
    if value is None:
        return None
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (text[:-1], text[-1]) if text[-1:] in _SIZE_UNITS else (text, "")
    try:
        size = float(number) * _SIZE_UNITS[unit]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size (e.g. 20G, 500M)", param=param) from None
    if size <= 0:
        raise click.BadParameter("the size must be positive", param=param)
    return int(size)


def parse_time_option(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from exc


def analysis_options(f: F) -> F:
    """TARGET and the archive/window/threshold options every analysis command takes."""
    options = [
        click.argument("target"),
        click.option(
            "--archive",
            required=True,
            metavar="DIR_OR_URL",
            help="A folder or base URL laid out like RouteViews/RIPE RIS archives.",
        ),
        click.option(
            "--collectors", metavar="NAMES", help="Comma-separated collectors (default: all in the archive)."
        ),
        click.option(
            "--from",
            "start",
            required=True,
            metavar="ISO",
            help="Window start (UTC), e.g. 2017-10-01T08:00Z.",
        ),
        click.option("--to", "end", metavar="ISO", help="Window end (UTC; default: 24 h after --from)."),
        click.option(
            "--registry", metavar="DIR", help="RIR delegation and AS-name files (default: the cache)."
        ),
        click.option(
            "--min-peers",
            type=click.IntRange(1),
            default=3,
            show_default=True,
            help="Peers that must see a change before it counts as confirmed.",
        ),
        click.option(
            "--full-feed-ratio",
            type=click.FloatRange(0, 1),
            default=0.5,
            show_default=True,
            help="Full-feed peer: first-RIB table at least this fraction of the collector's largest.",
        ),
        click.option(
            "--full-feed-min-v4", type=int, help="Absolute rule instead (IODA-like): at least N IPv4 entries."
        ),
        click.option("--full-feed-min-v6", type=int, help="... or at least N IPv6 entries."),
        click.option(
            "--workers", type=click.IntRange(1), default=1, show_default=True, help="Local processes."
        ),
        click.option(
            "--scheduler", metavar="tcp://HOST:PORT", help="Run the per-collector work on a Dask cluster."
        ),
        click.option(
            "--cache", metavar="DIR", help="Download cache for URL archives (default: ~/.cache/transitwatch)."
        ),
        click.option(
            "--cache-limit",
            metavar="SIZE",
            callback=parse_size_option,
            help="Keep the download cache under SIZE (e.g. 20G), evicting the least recently used "
            "files; this run's files are never evicted (default: no limit).",
        ),
        click.option("--offline", is_flag=True, help="Use only files already in the cache."),
        click.option("--quiet", "-q", is_flag=True, help="Report only damaged data and errors on stderr."),
        click.option(
            "--store",
            metavar="FILE.duckdb",
            help="Also write the results (events, series, state) into this store.",
        ),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


@dataclass
class AnalysisRequest:
    target_spec: str
    archive: str
    collectors: list[str] | None
    start: int
    end: int
    registry: str | None
    min_peers: int
    full_feed_ratio: float
    full_feed_min_v4: int | None
    full_feed_min_v6: int | None
    workers: int
    scheduler: str | None
    cache: str | None
    offline: bool
    quiet: bool
    store: str | None = None
    cache_limit: int | None = None  # bytes

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> AnalysisRequest:
        start = parse_time_option(params["start"], "--from")
        assert start is not None
        end = parse_time_option(params["end"], "--to") or start + 86400
        if end <= start:
            raise click.BadParameter("--to must be after --from", param_hint="--to")
        colls = (
            [c.strip() for c in params["collectors"].split(",") if c.strip()]
            if params.get("collectors")
            else None
        )
        return cls(
            params["target"],
            params["archive"],
            colls,
            start,
            end,
            params.get("registry"),
            params["min_peers"],
            params["full_feed_ratio"],
            params.get("full_feed_min_v4"),
            params.get("full_feed_min_v6"),
            params["workers"],
            params.get("scheduler"),
            params.get("cache"),
            params.get("offline", False),
            params.get("quiet", False),
            params.get("store"),
            params.get("cache_limit"),
        )


def handle_errors(f: F) -> F:
    """Turn expected failures (bad target, unreachable archive) into clean CLI errors."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from transitwatch.sources.archive import ArchiveError

        try:
            return f(*args, **kwargs)
        except (ValueError, ArchiveError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from exc
        except BrokenPipeError:
            sys.stderr.close()
            sys.exit(0)

    return wrapper  # type: ignore[return-value]


def write_output(text: str | bytes, output: str | None) -> None:
    if output is None:
        if isinstance(text, bytes):
            sys.stdout.buffer.write(text)
        else:
            sys.stdout.write(text)
        return
    if isinstance(text, bytes):
        with open(output, "wb") as fb:
            fb.write(text)
    else:
        with open(output, "w", encoding="utf-8") as ft:
            ft.write(text)
