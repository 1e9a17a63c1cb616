"""``transitwatch outages``: is the target still connected; when did it vanish, for how long."""

from __future__ import annotations

import json
from typing import Any

import click

from transitwatch.commands.common import AnalysisRequest, analysis_options, handle_errors, write_output
from transitwatch.commands.upstreams import run_analysis


def outage_options(f: Any) -> Any:
    f = click.option(
        "--outage-ratio",
        type=click.FloatRange(0, 1, min_open=True),
        default=0.8,
        show_default=True,
        help="An outage: visible space below this fraction of its baseline.",
    )(f)
    f = click.option(
        "--baseline-hours",
        type=click.FloatRange(0, min_open=True),
        default=24.0,
        show_default=True,
        help="Baseline: median visibility over this many hours before (since the window start when shorter).",
    )(f)
    f = click.option(
        "--min-duration",
        type=click.FloatRange(0),
        default=0.0,
        show_default=True,
        help="Ignore shorter outages (s).",
    )(f)
    return f


def outage_rule(outage_ratio: float, baseline_hours: float, min_duration: float) -> Any:
    from transitwatch.detect.outages import OutageRule

    return OutageRule(outage_ratio, int(baseline_hours * 3600), min_duration)


@click.command()
@analysis_options
@outage_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.pass_context
@handle_errors
def outages(
    ctx: click.Context,
    outage_ratio: float,
    baseline_hours: float,
    min_duration: float,
    fmt: str,
    output: str | None,
    **params: Any,
) -> None:
    """Outages of TARGET: visibility against its recent baseline, with durations.

    A prefix is visible when more than half of all full-feed peers have a route for it; the signal
    is the visible address space (/24 equivalents).
    """
    req = AnalysisRequest.from_params(params)
    result = run_analysis(ctx, req, outage=outage_rule(outage_ratio, baseline_hours, min_duration))
    outs = result.outages()
    events = [e for e in result.events() if e["type"] in ("outage_start", "outage_end")]
    data = {
        "target": result.target_json(),
        "window": {"from": params["start"], "to": params["end"]},
        "rule": result.options.outage.describe(),
        "full_feed_peers": len(result.full_feed),
        "visibility": result.visibility_json(),
        "outages": outs,
        "events": events,
    }
    if fmt == "json":
        write_output(json.dumps(data, indent=1) + "\n", output)
        return
    from transitwatch.report.text import describe_event, format_duration

    lines = [f"Outages of {req.target_spec} ({data['rule']}); {len(result.full_feed)} full-feed peers", ""]
    if not outs:
        lines.append("No outage in the window.")
    for o in outs:
        dur = (
            format_duration(o["duration_s"], minutes=True) if o.get("duration_s") is not None else "still out"
        )
        lines.append(f"{o['start']} to {o.get('end') or '(window end)'}  {o['severity']} outage, {dur}")
        lines.append(f"  {describe_event({**o, 'type': 'outage_start'}, len(result.full_feed))}")
    notices = [e["notice"] for e in events if e["type"] == "outage_end"]
    if notices:
        lines += ["", *notices]
    write_output("\n".join(lines) + "\n", output)
