"""The docs say what the tool does: commands and options are documented, outputs are real."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from transitwatch.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = "\n".join(
    p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    assert len(blocks) >= 2
    demo, tests = blocks[0].strip(), blocks[1].strip()
    assert "pip install" in demo and demo.endswith("transitwatch demo")
    assert "pip install" in tests and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert tests in ci.splitlines(), "CI runs exactly the README's test command"


def _commands() -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    assert isinstance(main, click.Group)
    for name, cmd in main.commands.items():
        if isinstance(cmd, click.Group):
            for sub, subcmd in cmd.commands.items():
                out[f"{name} {sub}"] = subcmd
        else:
            out[name] = cmd
    return out


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_and_option_is_documented(name: str) -> None:
    assert f"transitwatch {name}" in DOCS, f"`transitwatch {name}` appears in no doc page"
    for param in _commands()[name].params:
        if isinstance(param, click.Option):
            documented = [o for o in param.opts if o.startswith("--") and o in DOCS]
            assert documented or param.name in ("help",), f"{name}: {param.opts} is not documented"


def test_documented_outputs_are_what_the_commands_print() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "docs" / "render.py"), "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, (
        "docs out of date (python docs/render.py rewrites them):\n" + res.stdout[-4000:]
    )
