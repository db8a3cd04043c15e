"""The sample consumer project, run by pytest in a subprocess against the real server."""

from __future__ import annotations

import re
import sys

import pytest
import requests
from server_process import LabServer, wait_until

import neops_remote_lab
from neops_remote_lab.models import SessionsDto

PASSED = re.compile(r"::(\w+) PASSED")
RUN_ORDER = [
    "test_device_data",
    "test_two_routers_again",
    "test_twin",
    "test_three_routers",
    "test_plain_declared_first",
    "test_queue_handed_on",
]


def passed_in_order(result: pytest.RunResult) -> list[str]:
    found = (PASSED.search(line) for line in result.outlines)
    return list(dict.fromkeys(match.group(1) for match in found if match))


def test_consumer_suite_runs_unchanged(
    consumer: pytest.Pytester, lab_server: LabServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REMOTE_LAB_URL", lab_server.url)
    result = consumer.runpytest_subprocess("-v", timeout=600)
    output = result.stdout.str()
    assert result.ret == 0, output
    # The plugin's first line names this package's version and the server.
    plugin_lines = [line for line in result.outlines if line.startswith("neops-remote-lab")]
    assert plugin_lines[0] == f"neops-remote-lab {neops_remote_lab.__version__}: lab server {lab_server.url}", output
    assert tuple(map(int, neops_remote_lab.__version__.split(".")[:2])) >= (1, 5)  # ours, not the original 1.4.0
    # Lab tests first, grouped; test_queue_handed_on proves the session was closed after the
    # last lab test: a newcomer got ACTIVE while this run was still going.
    assert passed_in_order(result) == RUN_ORDER
    # Identical topology bytes, two fixture names: one bring-up, then reuse.
    assert output.count("neops-remote-lab: lab two_routers.yml brought up: 2 devices") == 1
    assert output.count("neops-remote-lab: lab two_routers.yml reused: 2 devices") == 1
    assert output.count("neops-remote-lab: lab two_routers_copy.yml reused: 2 devices") == 1
    assert output.count("neops-remote-lab: lab three_routers.yml brought up: 3 devices") == 1
    # netlab's own lines, shown while the server brings a lab up, before the "brought up" line.
    bring_up = output.partition("acquiring lab two_routers.yml ...")[2].partition("two_routers.yml brought up")[0]
    assert re.search(r"^neops-remote-lab: netlab \(\d+s\): Starting external nodes$", bring_up, re.MULTILINE), output
    assert lab_server.health()["sessions"] == 0


def test_queue_wait_is_shown_while_another_suite_holds_the_lab(
    consumer: pytest.Pytester, lab_server: LabServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REMOTE_LAB_URL", lab_server.url)
    holder = lab_server.create_session({"user": "ada", "host": "lab-laptop", "label": "nightly regression"})
    out = consumer.path / "out.txt"
    with out.open("wb") as stdout:
        run = consumer.popen([sys.executable, "-m", "pytest", "-v", "-k", "device_data"], stdout=stdout, stderr=stdout)
    try:
        wait_until(lambda: "position 1 in the queue" in out.read_text(), "the suite to show its queue position")
        # The server knows who is waiting: the run's pytest invocation.
        overview = SessionsDto.model_validate(requests.get(f"{lab_server.url}/sessions", timeout=10).json())
        waiting = [entry.client.label for entry in overview.sessions if entry.client and entry.status == "waiting"]
        assert waiting == ["pytest -v -k device_data"]
        lab_server.delete_session(holder)
        assert run.wait(timeout=300) == 0, out.read_text()
    finally:
        if run.poll() is None:
            run.kill()
    output = out.read_text()
    assert (
        "neops-remote-lab: waiting for the lab host: position 1 in the queue (0s), "
        "held by ada@lab-laptop (nightly regression)"
    ) in output
    assert re.search(
        r"neops-remote-lab: session \w{8} on http://127\.0\.0\.1:\d+ is active after \d+s in the queue", output
    )
    assert "neops-remote-lab: acquiring lab two_routers.yml ..." in output
