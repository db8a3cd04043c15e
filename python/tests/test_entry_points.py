"""How users reach the package without importing it: pytest's entry point and `python -m`."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path


def test_pytest11_entry_point_names_the_plugin_list():
    (entry,) = entry_points(group="pytest11", name="neops-remote-lab")
    assert entry.value == "neops_remote_lab.pytest_plugins"
    assert entry.load().pytest_plugins == [
        "neops_remote_lab.testing.fixture",
        "neops_remote_lab.testing.pytest_order_plugin",
        "neops_remote_lab.testing.pytest_session_plugin",
    ]


def test_python_m_runs_the_server_binary(server_bin: Path):
    env = {**os.environ, "NEOPS_REMOTE_LAB_BIN": str(server_bin)}
    via_module = subprocess.run(
        [sys.executable, "-m", "neops_remote_lab", "--version"], capture_output=True, text=True, env=env, check=True
    )
    direct = subprocess.run([str(server_bin), "--version"], capture_output=True, text=True, check=True)
    assert via_module.stdout == direct.stdout
