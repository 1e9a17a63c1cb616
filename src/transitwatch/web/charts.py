"""Plotly figures (plain dicts) for a target's page: built here, drawn by plotly.js in the browser."""

from __future__ import annotations

from typing import Any

from transitwatch.report.text import as_label
from transitwatch.web.views import event_url

# Colours that stay apart for the few upstreams a target has, then cycle.
PALETTE = ["#1f6fb4", "#e4791b", "#2b9a48", "#c8312f", "#8a5db8", "#8b574c", "#d866b6", "#7a7a7a"]
FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}


def _layout(**extra: Any) -> dict[str, Any]:
    return {
        "font": FONT,
        "margin": {"l": 48, "r": 12, "t": 8, "b": 40},
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.18, "x": 0},
        "xaxis": {"type": "date", "title": {"text": "UTC"}},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        **extra,
    }


def share_figure(
    points: list[dict[str, Any]],
    upstreams: dict[int, dict[str, Any]],
    upstream_events: list[dict[str, Any]],
    full_feed_peers: int | None,
) -> dict[str, Any]:
    """Stacked areas of each upstream's share of the routes, with the upstream events on top.

    ``points`` are the API's series points (ISO times).
    ``upstreams`` maps an AS number to what is known of it (name, country, and ``peers`` at the window
    end when it is a current upstream); the store keeps routes per upstream over time, not peers.
    """
    times = [p["time"] for p in points]
    totals = [p["routes"] or 0 for p in points]
    routes_of: dict[int, list[int]] = {}
    for i, p in enumerate(points):
        for key, n in p["by_upstream"].items():
            routes_of.setdefault(int(key), [0] * len(points))[i] = n
    # biggest carrier at the bottom of the stack, where its share is easiest to read
    order = sorted(routes_of, key=lambda a: (-sum(routes_of[a]), a))
    traces: list[dict[str, Any]] = []
    for k, asn in enumerate(order):
        info = upstreams.get(asn, {})
        peers = info.get("peers")
        peers_text = f"{peers} of {full_feed_peers} full-feed peers at the window end" if peers else ""
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "stackgroup": "share",
                "name": as_label(asn, info.get("name"), info.get("country")),
                "meta": {"asn": asn, "peers_at_end": peers},
                "x": times,
                "y": [round(100 * n / t, 2) if t else 0 for n, t in zip(routes_of[asn], totals, strict=True)],
                "customdata": [[n, t] for n, t in zip(routes_of[asn], totals, strict=True)],
                "line": {"shape": "hv", "width": 1, "color": PALETTE[k % len(PALETTE)]},
                "hovertemplate": "<b>%{fullData.name}</b><br>%{x}<br>share %{y:.1f}%<br>"
                "routes %{customdata[0]} of %{customdata[1]}"
                + (f"<br>peers: {peers_text}" if peers_text else "")
                + "<extra></extra>",
            }
        )
    for kind, symbol, colour, y in (
        ("upstream_added", "triangle-up", "#2b9a48", 104),
        ("upstream_lost", "triangle-down", "#c8312f", 104),
    ):
        evs = [e for e in upstream_events if e["type"] == kind]
        if not evs:
            continue
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": kind.replace("_", " "),
                "x": [e["time"] for e in evs],
                "y": [y] * len(evs),
                "text": [
                    f"{as_label(e['upstream'], e.get('name'), e.get('country'))} "
                    f"{'added' if kind == 'upstream_added' else 'lost'}"
                    for e in evs
                ],
                "customdata": [event_url(e["id"]) for e in evs],
                "marker": {"symbol": symbol, "size": 11, "color": colour},
                "cliponaxis": False,
                "hovertemplate": "%{text}<br>%{x}<br>(click for the evidence)<extra></extra>",
            }
        )
    layout = _layout(yaxis={"title": {"text": "share of routes (%)"}, "range": [0, 108], "fixedrange": True})
    return {"data": traces, "layout": layout}


def visibility_figure(
    changes: list[dict[str, Any]], outages: list[dict[str, Any]], prefixes: int, end: str | None
) -> dict[str, Any]:
    """Visible target prefixes as a step line, with each outage shaded from its start to its end."""
    xs = [c["time"] for c in changes]
    ys = [c["visible_prefixes"] for c in changes]
    if xs and end and end > xs[-1]:  # hold the last value to the window end
        xs.append(end)
        ys.append(ys[-1])
    top = max([prefixes, *ys]) if ys or prefixes else 1
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": "visible prefixes",
            "x": xs,
            "y": ys,
            "fill": "tozeroy",
            "line": {"shape": "hv", "width": 1.5, "color": "#1f6fb4"},
            "hovertemplate": "%{x}<br>%{y} of " + str(prefixes) + " prefixes visible<extra></extra>",
        }
    ]
    if outages:
        ox: list[str | None] = []
        oy: list[float | None] = []
        labels: list[str | None] = []
        texts = [
            f"{o.get('severity', '')} outage {o['start']} to {o.get('end') or 'ongoing'}" for o in outages
        ]
        for o, text in zip(outages, texts, strict=True):
            stop = o.get("end") or end or o["start"]
            ox += [o["start"], o["start"], stop, stop, None]
            oy += [0, top, top, 0, None]
            labels += [text] * 4 + [None]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "outage",
                "x": ox,
                "y": oy,
                "text": labels,
                "fill": "toself",
                "fillcolor": "rgba(200, 49, 47, 0.22)",
                "line": {"width": 0, "color": "rgba(200, 49, 47, 0.6)"},
                "hoveron": "fills+points",
                "hovertemplate": "%{text}<extra></extra>",
            }
        )
        # outages of minutes vanish in a window of days: a marker at each start keeps them in sight
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "outage start",
                "x": [o["start"] for o in outages],
                "y": [top * 1.04] * len(outages),
                "text": texts,
                "marker": {"symbol": "triangle-down", "size": 10, "color": "#c8312f"},
                "cliponaxis": False,
                "hovertemplate": "%{text}<extra></extra>",
            }
        )
    layout = _layout(
        yaxis={"title": {"text": "visible prefixes"}, "range": [0, top * 1.1], "fixedrange": True},
    )
    return {"data": traces, "layout": layout}
