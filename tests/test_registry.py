"""The registry package: delegated-extended and asn.txt parsing, lookups, the download and the CLI.

Downloads run against a real HTTP server on 127.0.0.1 serving copies of ../shared/registry.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import REGISTRY
from transitwatch.registry import (
    Registry,
    RegistryNotFoundError,
    default_cache_dir,
    default_registry_dir,
)
from transitwatch.registry.cli import registry as registry_cli
from transitwatch.registry.delegations import (
    ipv4_blocks,
    parse_delegated_lines,
    select_delegated_files,
)
from transitwatch.registry.download import STATE_FILE, registry_urls, update_registry
from transitwatch.registry.names import parse_as_name_line, parse_as_names_file

NET = ipaddress.ip_network


def write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# A synthetic RIR file: comments, a version line, summaries, every status, ASN ranges, odd IPv4 sizes.
SYNTHETIC = """\
# a comment line
#  and another
2.3|ripencc|20240101|12|19830705|20231231|+0100
ripencc|*|asn|*|4|summary
ripencc|*|ipv4|*|6|summary
ripencc|*|ipv6|*|2|summary
ripencc|NL|asn|64496|4|20200102|allocated|org-a
ripencc|DE|asn|64500|1|00000000|assigned|org-b
ripencc||asn|64501|10||available|
ripencc|ZZ|asn|64511|1|20200101|reserved|
ripencc|NL|ipv4|10.0.0.0|768|20200103|allocated|org-a
ripencc|DE|ipv4|10.1.1.0|512|20200104|assigned|org-b|e-stats-ext|second-ext
ripencc|FR|ipv4|10.2.0.0|65536|20200105|allocated|org-c
ripencc|FR|ipv4|10.2.3.0|256|20200106|assigned|org-d
ripencc||ipv4|10.3.0.0|1024||available|
ripencc|ZZ|ipv4|10.4.0.0|256|20200101|reserved|
ripencc|NL|ipv6|2001:db8::|32|20200107|allocated|org-a
ripencc||ipv6|2001:db9::|32||available|
"""


# --- delegated files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "count", "blocks"),
    [
        ("10.0.0.0", 768, ["10.0.0.0/23", "10.0.2.0/24"]),
        ("10.0.1.0", 512, ["10.0.1.0/24", "10.0.2.0/24"]),
        ("10.0.0.0", 1024, ["10.0.0.0/22"]),
        ("192.0.2.7", 1, ["192.0.2.7/32"]),
        ("10.0.0.0", 1280, ["10.0.0.0/22", "10.0.4.0/24"]),
        ("255.255.255.0", 256, ["255.255.255.0/24"]),
    ],
)
def test_ipv4_host_counts_split_into_exact_cidr_blocks(start: str, count: int, blocks: list[str]) -> None:
    got = ipv4_blocks(start, count)
    assert [str(n) for n in got] == blocks
    assert sum(n.num_addresses for n in got) == count


def test_ipv4_count_past_the_end_of_the_space_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"past 255\.255\.255\.255"):
        ipv4_blocks("255.255.255.0", 512)


def test_synthetic_file_skips_comments_version_and_summaries_and_reads_every_record() -> None:
    parsed = parse_delegated_lines(SYNTHETIC.splitlines(), source="synthetic")
    assert parsed.header is not None
    assert (parsed.header.version, parsed.header.registry, parsed.header.records) == ("2.3", "ripencc", 12)
    assert parsed.header.end_date == dt.date(2023, 12, 31)
    assert parsed.summaries == {"asn": 4, "ipv4": 6, "ipv6": 2}
    assert len(parsed.records) == 12
    assert parsed.issues == []
    assert parsed.problems() == []
    statuses = sorted({r.status for r in parsed.records})
    assert statuses == ["allocated", "assigned", "available", "reserved"]
    assert [r.describe() for r in parsed.delegations] == [
        "AS64496-AS64499",
        "AS64500",
        "10.0.0.0+768",
        "10.1.1.0+512",
        "10.2.0.0/16",
        "10.2.3.0/24",
        "2001:db8::/32",
    ]
    de_block = parsed.delegations[3]
    assert de_block.opaque_id == "org-b"
    assert de_block.extensions == ("e-stats-ext", "second-ext")
    assert de_block.date == dt.date(2020, 1, 4)
    assert parsed.delegations[1].date is None  # 00000000


def test_unreadable_lines_are_reported_with_their_line_numbers() -> None:
    lines = [
        "2|arin|20240101|3|19700101|20231231|-0500",
        "arin|US|asn|64496|1|20200101|assigned|x",
        "arin|US|ipv4|10.0.0.0|notanumber|20200101|assigned|x",
        "arin|US|ipv4|255.255.255.0|512|20200101|assigned|x",
        "arin|US|ipv6|2001:db8::1|32|20200101|assigned|x",
        "arin|US|asn|64497",
        "arin|US|route|10.0.0.0|1|20200101|assigned|x",
        "arin|US|asn|64498|1|2020-01-01|assigned|x",
    ]
    parsed = parse_delegated_lines(lines, source="bad")
    assert [r.start for r in parsed.records] == ["64496"]
    assert [i.source for i in parsed.issues] == [f"bad:{n}" for n in (3, 4, 5, 6, 7, 8)]
    assert all(i.severity == "damaged" for i in parsed.issues)
    assert "unknown record type 'route'" in parsed.issues[4].reason


def test_problems_spot_a_missing_version_line_and_a_truncated_file() -> None:
    no_header = parse_delegated_lines(["apnic|KP|asn|131279|1|20100122|assigned|x"])
    assert no_header.problems() == ["no version line"]
    html = parse_delegated_lines(["<html><body>Service unavailable</body></html>"])
    assert "no version line" in html.problems() and "no records" in html.problems()
    truncated = parse_delegated_lines(SYNTHETIC.splitlines()[:-4])
    assert truncated.problems() == [
        "8 records where the version line announces 12",
        "4 ipv4 records where the summary announces 6",
        "0 ipv6 records where the summary announces 2",
    ]


def test_registry_counts_only_allocated_and_assigned_records(tmp_path: Path) -> None:
    write(tmp_path, "delegated-ripencc-extended-20240101", SYNTHETIC)
    reg = Registry.load(tmp_path)
    assert reg.country_asns("NL") == {64496, 64497, 64498, 64499}
    assert reg.country_asns("DE") == {64500}
    assert reg.asn_delegation(64505) is None  # available
    assert reg.asn_delegation(64511) is None  # reserved
    assert reg.prefix_delegation("10.3.0.0/24") is None  # available
    assert reg.prefix_delegation("10.4.0.1") is None  # reserved
    assert reg.countries() == ["DE", "FR", "NL"]
    assert reg.country_prefixes("NL") == [NET("10.0.0.0/23"), NET("10.0.2.0/24"), NET("2001:db8::/32")]
    assert reg.country_prefixes("de") == [NET("10.1.1.0/24"), NET("10.1.2.0/24")]


def test_asn_ranges_answer_for_every_member() -> None:
    parsed = parse_delegated_lines(SYNTHETIC.splitlines())
    reg = Registry(parsed.records)
    for asn in (64496, 64497, 64499):
        d = reg.asn_delegation(asn)
        assert d is not None and d.start == "64496" and d.cc == "NL"
        assert reg.as_country(asn) == "NL"
    assert reg.asn_delegation(64495) is None
    assert reg.as_country(64501) is None


def test_prefix_delegation_is_the_longest_match() -> None:
    reg = Registry(parse_delegated_lines(SYNTHETIC.splitlines()).records)
    inner = reg.prefix_delegation("10.2.3.128/25")
    outer = reg.prefix_delegation(ipaddress.ip_address("10.2.4.1"))
    assert inner is not None and (inner.cc, inner.start, inner.status) == ("FR", "10.2.3.0", "assigned")
    assert outer is not None and (outer.start, outer.status) == ("10.2.0.0", "allocated")
    # The second block of a non-aligned record answers with that record.
    second = reg.prefix_delegation("10.0.2.0/24")
    assert second is not None and (second.start, second.value) == ("10.0.0.0", 768)
    v6 = reg.prefix_delegation("2001:db8:ffff::/48")
    assert v6 is not None and v6.cc == "NL"
    assert reg.prefix_delegation("10.2.0.0/15") is None  # wider than any delegated block
    assert reg.prefix_delegation("192.0.2.0/24") is None


# --- the shared registry excerpts -----------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_registry() -> Registry:
    return Registry.load(REGISTRY)


def test_shared_registry_north_korea(shared_registry: Registry) -> None:
    assert 131279 in shared_registry.country_asns("KP")
    assert shared_registry.country_asns("KP") == {131279}
    assert NET("175.45.176.0/22") in shared_registry.country_prefixes("KP")
    assert shared_registry.as_name(131279) == "STAR-KP"
    assert shared_registry.as_description(131279) == "STAR-KP Ryugyong-dong"
    d = shared_registry.prefix_delegation("175.45.177.0/24")
    assert d is not None
    assert (d.registry, d.cc, d.status, d.date) == ("apnic", "KP", "assigned", dt.date(2010, 1, 22))


def test_shared_registry_names_and_countries(shared_registry: Registry) -> None:
    assert shared_registry.as_name(4837) == "CHINA169-BACKBONE"
    assert shared_registry.as_description(4837) == "CHINA169-BACKBONE CHINA UNICOM China169 Backbone"
    assert shared_registry.as_country(4837) == "CN"
    assert shared_registry.as_name(20485) == "TRANSTELECOM"
    assert shared_registry.as_country(20485) == "RU"
    assert shared_registry.as_name(64512) is None
    assert shared_registry.as_country(64512) is None
    # Named in asn.txt but absent from the delegated excerpts: the country still comes from asn.txt.
    assert shared_registry.asn_delegation(22351) is None
    assert shared_registry.as_country(22351) == "US"
    assert 22351 in shared_registry.country_asns("US")
    cn = shared_registry.country_prefixes("CN")
    assert cn == sorted(cn, key=lambda n: (n.version, int(n.network_address), n.prefixlen))
    assert cn[-1] == NET("2408:8000::/22")
    assert [p.name for p in shared_registry.sources] == [
        "delegated-apnic-extended-20171001",
        "delegated-arin-extended-20171001",
        "delegated-ripencc-extended-20171001",
        "asn.txt",
    ]
    assert shared_registry.issues == ()


# --- choosing files -------------------------------------------------------------------------------


def test_newest_dated_file_of_an_rir_is_used(tmp_path: Path) -> None:
    write(
        tmp_path,
        "delegated-apnic-extended-20170101",
        "2.3|apnic|20170101|1|19830613|20161231|+1000\napnic|JP|asn|64496|1|20100101|assigned|old\n",
    )
    write(
        tmp_path,
        "delegated-apnic-extended-20171001",
        "2.3|apnic|20171001|1|19830613|20170930|+1000\napnic|KR|asn|64496|1|20100101|assigned|new\n",
    )
    chosen = select_delegated_files(tmp_path)
    assert chosen.per_rir["apnic"].name == "delegated-apnic-extended-20171001"
    assert [p.name for p in chosen.passed_over] == ["delegated-apnic-extended-20170101"]
    reg = Registry.load(tmp_path)
    assert reg.as_country(64496) == "KR"
    assert reg.country_asns("JP") == set()


NRO_COMBINED = """\
2.3|nro|20240101|6|19830101|20231231|+0000
nro|*|asn|*|3|summary
nro|*|ipv4|*|3|summary
apnic|KP|asn|131279|1|20100122|assigned|A
arin|US|asn|64496|2|20200101|assigned|B
ripencc|RU|asn|20485|1|20010516|allocated|C
apnic|KP|ipv4|175.45.176.0|1024|20100122|assigned|A
arin|US|ipv4|192.0.2.0|256|20200101|assigned|B
iana|ZZ|ipv4|10.0.0.0|16777216|19940301|reserved|
"""


def test_nro_combined_file_alone_gives_every_registry(tmp_path: Path) -> None:
    write(tmp_path, "delegated-extended-latest", NRO_COMBINED)
    reg = Registry.load(tmp_path)
    assert reg.country_asns("US") == {64496, 64497}
    assert reg.country_prefixes("KP") == [NET("175.45.176.0/22")]
    d = reg.asn_delegation(20485)
    assert d is not None and d.registry == "ripencc"
    assert reg.prefix_delegation("10.1.0.0/16") is None


def test_per_rir_files_are_preferred_to_the_nro_combined_file(tmp_path: Path) -> None:
    write(tmp_path, "nro-delegated-stats", NRO_COMBINED)
    # APNIC's own file says something different from the combined one; it must win, and the combined
    # file's APNIC rows must not be added on top.
    write(
        tmp_path,
        "delegated-apnic-extended-latest",
        "2.3|apnic|20240101|1|19830613|20231231|+1000\napnic|JP|asn|64999|1|20100101|assigned|own\n",
    )
    chosen = select_delegated_files(tmp_path)
    assert chosen.combined is not None and chosen.combined.name == "nro-delegated-stats"
    assert "apnic" not in chosen.from_combined and "arin" in chosen.from_combined
    reg = Registry.load(tmp_path)
    assert reg.country_asns("KP") == set()
    assert reg.country_prefixes("KP") == []
    assert reg.country_asns("JP") == {64999}
    assert reg.country_asns("US") == {64496, 64497}  # ARIN still from the combined file


def test_combined_file_is_passed_over_when_every_rir_has_its_own(tmp_path: Path) -> None:
    write(tmp_path, "delegated-extended", NRO_COMBINED)
    for rir in ("afrinic", "apnic", "arin", "lacnic", "ripencc"):
        write(
            tmp_path,
            f"delegated-{rir}-extended-latest",
            f"2.3|{rir}|20240101|1|19830613|20231231|+0000\n{rir}|MU|asn|{64500}|1|20100101|assigned|x\n",
        )
    chosen = select_delegated_files(tmp_path)
    assert chosen.combined is None
    assert [p.name for p in chosen.passed_over] == ["delegated-extended"]


# --- asn.txt --------------------------------------------------------------------------------------


def test_asn_txt_odd_lines(tmp_path: Path) -> None:
    raw = (
        b"131279 STAR-KP Ryugyong-dong, KP\r\n"
        b"64496   ODD-SPACING\t  Example,  Inc.,   us  \n"
        b"64497 BROKEN-\xff\xfeBYTES caf\xc3\xa9, FR\n"
        b"64498 NO-COUNTRY-HERE\n"
        b"64499 -Reserved AS-, ZZ\n"
        b"\n"
        b"not a line at all\n"
        b"64500 TRAILING, Ltd, Holdings\n"
    )
    names = parse_as_names_file(write(tmp_path, "asn.txt", raw))
    by = names.by_asn
    assert (by[131279].name, by[131279].description, by[131279].country) == (
        "STAR-KP",
        "STAR-KP Ryugyong-dong",
        "KP",
    )
    assert (by[64496].name, by[64496].description, by[64496].country) == (
        "ODD-SPACING",
        "ODD-SPACING Example, Inc.",
        "US",
    )
    assert by[64497].country == "FR" and "\ufffd" in by[64497].name and by[64497].description.endswith("café")
    assert (by[64498].description, by[64498].country) == ("NO-COUNTRY-HERE", None)
    assert by[64499].country == "ZZ"
    assert by[64500].country is None and by[64500].description == "TRAILING, Ltd, Holdings"
    assert [i.source for i in names.issues] == [f"{tmp_path / 'asn.txt'}:7"]
    assert parse_as_name_line("AS64501 WITH-PREFIX, DE") is not None


def test_as_country_falls_back_to_the_delegation_when_asn_txt_has_none(tmp_path: Path) -> None:
    write(tmp_path, "asn.txt", "64496 ONLY-NAME\n64500 UNKNOWN-CC, ZZ\n64497 NAMED, SE\n")
    write(
        tmp_path,
        "delegated-ripencc-extended-latest",
        "2|ripencc|1|3|19830705|20231231|+0100\n"
        "ripencc|NL|asn|64496|1|20200101|allocated|a\n"
        "ripencc|DE|asn|64500|1|20200101|allocated|b\n"
        "ripencc|NO|asn|64497|1|20200101|allocated|c\n",
    )
    reg = Registry.load(tmp_path)
    assert reg.as_country(64496) == "NL"
    assert reg.as_country(64500) == "DE"
    assert reg.as_country(64497) == "SE"  # asn.txt wins where both give a country
    assert reg.country_asns("SE") == {64497} and reg.country_asns("NO") == set()


# --- default locations ----------------------------------------------------------------------------


def test_default_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRANSITWATCH_CACHE", str(tmp_path / "tw"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "tw"
    assert default_registry_dir() == tmp_path / "tw" / "registry"
    monkeypatch.delenv("TRANSITWATCH_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "transitwatch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "transitwatch"


def test_load_default_without_data_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRANSITWATCH_CACHE", str(tmp_path))
    with pytest.raises(RegistryNotFoundError, match=r"transitwatch registry update.*--registry DIR"):
        Registry.load_default(None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryNotFoundError, match="transitwatch registry update"):
        Registry.load_default(str(tmp_path / "empty"))
    assert Registry.load_default(str(REGISTRY)).as_name(4837) == "CHINA169-BACKBONE"


# --- download -------------------------------------------------------------------------------------


def _minimal_rir_file(rir: str, cc: str, asn: int) -> bytes:
    return (
        f"2.3|{rir}|20171001|1|19830101|20170930|+0000\n{rir}|{cc}|asn|{asn}|1|20100101|assigned|x\n".encode()
    )


def _official_copies() -> dict[str, bytes]:
    """What the mirror serves under each official file name: the shared excerpts, and small files for the
    two RIRs the excerpts lack."""
    return {
        "delegated-afrinic-extended-latest": _minimal_rir_file("afrinic", "MU", 37000),
        "delegated-apnic-extended-latest": (REGISTRY / "delegated-apnic-extended-20171001").read_bytes(),
        "delegated-arin-extended-latest": (REGISTRY / "delegated-arin-extended-20171001").read_bytes(),
        "delegated-lacnic-extended-latest": _minimal_rir_file("lacnic", "BR", 28000),
        "delegated-ripencc-extended-latest": (REGISTRY / "delegated-ripencc-extended-20171001").read_bytes(),
        "asn.txt": (REGISTRY / "asn.txt").read_bytes(),
    }


@dataclass
class Mirror:
    """A file server with the behaviours a download must survive; ``script`` answers first, in order:
    an HTTP status, or ``"cut"`` (announce the full length, send half, close)."""

    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)  # bumped on change: the ETag
    send_etag: bool = True
    script: dict[str, list[int | str]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    modified = email.utils.format_datetime(dt.datetime(2017, 10, 1, tzinfo=dt.UTC), usegmt=True)

    def change(self, name: str, body: bytes) -> None:
        self.files[name] = body
        self.versions[name] = self.versions.get(name, 0) + 1

    def requests_for(self, name: str) -> list[dict[str, str]]:
        return [h for path, h in self.requests if path == name]


def _handler(mirror: Mirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            mirror.requests.append((name, {k.lower(): v for k, v in self.headers.items()}))
            if mirror.script.get(name):
                action = mirror.script[name].pop(0)
                if action == "cut":
                    body = mirror.files[name]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                assert isinstance(action, int)
                self._reply(action, b"scripted failure")
                return
            if name not in mirror.files:
                self._reply(404, b"not found")
                return
            etag = f'"{name}-v{mirror.versions.get(name, 0)}"'
            modified = mirror.modified if mirror.versions.get(name, 0) == 0 else None
            if mirror.send_etag and self.headers.get("If-None-Match") == etag:
                self._reply(304)
                return
            if not mirror.send_etag and modified and self.headers.get("If-Modified-Since") == modified:
                self._reply(304)
                return
            headers = {"ETag": etag} if mirror.send_etag else {}
            if modified:
                headers["Last-Modified"] = modified
            self._reply(200, mirror.files[name], headers)

    return Handler


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    state = Mirror(files=_official_copies())
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    # A short poll interval so shutdown() at teardown returns at once rather than in 0.5 s.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    # No proxies from the environment: the server is local.
    with httpx.Client(trust_env=False, timeout=10.0) as c:
        yield c


def _leftovers(registry_dir: Path) -> list[str]:
    return sorted(p.name for p in registry_dir.iterdir() if p.name.endswith(".part"))


def test_registry_urls_table() -> None:
    official = registry_urls()
    assert official["delegated-ripencc-extended-latest"] == (
        "https://ftp.ripe.net/pub/stats/ripencc/delegated-ripencc-extended-latest"
    )
    assert official["asn.txt"] == "https://ftp.ripe.net/ripe/asnames/asn.txt"
    assert len(official) == 6
    mirrored = registry_urls("http://mirror.example/reg/")
    assert mirrored["asn.txt"] == "http://mirror.example/reg/asn.txt"
    assert set(mirrored) == set(official)
    with pytest.raises(ValueError, match="plain file name"):
        registry_urls({"../escape": "http://x/y"})


def test_update_downloads_every_file(mirror: Mirror, client: httpx.Client, tmp_path: Path) -> None:
    report = update_registry(tmp_path, mirror.base_url, client)
    assert report.ok
    assert [(f.name, f.status) for f in report.files] == [(n, "updated") for n in _official_copies()]
    reg_dir = tmp_path / "registry"
    assert report.registry_dir == reg_dir
    for name, body in _official_copies().items():
        assert (reg_dir / name).read_bytes() == body
    assert sorted(p.name for p in reg_dir.iterdir()) == sorted([*_official_copies(), STATE_FILE])
    # Last-Modified becomes the file's mtime.
    assert (reg_dir / "asn.txt").stat().st_mtime == dt.datetime(2017, 10, 1, tzinfo=dt.UTC).timestamp()
    reg = Registry.load(reg_dir)
    assert reg.country_asns("KP") == {131279}
    assert reg.country_asns("BR") == {28000}
    assert reg.as_name(20485) == "TRANSTELECOM"


def test_second_update_is_conditional_and_304_keeps_the_files(
    mirror: Mirror, client: httpx.Client, tmp_path: Path
) -> None:
    update_registry(tmp_path, mirror.base_url, client)
    target = tmp_path / "registry" / "delegated-apnic-extended-latest"
    before = target.stat()
    mirror.requests.clear()
    report = update_registry(tmp_path, mirror.base_url, client)
    assert report.ok
    assert {f.status for f in report.files} == {"unchanged"}
    sent = mirror.requests_for("delegated-apnic-extended-latest")
    assert sent and sent[0]["if-none-match"] == '"delegated-apnic-extended-latest-v0"'
    assert "if-modified-since" in sent[0]
    after = target.stat()
    assert (after.st_ino, after.st_mtime) == (before.st_ino, before.st_mtime)


def test_if_modified_since_alone_gets_a_304(mirror: Mirror, client: httpx.Client, tmp_path: Path) -> None:
    mirror.send_etag = False
    update_registry(tmp_path, mirror.base_url, client)
    mirror.requests.clear()
    report = update_registry(tmp_path, mirror.base_url, client)
    assert {f.status for f in report.files} == {"unchanged"}
    sent = mirror.requests_for("asn.txt")[0]
    assert "if-none-match" not in sent
    assert sent["if-modified-since"] == mirror.modified


def test_changed_file_is_renamed_into_place(mirror: Mirror, client: httpx.Client, tmp_path: Path) -> None:
    update_registry(tmp_path, mirror.base_url, client)
    target = tmp_path / "registry" / "delegated-lacnic-extended-latest"
    old_inode = target.stat().st_ino
    mirror.change("delegated-lacnic-extended-latest", _minimal_rir_file("lacnic", "AR", 28001))
    report = update_registry(tmp_path, mirror.base_url, client)
    statuses = {f.name: f.status for f in report.files}
    assert statuses.pop("delegated-lacnic-extended-latest") == "updated"
    assert set(statuses.values()) == {"unchanged"}
    assert target.read_bytes() == _minimal_rir_file("lacnic", "AR", 28001)
    # A new inode: the file was written elsewhere and renamed over, never rewritten in place.
    assert target.stat().st_ino != old_inode
    assert _leftovers(target.parent) == []


def test_same_bytes_under_a_new_etag_count_as_unchanged(
    mirror: Mirror, client: httpx.Client, tmp_path: Path
) -> None:
    update_registry(tmp_path, mirror.base_url, client)
    mirror.change("asn.txt", mirror.files["asn.txt"])
    report = update_registry(tmp_path, mirror.base_url, client)
    assert {f.name: f.status for f in report.files}["asn.txt"] == "unchanged"
    assert len(mirror.requests_for("asn.txt")) == 2


def test_failing_url_keeps_the_old_file_and_is_reported(
    mirror: Mirror, client: httpx.Client, tmp_path: Path
) -> None:
    update_registry(tmp_path, mirror.base_url, client)
    target = tmp_path / "registry" / "delegated-arin-extended-latest"
    old = target.read_bytes()
    del mirror.files["delegated-arin-extended-latest"]
    waits: list[float] = []
    report = update_registry(tmp_path, mirror.base_url, client, sleep=waits.append)
    failed = [f for f in report.files if f.status == "failed"]
    assert [(f.name, f.reason, f.attempts) for f in failed] == [
        ("delegated-arin-extended-latest", "HTTP 404 Not Found", 1)
    ]
    assert waits == []  # a 404 is not transient: no retry
    assert not report.ok
    assert target.read_bytes() == old
    assert Registry.load(target.parent).as_country(3356) == "US"


def test_first_download_that_fails_leaves_no_file(
    mirror: Mirror, client: httpx.Client, tmp_path: Path
) -> None:
    del mirror.files["asn.txt"]
    report = update_registry(tmp_path, mirror.base_url, client)
    assert {f.name: f.status for f in report.files}["asn.txt"] == "failed"
    assert not (tmp_path / "registry" / "asn.txt").exists()
    assert _leftovers(tmp_path / "registry") == []


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        (
            "delegated-ripencc-extended-latest",
            b"<html><body>502 Bad Gateway</body></html>\n",
            "no version line",
        ),
        (
            "delegated-apnic-extended-latest",
            b"".join((REGISTRY / "delegated-apnic-extended-20171001").read_bytes().splitlines(True)[:-3]),
            "6 records where the version line announces 9",
        ),
        ("asn.txt", b"<html>\n<body>\nMaintenance\n</body>\n</html>\n", "no 'ASN NAME, CC' lines"),
    ],
)
def test_corrupt_download_is_rejected_and_the_old_file_kept(
    mirror: Mirror, client: httpx.Client, tmp_path: Path, name: str, body: bytes, reason: str
) -> None:
    update_registry(tmp_path, mirror.base_url, client)
    target = tmp_path / "registry" / name
    old = target.read_bytes()
    mirror.change(name, body)
    report = update_registry(tmp_path, mirror.base_url, client)
    result = {f.name: f for f in report.files}[name]
    assert result.status == "failed"
    assert result.reason is not None and result.reason.startswith("rejected download:")
    assert reason in result.reason
    assert target.read_bytes() == old
    assert _leftovers(target.parent) == []
    # The rejected copy's ETag is not remembered: the next try still asks relative to the kept file.
    mirror.requests.clear()
    again = update_registry(tmp_path, mirror.base_url, client)
    assert {f.name: f.status for f in again.files}[name] == "failed"
    assert mirror.requests_for(name)[0]["if-none-match"] == f'"{name}-v0"'


def test_transient_errors_are_retried_with_backoff(
    mirror: Mirror, client: httpx.Client, tmp_path: Path
) -> None:
    mirror.script["delegated-apnic-extended-latest"] = [503, 502]
    waits: list[float] = []
    report = update_registry(tmp_path, mirror.base_url, client, backoff=0.5, sleep=waits.append)
    result = {f.name: f for f in report.files}["delegated-apnic-extended-latest"]
    assert (result.status, result.attempts) == ("updated", 3)
    assert waits == [0.5, 1.0]


def test_connection_cut_mid_body_never_reaches_the_real_name(
    mirror: Mirror, client: httpx.Client, tmp_path: Path
) -> None:
    update_registry(tmp_path, mirror.base_url, client)
    target = tmp_path / "registry" / "delegated-ripencc-extended-latest"
    old = target.read_bytes()
    mirror.change("delegated-ripencc-extended-latest", old + b"ripencc|NL|asn|64496|1|20200101|allocated|z\n")
    mirror.script["delegated-ripencc-extended-latest"] = ["cut", "cut", "cut"]
    waits: list[float] = []
    report = update_registry(tmp_path, mirror.base_url, client, attempts=3, sleep=waits.append)
    result = {f.name: f for f in report.files}["delegated-ripencc-extended-latest"]
    assert result.status == "failed" and result.attempts == 3
    assert result.reason is not None and "RemoteProtocolError" in result.reason
    assert waits == [1.0, 2.0]
    assert target.read_bytes() == old
    assert _leftovers(target.parent) == []


# --- command line ---------------------------------------------------------------------------------


def test_cli_update_reports_each_file(mirror: Mirror, tmp_path: Path) -> None:
    runner = CliRunner()
    # The command makes its own client, which honours proxy variables: keep them away from 127.0.0.1.
    env: dict[str, str | None] = {
        name: None for base in ("http_proxy", "https_proxy", "all_proxy") for name in (base, base.upper())
    }
    result = runner.invoke(
        registry_cli, ["update", "--cache", str(tmp_path), "--base-url", mirror.base_url], env=env
    )
    assert result.exit_code == 0, result.output
    assert "delegated-apnic-extended-latest" in result.output
    assert result.output.count("updated") == 6
    del mirror.files["delegated-afrinic-extended-latest"]
    result = runner.invoke(
        registry_cli, ["update", "--cache", str(tmp_path), "--base-url", mirror.base_url, "--json"], env=env
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    statuses = {f["name"]: (f["status"], f["reason"]) for f in report["files"]}
    assert statuses["delegated-afrinic-extended-latest"] == ("failed", "HTTP 404 Not Found")
    assert statuses["asn.txt"] == ("unchanged", None)


def test_cli_show_country() -> None:
    result = CliRunner().invoke(registry_cli, ["show", "KP", "--registry", str(REGISTRY)])
    assert result.exit_code == 0, result.output
    assert "AS131279" in result.output and "STAR-KP" in result.output
    assert "175.45.176.0/22" in result.output and "assigned" in result.output


def test_cli_show_asn_and_json() -> None:
    runner = CliRunner()
    text = runner.invoke(registry_cli, ["show", "AS4837", "--registry", str(REGISTRY)])
    assert text.exit_code == 0, text.output
    assert "CHINA169-BACKBONE" in text.output and "CN" in text.output and "1997-03-14" in text.output
    as_json = runner.invoke(registry_cli, ["show", "as20485", "--registry", str(REGISTRY), "--json"])
    info = json.loads(as_json.stdout)
    assert info["name"] == "TRANSTELECOM" and info["country"] == "RU"
    assert info["delegation"]["registry"] == "ripencc" and info["delegation"]["status"] == "allocated"
    country = json.loads(
        runner.invoke(registry_cli, ["show", "kp", "--registry", str(REGISTRY), "--json"]).stdout
    )
    assert [a["asn"] for a in country["asns"]] == [131279]
    assert [p["prefix"] for p in country["prefixes"]] == ["175.45.176.0/22"]


def test_cli_show_country_with_split_blocks_and_ranges(tmp_path: Path) -> None:
    write(tmp_path, "delegated-ripencc-extended-20240101", SYNTHETIC)
    result = CliRunner().invoke(registry_cli, ["show", "NL", "--registry", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "NL: AS numbers: 4; prefixes: 2 IPv4 (768 addresses), 1 IPv6"
    rows = [line.split() for line in lines if line.startswith(("AS6", "10.", "2001:"))]
    assert [r[0] for r in rows] == [
        "AS64496",
        "AS64497",
        "AS64498",
        "AS64499",
        "10.0.0.0/23",
        "10.0.2.0/24",
        "2001:db8::/32",
    ]
    assert rows[5][1:] == ["ripencc", "allocated", "2020-01-03", "10.0.0.0+768"]


def test_cli_show_prefix_and_bad_query() -> None:
    runner = CliRunner()
    result = runner.invoke(registry_cli, ["show", "175.45.177.9", "--registry", str(REGISTRY), "--json"])
    assert json.loads(result.stdout)["delegation"]["country"] == "KP"
    text = runner.invoke(registry_cli, ["show", "2408:8000:1::/48", "--registry", str(REGISTRY)])
    assert text.stdout == "2408:8000:1::/48: 2408:8000::/22 apnic CN allocated 2009-08-13\n"
    bad = runner.invoke(registry_cli, ["show", "KPX", "--registry", str(REGISTRY)])
    assert bad.exit_code == 2 and "not an AS number" in bad.output


def test_cli_show_without_data_points_to_update(tmp_path: Path) -> None:
    result = CliRunner().invoke(registry_cli, ["show", "KP"], env={"TRANSITWATCH_CACHE": str(tmp_path)})
    assert result.exit_code == 1
    assert "transitwatch registry update" in result.output
