"""The ``transitwatch`` command line: one group, commands from transitwatch.commands and friends."""

from __future__ import annotations

import os

# numpy (imported by pyarrow) otherwise starts an OpenBLAS thread pool that nothing here uses but
# that costs start-up time and competes for cores; this is our own process, so say so early
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click

from transitwatch import __version__
from transitwatch.commands.anomalies import anomalies
from transitwatch.commands.demo import demo
from transitwatch.commands.dump import dump
from transitwatch.commands.outages import outages
from transitwatch.commands.serve import serve
from transitwatch.commands.upstreams import upstreams
from transitwatch.commands.watch import check_config, replay, watch
from transitwatch.commands.whatif import whatif
from transitwatch.registry.cli import registry
from transitwatch.sources.cli import files


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="transitwatch")
@click.option(
    "--registry", "registry_dir", metavar="DIR", help="RIR delegation and AS-name files for every command."
)
@click.pass_context
def main(ctx: click.Context, registry_dir: str | None) -> None:
    """transitwatch: who carries a network's routes, in what share, since when, from public BGP data."""
    ctx.ensure_object(dict)
    ctx.obj["registry"] = registry_dir


main.add_command(demo)
main.add_command(dump)
main.add_command(upstreams)
main.add_command(outages)
main.add_command(anomalies)
main.add_command(whatif)
main.add_command(registry)
main.add_command(files)
main.add_command(watch)
main.add_command(replay)
main.add_command(check_config)
main.add_command(serve)


if __name__ == "__main__":
    main()
