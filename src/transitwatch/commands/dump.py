"""``transitwatch dump``: MRT files as bgpdump -m text, JSON lines or Parquet."""

from __future__ import annotations

import sys
from typing import IO, Any

import click

from transitwatch.commands.common import issue_printer

ASN = click.IntRange(0, 2**32 - 1)


@click.command()
@click.argument("sources", nargs=-1, required=True, metavar="FILE_OR_URL...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["bgpdump", "jsonl", "parquet"]),
    default="bgpdump",
    show_default=True,
    help="bgpdump: exactly what `bgpdump -m` prints; jsonl: one JSON object per element; parquet: columns.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write here instead of stdout."
)
@click.option(
    "--prefix",
    "prefixes",
    multiple=True,
    metavar="PREFIX|@FILE",
    help="Keep elements for these prefixes (repeatable).",
)
@click.option(
    "--match",
    "prefix_match",
    type=click.Choice(["exact", "more", "less", "any"]),
    default="more",
    show_default=True,
    help="How --prefix matches: exact, more-specifics (and itself), less-specifics, or both.",
)
@click.option("--peer-asn", "peer_asns", multiple=True, type=ASN, help="Keep elements from these peer ASes.")
@click.option(
    "--origin-asn", "origin_asns", multiple=True, type=ASN, help="Keep routes originated by these ASes."
)
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(["R", "A", "W", "S"]),
    help="Keep these element types: R(IB entry), A(nnouncement), W(ithdrawal), S(tate change).",
)
@click.option("--collector", help="Collector name for the elements (default: guessed from the path).")
@click.option("--quiet", "-q", is_flag=True, help="Report only damaged data and errors, not warnings.")
def dump(
    sources: tuple[str, ...],
    fmt: str,
    output: str | None,
    prefixes: tuple[str, ...],
    prefix_match: str,
    peer_asns: tuple[int, ...],
    origin_asns: tuple[int, ...],
    types: tuple[str, ...],
    collector: str | None,
    quiet: bool,
) -> None:
    """Decode MRT files (plain, .gz, .bz2; paths or http(s) URLs) into BGP elements.

    Damaged records are reported on stderr with their byte offset, skipped, and reading resumes
    at the next record boundary. The exit status is 1 if an input could not be read to its end.
    """
    from transitwatch.mrt.export import ElementWriter
    from transitwatch.mrt.filters import ElementFilter, load_prefix_list
    from transitwatch.mrt.reader import MrtReader
    from transitwatch.sources.collectors import guess_collector

    try:
        flt = ElementFilter(
            prefixes=load_prefix_list(prefixes),
            prefix_match=prefix_match,
            peer_asns=set(peer_asns),
            origin_asns=set(origin_asns),
            types=set(types),
        )
    except (ValueError, OSError) as exc:
        raise click.UsageError(str(exc)) from exc
    if fmt == "parquet" and not output:
        raise click.UsageError("--format parquet needs --output FILE")
    out: IO[Any]
    if fmt == "parquet":
        out = open(output, "wb")  # type: ignore[arg-type]  # noqa: SIM115
    elif output:
        out = open(output, "w", encoding="utf-8")  # noqa: SIM115
    else:
        out = sys.stdout
    writer = ElementWriter(fmt, out)
    failed = False
    show = issue_printer(quiet)
    try:
        for src in sources:
            reader = MrtReader(
                src, collector=collector or guess_collector(src), bgpdump=fmt == "bgpdump", on_issue=show
            )
            for batch in reader.batches():
                batch = flt.apply(batch)
                if batch.num_rows:
                    writer.write(batch)
            st = reader.stats
            if any(i.severity == "error" for i in reader.issues):
                failed = True
            if not quiet and (st.get("damaged_records") or st.get("unsupported_records")):
                click.echo(
                    f"transitwatch: {src}: {st['records']} records, {st['elements']} elements, "
                    f"{st['damaged_records']} damaged records ({st['skipped_bytes']} bytes skipped), "
                    f"{st['unsupported_records']} records not decoded",
                    err=True,
                )
    except BrokenPipeError:  # `transitwatch dump ... | head`
        sys.stderr.close()
        sys.exit(0)
    finally:
        writer.close()
        if out is not sys.stdout:
            out.close()
    if failed:
        sys.exit(1)
