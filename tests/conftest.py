"""Shared test fixtures. The read-only data lives in ../shared beside the checkout (also in CI)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
MRT_DIR = SHARED / "data" / "mrt"
SCENARIOS = SHARED / "scenarios"
REGISTRY = SHARED / "registry"


def mrt_files() -> list[Path]:
    """Every real MRT file that has bgpdump's expected output beside it."""
    return sorted(p for p in MRT_DIR.glob("*/*") if p.suffix != ".md" and not p.name.endswith(".bgp.gz"))


@pytest.fixture(scope="session")
def shared() -> Path:
    assert SHARED.is_dir(), f"{SHARED} is missing: the tests need ../shared beside the checkout"
    return SHARED


@pytest.fixture(scope="session")
def bgpdump_bin() -> str:
    path = shutil.which("bgpdump")
    assert path, "bgpdump is not installed (apt-get install bgpdump): the tests use it as the reference"
    return path
