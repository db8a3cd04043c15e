"""Fixtures for the Python tests: real server processes and the sample consumer project."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from server_process import CONSUMER_PROJECT, REPO, LabServer, missing, netlab_binary, server_binary

import neops_remote_lab

pytest_plugins = ["pytester"]

# The consumer project is run by pytester in a copy, never collected as part of this suite.
collect_ignore = ["consumer", "worker_sdk_project"]


def pytest_configure(config: pytest.Config) -> None:
    # The plugin is tested as users get it: installed, found through its pytest11 entry point.
    if not entry_points(group="pytest11", name="neops-remote-lab"):
        raise pytest.UsageError("neops-remote-lab is not installed here: run `pip install -e .` (or `maturin develop`)")
    source = Path(neops_remote_lab.__file__).resolve()
    if not source.is_relative_to(REPO / "python"):
        raise pytest.UsageError(f"neops_remote_lab is imported from {source}, not from this checkout")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`$NEOPS_REMOTE_LAB_WHEEL` (e.g. from `make wheel`), else a wheel built here with maturin."""
    given = os.environ.get("NEOPS_REMOTE_LAB_WHEEL")
    if given:
        return Path(given)
    if importlib.util.find_spec("maturin") is None:
        missing("maturin", "pip install maturin, or set NEOPS_REMOTE_LAB_WHEEL to a built wheel")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "maturin", "build", "--locked", "--out", str(out)], cwd=REPO, check=True)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="session")
def server_bin() -> Path:
    return server_binary()


@pytest.fixture(scope="session")
def netlab_bin() -> Path:
    return netlab_binary()


StartServer = Callable[..., LabServer]


@pytest.fixture
def start_server(server_bin: Path, netlab_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """Start servers (extra command-line arguments allowed); all are stopped after the test."""
    servers: list[LabServer] = []

    def start(*args: str, port: int = 0) -> LabServer:
        server = LabServer(server_bin, netlab_bin, tmp_path_factory.mktemp("server"), *args, port=port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def lab_server(start_server: StartServer) -> LabServer:
    return start_server()


@pytest.fixture
def consumer(pytester: pytest.Pytester) -> pytest.Pytester:
    """A copy of the sample consumer project as pytester's working directory."""
    shutil.copytree(CONSUMER_PROJECT, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return pytester
