"""`remote_lab_ssh_config`: an OpenSSH config file for the lab a test holds, brought up by real netlab."""

from __future__ import annotations

import pytest
from server_process import LabServer

CONSUMER = {
    "topology.yml": "defaults.device: eos\nnodes: [r1, r2]\nlinks: [r1-r2]\n",
    "conftest.py": (
        "from neops_remote_lab.testing.fixture import remote_lab_fixture\n\n"
        'two_routers = remote_lab_fixture("topology.yml")\n'
    ),
    "test_ssh.py": """
def test_config_reaches_each_router(two_routers, remote_lab_ssh_config):
    text = remote_lab_ssh_config.read_text()
    for device in two_routers:
        address = device.raw["ansible_host"]
        entry = f"Host {device.name}\\n  HostName {address}\\n  User vagrant\\n  ProxyJump 127.0.0.1\\n"
        assert entry in text, text
""",
}


def test_the_fixture_writes_a_config_for_the_held_lab(
    pytester: pytest.Pytester, lab_server: LabServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REMOTE_LAB_URL", lab_server.url)
    for name, text in CONSUMER.items():
        (pytester.path / name).write_text(text)
    result = pytester.runpytest_subprocess("-v", timeout=600)
    result.assert_outcomes(passed=1)
