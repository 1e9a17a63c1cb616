"""--workers and --scheduler give byte-identical results to a single process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import REGISTRY, SCENARIOS
from transitwatch.cli import main

ARGS = [
    "upstreams",
    "KP",
    "--archive",
    str(SCENARIOS / "kp-2017-ttk"),
    "--from",
    "2017-10-01T08:00:00Z",
    "--to",
    "2017-10-02T12:00:00Z",
    "--registry",
    str(REGISTRY),
    "--format",
    "json",
]


def _run(*extra: str) -> str:
    res = CliRunner().invoke(main, [*ARGS, *extra], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.fixture(scope="module")
def single() -> str:
    out = _run()
    assert json.loads(out)["upstreams"], "the single-process run found upstreams"
    return out


def test_two_local_workers_give_identical_json(single: str) -> None:
    assert _run("--workers", "2") == single


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real dask scheduler and two single-threaded workers on 127.0.0.1."""
    distributed = pytest.importorskip("distributed", reason="the [cluster] extra is part of [test]")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    scheduler = ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port)]
    worker = [
        "distributed.cli.dask_worker",
        address,
        "--nthreads",
        "1",
        "--nworkers",
        "1",
        "--host",
        "127.0.0.1",
    ]
    commands = [(scheduler, "scheduler")]
    commands += [
        ([*worker, "--name", f"w{i}", "--local-directory", str(logs)], f"worker{i}") for i in range(2)
    ]
    procs = []
    for args, name in commands:
        log = (logs / f"{name}.log").open("w")
        cmd = [sys.executable, "-m", *args, "--no-dashboard"]
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
    try:
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            assert len(client.scheduler_info()["workers"]) == 2
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_dask_cluster_gives_identical_json(single: str, dask_cluster: str) -> None:
    assert _run("--scheduler", dask_cluster) == single


def test_scheduler_unreachable_is_a_clean_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, [*ARGS, "--scheduler", f"tcp://127.0.0.1:{_free_port()}"])
    assert res.exit_code != 0
    assert "Traceback" not in res.output
