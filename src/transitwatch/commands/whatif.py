"""``transitwatch whatif``: what would be left of the target's routes without some networks."""

from __future__ import annotations

import json
from typing import Any

import click

from transitwatch.commands.common import (
    AnalysisRequest,
    analysis_options,
    handle_errors,
    parse_time_option,
    write_output,
)
from transitwatch.commands.upstreams import run_analysis


def _asn(text: str) -> int:
    t = text.strip().upper()
    try:
        return int(t[2:] if t.startswith("AS") else t)
    except ValueError as exc:
        raise click.BadParameter(f"not an AS number: {text!r}", param_hint="--without") from exc


@click.command()
@analysis_options
@click.option(
    "--without", "without", multiple=True, required=True, metavar="ASN", help="AS to remove (repeatable)."
)
@click.option("--at", "at", metavar="ISO", help="Evaluate the routes at this time (default: --to).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.pass_context
@handle_errors
def whatif(
    ctx: click.Context, without: tuple[str, ...], at: str | None, fmt: str, output: str | None, **params: Any
) -> None:
    """Remove AS numbers from TARGET's observed paths: which prefixes, routes and address space lose
    every observed path, and through whom the rest survive. Observed paths only: real alternatives
    that no collector peer uses are not known, so this is the worst case."""
    from transitwatch.analysis.dependency import what_if

    req = AnalysisRequest.from_params(params)
    removed = [_asn(w) for w in without]
    if at is not None:
        t = parse_time_option(at, "--at")
        assert t is not None
        if not req.start <= t <= req.end:
            raise click.BadParameter("--at must lie between --from and --to", param_hint="--at")
        req.end = t
    result = run_analysis(ctx, req)
    w = what_if(result.state, removed, req.end)
    data = {"target": result.target_json(), **w.to_json(result.names)}
    if fmt == "json":
        write_output(json.dumps(data, indent=1) + "\n", output)
        return
    names = ", ".join(f"AS{a}" + (f" {result.name(a)}" if result.name(a) else "") for a in removed)
    total_p = data["prefixes"]
    lines = [
        f"What if {req.target_spec} lost {names}, at {data['at']} "
        f"(observed paths of {len(result.full_feed)} full-feed peers)",
        "",
        f"Routes lost: {data['routes_lost']} of {data['routes']} "
        f"({100 * (data['route_share_lost'] or 0):.1f}%)",
        f"Prefixes with no route left: {len(data['prefixes_lost'])} of {total_p}"
        + (f": {', '.join(data['prefixes_lost'])}" if data["prefixes_lost"] else ""),
    ]
    for fam, sp in data["address_space"].items():
        lines.append(
            f"Address space lost ({fam}): {sp['lost']:g} of {sp['total']:g} {sp['unit']} "
            f"({100 * (sp['share_lost'] or 0):.1f}%)"
        )
    if data["prefixes_kept"]:
        lines.append("Survive:")
        for k in data["prefixes_kept"]:
            via = ", ".join(
                f"AS{v['asn']}" + (f" {v['name']}" if v.get("name") else "") + f" ({v['routes']} routes)"
                for v in k["via"]
            )
            lines.append(f"  {k['prefix']} via {via}")
    write_output("\n".join(lines) + "\n", output)
