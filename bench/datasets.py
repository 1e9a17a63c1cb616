"""Benchmark inputs: the real MRT files in /work/shared and the cached full-size synthetic RIB.

The full-size RIB is built once by ``/work/shared/tools/scenario.py --rib-only`` into
``bench/data/fulltable-<key>/`` where ``<key>`` is a hash of the spec and of the generator's source,
so changing either rebuilds it and an unchanged spec reuses it. The build writes into a temporary
directory that is renamed only when complete: an interrupted build is never mistaken for a cache hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
SHARED = Path(os.environ.get("TRANSITWATCH_SHARED", BENCH_DIR.parent.parent / "shared"))
SCENARIO_TOOL = SHARED / "tools" / "scenario.py"
FULLTABLE_SPEC = SHARED / "scenarios" / "bench-fulltable.json"
SPECS_DIR = BENCH_DIR / "specs"
WORKERS_SPEC = SPECS_DIR / "bench-workers-kp.json"  # the multi-collector archive (workers, rislive)
QUICK_TABLE_SPEC = SPECS_DIR / "bench-quicktable.json"  # a small RIB for --quick runs
REGISTRY = SHARED / "registry"


@dataclass(frozen=True)
class Dataset:
    name: str  # short label for tables
    path: Path
    about: str
    kind: str  # "rib" or "updates"
    full_size: bool = False


REAL_RIB = Dataset(
    "routeviews-rib-2014 (1 MB cut)",
    SHARED / "data/mrt/routeviews/rib.20140523.0600_firstMB.trimmed.gz",
    "real RouteViews TABLE_DUMP_V2 RIB, first MB, gzip",
    "rib",
)
REAL_UPDATES = Dataset(
    "ris-updates-2016",
    SHARED / "data/mrt/ris/updates.20160811.1600.gz",
    "real RIPE RIS rrc21 BGP4MP update file (5 min), gzip",
    "updates",
)


def spec_key(spec: Path = FULLTABLE_SPEC) -> str:
    """Cache key: the spec's bytes plus the generator's source (its output depends on both)."""
    h = hashlib.sha256()
    for p in (spec, SCENARIO_TOOL, SCENARIO_TOOL.with_name("mrtwrite.py")):
        h.update(p.name.encode() + b"\0")
        h.update(p.read_bytes() if p.exists() else b"")
    return h.hexdigest()[:12]


def _rib_relpath(spec: Path) -> Path:
    """Where scenario.py puts the RIB of the spec's first collector (RIS layout: gzip bview)."""
    s = json.loads(spec.read_text())
    c = s["collectors"][0]
    day = time.strptime(s["start"], "%Y-%m-%dT%H:%M:%SZ")
    if c.get("kind", "ris") != "ris":
        raise ValueError("the benchmark expects a RIS-style (gzip) collector in the spec")
    return Path(c["name"], time.strftime("%Y.%m", day), time.strftime("bview.%Y%m%d.%H%M.gz", day))


def _build(
    out: Path,
    args: list[str],
    what: str,
    product: Path,
    summary: Callable[[Path, str], str],
    log: Callable[[str], None],
) -> None:
    """Run ``scenario.py ARGS TMP`` into a temporary folder beside ``out`` and rename it to ``out``
    once ``product`` (a path under ``out``) is there, so an interrupted build is never a cache hit.
    ``BUILD.txt`` records the command, ``summary(tmp, stdout)`` and the time it took."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [sys.executable, str(SCENARIO_TOOL), *args, str(tmp)]
    log(f"building {what}: {' '.join(cmd)}")
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not (tmp / product.relative_to(out)).exists():
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"scenario.py failed ({res.returncode}):\n{res.stderr[-4000:]}")
    (tmp / "BUILD.txt").write_text(
        f"{' '.join(cmd)}\n{summary(tmp, res.stdout.strip())}\nbuilt in {time.monotonic() - t0:.0f} s\n"
    )
    try:
        tmp.rename(out)
    except OSError:  # another run finished the same build first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"built {product} in {time.monotonic() - t0:.0f} s")


def _size(folder: Path, _stdout: str) -> str:
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != "truth.json"]
    return f"{len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.0f} MB"


def fulltable(spec: Path = FULLTABLE_SPEC, *, log: Callable[[str], None] = print) -> Dataset:
    """The full-size synthetic RIB, built on first use (several minutes) and cached."""
    key = spec_key(spec)
    out = DATA_DIR / f"fulltable-{key}"
    rib = out / _rib_relpath(spec)
    if not rib.exists():
        _build(
            out,
            ["--rib-only", str(spec)],
            f"the RIB of {spec.name} (once; minutes for the full size)",
            rib,
            lambda _tmp, stdout: stdout,
            log,
        )
    return Dataset(
        "synthetic full table",
        rib,
        f"synthetic TABLE_DUMP_V2 RIB from {spec.name}, gzip",
        "rib",
        full_size=True,
    )


@dataclass(frozen=True)
class Archive:
    """A replay archive built by ``scenario.py SPEC OUT`` (RouteViews/RIS layout plus truth.json)."""

    name: str
    path: Path
    spec: Path
    start: str  # the spec's window, ISO
    end: str
    collectors: tuple[tuple[str, str], ...]  # (name, kind "ris" or "routeviews")

    def build_log(self) -> str:
        f = self.path / "BUILD.txt"
        return f.read_text() if f.exists() else ""


def scenario_archive(spec: Path = WORKERS_SPEC, *, log: Callable[[str], None] = print) -> Archive:
    """A replay archive built from ``spec`` on first use (minutes for the benchmark spec) and cached in
    ``bench/data/NAME-KEY/`` (KEY: the spec and the generator's source), built into a temporary folder
    renamed when complete."""
    s = json.loads(spec.read_text())
    key = spec_key(spec)
    out = DATA_DIR / f"{s['name']}-{key}"
    if not (out / "truth.json").exists():
        _build(
            out,
            [str(spec)],
            f"the archive {s['name']} (once, several minutes)",
            out / "truth.json",
            _size,
            log,
        )
    return Archive(
        s["name"],
        out,
        spec,
        s["start"],
        s["end"],
        tuple((c["name"], c.get("kind", "ris")) for c in s["collectors"]),
    )


def short_path(path: Path) -> str:
    """A path as RESULTS.md shows it: relative to the repository, or to ../shared."""
    for base, label in ((BENCH_DIR.parent, ""), (SHARED, "../shared/")):
        try:
            return label + str(path.relative_to(base))
        except ValueError:
            continue
    return str(path)


if __name__ == "__main__":
    if sys.argv[1:] == ["workers"]:
        print(scenario_archive().path)
    else:
        print(fulltable().path)
