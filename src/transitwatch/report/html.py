"""A self-contained HTML report (chart embedded, no external assets)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from transitwatch import __version__
from transitwatch.report.text import describe_event

if TYPE_CHECKING:
    from transitwatch.analysis.upstreams import UpstreamResult

_env = Environment(
    loader=PackageLoader("transitwatch.report", "templates"), autoescape=select_autoescape(["html"])
)


def render_upstreams_html(
    result: UpstreamResult, data: dict[str, Any] | None = None, png: bytes | None = None
) -> str:
    d = data if data is not None else result.to_json()
    names = {a: result.name(a) for a in d["target"]["asns"]}
    texts = [describe_event(ev, d["full_feed_peers"], result.options.min_peers) for ev in d["events"]]
    return _env.get_template("upstreams.html").render(
        d=d,
        names=names,
        texts=texts,
        png=base64.b64encode(png).decode() if png else None,
        version=__version__,
    )
