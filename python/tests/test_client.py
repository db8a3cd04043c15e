"""RemoteLabClient against the real server binary running real netlab."""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import requests
from conftest import StartServer
from server_process import TOPOLOGIES, LabServer, wait_until

from neops_remote_lab.client import RemoteLabClient
from neops_remote_lab.errors import RemoteLabHTTPError
from neops_remote_lab.models import LabStatusDto, QueuedSessionDto
from neops_remote_lab.progress import ProgressListener

TWO_ROUTERS = TOPOLOGIES / "two_routers.yml"
THREE_ROUTERS = TOPOLOGIES / "three_routers.yml"


class Recorder(ProgressListener):
    """Keeps what the client reported; `busy` is set at the first 423."""

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.refusals: list[str] = []
        self.holders: list[list[QueuedSessionDto]] = []
        self.netlab_lines: list[str] = []
        self.busy = threading.Event()
        self.queued_event = threading.Event()

    def held_by(self, holders: Sequence[QueuedSessionDto]) -> None:
        self.holders.append(list(holders))

    def lab_log(self, line: str, elapsed: float) -> None:
        self.netlab_lines.append(line)

    def queued(self, position: int, waited: float) -> None:
        self.positions.append(position)
        self.queued_event.set()

    def lab_busy(self, detail: str, waited: float) -> None:
        self.refusals.append(detail)
        self.busy.set()


def test_acquire_returns_device_host_view(lab_server: LabServer):
    with RemoteLabClient(lab_server.url) as client:
        devices = client.acquire(TWO_ROUTERS, reuse=False)
        assert sorted(device.name for device in devices) == ["r1", "r2"]
        for device in devices:
            assert device.raw["mgmt"]["ipv4"]
            assert device.raw["ansible_network_os"] == "eos"
            assert device.raw["ansible_user"]
        client.release()


def test_close_is_idempotent_and_hands_the_queue_on(lab_server: LabServer):
    with RemoteLabClient(lab_server.url) as client:
        assert lab_server.active_session() == client.session_id
    assert client.session_id == ""
    assert lab_server.active_session() is None
    client.close()


def test_waiting_client_reports_its_position_and_the_holder_and_becomes_active(lab_server: LabServer):
    holder = RemoteLabClient(lab_server.url, client_info={"user": "ada", "label": "nightly regression"})
    recorder = Recorder()
    waiting: list[RemoteLabClient] = []
    thread = threading.Thread(target=lambda: waiting.append(RemoteLabClient(lab_server.url, progress=recorder)))
    thread.start()
    holder_id = holder.session_id
    try:
        assert recorder.queued_event.wait(60), "the second client never reported a queue position"
        holder.close()
        thread.join(60)
        assert waiting, "the second client never became active"
        assert lab_server.active_session() == waiting[0].session_id
        assert recorder.positions[0] == 1
        (first_holder,) = recorder.holders[0]
        assert first_holder.id == holder_id[:8]
        assert first_holder.client is not None
        assert (first_holder.client.user, first_holder.client.label) == ("ada", "nightly regression")
    finally:
        holder.close()
        thread.join(60)
        for client in waiting:
            client.close()


def test_acquire_reports_netlabs_lines_of_a_bring_up_and_none_after(lab_server: LabServer):
    recorder = Recorder()
    with RemoteLabClient(lab_server.url, progress=recorder) as client:
        client.acquire(TWO_ROUTERS, reuse=False)
        reported = list(recorder.netlab_lines)
        assert "Starting external nodes" in reported
        # netlab inspect's JSON (the devices' host views) is not progress.
        assert "[" not in reported
        assert not any(line.startswith('"') for line in reported)
        client.release()
        client.acquire(TWO_ROUTERS, reuse=True)  # attached: netlab does not run
        client.release()
    assert recorder.netlab_lines == reported


def test_heartbeat_keeps_an_active_session_past_the_active_timeout(start_server: StartServer):
    # A session unseen for 2 s is evicted while ACTIVE, for 4 s while WAITING.
    server = start_server("--active-timeout", "2", "--waiting-timeout", "4")

    silent = RemoteLabClient(server.url, heartbeat_interval=0)
    wait_until(lambda: server.active_session() != silent.session_id, "the silent session to be evicted")
    silent.close()

    with RemoteLabClient(server.url, heartbeat_interval=0.5) as client:
        client.acquire(TWO_ROUTERS, reuse=True)
        # A control session that nobody polls: once it is evicted as WAITING (4 s), the client
        # has gone unseen, but for heartbeats, longer than its ACTIVE timeout (2 s).
        control = server.create_session()
        wait_until(lambda: server.health()["sessions"] == 1, f"the control session {control} to be evicted")
        assert server.active_session() == client.session_id
        lab = requests.get(f"{server.url}/lab", headers={"X-Session-ID": client.session_id}, timeout=10)
        assert LabStatusDto.model_validate(lab.json()).running
        client.release()


def test_423_is_retried_with_the_whole_topology_sent_again(lab_server: LabServer):
    recorder = Recorder()
    with RemoteLabClient(lab_server.url, progress=recorder) as client:
        client.acquire(TWO_ROUTERS, reuse=True)  # held: a different topology is refused with 423

        def release_after_first_refusal() -> None:
            if recorder.busy.wait(60):
                headers = {"X-Session-ID": client.session_id}
                requests.post(f"{lab_server.url}/lab/release", headers=headers, timeout=10).raise_for_status()

        releaser = threading.Thread(target=release_after_first_refusal)
        releaser.start()
        devices = client.acquire(THREE_ROUTERS, reuse=False)
        releaser.join()

    assert recorder.refusals, "the server never answered 423"
    # The retry carried the full three-router file (the original client re-sent an empty one).
    assert sorted(device.name for device in devices) == ["r1", "r2", "r3"]


def test_4xx_fails_at_once_with_the_servers_detail(lab_server: LabServer, tmp_path: Path):
    not_yaml = tmp_path / "topology.txt"
    not_yaml.write_bytes(TWO_ROUTERS.read_bytes())
    recorder = Recorder()
    with RemoteLabClient(lab_server.url, progress=recorder) as client, pytest.raises(RemoteLabHTTPError) as raised:
        client.acquire(not_yaml, reuse=False)
    assert raised.value.status_code == 400
    assert "Topology must be a" in str(raised.value)
    assert isinstance(raised.value, requests.HTTPError)
    assert recorder.refusals == []


def test_acquisition_gives_up_at_its_timeout_saying_why(lab_server: LabServer):
    with RemoteLabClient(lab_server.url, lab_acquisition_timeout=600) as client:
        client.acquire(TWO_ROUTERS, reuse=True)
        client.lab_acquisition_timeout = 3
        with pytest.raises(TimeoutError) as raised:
            client.acquire(THREE_ROUTERS, reuse=False)
    message = str(raised.value)
    assert "lab_acquisition_timeout=3" in message
    assert "423" in message
    assert "Lab currently busy" in message


def test_extra_files_are_stored_beside_the_topology(lab_server: LabServer, tmp_path: Path):
    lab = tmp_path / "lab"
    (lab / "configs").mkdir(parents=True)
    (lab / "templates").mkdir()
    topology = lab / "topology.yml"
    topology.write_bytes(TWO_ROUTERS.read_bytes())
    (lab / "configs" / "r1.cfg").write_text("hostname r1\n")
    (lab / "configs" / "r2.cfg").write_text("hostname r2\n")
    (lab / "templates" / "template.j2").write_text("{{ hostname }}\n")

    expected = {
        "configs/r1.cfg": "hostname r1\n",
        "configs/r2.cfg": "hostname r2\n",
        "templates/template.j2": "{{ hostname }}\n",
    }

    with RemoteLabClient(lab_server.url) as client:
        client.acquire(topology, reuse=False, extra_files=["configs", lab / "templates" / "template.j2"])
        # The server's lab folder: the one holding our topology's bytes.
        (lab_dir,) = {p.parent for p in lab_server.work_dir.rglob("*.yml") if p.read_bytes() == topology.read_bytes()}
        stored = {name: (lab_dir / name).read_text() for name in expected if (lab_dir / name).is_file()}
        client.release()
    assert stored == expected


def test_files_outside_the_given_root_are_refused(lab_server: LabServer, tmp_path: Path):
    (tmp_path / "lab").mkdir()
    (tmp_path / "secret.cfg").write_text("x")
    topology = tmp_path / "lab" / "topology.yml"
    topology.write_bytes(TWO_ROUTERS.read_bytes())
    with RemoteLabClient(lab_server.url) as client, pytest.raises(ValueError, match="outside the upload's root"):
        client.acquire(topology, reuse=False, extra_files=["../secret.cfg"], root=".")


def test_transport_errors_are_retried_until_the_server_listens(start_server: StartServer):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clients: list[RemoteLabClient] = []
    thread = threading.Thread(target=lambda: clients.append(RemoteLabClient(f"http://127.0.0.1:{port}")))
    thread.start()  # connection refused: the client backs off and tries again
    start_server(port=port)
    thread.join(60)
    assert clients, "the client gave up before the server came up"
    clients[0].close()
