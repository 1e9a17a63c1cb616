"""The chart analysts publish: route share per upstream over time, visibility underneath.

Shares are drawn as stacked step areas from every change of the route counts (not from 5-minute
bins, so a 2-minute outage shows as a gap). Upstream events are marked; outage spans, when known,
are shaded in the visibility panel.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transitwatch.analysis.upstreams import UpstreamResult

MAX_LAYERS = 8


def _label(result: UpstreamResult, u: int) -> str:
    name = result.name(u)
    cc = result.country(u)
    text = f"AS{u}"
    if name:
        text += f" {name}"
    if cc:
        text += f" ({cc})"
    return text


def plot_upstreams(
    result: UpstreamResult, path: str, *, outages: list[tuple[float, float]] | None = None, dpi: int = 120
) -> None:
    """Write the share-and-visibility chart of an upstream analysis to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    tr = result.tracker
    if outages is None:
        outages = result.engine.outages.spans()
    points = list(tr.timeline)
    end = float(result.options.end)
    if not points or points[-1][0] < end:
        last = points[-1] if points else (float(result.options.start), 0, {}, 0)
        points.append((end, last[1], last[2], last[3]))
    times = [datetime.fromtimestamp(p[0], UTC) for p in points]
    # the upstreams worth a layer: largest peak share first; the rest become "other"
    peak: dict[int, float] = {}
    for _t, routes, by_up, _v in points:
        for u, n in by_up.items():
            if routes:
                peak[u] = max(peak.get(u, 0.0), n / routes)
    order = sorted(peak, key=lambda u: (-peak[u], u))
    shown, rest = order[:MAX_LAYERS], set(order[MAX_LAYERS:])

    def share(p: tuple[float, int, dict[int, int], int], u: int | None) -> float:
        routes = p[1]
        if not routes:
            return math.nan  # no route at all: a gap, not a zero share
        n = sum(c for v, c in p[2].items() if v in rest) if u is None else p[2].get(u, 0)
        return 100.0 * n / routes

    fig, (ax, axv) = plt.subplots(
        2, 1, figsize=(11, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1.2], "hspace": 0.08}
    )
    colors = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]
    base = [0.0 if p[1] else math.nan for p in points]
    layers: list[tuple[str, int | None]] = [(_label(result, u), u) for u in shown]  # None: the rest
    if rest:
        layers.append((f"{len(rest)} other upstreams", None))
    for i, (label, layer) in enumerate(layers):
        top = [b + share(p, layer) for b, p in zip(base, points, strict=True)]
        ax.fill_between(
            times, base, top, step="post", color=colors[i % len(colors)], alpha=0.85, label=label, linewidth=0
        )
        base = top
    for ev in tr.events:
        t = datetime.fromtimestamp(ev.time, UTC)
        color = "#1a7f37" if ev.type == "upstream_added" else "#cf222e"
        ax.axvline(t, color=color, linestyle=":", linewidth=1.0, alpha=0.9)
    # name each upstream that was not there at the start where it first appears
    labelled: set[int] = set()
    for ev in tr.events:
        if ev.type == "upstream_added" and ev.upstream not in tr.in_first_rib and ev.upstream not in labelled:
            labelled.add(ev.upstream)
            t = datetime.fromtimestamp(ev.time, UTC)
            ax.annotate(
                f"AS{ev.upstream} first seen {t:%H:%M:%S}",
                xy=(t, 100), xytext=(4, -14), textcoords="offset points", fontsize=8, color="#1a7f37",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
            )  # fmt: skip
    # outages stay visible even when a few minutes wide on a multi-day axis
    span_total = max(float(result.options.end) - float(result.options.start), 1.0)
    min_width = span_total * 0.004  # about 7 minutes on a 28-hour chart
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of routes (%)")
    n_full = len(result.full_feed)
    colls = ", ".join(c.name for c in result.collectors)
    asns = sorted(result.target.asns)
    who = result.target.spec + (
        f" ({', '.join(f'AS{a}' for a in asns[:4])}{'...' if len(asns) > 4 else ''})"
        if asns and result.target.countries
        else ""
    )
    ax.set_title(
        f"Upstreams of {who}: share of the routes of {n_full} full-feed peers ({colls})", fontsize=11
    )
    ax.plot([], [], color="#1a7f37", linestyle=":", label="upstream added")
    ax.plot([], [], color="#cf222e", linestyle=":", label="upstream lost")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    # visibility panel
    vis = [p[3] for p in points]
    axv.step(times, vis, where="post", color="#24292f", linewidth=1.2, label="visible prefixes")
    for k, (start, stop) in enumerate(outages or []):
        stop = max(stop, start + min_width)
        for panel in (ax, axv):
            panel.axvspan(
                datetime.fromtimestamp(start, UTC),
                datetime.fromtimestamp(stop, UTC),
                color="#cf222e",
                alpha=0.45 if panel is ax else 0.25,
                linewidth=0,
                zorder=3,
                label="outage" if k == 0 and panel is axv else None,
            )
    if outages:
        axv.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    n_prefixes = max(len(result.prefixes), 1)
    axv.set_ylim(-0.2, n_prefixes + 0.5)
    axv.set_ylabel("visible\nprefixes")
    axv.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axv.set_xlabel("time (UTC)")
    locator = mdates.AutoDateLocator()
    axv.xaxis.set_major_locator(locator)
    axv.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    axv.set_xlim(times[0], times[-1])
    for a in (ax, axv):
        a.grid(True, alpha=0.3)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def plot_to_png_bytes(result: UpstreamResult, **kwargs: Any) -> bytes:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(suffix=".png")
    os.close(fd)
    try:
        plot_upstreams(result, tmp, **kwargs)
        with open(tmp, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(tmp)
