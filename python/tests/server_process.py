"""Runs the real `neops-remote-lab` binary for a test, isolated from every other server.

Each server gets its own TMPDIR (the one-server-per-host guard lives there), its own HOME
(netlab keeps per-user state in ~/.netlab) and its own work folder, so tests can run in
parallel and never touch a developer's server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
CONSUMER_PROJECT = Path(__file__).resolve().parent / "consumer"
TOPOLOGIES = CONSUMER_PROJECT / "topologies"
# Netlab without containers: the `external` provider starts nothing, the lifecycle stays real.
DEFAULT_NETLAB_UP_ARGS = "-q --no-config -p external -s defaults.multilab.id=default"
META_FILE = "neops_remote_lab_server.meta.json"


def missing(what: str, hint: str) -> NoReturn:
    """Skip a test whose prerequisite is absent; in CI (CI=true) that is a failure instead."""
    message = f"{what} not found: {hint}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def server_binary() -> Path:
    path = Path(os.environ.get("NEOPS_REMOTE_LAB_BIN") or REPO / "target" / "debug" / "neops-remote-lab")
    if not path.is_file():
        missing(f"server binary {path}", "run `cargo build` or set NEOPS_REMOTE_LAB_BIN")
    return path


def netlab_binary() -> Path:
    found = os.environ.get("NEOPS_NETLAB_BIN") or shutil.which("netlab")
    if not found:
        missing("netlab", "install it with `pip install networklab` or set NEOPS_NETLAB_BIN")
    return Path(found)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll `condition` until it is true; fail naming `what` if it never becomes true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def isolated_env(root: Path) -> dict[str, str]:
    """Environment for a server (or a local-mode run) confined to `root`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REMOTE_LAB_")}
    for name in ("tmp", "home"):
        (root / name).mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(root / "tmp")
    env["HOME"] = str(root / "home")
    env["NEOPS_STATE_DIR"] = str(root / "state")
    env.pop("STATE_DIRECTORY", None)
    env.setdefault("NEOPS_NETLAB_UP_ARGS", DEFAULT_NETLAB_UP_ARGS)
    return env


def run_project(
    python: Path, project: Path, workdir: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Copy the test project `project` into `workdir` and run `python -m pytest -v` there (at most 600 s)."""
    shutil.copytree(project, workdir, ignore=shutil.ignore_patterns("__pycache__"))
    return subprocess.run(
        [str(python), "-m", "pytest", "-v", "-p", "no:cacheprovider", *args],
        cwd=workdir,
        env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


class LabServer:
    """One running server process and what tests ask it directly."""

    def __init__(self, binary: Path, netlab: Path, root: Path, *args: str, port: int = 0) -> None:
        self.root = root
        self.work_dir = root / "work"
        env = isolated_env(root)
        self.meta_path = root / "tmp" / META_FILE
        self.log_path = root / "server.log"
        command = [
            str(binary),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--work-dir", str(self.work_dir)),
            *("--netlab-bin", str(netlab)),
            *("--netlab-up-args", env["NEOPS_NETLAB_UP_ARGS"]),
            *args,
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.url = ""
        wait_until(self._ready, f"the server to listen (log: {self.log_path})")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"server exited with {self.process.returncode}:\n{self.log()}")
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return False
        if meta.get("pid") != self.process.pid:
            return False
        self.url = f"http://127.0.0.1:{meta['port']}"
        try:
            return requests.get(f"{self.url}/healthz", timeout=5).status_code == 204
        except requests.ConnectionError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> dict[str, Any]:
        response = requests.get(f"{self.url}/debug/health", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def sessions(self) -> dict[str, Any]:
        """`GET /sessions`: the line and the slots; looking keeps nobody alive."""
        response = requests.get(f"{self.url}/sessions", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def active_session(self) -> str | None:
        """The head of the queue; asking does not keep it alive."""
        response = requests.get(f"{self.url}/active-session", timeout=10)
        return str(response.json()["session_id"]) if response.status_code == 200 else None

    def create_session(self, client: dict[str, str] | None = None) -> str:
        """A raw queue entry that nobody polls, with `client` info if given."""
        response = requests.post(f"{self.url}/session", json={"client": client} if client else None, timeout=10)
        response.raise_for_status()
        return str(response.json()["session_id"])

    def delete_session(self, session_id: str) -> None:
        requests.delete(f"{self.url}/session/{session_id}", timeout=60).raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
