"""Declared labs (`POST /session/{id}/labs`): the client and the pytest plugin against the real server and netlab."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from fault_injection import fault_injecting_proxy
from server_process import TOPOLOGIES, LabServer
from standin_http import JsonAnswers, serving

from neops_remote_lab import DeclaredLabDto, LabDeclaration
from neops_remote_lab.client import RemoteLabClient
from neops_remote_lab.errors import RemoteLabHTTPError
from neops_remote_lab.progress import ProgressListener

TWO_ROUTERS = TOPOLOGIES / "two_routers.yml"
TWO_ROUTERS_COPY = TOPOLOGIES / "two_routers_copy.yml"  # the same bytes under another name: the same lab
THREE_ROUTERS = TOPOLOGIES / "three_routers.yml"


class Queued(ProgressListener):
    """Set once the client reports a queue position, which it does after its declarations."""

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.event = threading.Event()

    def queued(self, position: int, waited: float) -> None:
        self.positions.append(position)
        self.event.set()


def session_status(server: LabServer, session_id: str) -> dict[str, Any]:
    """`GET /session/{id}` straight from the server."""
    response = requests.get(f"{server.url}/session/{session_id}", timeout=30)
    response.raise_for_status()
    return dict(response.json())


def declared_labs(server: LabServer, session_id: str) -> list[str]:
    return list(session_status(server, session_id)["declared_labs"])


def lab_folder(root: Path) -> Path:
    """A topology with a companion file; returns the topology."""
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "r1.cfg").write_text("hostname r1\n")
    topology = root / "topology.yml"
    topology.write_bytes(TWO_ROUTERS.read_bytes())
    return topology


def identity(client: RemoteLabClient, topology: Path) -> str:
    """The identity the server gives the lab `topology` is (declared on `client`'s session)."""
    declared = client.declare_lab(topology)
    assert declared is not None, "the server does not take declared labs"
    return declared.identity


def client_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "neops_remote_lab.client" and r.levelno >= logging.WARNING
    ]


def test_a_waiting_client_declares_its_labs_before_its_turn(
    lab_server: LabServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    folder = lab_folder(tmp_path / "lab")
    declare = [
        LabDeclaration(TWO_ROUTERS),
        LabDeclaration(folder, extra_files=["configs"]),
        LabDeclaration(TWO_ROUTERS_COPY),  # declared before: answered with the first index
    ]
    holder = lab_server.create_session()
    queued = Queued()
    clients: list[RemoteLabClient] = []
    # No fault is injected: the proxy only shows which session id the waiting client got.
    with fault_injecting_proxy(lab_server.url) as proxy:
        thread = threading.Thread(
            target=lambda: clients.append(RemoteLabClient(proxy.url, progress=queued, declare=declare))
        )
        thread.start()
        try:
            assert queued.event.wait(60), "the client never reported its queue position"
            (waiter,) = {path.split("/")[2] for method, path, _ in proxy.seen if path.endswith("/labs")}
            status = session_status(lab_server, waiter)
            assert (status["status"], status["position"]) == ("waiting", 1)
            listed = status["declared_labs"]
            assert len(listed) == 2
            assert client_warnings(caplog) == []

            lab_server.delete_session(holder)
            thread.join(60)
            (client,) = clients
            assert client.session_id == waiter
            # Declared again while active: each answers its first place.
            assert client.declare_lab(TWO_ROUTERS_COPY) == DeclaredLabDto(identity=listed[0], index=0)
            assert client.declare_lab(folder, extra_files=["configs"]) == DeclaredLabDto(identity=listed[1], index=1)
            assert declared_labs(lab_server, waiter) == listed
        finally:
            requests.delete(f"{lab_server.url}/session/{holder}", timeout=60)  # gone already unless a check failed
            thread.join(60)
            for client in clients:
                client.close()


def test_a_declaration_whose_answer_is_lost_is_sent_again(lab_server: LabServer):
    # FAULT INJECTION: the server stores the declaration, the client never hears; the server
    # declares no Idempotency-Key for the route (hidden here for every route), yet a repeat is
    # safe: it answers the first result.
    with (
        fault_injecting_proxy(lab_server.url, hide_idempotency_key=True) as proxy,
        RemoteLabClient(proxy.url) as client,
    ):
        path = f"/session/{client.session_id}/labs"
        proxy.drop_answer("POST", path)
        declared = client.declare_lab(TWO_ROUTERS)
        assert declared is not None
        assert declared.index == 0
        first, second = proxy.requests_to("POST", path)
        assert first == second
        assert declared_labs(lab_server, client.session_id) == [declared.identity]


def test_the_declared_identity_is_the_one_the_acquired_lab_gets(lab_server: LabServer, tmp_path: Path):
    folder = lab_folder(tmp_path / "lab")
    with RemoteLabClient(lab_server.url) as client:
        declared = client.declare_lab(folder, extra_files=["configs"])
        assert declared is not None
        assert declared.index == 0
        assert len(declared.identity) == 64
        client.acquire(folder, reuse=False, extra_files=["configs"])
        (slot,) = [slot for slot in lab_server.sessions()["slots"] if slot["holder"] == client.session_id[:8]]
        assert len(slot["lab"]["identity"]) == 12
        assert declared.identity.startswith(slot["lab"]["identity"])
        client.release()


def test_bad_declarations_are_refused_and_change_nothing(
    lab_server: LabServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    not_yaml = tmp_path / "topology.txt"
    not_yaml.write_bytes(TWO_ROUTERS.read_bytes())
    broken = tmp_path / "broken.yml"
    broken.write_text("nodes: [r1\n")
    # Refused while declaring ahead: a warning, and the client goes on with the next one.
    with RemoteLabClient(lab_server.url, declare=[LabDeclaration(not_yaml), LabDeclaration(TWO_ROUTERS)]) as client:
        (warning,) = client_warnings(caplog)
        assert "topology.txt" in warning
        assert "HTTP 400" in warning
        (good,) = declared_labs(lab_server, client.session_id)
        with pytest.raises(RemoteLabHTTPError) as raised:
            client.declare_lab(broken)
        assert raised.value.status_code == 400
        assert declared_labs(lab_server, client.session_id) == [good]
        assert client.declare_lab(TWO_ROUTERS) == DeclaredLabDto(identity=good, index=0)
        # Our server's 404 for a session it does not know is an error, not a server without the route.
        lab_server.delete_session(client.session_id)
        with pytest.raises(RemoteLabHTTPError, match="Session not found") as raised:
            client.declare_lab(TWO_ROUTERS)
        assert raised.value.status_code == 404


def test_a_missing_file_to_declare_fails_the_client_and_leaves_the_queue(lab_server: LabServer, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"nope\.yml"):
        RemoteLabClient(lab_server.url, declare=[LabDeclaration(tmp_path / "nope.yml")])
    assert lab_server.health()["sessions"] == 0


RECORD_DECLARED = """
import json
import os
from pathlib import Path

import requests
from neops_remote_lab.testing.fixture import remote_lab_fixture

unused_lab = remote_lab_fixture("unused/topology.yml")


def test_needs_the_unused_lab(unused_lab):
    pass


def test_records_the_declared_labs(remote_lab_client):
    url = os.environ["REMOTE_LAB_URL"]
    answer = requests.get(f"{url}/session/{remote_lab_client.session_id}", timeout=30)
    Path("declared.json").write_text(json.dumps(answer.json()["declared_labs"]))
"""


def test_the_plugin_declares_the_selected_tests_labs_in_run_order(
    consumer: pytest.Pytester, lab_server: LabServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REMOTE_LAB_URL", lab_server.url)
    (consumer.path / "unused").mkdir()
    (consumer.path / "unused" / "topology.yml").write_text("defaults.device: eos\nnodes: [a, b, c, d]\n")
    consumer.makepyfile(test_declared=RECORD_DECLARED)
    # test_sample.py collects three_routers' test first; two_routers' group runs first (declared
    # first, its twin has the same files). The unused lab's only test is deselected.
    result = consumer.runpytest_subprocess("test_sample.py", "test_declared.py", "-k", "not unused", timeout=600)
    result.assert_outcomes(passed=7, deselected=1)
    declared = json.loads((consumer.path / "declared.json").read_text())

    with RemoteLabClient(lab_server.url) as client:
        two, three = identity(client, TWO_ROUTERS), identity(client, THREE_ROUTERS)
        unused = identity(client, consumer.path / "unused" / "topology.yml")
    assert declared == [two, three]
    assert unused not in declared


class OriginalServer(JsonAnswers):
    """COMPAT STAND-IN for the original 1.4.0 server, which has no `POST /session/{id}/labs`.

    Just the session routes a client needs (a session is active at once). A declaration is
    recorded in `declarations` and answered `status` `{"detail": detail}` (`no_route`), as that
    server's web framework answers a route it does not have.
    """

    no_route: tuple[int, str]
    declarations: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/session":
            self.answer(201, {"session_id": str(uuid.uuid4()), "position": 0})
            return
        self.declarations.append(self.path)
        status, detail = self.no_route
        self.answer(status, {"detail": detail})

    def do_GET(self) -> None:
        self.answer(200, {"status": "active", "position": 0})

    def do_DELETE(self) -> None:
        self.answer(200, {"message": "Session ended"})


@pytest.mark.parametrize(("status", "detail"), [(404, "Not Found"), (405, "Method Not Allowed")])
def test_a_server_without_the_route_gets_no_declarations_and_no_error(
    status: int, detail: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="neops_remote_lab.client")
    declarations: list[str] = []
    handler = type("Handler", (OriginalServer,), {"no_route": (status, detail), "declarations": declarations})
    declare = [LabDeclaration(TWO_ROUTERS), LabDeclaration(THREE_ROUTERS)]
    with serving(handler) as url, RemoteLabClient(url, heartbeat_interval=0, client_info={}, declare=declare) as client:
        assert client.declare_lab(TWO_ROUTERS) is None
    # Asked once (the first of the constructor's declarations); then the client knows.
    (asked,) = declarations
    assert asked.startswith("/session/")
    assert asked.endswith("/labs")
    told = [r.getMessage() for r in caplog.records if "does not take declared labs" in r.getMessage()]
    assert len(told) == 1
    assert client_warnings(caplog) == []
