"""``transitwatch files``: the archive files a time window needs, and the gaps in them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from transitwatch.timeutil import iso, parse_time

if TYPE_CHECKING:  # imported when the command runs: every other command would pay for httpx, pyarrow
    from transitwatch.sources.archive import ArchivePlan


def _time_option(text: str, option: str) -> int:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


@click.command("files")
@click.option(
    "--archive",
    required=True,
    metavar="DIR_OR_URL",
    help="A local folder or http(s) root laid out like RIS/RouteViews, 'public', or 'bgpkit[:BROKER_URL]'.",
)
@click.option(
    "--collectors",
    metavar="NAME,...",
    help="Comma-separated collectors, e.g. rrc00,route-views2 (default: every collector in the archive).",
)
@click.option("--from", "start", required=True, metavar="TIME", help="Window start, ISO 8601 UTC.")
@click.option("--to", "end", required=True, metavar="TIME", help="Window end (exclusive), ISO 8601 UTC.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
def files(archive: str, collectors: str | None, start: str, end: str, fmt: str) -> None:
    """List the MRT files a window needs: per collector the last RIB dump at or before --from, then
    every update file up to --to; and every expected file that is missing (the gaps)."""
    from transitwatch.sources.archive import ArchiveError, plan_files

    window = _time_option(start, "--from"), _time_option(end, "--to")
    names = [n.strip() for n in collectors.split(",") if n.strip()] if collectors else None
    try:
        plan = plan_files(archive, names, *window)
    except (ArchiveError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if fmt == "json":
        click.echo(json.dumps(plan.to_dict(), indent=2))
    else:
        click.echo(format_plan_table(plan))


def format_plan_table(plan: ArchivePlan) -> str:
    """The plan as aligned text columns: files first, then gaps."""
    rows = [("COLLECTOR", "KIND", "TIME", "LOCATION")]
    rows += [(f.collector, f.kind, iso(f.time) or "", f.location) for f in plan.all_files()]
    lines = _columns(rows)
    if not plan.gaps:
        lines.append("no gaps")
        return "\n".join(lines)
    lines.append("")
    gap_rows = [("GAP", "KIND", "FROM", "TO", "REASON", "DETAIL")]
    gap_rows += [
        (g.collector, g.kind, iso(g.start) or "", iso(g.end) or "", g.reason, g.detail) for g in plan.gaps
    ]
    lines += _columns(gap_rows)
    return "\n".join(lines)


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
