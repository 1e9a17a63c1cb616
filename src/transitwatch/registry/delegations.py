"""RIR statistics exchange files ("delegated-extended"): who holds which addresses and AS numbers.

Each of the five RIRs publishes ``delegated-<rir>-extended-YYYYMMDD`` (and ``...-latest``) daily; the
NRO publishes all five merged (``delegated-extended``, also seen as ``nro-delegated-stats``). Lines::

    2.3|apnic|20171001|9|19830613|20170929|+1000          version line (first non-comment line)
    apnic|*|ipv4|*|5|summary                              per-type counts
    apnic|KP|ipv4|175.45.176.0|1024|20100122|assigned|A91C1D4B[|extensions...]   a record

For ``ipv4`` ``value`` is a host count (not always a power of two nor aligned), for ``ipv6`` a prefix
length, for ``asn`` a count of consecutive AS numbers. Only ``allocated`` and ``assigned`` records
are delegations; ``available`` and ``reserved`` space is parsed but kept apart.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from transitwatch.model import SourceIssue

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

RIRS = ("afrinic", "apnic", "arin", "lacnic", "ripencc")
DELEGATED_STATUSES = frozenset({"allocated", "assigned"})
RECORD_TYPES = frozenset({"asn", "ipv4", "ipv6"})

_RIR_FILE_RE = re.compile(r"^delegated-(afrinic|apnic|arin|lacnic|ripencc)-extended-(\d{8}|latest)$")
_NRO_FILE_RE = re.compile(r"^(?:delegated-extended|nro-delegated-stats)(?:-(\d{8}|latest))?$")
_VERSION_RE = re.compile(r"^\d+(?:\.\d+)*$")


@dataclass(frozen=True, slots=True)
class Delegation:
    """One record of a delegated-extended file: a block of addresses or AS numbers and its holder's country.

    ``start`` and ``value`` are as published (see the module docs); :meth:`networks` and :meth:`asns`
    interpret them. ``date`` is None where the file leaves it empty or ``00000000``.
    """

    registry: str
    cc: str
    type: str
    start: str
    value: int
    date: dt.date | None
    status: str
    opaque_id: str = ""
    extensions: tuple[str, ...] = ()

    @property
    def is_delegated(self) -> bool:
        """True for ``allocated``/``assigned``; False for ``available``/``reserved`` space."""
        return self.status in DELEGATED_STATUSES

    def networks(self) -> list[IPNetwork]:
        """The exact CIDR blocks of an ``ipv4``/``ipv6`` record, lowest first."""
        if self.type == "ipv4":
            return ipv4_blocks(self.start, self.value)
        if self.type == "ipv6":
            return [ipaddress.IPv6Network(f"{self.start}/{self.value}")]
        raise ValueError(f"{self.type} record has no networks")

    def cidrs(self) -> list[str]:
        """:meth:`networks` as ``address/length`` strings, made without building network objects (which
        dominate the cost of indexing a full set of RIR files)."""
        if self.type == "ipv4":
            return [
                f"{socket.inet_ntoa(net.to_bytes(4, 'big'))}/{length}"
                for net, length in _ipv4_ranges(_ipv4_int(self.start), self.value)
            ]
        if self.type == "ipv6":
            return [f"{self.start}/{self.value}"]
        raise ValueError(f"{self.type} record has no networks")

    def asns(self) -> range:
        """The AS numbers of an ``asn`` record."""
        if self.type != "asn":
            raise ValueError(f"{self.type} record has no AS numbers")
        first = int(self.start)
        return range(first, first + self.value)

    def describe(self) -> str:
        """``10.0.0.0+768`` / ``2001:db8::/32`` / ``AS64512-AS64515``: the block as a person reads it."""
        if self.type == "asn":
            r = self.asns()
            return f"AS{r[0]}" if len(r) == 1 else f"AS{r[0]}-AS{r[-1]}"
        blocks = self.networks()
        return str(blocks[0]) if len(blocks) == 1 else f"{self.start}+{self.value}"


def _ipv4_int(text: str) -> int:
    try:
        # inet_pton takes only dotted quads (unlike inet_aton) and is much faster than IPv4Address.
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        raise ValueError(f"{text!r} is not an IPv4 address") from None


def _ipv6_int(text: str) -> int:
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except OSError:
        raise ValueError(f"{text!r} is not an IPv6 address") from None


def _ipv4_ranges(first: int, host_count: int) -> list[tuple[int, int]]:
    """(network as int, prefix length) of the minimal CIDR blocks covering ``host_count`` addresses."""
    if host_count <= 0:
        raise ValueError(f"host count {host_count} is not positive")
    last = first + host_count - 1
    if last > 0xFFFFFFFF:
        raise ValueError(
            f"{socket.inet_ntoa(first.to_bytes(4, 'big'))} + {host_count} addresses runs past 255.255.255.255"
        )
    # Fast path for the usual aligned power-of-two block.
    if host_count & (host_count - 1) == 0 and first % host_count == 0:
        return [(first, 33 - host_count.bit_length())]
    return [
        (int(net.network_address), net.prefixlen)
        for net in ipaddress.summarize_address_range(
            ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)
        )
    ]


def ipv4_blocks(start: str, host_count: int) -> list[IPNetwork]:
    """The minimal CIDR blocks covering exactly ``host_count`` addresses from ``start``.

    >>> [str(n) for n in ipv4_blocks("10.0.1.0", 512)]
    ['10.0.1.0/24', '10.0.2.0/24']
    """
    return [ipaddress.IPv4Network(block) for block in _ipv4_ranges(_ipv4_int(start), host_count)]


@dataclass(frozen=True, slots=True)
class DelegatedHeader:
    """The version line: ``version|registry|serial|records|startdate|enddate|UTCoffset``."""

    version: str
    registry: str
    serial: str
    records: int | None
    start_date: dt.date | None
    end_date: dt.date | None
    utc_offset: str


@dataclass(slots=True)
class DelegatedFile:
    """A parsed delegated file: its version line, every record, the summary counts and what was unreadable.

    ``records`` holds every record whatever its status; :attr:`delegations` only the delegated ones.
    """

    source: str
    header: DelegatedHeader | None = None
    records: list[Delegation] = field(default_factory=list)
    summaries: dict[str, int] = field(default_factory=dict)
    issues: list[SourceIssue] = field(default_factory=list)

    @property
    def delegations(self) -> list[Delegation]:
        """The ``allocated``/``assigned`` records, in file order."""
        return [r for r in self.records if r.is_delegated]

    def problems(self) -> list[str]:
        """Why this file should not replace a good copy: no version line, no records, fewer records than
        the version line or the summary lines announce (a truncated download). Empty when it looks whole.
        """
        found: list[str] = []
        if self.header is None:
            found.append("no version line")
        if not self.records:
            found.append("no records")
        announced_records = self.header.records if self.header is not None else None
        if announced_records is not None and len(self.records) < announced_records:
            found.append(f"{len(self.records)} records where the version line announces {announced_records}")
        for rtype, announced in sorted(self.summaries.items()):
            have = sum(1 for r in self.records if r.type == rtype)
            if have < announced:
                found.append(f"{have} {rtype} records where the summary announces {announced}")
        return found


def _parse_date(text: str) -> dt.date | None:
    text = text.strip()
    if not text or text.strip("0") == "":
        return None
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"date {text!r} is not YYYYMMDD")
    # Slicing is ~10x faster than strptime, which shows over hundreds of thousands of records.
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _parse_record(fields: list[str]) -> Delegation:
    registry, cc, rtype, start, value_text, date_text, status = (f.strip() for f in fields[:7])
    rtype = rtype.lower()
    if rtype not in RECORD_TYPES:
        raise ValueError(f"unknown record type {rtype!r}")
    value = int(value_text)
    if value <= 0:
        raise ValueError(f"value {value} is not positive")
    record = Delegation(
        registry=registry.lower(),
        cc=cc.upper(),
        type=rtype,
        start=start,
        value=value,
        date=_parse_date(date_text),
        status=status.lower(),
        opaque_id=fields[7].strip() if len(fields) > 7 else "",
        extensions=tuple(f.strip() for f in fields[8:]),
    )
    # Interpret now so a bad start or value is reported here, not at the first lookup.
    if rtype == "asn":
        first = int(start)
        if first < 0 or first + value - 1 > 0xFFFFFFFF:
            raise ValueError(f"AS range {start}+{value} is outside 0..4294967295")
    elif rtype == "ipv4":
        if _ipv4_int(start) + value - 1 > 0xFFFFFFFF:
            raise ValueError(f"{start} + {value} addresses runs past 255.255.255.255")
    else:
        if value > 128:
            raise ValueError(f"IPv6 prefix length {value} is over 128")
        if _ipv6_int(start) & ((1 << (128 - value)) - 1):
            raise ValueError(f"{start}/{value} has host bits set")
    return record


def _parse_header(fields: list[str]) -> DelegatedHeader:
    def date_or_none(text: str) -> dt.date | None:
        try:
            return _parse_date(text)
        except ValueError:
            return None

    padded = [f.strip() for f in fields] + [""] * (7 - len(fields))
    records = int(padded[3]) if padded[3].isdigit() else None
    return DelegatedHeader(
        version=padded[0],
        registry=padded[1].lower(),
        serial=padded[2],
        records=records,
        start_date=date_or_none(padded[4]),
        end_date=date_or_none(padded[5]),
        utc_offset=padded[6],
    )


def parse_delegated_lines(lines: Iterable[str], source: str = "<lines>") -> DelegatedFile:
    """Parse the lines of a delegated(-extended) file; unreadable lines become ``issues``, not exceptions."""
    parsed = DelegatedFile(source=source)
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("|")
        if parsed.header is None and not parsed.records and _VERSION_RE.match(fields[0].strip()):
            parsed.header = _parse_header(fields)
            continue
        if len(fields) >= 6 and fields[5].strip() == "summary":
            try:
                parsed.summaries[fields[2].strip().lower()] = int(fields[4])
            except ValueError:
                parsed.issues.append(_issue(source, lineno, f"unreadable summary line {line!r}"))
            continue
        if len(fields) < 7:
            parsed.issues.append(_issue(source, lineno, f"{len(fields)} fields where a record has 7 or more"))
            continue
        try:
            parsed.records.append(_parse_record(fields))
        except ValueError as exc:
            parsed.issues.append(_issue(source, lineno, f"{exc} in {line!r}"))
    return parsed


def parse_delegated_file(path: str | Path) -> DelegatedFile:
    """Parse one delegated(-extended) file (UTF-8; undecodable bytes are replaced, never fatal)."""
    path = Path(path)
    with path.open(encoding="utf-8", errors="replace") as f:
        return parse_delegated_lines(f, source=str(path))


def _issue(source: str, lineno: int, reason: str) -> SourceIssue:
    return SourceIssue(source=f"{source}:{lineno}", offset=None, severity="damaged", reason=reason)


@dataclass(frozen=True, slots=True)
class DelegatedFiles:
    """Which delegated files of a directory to read, and which were passed over.

    ``per_rir`` maps each RIR to its chosen file; ``combined`` is the NRO file, read only for the RIRs in
    ``from_combined`` (those without a file of their own); ``passed_over`` lists older copies.
    """

    per_rir: dict[str, Path]
    combined: Path | None
    from_combined: tuple[str, ...]
    passed_over: tuple[Path, ...]


def _header_end_date(path: Path) -> dt.date | None:
    with path.open(encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split("|")
            return _parse_header(fields).end_date if _VERSION_RE.match(fields[0].strip()) else None
    return None


def _recency(path: Path, name_date: str | None) -> tuple[dt.date, int, str]:
    """Sort key, newest last: the version line's end date (when the statistics run to), else the date in the
    file name; on a tie a ``-latest`` copy (what ``registry update`` refreshes) beats a dated one."""
    try:
        named = _parse_date(name_date) if name_date and name_date.isdigit() else None
    except ValueError:
        named = None
    when = _header_end_date(path) or named or dt.date.min
    return (when, 1 if name_date in (None, "latest") else 0, path.name)


def select_delegated_files(directory: str | Path) -> DelegatedFiles:
    """Choose the files to read in ``directory``.

    Rules: for each RIR, the newest of its ``delegated-<rir>-extended-{YYYYMMDD,latest}`` files (newest by
    the end date in the version line, then by the date in the name, ``-latest`` winning a tie). Per-RIR
    files are preferred to the NRO combined file (``delegated-extended[-YYYYMMDD|-latest]`` or
    ``nro-delegated-stats[...]``): they are each RIR's own publication and what ``registry update``
    downloads, whereas the combined file is derived and can lag. The newest combined file is read only
    for the RIRs that have no file of their own, so no RIR's records are ever counted twice.
    """
    directory = Path(directory)
    by_rir: dict[str, list[tuple[tuple[dt.date, int, str], Path]]] = {}
    combined: list[tuple[tuple[dt.date, int, str], Path]] = []
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if not path.is_file():
            continue
        if m := _RIR_FILE_RE.match(path.name):
            by_rir.setdefault(m.group(1), []).append((_recency(path, m.group(2)), path))
        elif m := _NRO_FILE_RE.match(path.name):
            combined.append((_recency(path, m.group(1)), path))
    passed_over: list[Path] = []
    per_rir: dict[str, Path] = {}
    for rir, candidates in sorted(by_rir.items()):
        candidates.sort()
        per_rir[rir] = candidates[-1][1]
        passed_over.extend(p for _, p in candidates[:-1])
    combined.sort()
    chosen_combined = combined[-1][1] if combined else None
    passed_over.extend(p for _, p in combined[:-1])
    from_combined = tuple(r for r in RIRS if r not in per_rir) if chosen_combined else ()
    if chosen_combined is not None and not from_combined:
        passed_over.append(chosen_combined)
        chosen_combined = None
    return DelegatedFiles(per_rir, chosen_combined, from_combined, tuple(sorted(passed_over)))


@dataclass(slots=True)
class LoadedDelegations:
    """Delegations read from a directory (file by file, RIRs in name order), the files read, the issues."""

    delegations: list[Delegation]
    files: list[Path]
    issues: list[SourceIssue]


def load_delegations(directory: str | Path, chosen: DelegatedFiles | None = None) -> LoadedDelegations:
    """Read the delegated records of a directory: the files ``chosen``, by default as
    :func:`select_delegated_files` chooses them."""
    if chosen is None:
        chosen = select_delegated_files(directory)
    out = LoadedDelegations([], [], [])
    for _rir, path in sorted(chosen.per_rir.items()):
        parsed = parse_delegated_file(path)
        out.delegations.extend(parsed.delegations)
        out.files.append(path)
        out.issues.extend(parsed.issues)
    if chosen.combined is not None:
        parsed = parse_delegated_file(chosen.combined)
        wanted = set(chosen.from_combined)
        out.delegations.extend(d for d in parsed.delegations if d.registry in wanted)
        out.files.append(chosen.combined)
        out.issues.extend(parsed.issues)
    return out
