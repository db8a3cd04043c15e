"""The original PyPI `neops-remote-lab==1.4.0`, unchanged, gets its lab from a pool of lab agents.

A coordinator with no slots of its own (`--lab-slots 0`) and two lab agents, each a separate
process with its own HOME and TMPDIR, sharing one agent secret; the original 1.4.0 client and
pytest plugin, in a fresh virtualenv, only know the coordinator's URL. Its lab test passes, and
the coordinator's events show the session was promoted into an agent's slot, its lab brought up
by that agent.

Needs the package index and a Python >= 3.12 like the Worker SDK test (marker `worker_sdk`);
`make test-worker-sdk` and CI run it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import StartServer
from server_process import DEFAULT_NETLAB_UP_ARGS, LabServer, isolated_env, run_project, wait_until
from test_worker_sdk import python_for_the_sdk

pytestmark = pytest.mark.worker_sdk

ORIGINAL = "1.4.0"
SECRET = "pool-secret-0123456789"  # noqa: S105 - the test pool's agent secret
AGENTS = ("lab-a", "lab-b")

# A consumer project as users of the original plugin write it.
PROJECT = {
    "topology.yml": "defaults.device: eos\nnodes: [r1, r2]\nlinks: [r1-r2]\n",
    "conftest.py": (
        "from neops_remote_lab.testing.fixture import remote_lab_fixture\n\n"
        'two_routers = remote_lab_fixture("topology.yml")\n'
    ),
    "test_pool.py": (
        "def test_gets_both_routers(two_routers):\n"
        '    assert sorted(device.name for device in two_routers) == ["r1", "r2"]\n'
    ),
}


@pytest.fixture(scope="module")
def original_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("original-venv")
    subprocess.run([python_for_the_sdk(), "-m", "venv", str(root)], check=True)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, f"neops-remote-lab=={ORIGINAL}", "pytest"], check=True, timeout=900)
    return root


@pytest.fixture
def pool(
    start_server: StartServer,
    server_bin: Path,
    netlab_bin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LabServer]:
    """A coordinator without slots and one lab agent (one slot) per name in AGENTS."""
    monkeypatch.setenv("NEOPS_AGENT_TOKEN", SECRET)
    coordinator = start_server("--lab-slots", "0", "--in-memory")
    agents: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for name in AGENTS:
            root = tmp_path / name
            command = [
                str(server_bin),
                *("agent", "--coordinator", coordinator.url, "--name", name, "--lab-slots", "1"),
                *("--netlab-bin", str(netlab_bin), "--netlab-up-args", DEFAULT_NETLAB_UP_ARGS),
                *("--work-dir", str(root / "work")),
            ]
            env = isolated_env(root)
            log = root / "agent.log"
            with log.open("wb") as out:
                agents.append(
                    (subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out), log)
                )

        def all_slots_registered() -> bool:
            for agent, agent_log in agents:
                if agent.poll() is not None:
                    pytest.fail(f"agent exited with {agent.returncode}:\n{agent_log.read_text(errors='replace')}")
            return len(coordinator.sessions()["slots"]) == len(AGENTS)

        # Generous: each agent first asks netlab its version.
        wait_until(all_slots_registered, f"{len(AGENTS)} agent slots (logs under {tmp_path})", timeout=180)
        yield coordinator
    finally:
        for agent, _ in agents:  # SIGTERM: a clean stop, then no mercy
            agent.terminate()
            try:
                agent.wait(timeout=60)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()


def replayed_events(server: LabServer, enough: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """`GET /events?replay=1024` until `enough(events)`; fails if the stream stalls for 10 s."""
    events: list[dict[str, Any]] = []
    with requests.get(f"{server.url}/events?replay=1024", stream=True, timeout=(5, 10)) as response:
        response.raise_for_status()
        try:
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    events.append(json.loads(line.removeprefix("data:")))
                    if enough(events):
                        return events
        except requests.ConnectionError:  # a read timeout while streaming
            pass
    pytest.fail(f"the events ended or stalled before the lab came up: {events}")


def test_venv_holds_the_original(original_venv: Path):
    shown = subprocess.run(
        [str(original_venv / "bin" / "python"), "-c", "import neops_remote_lab; print(neops_remote_lab.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == ORIGINAL
    pip_show = [str(original_venv / "bin" / "python"), "-m", "pip", "show", "neops-remote-lab"]
    assert f"Version: {ORIGINAL}" in subprocess.run(pip_show, capture_output=True, text=True, check=True).stdout


def test_original_plugin_gets_a_lab_from_an_agent(original_venv: Path, pool: LabServer, tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    for name, text in PROJECT.items():
        (source / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REMOTE_LAB_", "PYTEST_", "NEOPS_"))}
    env["REMOTE_LAB_URL"] = pool.url

    run = run_project(original_venv / "bin" / "python", source, tmp_path / "project", env)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_pool.py::test_gets_both_routers PASSED" in run.stdout
    assert "1 passed" in run.stdout

    def lab_came_up(events: list[dict[str, Any]]) -> bool:
        return any(event["type"] == "lab_up" for event in events)

    events = replayed_events(pool, lab_came_up)
    promoted = [event for event in events if event["type"] == "session_promoted"]
    assert len(promoted) == 1, events
    assert promoted[0]["host"] in AGENTS, events
    lab_up = next(event for event in events if event["type"] == "lab_up")
    assert lab_up["host"] == promoted[0]["host"], events
