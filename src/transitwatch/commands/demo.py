"""``transitwatch demo``: the whole analysis on a replay of a real event, offline, in seconds."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from transitwatch.commands.common import handle_errors, issue_printer

DEFAULT_OUTPUT = "transitwatch-demo"
STORY = (
    "transitwatch demo: a replay of 1-2 Oct 2017, when TransTeleCom (AS20485, Russia) began carrying "
    "North Korea's routes beside China Unicom (AS4837), with four brief outages in between (the "
    "published timeline; peers, paths and the background table are synthetic)."
)


@click.command()
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(file_okay=False),
    default=DEFAULT_OUTPUT,
    show_default=True,
    metavar="DIR",
    help="Folder for the reports, made if missing.",
)
@click.option(
    "--keep-archive/--no-keep-archive",
    default=True,
    show_default=True,
    help="Keep the replay archive and its registry files in DIR/archive and DIR/registry.",
)
@handle_errors
def demo(output: str, keep_archive: bool) -> None:
    """Build a replay of North Korea's new transit provider of October 2017 and analyse it.

    Writes DIR/report.txt (the upstreams table and events), DIR/report.json, DIR/report.png (route
    share per upstream over time) and DIR/report.html (all of it on one self-contained page). No
    network and no other data are needed: the archive is written by transitwatch's own MRT writer.
    """
    out = Path(output)
    if output == DEFAULT_OUTPUT:
        click.echo(
            f"transitwatch demo: writing into ./{DEFAULT_OUTPUT} (--output DIR to choose another)", err=True
        )
    out.mkdir(parents=True, exist_ok=True)
    if keep_archive:
        _check_not_foreign(out)
        _run(out, out)
        return
    with tempfile.TemporaryDirectory(prefix="transitwatch-demo-") as tmp:
        _run(out, Path(tmp))


def _check_not_foreign(out: Path) -> None:
    """Refuse to replace an archive/ or registry/ folder that an earlier demo did not write."""
    from transitwatch.scenarios import GENERATOR

    manifest = out / "manifest.json"
    ours = False
    if manifest.is_file():
        try:
            ours = json.loads(manifest.read_text(encoding="utf-8")).get("generator") == GENERATOR
        except (ValueError, AttributeError):
            ours = False
    for name in ("archive", "registry"):
        folder = out / name
        if folder.exists() and any(folder.iterdir()) and not ours:
            raise click.ClickException(
                f"{folder} exists and was not written by the demo: "
                "choose another --output, or --no-keep-archive"
            )


def _run(out: Path, world_dir: Path) -> None:
    from transitwatch import api
    from transitwatch.report.html import render_upstreams_html
    from transitwatch.report.plot import plot_upstreams
    from transitwatch.report.text import render_upstreams_text
    from transitwatch.scenarios import build, kp_2017_spec

    world = build(kp_2017_spec(), world_dir, overwrite=True)
    result = api.upstreams(
        "KP",
        str(world.archive),
        world.start,
        world.end,
        registry=str(world.registry),
        on_issue=issue_printer(quiet=True),
    )
    data: dict[str, Any] = result.to_json()
    text = render_upstreams_text(result, data)
    paths = {name: out / f"report.{name}" for name in ("txt", "json", "png", "html")}
    paths["txt"].write_text(text, encoding="utf-8")
    paths["json"].write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    plot_upstreams(result, str(paths["png"]))
    html = render_upstreams_html(result, data, paths["png"].read_bytes())
    paths["html"].write_text(html, encoding="utf-8")
    click.echo(text, nl=False)
    click.echo(STORY, err=True)
    for path in paths.values():
        click.echo(f"wrote {path}", err=True)
    if world_dir == out:
        click.echo(
            f"replay archive in {world.archive}, registry files in {world.registry}; try: "
            f"transitwatch outages KP --archive {world.archive} --registry {world.registry} "
            f"--from {data['window']['from']} --to {data['window']['to']}",
            err=True,
        )
