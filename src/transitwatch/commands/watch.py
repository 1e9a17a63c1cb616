"""``transitwatch watch``, ``replay`` and ``check-config``."""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from transitwatch.commands.common import handle_errors, parse_time_option, registry_dir, write_output


def _load(ctx: click.Context, path: str, registry: str | None = None) -> Any:
    """The config, with --registry (the command's or the group's) over its own `registry`."""
    from transitwatch.watch.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    reg = registry_dir(ctx, registry)
    return cfg.model_copy(update={"registry": reg}) if reg else cfg


REGISTRY_OPTION = click.option(
    "--registry", metavar="DIR", help="RIR files, instead of the config's `registry`."
)


@click.command("check-config")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@REGISTRY_OPTION
@click.pass_context
def check_config(ctx: click.Context, config: str, registry: str | None) -> None:
    """Validate a watch.yml: every problem is listed with its key (alert channels included)."""
    from transitwatch.alerts.channels import ChannelConfigError, make_channel

    cfg = _load(ctx, config, registry)
    problems = []
    for name, section in cfg.alerts.items():
        try:
            make_channel(name, section)  # builds the channel, sends nothing
        except ChannelConfigError as exc:
            problems.append(f"  alerts.{name}: {exc}")
    if problems:
        raise click.ClickException(f"{config}: {len(problems)} problem(s)\n" + "\n".join(problems))
    click.echo(
        f"{config}: OK: {len(cfg.targets)} target{'s' if len(cfg.targets) != 1 else ''} "
        f"({', '.join(t.label for t in cfg.targets)}), {len(cfg.alerts)} alert channel"
        f"{'s' if len(cfg.alerts) != 1 else ''}, store {cfg.storage}"
    )


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--archive", required=True, metavar="DIR_OR_URL", help="Archive to replay (RouteViews/RIS layout)."
)
@click.option("--from", "start", required=True, metavar="ISO")
@click.option("--to", "end", required=True, metavar="ISO")
@click.option(
    "--speed",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Pace by message timestamps, e.g. 60 = one hour of data per minute (0: as fast as possible).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False))
@REGISTRY_OPTION
@click.pass_context
@handle_errors
def replay(
    ctx: click.Context,
    config_path: str,
    archive: str,
    start: str,
    end: str,
    speed: float,
    fmt: str,
    output: str | None,
    registry: str | None,
) -> None:
    """Feed MRT update files through exactly the code `watch` runs on RIS Live; store and print the events."""
    from transitwatch.watch.run import replay as run_replay

    cfg = _load(ctx, config_path, registry)
    t0 = parse_time_option(start, "--from")
    t1 = parse_time_option(end, "--to")
    assert t0 is not None and t1 is not None
    if t1 <= t0:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    events = run_replay(cfg, archive, t0, t1, speed=speed)  # alerts go out as configured
    if fmt == "json":
        write_output(json.dumps(events, indent=1) + "\n", output)
        return
    from transitwatch.report.text import describe_event
    from transitwatch.store import Store

    with Store(cfg.storage, read_only=True) as store:
        n_full = {t["target"]: t.get("full_feed_peers") or 0 for t in store.targets()}
    n = len(events)
    lines = [f"{n} event{'s' if n != 1 else ''} in the window, stored in {cfg.storage}"]
    for e in events:
        lines.append(
            f"{e['time']}  {e['target']:<12} {e['type']:<16} {describe_event(e, n_full.get(e['target'], 0))}"
        )
    write_output("\n".join(lines) + "\n", output)


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--verbose", "-v", is_flag=True, help="Log the stream's connections, gaps and lag.")
@REGISTRY_OPTION
@click.pass_context
@handle_errors
def watch(ctx: click.Context, config_path: str, verbose: bool, registry: str | None) -> None:
    """Follow RIS Live for the config's targets: same detectors as the archive commands, every event
    stored, alerts sent. Starts from the latest RIB dumps (and update files since), resumes after a
    crash from the store's journal, and reports every blind interval of the stream as a data gap."""
    import asyncio
    import signal

    from transitwatch.watch.run import watch as run_watch

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    cfg = _load(ctx, config_path, registry)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        w = await run_watch(cfg, stop=stop)
        click.echo(f"transitwatch: stopped after {w.rows_applied} rows", err=True)

    asyncio.run(main())
