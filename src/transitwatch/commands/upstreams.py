"""``transitwatch upstreams``: who carries a target's routes, in what share, since when."""

from __future__ import annotations

import json
from typing import Any

import click

from transitwatch.commands.common import (
    AnalysisRequest,
    analysis_options,
    handle_errors,
    issue_printer,
    registry_dir,
    write_output,
)

FORMATS = ["table", "json", "csv", "html"]


def run_analysis(ctx: click.Context, req: AnalysisRequest, bin_s: int = 300, **extra: Any) -> Any:
    from transitwatch import api
    from transitwatch.routing.state import FullFeedRule

    reg = api.registry_for(req.target_spec, registry_dir(ctx, req.registry))
    rule = FullFeedRule(req.full_feed_ratio, req.full_feed_min_v4, req.full_feed_min_v6)
    result = api.upstreams(
        req.target_spec,
        req.archive,
        req.start,
        req.end,
        collectors=req.collectors,
        registry=reg,
        bin_s=bin_s,
        min_peers=req.min_peers,
        full_feed=rule,
        workers=req.workers,
        scheduler=req.scheduler,
        cache=req.cache,
        cache_limit=req.cache_limit,
        offline=req.offline,
        on_issue=issue_printer(req.quiet),
        progress=None,  # bars only on a terminal
        **extra,
    )
    if req.store:
        from transitwatch.store import Store
        from transitwatch.store.results import store_result

        with Store(req.store) as store:
            new = store_result(store, result.to_json(), source=ctx.info_name or "analysis")
        click.echo(f"transitwatch: stored {len(new)} new events in {req.store}", err=True)
    return result


@click.command()
@analysis_options
@click.option(
    "--bin", "bin_s", type=click.IntRange(1), default=300, show_default=True, help="Series step (seconds)."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Write the report here instead of stdout."
)
@click.option("--plot", type=click.Path(dir_okay=False), help="Also write the share-over-time chart (PNG).")
@click.pass_context
@handle_errors
def upstreams(
    ctx: click.Context, bin_s: int, fmt: str, output: str | None, plot: str | None, **params: Any
) -> None:
    """Who carries TARGET's routes, in what share, since when.

    TARGET is a country code (KP), AS numbers (AS131279,AS4837), prefixes, or @FILE of them.
    The RIB at or before --from and every update file up to --to are read for each collector.
    Only full-feed peers count; a route is one peer's path to one target prefix.
    """
    req = AnalysisRequest.from_params(params)
    result = run_analysis(ctx, req, bin_s)
    data = result.to_json()
    if plot:
        from transitwatch.report.plot import plot_upstreams

        plot_upstreams(result, plot)
    if fmt == "json":
        write_output(json.dumps(data, indent=1) + "\n", output)
    elif fmt == "csv":
        from transitwatch.report.text import render_upstreams_csv

        write_output(render_upstreams_csv(data), output)
    elif fmt == "html":
        from transitwatch.report.html import render_upstreams_html
        from transitwatch.report.plot import plot_to_png_bytes

        write_output(render_upstreams_html(result, data, plot_to_png_bytes(result)), output)
    else:
        from transitwatch.report.text import render_upstreams_text

        write_output(render_upstreams_text(result, data), output)
