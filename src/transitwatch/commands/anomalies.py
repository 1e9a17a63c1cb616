"""``transitwatch anomalies``: is it really the target's route (hijacks, MOAS, more-specifics)."""

from __future__ import annotations

import json
from typing import Any

import click

from transitwatch.commands.common import AnalysisRequest, analysis_options, handle_errors, write_output
from transitwatch.commands.upstreams import run_analysis

ANOMALY_TYPES = ("origin_change", "moas", "more_specific", "unexpected_space")


@click.command()
@analysis_options
@click.option(
    "--allow-origin",
    "allow",
    multiple=True,
    metavar="ASN|PREFIX=ASN",
    help="A legitimate origin: for every target prefix (AS4837) or one prefix (175.45.176.0/24=AS4837).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.pass_context
@handle_errors
def anomalies(
    ctx: click.Context, allow: tuple[str, ...], fmt: str, output: str | None, **params: Any
) -> None:
    """Origin anomalies on TARGET's prefixes: possible hijacks, MOAS, new more-specifics, and target
    ASes originating space outside their delegations. Each needs --min-peers full-feed peers."""
    from transitwatch.detect.anomalies import AnomalyRule

    req = AnalysisRequest.from_params(params)
    try:
        rule = AnomalyRule.parse_allow(list(allow), req.min_peers)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allow-origin") from exc
    result = run_analysis(ctx, req, anomaly=rule)
    events = [e for e in result.events() if e["type"] in ANOMALY_TYPES]
    if fmt == "json":
        write_output(json.dumps({"target": result.target_json(), "events": events}, indent=1) + "\n", output)
        return
    from transitwatch.report.text import describe_event

    n = len(result.full_feed)
    lines = [
        f"Origin anomalies on {req.target_spec}'s prefixes "
        f"({len(result.prefixes)} prefixes, {n} full-feed peers)",
        "",
    ]
    if not events:
        lines.append("None found.")
    for e in events:
        lines.append(f"{e['time']}  {e['type']:<16} {describe_event(e, n)}")
        for ev in e["evidence"][:5]:
            lines.append(
                f"    {ev['time']} {ev['collector']} {ev['peer_address']} AS{ev['peer_asn']}: {ev['as_path']}"
            )
    write_output("\n".join(lines) + "\n", output)
