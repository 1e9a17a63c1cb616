"""Plain-text and CSV renderings of an upstream analysis, every number with its denominator."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transitwatch.analysis.upstreams import UpstreamResult


def as_label(asn: Any, name: str | None = None, country: str | None = None) -> str:
    """``AS4837 CHINA169-BACKBONE (CN)``; name and country only when known."""
    return f"AS{asn}" + (f" {name}" if name else "") + (f" ({country})" if country else "")


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _es(n: int) -> str:
    return "" if n == 1 else "es"


def describe_event(ev: dict[str, Any], n_full: int, min_peers: int = 3) -> str:
    """One sentence per event, every number with its denominator."""
    kind = ev["type"]
    if kind in ("upstream_added", "upstream_lost"):
        return _describe_upstream(ev, n_full, min_peers)
    if kind == "outage_start":
        end = f"until {ev['end']}" if ev.get("end") else "still going at the window end"
        share = ev.get("visible_share")
        pct = "" if share is None else f"{100 * share:.0f}%"
        return (
            f"{ev['severity']} outage {end}: at worst {ev['lowest']:g} of the usual "
            f"{ev['baseline']:g} {ev['unit']} visible ({pct}); {len(ev['prefixes'])} prefixes and "
            f"{ev['peers']} of {n_full} full-feed peers involved"
        )
    if kind == "outage_end":
        return str(ev["notice"])
    if kind == "share_shift":
        who = as_label(ev["upstream"], ev.get("name"), ev.get("country"))
        return (
            f"{who}'s share of routes moved from {100 * ev['share_before']:.1f}% "
            f"({ev['routes_before']}/{ev['routes_total_before']}) at {ev['since']} to "
            f"{100 * ev['share_after']:.1f}% ({ev['routes_after']}/{ev['routes_total_after']})"
        )
    if kind == "data_gap":
        return (
            f"no data from {ev['time']} to {ev['end']} ({format_duration(ev['duration_s'])}): {ev['reason']}"
        )
    who = (
        as_label(ev["suspect_origin"], ev.get("suspect_name"), ev.get("suspect_country"))
        if "suspect_origin" in ev
        else ""
    )
    seen = f"seen by {ev['peers']} of {n_full} full-feed peers at {len(ev['collectors'])} collectors"
    end = f"; over at {ev['end']}" if ev.get("end") else "; still there at the window end"
    if kind == "origin_change":
        exp = ", ".join(f"AS{a}" for a in ev.get("expected", []))
        return f"{ev['prefix']} originated by {who} instead of {exp} (possible hijack): {seen}{end}"
    if kind == "moas":
        origins = ", ".join(f"AS{a}" for a in ev.get("origins", []))
        return f"{ev['prefix']} originated by several ASes at once ({origins}): {seen}{end}"
    if kind == "more_specific":
        return f"new more-specific {ev['prefix']} of {ev.get('covering')} from {who}: {seen}{end}"
    if kind == "unexpected_space":
        return f"{who} originates {ev['prefix']}, outside the space delegated to the target: {seen}{end}"
    return json.dumps(ev, sort_keys=True)


def _describe_upstream(ev: dict[str, Any], n_full: int, min_peers: int) -> str:
    who = as_label(ev["upstream"], ev.get("name"), ev.get("country"))
    colls = ev.get("collectors") or []
    np = len(ev.get("prefixes") or [])
    if ev["type"] == "upstream_added":
        text = (
            f"{who} starts carrying routes: seen by up to {ev['peers']} of {n_full} full-feed peers "
            f"at {len(colls)} collector{_s(len(colls))} for {np} prefix{_es(np)}"
        )
        fp = ev.get("first_peer")
        if fp:
            text += f"; first by {fp['collector']} {fp['address']} AS{fp['asn']}"
    else:
        text = (
            f"{who} no longer carries any route: it had routes from {ev['peers']} of {n_full} "
            f"full-feed peers for {np} prefix{_es(np)}; decline began {ev.get('decline_start')}"
        )
        if ev.get("duration_s") is not None:
            text += f" after {format_duration(ev['duration_s'])} up"
    if ev.get("confirmed"):
        what = "seen" if ev["type"] == "upstream_added" else "loss seen"
        text += f"; {what} by {min_peers} peers at {ev['confirmed']}"
    return text


def format_duration(seconds: float, minutes: bool = False) -> str:
    """``9 h 31 min``; seconds are shown below a day, unless ``minutes`` rounds them away above 1 h."""
    s = round(seconds)
    if minutes and s >= 3600:
        s = round(s / 60) * 60
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{d} d"] if d else []
    if h:
        parts.append(f"{h} h")
    if m:
        parts.append(f"{m} min")
    if s and not d:
        parts.append(f"{s} s")
    return " ".join(parts) or "0 s"


def render_upstreams_text(result: UpstreamResult, data: dict[str, Any] | None = None) -> str:
    """The human-readable report: target, window, collectors, upstreams table, events."""
    d = data if data is not None else result.to_json()
    n_full = d["full_feed_peers"]
    total = d["routes"]
    tgt = d["target"]
    asn_labels = ", ".join(as_label(a, result.name(a), result.country(a)) for a in tgt["asns"][:6])
    if len(tgt["asns"]) > 6:
        asn_labels += f" and {len(tgt['asns']) - 6} more"
    out = [
        f"Upstreams of {tgt['spec']}" + (f": {asn_labels}" if asn_labels else ""),
        f"Window {d['window']['from']} to {d['window']['to']}; {len(tgt['prefixes'])} target prefixes; "
        f"{total} routes at the end (full-feed peers x prefixes they route)",
        "Collectors: "
        + "; ".join(
            f"{c['name']} ({c['peers']} peers, {c['full_feed_peers']} full-feed; RIB {c['rib']})"
            for c in d["collectors"]
        ),
        f"Full-feed peers: {n_full} ({d['full_feed_rule']})",
        "",
    ]
    rows = []
    for u in d["upstreams"]:
        rows.append(
            [
                f"AS{u['asn']}",
                u["name"] or "",
                u["country"] or "",
                f"{u['routes']}/{total}",
                f"{100 * u['share']:.1f}%",
                f"{u['peers']}/{n_full}",
                f"{len(u['prefixes'])}/{len(tgt['prefixes'])}",
                u["first_seen"] or "-",
                "yes" if u["in_first_rib"] else "no",
            ]
        )
    out += _table(
        [
            "Upstream",
            "Name",
            "CC",
            "Routes",
            "Share",
            "Peers",
            "Prefixes",
            "First seen in updates",
            "In first RIB",
        ],
        rows,
        {3, 4, 5, 6},
    )
    out.append("")
    if d["events"]:
        out.append(f"Events ({len(d['events'])})")
        for ev in d["events"]:
            out.append(
                f"  {ev['time']}  {ev['type']:<16} {describe_event(ev, n_full, result.options.min_peers)}"
            )
    else:
        out.append("No upstream changed in the window.")
    if d.get("outages") is not None:
        out.append("")
        if d["outages"]:
            out.append(f"Outages ({len(d['outages'])}; {d.get('outage_rule', '')})")
            for o in d["outages"]:
                dur = (
                    format_duration(o["duration_s"], minutes=True)
                    if o.get("duration_s") is not None
                    else "open"
                )
                out.append(f"  {o['start']} to {o.get('end') or '...'}  {o['severity']:<8} {dur}")
        else:
            out.append(f"No outage ({d.get('outage_rule', '')}).")
    dep = d.get("dependency")
    if dep and dep.get("ases"):
        out.append("")
        out.append(
            f"Dependency at the window end (AS hegemony over {dep['viewpoints']} viewpoints, "
            f"alpha {dep['alpha']}; share of the {dep['routes']} routes crossing the AS)"
        )
        drows = [
            [
                f"AS{r['asn']}",
                r["name"] or "",
                r["country"] or "",
                f"{r['hegemony']:.3f}",
                f"{100 * r['route_share']:.1f}%",
                "single point of failure" if r["spof"] else "",
            ]
            for r in dep["ases"][:10]
        ]
        out += ["  " + line for line in _table(["AS", "Name", "CC", "Hegemony", "Routes", ""], drows, {3, 4})]
    if d.get("gaps"):
        out.append("")
        out.append(f"Data gaps ({len(d['gaps'])}): results do not cover these intervals")
        for g in d["gaps"]:
            out.append(
                f"  {g.get('collector')} {g.get('kind')} {g.get('start')} to {g.get('end')}: "
                f"{g.get('reason')}"
            )
    dmg = d.get("issues", {}).get("damaged_records", 0)
    if dmg:
        out.append("")
        out.append(f"{dmg} damaged MRT records were skipped (see stderr for offsets).")
    return "\n".join(out) + "\n"


CSV_FIELDS = [
    "asn",
    "name",
    "country",
    "routes",
    "share",
    "routes_ipv4",
    "routes_ipv6",
    "share_ipv4",
    "share_ipv6",
    "prefix_share",
    "address_share_ipv4",
    "address_share_ipv6",
    "peers",
    "collectors",
    "prefixes",
    "first_seen",
    "in_first_rib",
]


def render_upstreams_csv(data: dict[str, Any]) -> str:
    """One row per upstream (the table of the text report, with the IPv4/IPv6 and space shares)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for u in data["upstreams"]:
        row = dict(u)
        row["prefixes"] = " ".join(u["prefixes"])
        row["collectors"] = " ".join(u["collectors"])
        w.writerow(row)
    return buf.getvalue()
