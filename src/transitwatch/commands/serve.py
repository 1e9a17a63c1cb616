"""``transitwatch serve``: the store's targets, charts, events and JSON API in a browser."""

from __future__ import annotations

import os

import click

DEFAULT_STORE = "transitwatch.duckdb"


@click.command()
@click.option(
    "--store",
    "store_path",
    metavar="FILE.duckdb",
    envvar="TRANSITWATCH_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    help="The store to show (read-only); also $TRANSITWATCH_STORE.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default)."
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free port)."
)
@click.option("--quiet", "-q", is_flag=True, help="No access log.")
def serve(store_path: str, host: str, port: int, quiet: bool) -> None:
    """Serve the pages and the JSON API of a store.

    Pages: / (targets, with search), /targets/TARGET (upstream shares, visibility and outages,
    events, current upstreams), /events/ID (the evidence). API: /api/... described at /openapi.json.
    The store is opened read-only, and only while requests need it, so `upstreams --store` and
    `replay` can write to it between requests (requests meanwhile get 503 and Retry-After).
    """
    from transitwatch.web import create_app
    from transitwatch.web.server import bind, run, url_of

    if not os.path.isfile(store_path):
        raise click.BadParameter(
            f"no store at {store_path}: write one with "
            f"`transitwatch upstreams TARGET ... --store {store_path}`",
            param_hint="--store",
        )
    app = create_app(store_path)
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    if host not in ("127.0.0.1", "::1", "localhost"):
        click.echo(f"transitwatch: listening on {host}, not only on this machine", err=True)
    click.echo(f"transitwatch: serving {store_path} at {url_of(sock)}/ (Ctrl-C to stop)", err=True)
    run(app, sock, log_level="warning" if quiet else "info")


if __name__ == "__main__":
    serve()
