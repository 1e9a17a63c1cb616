"""``transitwatch registry ...``: download the registry files and look up ASes, countries and prefixes."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from transitwatch.registry import Delegation, Registry, RegistryNotFoundError, default_cache_dir

_ASN_RE = re.compile(r"^(?:AS)?(\d+)$", re.IGNORECASE)
_COUNTRY_RE = re.compile(r"^[A-Za-z]{2}$")
_MAX_ISSUES_SHOWN = 5


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _delegation_dict(d: Delegation | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "registry": d.registry,
        "country": d.cc,
        "type": d.type,
        "block": d.describe(),
        "start": d.start,
        "value": d.value,
        "date": d.date.isoformat() if d.date else None,
        "status": d.status,
        "opaque_id": d.opaque_id,
    }


def _delegation_text(d: Delegation | None) -> str:
    if d is None:
        return "-"
    date = d.date.isoformat() if d.date else "no date"
    return f"{d.describe()} {d.registry} {d.cc} {d.status} {date}"


def _warn_issues(reg: Registry) -> None:
    for issue in reg.issues[:_MAX_ISSUES_SHOWN]:
        click.echo(f"transitwatch: {issue}", err=True)
    if len(reg.issues) > _MAX_ISSUES_SHOWN:
        click.echo(f"transitwatch: ... {len(reg.issues) - _MAX_ISSUES_SHOWN} more unreadable lines", err=True)


@click.group("registry")
def registry() -> None:
    """RIR delegations and AS names: download them, look up an AS, a country or a prefix."""


@registry.command("update")
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache directory; files go to CACHE/registry. [default: $TRANSITWATCH_CACHE, "
    "$XDG_CACHE_HOME/transitwatch or ~/.cache/transitwatch]",
)
@click.option(
    "--base-url",
    metavar="URL",
    help="Fetch every file from URL/<file name> (a mirror) instead of the RIRs' and RIPE's servers.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def update(cache_dir: Path | None, base_url: str | None, as_json: bool) -> None:
    """Download the five RIRs' delegated-extended files and RIPE's asn.txt.

    A file is replaced only by a complete download that parses; a failure keeps the old copy and makes
    the exit status 1.
    """
    from transitwatch.registry.download import update_registry  # httpx only when downloading

    report = update_registry(cache_dir if cache_dir is not None else default_cache_dir(), base_url)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        rows = [
            [
                f.name,
                f.status,
                (f.reason or "")
                if f.status == "failed"
                else (f"{f.size:,} bytes" if f.size is not None else ""),
            ]
            for f in report.files
        ]
        click.echo(f"registry files in {report.registry_dir}")
        click.echo(_table(["FILE", "RESULT", "DETAIL"], rows))
    if not report.ok:
        raise SystemExit(1)


def _show_asn(reg: Registry, asn: int) -> dict[str, Any]:
    return {
        "asn": asn,
        "name": reg.as_name(asn),
        "description": reg.as_description(asn),
        "country": reg.as_country(asn),
        "delegation": _delegation_dict(reg.asn_delegation(asn)),
    }


def _show_country(reg: Registry, cc: str) -> dict[str, Any]:
    asns = sorted(reg.country_asns(cc))
    prefixes = reg.country_prefix_delegations(cc)
    return {
        "country": cc.upper(),
        "asns": [
            {
                "asn": a,
                "name": reg.as_name(a),
                "description": reg.as_description(a),
                "delegation": _delegation_dict(reg.asn_delegation(a)),
            }
            for a in asns
        ],
        "prefixes": [{"prefix": str(net), "delegation": _delegation_dict(d)} for net, d in prefixes],
    }


def _show_prefix(reg: Registry, prefix: ipaddress.IPv4Network | ipaddress.IPv6Network) -> dict[str, Any]:
    return {"prefix": str(prefix), "delegation": _delegation_dict(reg.prefix_delegation(prefix))}


def _print_asn(info: dict[str, Any]) -> None:
    d = info["delegation"]
    rows = [
        ["name", info["name"] or "-"],
        ["description", info["description"] or "-"],
        ["country", info["country"] or "-"],
        ["delegation", "-" if d is None else f"{d['block']} {d['registry']} {d['country']} {d['status']}"],
        ["delegated on", (d and d["date"]) or "-"],
    ]
    click.echo(f"AS{info['asn']}")
    click.echo("\n".join(f"  {k:<13} {v}" for k, v in rows))


def _print_country(info: dict[str, Any]) -> None:
    asns, prefixes = info["asns"], info["prefixes"]
    v4 = [ipaddress.ip_network(p["prefix"]) for p in prefixes if ":" not in p["prefix"]]
    v4_addresses = sum(n.num_addresses for n in v4)
    click.echo(
        f"{info['country']}: AS numbers: {len(asns)}; prefixes: {len(v4)} IPv4 "
        f"({v4_addresses:,} addresses), {len(prefixes) - len(v4)} IPv6"
    )
    click.echo()
    asn_rows = [
        [
            f"AS{a['asn']}",
            a["name"] or "-",
            a["delegation"]["registry"] if a["delegation"] else "-",
            a["description"] or "-",
        ]
        for a in asns
    ]
    click.echo(_table(["ASN", "NAME", "REGISTRY", "DESCRIPTION"], asn_rows))
    click.echo()
    prefix_rows = [
        [
            p["prefix"],
            p["delegation"]["registry"],
            p["delegation"]["status"],
            p["delegation"]["date"] or "-",
            p["delegation"]["block"],
        ]
        for p in prefixes
    ]
    click.echo(_table(["PREFIX", "REGISTRY", "STATUS", "DATE", "DELEGATED BLOCK"], prefix_rows))


@registry.command("show")
@click.argument("query", metavar="ASN|COUNTRY|PREFIX")
@click.option(
    "--registry",
    "registry_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of registry files [default: the cache's registry directory].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def show(query: str, registry_dir: Path | None, as_json: bool) -> None:
    """Look up an AS (AS4837 or 4837), a country (KP: its ASes and prefixes) or a prefix or address.

    Answers come from the downloaded files only; something not in them is shown as unknown ("-").
    """
    asn_match = _ASN_RE.match(query)
    prefix: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    if not asn_match and not _COUNTRY_RE.match(query):
        try:
            prefix = ipaddress.ip_network(query, strict=False)
        except ValueError:
            raise click.BadParameter(
                f"{query!r} is not an AS number (AS4837), a two-letter country code (KP) or a prefix",
                param_hint="ASN|COUNTRY|PREFIX",
            ) from None
    try:
        reg = Registry.load_default(registry_dir)
    except RegistryNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    _warn_issues(reg)
    if asn_match:
        info = _show_asn(reg, int(asn_match.group(1)))
    elif prefix is not None:
        info = _show_prefix(reg, prefix)
    else:
        info = _show_country(reg, query)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    elif asn_match:
        _print_asn(info)
    elif prefix is not None:
        click.echo(f"{info['prefix']}: {_delegation_text(reg.prefix_delegation(prefix))}")
    else:
        _print_country(info)
