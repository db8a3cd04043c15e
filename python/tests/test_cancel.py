"""A cancelled job (SIGTERM, as CI systems stop one) leaves the queue before its process exits."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import StartServer
from server_process import REPO, LabServer, wait_until

from neops_remote_lab._sigterm import SigtermRaises
from neops_remote_lab.client import RemoteLabClient

FAULTY_NETLAB = REPO / "tests" / "fixtures" / "faulty-netlab-standin"
INTERRUPTED = 2  # pytest's exit status after Ctrl-C


@contextmanager
def suite(consumer: pytest.Pytester, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The consumer project's pytest run in the background; yields the process and its output file."""
    out = consumer.path / "out.txt"
    with out.open("wb") as stdout:
        run = consumer.popen([sys.executable, "-m", "pytest", "-v", *args], stdout=stdout, stderr=stdout)
    try:
        yield run, out
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


@contextmanager
def next_suite(server: LabServer) -> Iterator[list[RemoteLabClient]]:
    """A client queued behind everyone now in the queue; the list holds it once it is ACTIVE."""
    before = server.health()["sessions"]
    active: list[RemoteLabClient] = []
    thread = threading.Thread(target=lambda: active.append(RemoteLabClient(server.url, session_timeout=120)))
    thread.start()
    try:
        wait_until(lambda: server.health()["sessions"] == before + 1, "the next suite to join the queue")
        yield active
    finally:
        thread.join(150)
        for client in active:
            client.close()


def terminate(run: subprocess.Popen[bytes], out: Path) -> int:
    run.send_signal(signal.SIGTERM)
    try:
        return run.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the run did not end within 60 s of SIGTERM:\n{out.read_text()}")


def test_sigterm_while_queued_leaves_the_queue(
    consumer: pytest.Pytester, lab_server: LabServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REMOTE_LAB_URL", lab_server.url)
    holder = lab_server.create_session()
    with suite(consumer, "-k", "device_data") as (run, out):
        wait_until(lambda: "position 1 in the queue" in out.read_text(), "the run to queue behind the holder")
        with next_suite(lab_server) as waiting:
            assert terminate(run, out) == INTERRUPTED, out.read_text()
            # Gone before the process exited: only the holder and the next suite remain.
            assert lab_server.health()["sessions"] == 2
            lab_server.delete_session(holder)
            wait_until(lambda: bool(waiting), "the next suite to get the lab host")


def test_sigterm_while_holding_the_lab_hands_it_on(
    consumer: pytest.Pytester, lab_server: LabServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REMOTE_LAB_URL", lab_server.url)
    consumer.makepyfile(
        test_holding="""
        import time
        from pathlib import Path

        def test_holds_the_lab(two_routers):
            Path("holding").touch()
            time.sleep(600)
        """
    )
    with suite(consumer, "test_holding.py") as (run, out):
        wait_until((consumer.path / "holding").exists, "the run to hold the lab", 300)
        with next_suite(lab_server) as waiting:
            assert terminate(run, out) == INTERRUPTED, out.read_text()
            wait_until(lambda: bool(waiting), "the next suite to get the lab host")
            assert lab_server.health()["sessions"] == 1


def test_sigterm_while_the_lab_comes_up_leaves_the_queue(
    consumer: pytest.Pytester,
    server_bin: Path,
    netlab_bin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "up-hangs").touch()
    monkeypatch.setenv("FAULTY_NETLAB_REAL", str(netlab_bin))
    monkeypatch.setenv("FAULTY_NETLAB_FAULTS", str(faults))
    server = LabServer(server_bin, FAULTY_NETLAB, tmp_path / "server")
    monkeypatch.setenv("REMOTE_LAB_URL", server.url)
    try:
        with suite(consumer, "-k", "device_data") as (run, out):
            wait_until((faults / "up-hangs.pid").exists, "netlab up to start")
            assert terminate(run, out) == INTERRUPTED, out.read_text()
            # The session was deleted before the process exited. (The server lets the bring-up
            # in flight finish or time out before it promotes the next session.)
            assert server.health()["sessions"] == 0
    finally:
        server.stop()


STANDALONE = """
import sys, time
from neops_remote_lab._sigterm import SigtermRaises
from neops_remote_lab.client import RemoteLabClient

client = RemoteLabClient(sys.argv[1], close_on_sigterm=sys.argv[2] == "close")
print(client.session_id, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize(("choice", "exit_status", "sessions_left"), [("close", 143, 0), ("keep", -signal.SIGTERM, 1)])
def test_standalone_client_closes_its_session_on_sigterm(
    start_server: StartServer, choice: str, exit_status: int, sessions_left: int
):
    server = start_server()
    script = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(STANDALONE), server.url, choice], stdout=subprocess.PIPE, text=True
    )
    try:
        assert script.stdout is not None
        assert script.stdout.readline().strip() == server.active_session()
        script.send_signal(signal.SIGTERM)
        assert script.wait(timeout=60) == exit_status
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()
    assert server.health()["sessions"] == sessions_left


def test_handler_goes_only_over_the_default_and_is_restored():
    previous = signal.getsignal(signal.SIGTERM)  # the plugin's own, in this run

    def custom(signum: int, frame: object) -> None:
        pass

    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        guard = SigtermRaises(KeyboardInterrupt)
        assert guard.hold()
        assert guard.hold()
        guard.release()
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # one holder left
        guard.release()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        signal.signal(signal.SIGTERM, custom)
        assert not guard.hold()
        assert signal.getsignal(signal.SIGTERM) is custom
    finally:
        signal.signal(signal.SIGTERM, previous)
