"""Local mode: no REMOTE_LAB_URL, so the plugin finds or starts a server on this machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import StartServer
from server_process import META_FILE, isolated_env

import neops_remote_lab

# test_queue_handed_on needs the server's URL, which only the plugin knows in local mode.
LAB_TESTS_ONLY = ("-v", "--deselect", "test_sample.py::test_queue_handed_on")


@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The run's environment: no REMOTE_LAB_* variables, its own TMPDIR; returns that TMPDIR."""
    for name, value in isolated_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    for name in ("REMOTE_LAB_URL", "REMOTE_LAB_LOCAL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "tmp"


def test_starts_the_bundled_server_and_stops_it(
    consumer: pytest.Pytester, local_env: Path, server_bin: Path, netlab_bin: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NEOPS_REMOTE_LAB_BIN", str(server_bin))
    monkeypatch.setenv("NEOPS_NETLAB_BIN", str(netlab_bin))
    result = consumer.runpytest_subprocess(*LAB_TESTS_ONLY, timeout=600)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=5, deselected=1)
    # Stopped at the end of the run: the server removes its metadata file on shutdown, and
    # the run removed the private folder it gave the server.
    assert not (local_env / META_FILE).exists()
    assert not list(local_env.glob("neops-remote-lab-*"))


def test_picks_netlabs_external_provider_where_none_is_installed(
    consumer: pytest.Pytester, local_env: Path, server_bin: Path, netlab_bin: Path, monkeypatch: pytest.MonkeyPatch
):
    """No NEOPS_NETLAB_UP_ARGS and no provider on PATH: the local server brings labs up with `external`."""
    if Path("/usr/sbin/kvm-ok").exists():
        pytest.skip("/usr/sbin/kvm-ok exists: this host has netlab's libvirt provider")
    only_netlab = local_env.parent / "only-netlab"
    only_netlab.mkdir()
    (only_netlab / "netlab").symlink_to(netlab_bin)
    monkeypatch.setenv("PATH", str(only_netlab))
    monkeypatch.delenv("NEOPS_NETLAB_UP_ARGS", raising=False)
    monkeypatch.delenv("NEOPS_NETLAB_BIN", raising=False)
    monkeypatch.setenv("NEOPS_REMOTE_LAB_BIN", str(server_bin))
    result = consumer.runpytest_subprocess(*LAB_TESTS_ONLY, timeout=600)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=5, deselected=1)
    version = re.escape(neops_remote_lab.__version__)
    first_line = rf"^neops-remote-lab {version}: lab server http://127\.0\.0\.1:\d+ \(local mode\)$"
    assert re.search(first_line, result.stdout.str(), re.MULTILINE), result.stdout.str()
    # netlab's own line for the external provider, shown while the lab comes up.
    assert "Starting external nodes" in result.stdout.str()


def test_uses_the_server_already_running_on_this_host(
    consumer: pytest.Pytester, start_server: StartServer, monkeypatch: pytest.MonkeyPatch
):
    server = start_server()
    for name, value in isolated_env(server.root).items():
        monkeypatch.setenv(name, value)  # same TMPDIR, so the same metadata file
    monkeypatch.delenv("REMOTE_LAB_URL", raising=False)
    monkeypatch.setenv("NEOPS_REMOTE_LAB_BIN", str(server.root / "no-such-binary"))  # starting one would fail
    result = consumer.runpytest_subprocess(*LAB_TESTS_ONLY, timeout=600)
    assert result.ret == 0, result.stdout.str()
    assert server.process.poll() is None
    assert server.health()["sessions"] == 0


def test_without_netlab_fails_fast_naming_remote_lab_url(
    consumer: pytest.Pytester, local_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("NEOPS_NETLAB_BIN", raising=False)
    result = consumer.runpytest_subprocess("-k", "device_data or plain_declared_first")
    result.assert_outcomes(passed=1, errors=1, deselected=4)
    assert "REMOTE_LAB_URL is not set and netlab is not installed here" in result.stdout.str()
    assert "pip install networklab" in result.stdout.str()


def test_remote_lab_local_0_turns_local_mode_off(
    consumer: pytest.Pytester, local_env: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REMOTE_LAB_LOCAL", "0")
    result = consumer.runpytest_subprocess("-k", "device_data")
    result.assert_outcomes(errors=1, deselected=5)
    assert "REMOTE_LAB_URL is not set (and REMOTE_LAB_LOCAL=0 turns local mode off)" in result.stdout.str()
