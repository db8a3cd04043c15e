"""The README's CI examples, run as written: each step's commands are read from the README's
GitHub Actions and GitLab CI blocks and run, verbatim, with bash in a fresh virtualenv against a
real server (real netlab, external provider).

Only the job's variables are set by the test: `REMOTE_LAB_URL` to the server, `REMOTE_LAB_TOKEN`
to a token it knows (GitHub example: the server has auth on), `NEOPS_REMOTE_LAB_PACKAGE` to a
wheel built from this checkout. The job's checkout is a small project with the files the
commands name; its playbook only reads the inventory (`connection: local`), so nothing tries to
reach the devices' addresses. Needs the package index (`pip install ansible-core`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import StartServer
from server_process import REPO, LabServer

import neops_remote_lab

README = REPO / "README.md"
TOKEN = "ci-example-token-0123456789abcdef"  # noqa: S105 - a test server's token

TOPOLOGY = "defaults.device: eos\nnodes: [r1, r2]\nlinks: [r1-r2]\n"
# Reads the inventory only: play vars beat the inventory's ansible_connection (network_cli).
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  connection: local
  vars:
    ansible_connection: local
  tasks:
    - ansible.builtin.assert:
        that:
          - ansible_host is defined
          - ansible_network_os == 'eos'
    - ansible.builtin.debug:
        msg: "{{ inventory_hostname }} at {{ ansible_host }}"
"""


def yaml_block_after(title: str) -> dict[str, Any]:
    """The first ```yaml block after the line `title` in the README."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index(f"\n{title}\n") :]
    block = re.search(r"```yaml\n(.*?)```", after, re.DOTALL)
    assert block, f"no yaml block after {title!r}"
    return dict(yaml.safe_load(block.group(1)))


def github_example() -> tuple[dict[str, str], list[str]]:
    job = yaml_block_after("GitHub Actions:")["jobs"]["lab-tests"]
    return dict(job["env"]), [step["run"] for step in job["steps"] if "run" in step]


def gitlab_example() -> tuple[dict[str, str], list[str]]:
    job = yaml_block_after("GitLab CI:")["lab-tests"]
    return dict(job["variables"]), list(job["script"])


@pytest.fixture(scope="module")
def runner_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CI runner's Python: a fresh virtualenv whose `pip` comes first on PATH."""
    root = tmp_path_factory.mktemp("runner")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    return root


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The job's checkout: the files the example's commands name."""
    project = tmp_path / "checkout"
    (project / "labs" / "basic").mkdir(parents=True)
    (project / "labs" / "basic" / "topology.yml").write_text(TOPOLOGY)
    (project / "labs" / "basic" / "configs").mkdir()
    (project / "labs" / "basic" / "configs" / "r1.cfg").write_text("hostname r1\n")
    (project / "tests").mkdir()
    (project / "tests" / "site.yml").write_text(PLAYBOOK)
    return project


def run_steps(commands: list[str], variables: dict[str, str], venv: Path, workdir: Path) -> str:
    """Each command with bash -e in `workdir`, as the runners do; returns their output."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REMOTE_LAB_", "PYTEST_"))}
    env.pop("NEOPS_REMOTE_LAB_BIN", None)  # the job uses the binary its wheel installed
    env.pop("VIRTUAL_ENV", None)
    env.update(variables)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    output = ""
    for command in commands:
        done = subprocess.run(
            ["bash", "-e", "-c", command],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        output += f"$ {command}\n{done.stdout}{done.stderr}"
        assert done.returncode == 0, output
    return output


def sessions_left(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{url}/debug/health", headers=headers, timeout=10)
    response.raise_for_status()
    return int(response.json()["sessions"])


def assert_ran_against(output: str, url: str) -> None:
    assert f"neops-remote-lab {neops_remote_lab.__version__}: run against {url}" in output, output
    assert "lab topology.yml brought up: 2 devices" in output, output
    assert re.search(r"r1 +: ok=2 ", output), output
    assert re.search(r"r2 +: ok=2 ", output), output


def test_the_github_actions_example_runs_as_written(
    start_server: StartServer, wheel: Path, runner_venv: Path, checkout: Path, tmp_path: Path
):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ci:{TOKEN}\n")
    tokens.chmod(0o600)  # the server refuses a tokens file others may read
    server = start_server("--tokens-file", str(tokens))
    variables, commands = github_example()
    assert set(variables) == {"REMOTE_LAB_URL", "REMOTE_LAB_TOKEN", "NEOPS_REMOTE_LAB_PACKAGE"}
    assert len(commands) == 2
    given = {"REMOTE_LAB_URL": server.url, "REMOTE_LAB_TOKEN": TOKEN, "NEOPS_REMOTE_LAB_PACKAGE": str(wheel)}
    output = run_steps(commands, given, runner_venv, checkout)
    assert_ran_against(output, server.url)
    assert sessions_left(server.url, TOKEN) == 0


def test_the_gitlab_ci_example_runs_as_written(lab_server: LabServer, wheel: Path, runner_venv: Path, checkout: Path):
    variables, commands = gitlab_example()
    assert set(variables) == {"REMOTE_LAB_URL", "NEOPS_REMOTE_LAB_PACKAGE"}
    assert len(commands) == 2
    given = {"REMOTE_LAB_URL": lab_server.url, "NEOPS_REMOTE_LAB_PACKAGE": str(wheel)}
    output = run_steps(commands, given, runner_venv, checkout)
    assert_ran_against(output, lab_server.url)
    assert sessions_left(lab_server.url) == 0
