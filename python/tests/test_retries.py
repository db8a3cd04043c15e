"""What the client sends again and what it does not: the real server behind a fault-injecting proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fault_injection import FaultInjectingProxy, fault_injecting_proxy
from server_process import REPO, TOPOLOGIES, LabServer

from neops_remote_lab.client import RemoteLabClient
from neops_remote_lab.errors import AnswerLostError, LabBringUpError
from neops_remote_lab.models import LabStatusDto

TWO_ROUTERS = TOPOLOGIES / "two_routers.yml"
FAULTY_NETLAB = REPO / "tests" / "fixtures" / "faulty-netlab-standin"
# A node whose custom configuration template is missing: netlab refuses the topology.
MISSING_TEMPLATE = "defaults.device: eos\nnodes:\n  gw1:\n    config: [extra/gw1.j2]\n  r2:\nlinks: [gw1-r2]\n"


def declares_idempotency_key(server: LabServer) -> bool:
    document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    return all(
        any(
            parameter.get("in") == "header" and parameter.get("name") == "Idempotency-Key"
            for parameter in document["paths"][path]["post"].get("parameters", [])
        )
        for path in ("/session", "/lab")
    )


@pytest.fixture
def idempotent_server(request: pytest.FixtureRequest, lab_server: LabServer) -> LabServer:
    """The server, expected to honour Idempotency-Key; against one that does not declare it the test must fail."""
    if not declares_idempotency_key(lab_server):
        request.applymarker(
            pytest.mark.xfail(strict=True, reason="this server binary does not declare the Idempotency-Key header")
        )
    return lab_server


@pytest.fixture
def proxy(lab_server: LabServer) -> Iterator[FaultInjectingProxy]:
    with fault_injecting_proxy(lab_server.url) as injecting:
        yield injecting


@pytest.fixture
def proxy_without_idempotency(lab_server: LabServer) -> Iterator[FaultInjectingProxy]:
    """The server as one without Idempotency-Key support shows itself: no such header in /openapi.json."""
    with fault_injecting_proxy(lab_server.url, hide_idempotency_key=True) as injecting:
        yield injecting


def lab_status(server: LabServer, session_id: str) -> LabStatusDto:
    answer = requests.get(f"{server.url}/lab", headers={"X-Session-ID": session_id}, timeout=10)
    answer.raise_for_status()
    return LabStatusDto.model_validate(answer.json())


def test_every_post_carries_its_own_idempotency_key(proxy: FaultInjectingProxy):
    with RemoteLabClient(proxy.url, heartbeat_interval=0) as client:
        client.acquire(TWO_ROUTERS, reuse=True)
        client.acquire(TWO_ROUTERS, reuse=True)
        client.release()
        client.release()
    keys = proxy.requests_to("POST", "/session") + proxy.requests_to("POST", "/lab")
    assert len(keys) == 3
    assert all(keys)
    assert len(set(keys)) == 3


def test_lost_session_answer_is_not_sent_again_without_idempotency_support(
    proxy_without_idempotency: FaultInjectingProxy, lab_server: LabServer
):
    proxy_without_idempotency.drop_answer("POST", "/session")
    with pytest.raises(AnswerLostError, match="it was not sent again"):
        RemoteLabClient(proxy_without_idempotency.url)
    assert len(proxy_without_idempotency.requests_to("POST", "/session")) == 1
    # The server created the session once; nobody polls it, so the server evicts it in time.
    assert lab_server.health()["sessions"] == 1


def test_lost_lab_answer_is_not_sent_again_without_idempotency_support(
    proxy_without_idempotency: FaultInjectingProxy, lab_server: LabServer
):
    with RemoteLabClient(proxy_without_idempotency.url) as client:
        proxy_without_idempotency.drop_answer("POST", "/lab")
        with pytest.raises(AnswerLostError, match="it was not sent again"):
            client.acquire(TWO_ROUTERS, reuse=False)
        status = lab_status(lab_server, client.session_id)
    assert len(proxy_without_idempotency.requests_to("POST", "/lab")) == 1
    assert status.running
    assert status.ref_count == 1


def test_lost_session_answer_is_sent_again_with_the_same_key(idempotent_server: LabServer, proxy: FaultInjectingProxy):
    proxy.drop_answer("POST", "/session")
    with RemoteLabClient(proxy.url) as client:
        keys = proxy.requests_to("POST", "/session")
        assert len(keys) == 2
        assert keys[0]
        assert keys[0] == keys[1]
        # One session, not an orphan queued ahead of this one.
        assert idempotent_server.health()["sessions"] == 1
        assert idempotent_server.active_session() == client.session_id


def test_lost_lab_answer_is_sent_again_with_the_same_key(idempotent_server: LabServer, proxy: FaultInjectingProxy):
    with RemoteLabClient(proxy.url) as client:
        proxy.drop_answer("POST", "/lab")
        devices = client.acquire(TWO_ROUTERS, reuse=False)
        keys = proxy.requests_to("POST", "/lab")
        assert len(keys) == 2
        assert keys[0] == keys[1]
        assert sorted(device.name for device in devices) == ["r1", "r2"]
        # One acquisition: a second one would hold the lab twice (or be refused, reuse=False).
        assert lab_status(idempotent_server, client.session_id).ref_count == 1
        client.release()


def test_lost_delete_answer_is_sent_again(proxy: FaultInjectingProxy, lab_server: LabServer):
    client = RemoteLabClient(proxy.url)
    path = f"/session/{client.session_id}"
    proxy.drop_answer("DELETE", path)
    client.close()
    # The repeat finds the session gone (404), which close() takes as done.
    assert len(proxy.requests_to("DELETE", path)) == 2
    assert lab_server.health()["sessions"] == 0


def test_503_on_delete_is_retried(proxy: FaultInjectingProxy, lab_server: LabServer):
    with RemoteLabClient(proxy.url) as client:
        client.acquire(TWO_ROUTERS, reuse=False)
        proxy.answer_503("DELETE", "/lab")
        client.destroy()
        assert len(proxy.requests_to("DELETE", "/lab")) == 2
        assert not lab_status(lab_server, client.session_id).running


def test_503_on_a_post_is_not_sent_again(proxy: FaultInjectingProxy, lab_server: LabServer):
    with RemoteLabClient(proxy.url) as client:
        client.acquire(TWO_ROUTERS, reuse=False)
        proxy.answer_503("POST", "/lab/release")
        client.release()  # logs the failure, as the original client did
        assert len(proxy.requests_to("POST", "/lab/release")) == 1
        assert lab_status(lab_server, client.session_id).ref_count == 1


def test_netlab_failure_fails_at_once_with_exit_code_and_output(proxy: FaultInjectingProxy, tmp_path: Path):
    topology = tmp_path / "topology.yml"
    topology.write_text(MISSING_TEMPLATE)
    with RemoteLabClient(proxy.url) as client, pytest.raises(LabBringUpError) as raised:
        client.acquire(topology, reuse=False)
    failure = raised.value
    assert failure.status_code == 502
    assert failure.exit_code == 1
    assert not failure.timed_out
    assert any("Cannot find extra/gw1.j2" in line for line in failure.output)
    assert isinstance(failure, requests.HTTPError)
    assert len(proxy.requests_to("POST", "/lab")) == 1  # netlab ran once


def test_hung_netlab_fails_at_once_as_timed_out(
    server_bin: Path, netlab_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "up-hangs").touch()
    monkeypatch.setenv("FAULTY_NETLAB_REAL", str(netlab_bin))
    monkeypatch.setenv("FAULTY_NETLAB_FAULTS", str(faults))
    server = LabServer(server_bin, FAULTY_NETLAB, tmp_path / "server", "--netlab-up-timeout", "2")
    try:
        with RemoteLabClient(server.url) as client, pytest.raises(LabBringUpError) as raised:
            client.acquire(TWO_ROUTERS, reuse=False)
    finally:
        server.stop()
    assert raised.value.status_code == 504
    assert raised.value.timed_out
    assert raised.value.exit_code is None
    assert "did not finish within 2 s" in raised.value.detail
