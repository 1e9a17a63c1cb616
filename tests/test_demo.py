"""`transitwatch demo`: builds the kp-2017 replay offline and writes the four reports."""

from __future__ import annotations

import base64
import json
import struct
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from transitwatch.commands.demo import demo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPORTS = ["report.html", "report.json", "report.png", "report.txt"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    out = tmp_path_factory.mktemp("demo") / "out"
    result = CliRunner().invoke(demo, ["--output", str(out)])
    assert result.exit_code == 0, result.output
    return out, result


def test_writes_the_four_reports_and_keeps_the_archive(demo_run: tuple[Path, Result]) -> None:
    out, result = demo_run
    assert sorted(p.name for p in out.glob("report.*")) == REPORTS
    assert all((out / name).stat().st_size > 0 for name in REPORTS)
    assert (out / "report.txt").read_text(encoding="utf-8") == result.stdout
    for name in REPORTS:
        assert f"wrote {out / name}" in result.stderr
    assert "TransTeleCom" in result.stderr.splitlines()[0]  # one line saying what the demo shows
    # the replay is kept for further commands, and the hint names it
    assert (out / "archive" / "rrc00").is_dir() and (out / "registry" / "asn.txt").is_file()
    assert f"--archive {out / 'archive'}" in result.stderr


def test_json_names_both_upstreams(demo_run: tuple[Path, Result]) -> None:
    out, _ = demo_run
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    rows = {u["asn"]: u for u in data["upstreams"]}
    assert rows[20485]["name"] == "TRANSTELECOM"
    assert rows[4837]["name"] == "CHINA169-BACKBONE"
    assert rows[20485]["first_seen"] == "2017-10-01T09:07:51Z"
    assert data["target"]["asns"] == [131279]
    assert data["window"] == {"from": "2017-10-01T08:00:00Z", "to": "2017-10-02T12:00:00Z"}
    assert [o["severity"] for o in data["outages"]] == ["total"] * 4


def test_table_on_stdout(demo_run: tuple[Path, Result]) -> None:
    _, result = demo_run
    lines = result.stdout.splitlines()
    row = next(ln for ln in lines if ln.startswith("AS20485"))
    assert "TRANSTELECOM" in row and "2017-10-01T09:07:51Z" in row
    assert any(ln.startswith("AS4837") and "CHINA169-BACKBONE" in ln for ln in lines)


def test_png_is_a_png(demo_run: tuple[Path, Result]) -> None:
    out, _ = demo_run
    data = (out / "report.png").read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack("!II", data[16:24])
    assert width > 600 and height > 300


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data") and value is not None:
                self.refs.append((tag, name, value))

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def test_html_embeds_the_chart_and_references_nothing_outside(demo_run: tuple[Path, Result]) -> None:
    out, _ = demo_run
    page = _References()
    page.feed((out / "report.html").read_text(encoding="utf-8"))
    images = [v for tag, name, v in page.refs if tag == "img" and name == "src"]
    assert len(images) == 1
    head, _, payload = images[0].partition(",")
    assert head == "data:image/png;base64"
    assert base64.b64decode(payload) == (out / "report.png").read_bytes()
    external = [v for _tag, _name, v in page.refs if "http://" in v or "https://" in v or v.startswith("//")]
    assert external == []
    assert not any("url(" in css for css in page.styles)


def test_no_keep_archive_leaves_only_the_reports(tmp_path: Path) -> None:
    result = CliRunner().invoke(demo, ["--output", str(tmp_path), "--no-keep-archive"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == REPORTS
    data: dict[str, Any] = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert {u["asn"] for u in data["upstreams"]} == {4837, 20485}


def test_refuses_to_replace_an_archive_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "archive" / "rrc00"
    mine.mkdir(parents=True)
    (mine / "keep.txt").write_text("not the demo's", encoding="utf-8")
    result = CliRunner().invoke(demo, ["--output", str(tmp_path)])
    assert result.exit_code != 0
    assert "was not written by the demo" in result.output
    assert (mine / "keep.txt").read_text(encoding="utf-8") == "not the demo's"
    assert not (tmp_path / "report.json").exists()


def test_default_output_folder_is_announced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "transitwatch-demo" / "archive" / "x").mkdir(parents=True)  # stop before the slow part
    (tmp_path / "transitwatch-demo" / "archive" / "x" / "f").write_text("", encoding="utf-8")
    result = CliRunner().invoke(demo, [])
    assert "./transitwatch-demo" in result.stderr
    assert result.exit_code != 0


def test_running_again_replaces_its_own_archive_with_the_same_results(demo_run: tuple[Path, Result]) -> None:
    out, first = demo_run
    before = {name: (out / name).read_bytes() for name in ("report.json", "report.txt", "manifest.json")}
    again = CliRunner().invoke(demo, ["--output", str(out)])
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout
    assert {name: (out / name).read_bytes() for name in before} == before
