"""A server with bearer-token auth on: the client and the pytest plugin send REMOTE_LAB_TOKEN."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests
from conftest import StartServer
from server_process import TOPOLOGIES, LabServer

from neops_remote_lab.client import RemoteLabClient
from neops_remote_lab.errors import RemoteLabHTTPError
from neops_remote_lab.models import SessionsDto

CI_TOKEN = "ci-t0ken-4711-0123"  # noqa: S105 (test tokens)
ADA_TOKEN = "ada-t0ken-0815-4567"  # noqa: S105


@pytest.fixture
def auth_server(start_server: StartServer, tmp_path: Path) -> LabServer:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# who may use the lab host\nci:{CI_TOKEN}\nada:{ADA_TOKEN}\n")
    tokens.chmod(0o600)  # the server refuses a tokens file others may read
    return start_server("--tokens-file", str(tokens))


def sessions(server: LabServer, token: str) -> SessionsDto:
    response = requests.get(f"{server.url}/sessions", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    response.raise_for_status()
    return SessionsDto.model_validate(response.json())


def test_client_with_the_token_gets_a_lab(auth_server: LabServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REMOTE_LAB_TOKEN", CI_TOKEN)
    with RemoteLabClient(auth_server.url, heartbeat_interval=0.2) as client:
        devices = client.acquire(TOPOLOGIES / "two_routers.yml", reuse=False)
        assert [device.name for device in devices] == ["r1", "r2"]
        (mine,) = sessions(auth_server, ADA_TOKEN).sessions
        assert (mine.id, mine.owner) == (client.session_id[:8], "ci")
        # Another token may look, not act.
        other = requests.get(
            f"{auth_server.url}/session/{client.session_id}",
            headers={"Authorization": f"Bearer {ADA_TOKEN}"},
            timeout=10,
        )
        assert other.status_code == 403
        client.release()
    assert sessions(auth_server, CI_TOKEN).sessions == []
    assert CI_TOKEN not in auth_server.log()


@pytest.mark.parametrize(
    ("token", "hint"),
    [(None, "set REMOTE_LAB_TOKEN"), ("n0t-a-t0ken", "does not accept the token in REMOTE_LAB_TOKEN")],
    ids=["no-token", "wrong-token"],
)
def test_client_without_a_valid_token_fails_at_once(
    auth_server: LabServer, monkeypatch: pytest.MonkeyPatch, token: str | None, hint: str
):
    if token is None:
        monkeypatch.delenv("REMOTE_LAB_TOKEN", raising=False)
    else:
        monkeypatch.setenv("REMOTE_LAB_TOKEN", token)
    with pytest.raises(RemoteLabHTTPError) as raised:
        RemoteLabClient(auth_server.url, heartbeat_interval=0)
    assert raised.value.status_code == 401
    assert hint in str(raised.value)


def write_lab_project(pytester: pytest.Pytester) -> None:
    (pytester.path / "topologies").mkdir()
    shutil.copy(TOPOLOGIES / "two_routers.yml", pytester.path / "topologies")
    pytester.makeconftest(
        "from neops_remote_lab.testing.fixture import remote_lab_fixture\n\n"
        'two_routers = remote_lab_fixture("topologies/two_routers.yml")\n'
    )
    pytester.makepyfile(
        test_lab="def test_devices(two_routers):\n    assert [d.name for d in two_routers] == ['r1', 'r2']\n"
    )


def test_plugin_sends_the_token(pytester: pytest.Pytester, auth_server: LabServer, monkeypatch: pytest.MonkeyPatch):
    write_lab_project(pytester)
    monkeypatch.setenv("REMOTE_LAB_URL", auth_server.url)
    monkeypatch.setenv("REMOTE_LAB_TOKEN", ADA_TOKEN)
    result = pytester.runpytest_subprocess("-v", timeout=600)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=1)
    assert ADA_TOKEN not in result.stdout.str() + result.stderr.str()


def test_plugin_without_the_token_says_what_is_missing(
    pytester: pytest.Pytester, auth_server: LabServer, monkeypatch: pytest.MonkeyPatch
):
    write_lab_project(pytester)
    monkeypatch.setenv("REMOTE_LAB_URL", auth_server.url)
    monkeypatch.delenv("REMOTE_LAB_TOKEN", raising=False)
    result = pytester.runpytest_subprocess("-v", timeout=600)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*HTTP 401*set REMOTE_LAB_TOKEN*"])
