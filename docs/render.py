"""Keep the docs' command outputs real: run every ```console block and write its output back.

    python docs/render.py           # rewrite the outputs in docs/*.md and README.md
    python docs/render.py --check   # exit 1 if any documented output differs (tests/test_docs.py)

In a ```console block, lines starting with ``$ `` are commands, run from the repository root with
``../shared`` beside it; the lines after a command, up to the next ``$ ``, are its output (stdout
and stderr, as a terminal shows them). Blocks written ```console norun are shown as they are.
Outputs are cut after ``MAX_LINES`` lines, marked with ``...``.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```console( norun)?\n(.*?)```", re.S)
MAX_LINES = 80


def run(command: str) -> str:
    env = {**os.environ, "COLUMNS": "100", "TRANSITWATCH_CACHE": str(ROOT / ".docs-cache")}
    res = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    out = (res.stdout + res.stderr).rstrip("\n").splitlines()
    if len(out) > MAX_LINES:
        out = [*out[:MAX_LINES], "..."]
    return "\n".join(line.rstrip() for line in out)


def render_block(body: str) -> str:
    parts: list[str] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            output = run(line[2:])
            parts.append(line)
            if output:
                parts.append(output)
    return "\n".join(parts) + "\n"


def render(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(0)
        return "```console\n" + render_block(m.group(2)) + "```"

    return BLOCK.sub(repl, text)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    only = [a for a in argv if not a.startswith("--")]
    bad = 0
    for doc in documents():
        if only and doc.name not in only:
            continue
        text = doc.read_text(encoding="utf-8")
        new = render(text)
        if new == text:
            continue
        if check:
            bad += 1
            diff = difflib.unified_diff(
                text.splitlines(), new.splitlines(), str(doc), "rendered", lineterm=""
            )
            print("\n".join(list(diff)[:60]))
        else:
            doc.write_text(new, encoding="utf-8")
            print(f"updated {doc.relative_to(ROOT)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
