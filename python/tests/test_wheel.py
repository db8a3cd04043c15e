"""The wheel as users get it: built, installed into a fresh virtualenv, used by the consumer project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from server_process import CONSUMER_PROJECT, isolated_env, netlab_binary, run_project


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with only the wheel and its declared dependencies."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    subprocess.run([str(root / "bin" / "pip"), "install", "-q", str(wheel)], check=True)
    return root


def test_wheel_installs_the_server_command(venv: Path):
    command = venv / "bin" / "neops-remote-lab"
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("neops-remote-lab ")
    via_module = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "neops_remote_lab", "--version"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NEOPS_REMOTE_LAB_BIN": ""},
    )
    assert via_module.stdout == version.stdout


def test_consumer_project_passes_in_the_fresh_virtualenv(venv: Path, tmp_path: Path):
    env = isolated_env(tmp_path)
    # Local mode with the binary the wheel installed: no URL, no binary override.
    env.pop("NEOPS_REMOTE_LAB_BIN", None)
    env["NEOPS_NETLAB_BIN"] = str(netlab_binary())
    run = run_project(
        venv / "bin" / "python",
        CONSUMER_PROJECT,
        tmp_path / "project",
        env,
        "--deselect",
        "test_sample.py::test_queue_handed_on",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 passed, 1 deselected" in run.stdout
    assert "neops-remote-lab: lab two_routers.yml brought up: 2 devices" in run.stdout
