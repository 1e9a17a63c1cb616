"""RIPE NCC's AS-name list (``asn.txt``): one ``ASN NAME-AND-DESCRIPTION, CC`` line per AS, all RIRs.

The text after the AS number begins with the AS's handle (``STAR-KP``) and goes on with a free-text
description; the country is the two-letter code after the *last* comma (descriptions contain commas
too). The file is mostly UTF-8 with stray bytes of other encodings, so it is decoded with replacement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from transitwatch.model import SourceIssue

ASN_NAMES_FILE = "asn.txt"

_LINE_RE = re.compile(r"^\s*(?:AS)?(\d+)\s+(.*?)\s*$", re.IGNORECASE)
_COUNTRY_RE = re.compile(r"^[A-Za-z]{2}$")


@dataclass(frozen=True, slots=True)
class AsName:
    """One line of asn.txt.

    ``name`` is the handle (first word, e.g. ``STAR-KP``); ``description`` the whole text before the
    country (``STAR-KP Ryugyong-dong``); ``country`` the upper-case code after the last comma, or None
    when the line has none (``ZZ``, RIPE's "unknown", is kept as published).
    """

    asn: int
    name: str
    description: str
    country: str | None


@dataclass(slots=True)
class AsNames:
    """A parsed asn.txt: names by AS number and the lines that could not be read."""

    source: str
    by_asn: dict[int, AsName] = field(default_factory=dict)
    issues: list[SourceIssue] = field(default_factory=list)
    lines: int = 0  # non-blank lines seen, to judge how much of a download was unreadable


def parse_as_name_line(line: str) -> AsName | None:
    """One asn.txt line as an :class:`AsName`, or None if it does not start with an AS number and text."""
    m = _LINE_RE.match(line)
    if not m or not m.group(2):
        return None
    asn, text = int(m.group(1)), m.group(2)
    country: str | None = None
    head, comma, tail = text.rpartition(",")
    if comma and _COUNTRY_RE.match(tail.strip()):
        text, country = head.strip(), tail.strip().upper()
    # Odd spacing inside the description (tabs, runs of blanks) carries no meaning.
    text = " ".join(text.split())
    if not text:
        return None
    return AsName(asn=asn, name=text.split(" ", 1)[0], description=text, country=country)


def parse_as_names_lines(lines: Iterable[str], source: str = "<lines>") -> AsNames:
    """Parse asn.txt lines; a later line for the same AS replaces an earlier one."""
    names = AsNames(source=source)
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        names.lines += 1
        entry = parse_as_name_line(line)
        if entry is None:
            names.issues.append(
                SourceIssue(
                    source=f"{source}:{lineno}",
                    offset=None,
                    severity="damaged",
                    reason=f"not an 'ASN NAME, CC' line: {line[:80]!r}",
                )
            )
            continue
        names.by_asn[entry.asn] = entry
    return names


def parse_as_names_file(path: str | Path) -> AsNames:
    """Parse an asn.txt file, decoding as UTF-8 with undecodable bytes replaced."""
    path = Path(path)
    text = path.read_bytes().decode("utf-8", errors="replace")
    # Only "\n" ends a line: splitlines() would also split on stray form feeds and U+2028 in descriptions.
    return parse_as_names_lines(text.split("\n"), source=str(path))
