"""The queue wait against a server that ignores `?wait=` and lists no sessions, as the original 1.4.0.

The stand-in below is a scripted fake, not the server: it answers every status poll at once,
as servers without long-polling do, so the client must pace its polls itself; `GET /sessions`
gets 404, so the client must stop asking who holds the lab host.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import neops_remote_lab.client as client_module
from neops_remote_lab.client import RemoteLabClient
from neops_remote_lab.progress import ProgressListener

WAITING_POLLS = 3  # status polls answered "waiting" before the session turns active


class ImpatientServer(BaseHTTPRequestHandler):
    """Answers at once and records the status polls' query strings and the other GETs' paths."""

    polls: list[str]
    other_gets: list[str]

    def do_POST(self) -> None:
        self._answer(201, {"session_id": "stand-in-session", "position": 1})

    def do_GET(self) -> None:
        if not self.path.startswith("/session/"):
            self.other_gets.append(self.path)
            self._answer(404, {"detail": "Not Found"})
            return
        self.polls.append(self.path.partition("?")[2])
        waiting = len(self.polls) <= WAITING_POLLS
        self._answer(200, {"status": "waiting" if waiting else "active", "position": 1 if waiting else 0})

    def do_DELETE(self) -> None:
        self.send_response(204)
        self.end_headers()

    def _answer(self, status: int, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def impatient_server() -> Iterator[tuple[str, list[str], list[str]]]:
    polls: list[str] = []
    other_gets: list[str] = []
    handler = type("Handler", (ImpatientServer,), {"polls": polls, "other_gets": other_gets})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", polls, other_gets
    server.shutdown()
    thread.join()


def test_client_paces_its_polls_when_the_server_answers_at_once(
    impatient_server: tuple[str, list[str], list[str]], monkeypatch: pytest.MonkeyPatch
):
    url, polls, other_gets = impatient_server
    pauses: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", pauses.append)

    with RemoteLabClient(url, heartbeat_interval=0, progress=ProgressListener()):
        pass

    # The first poll asks for an immediate answer, later ones for a long poll.
    assert polls[0] == ""
    assert all(query.startswith("wait=") for query in polls[1:])
    # Unchanged answers that came back at once were each followed by a pause.
    assert len(pauses) == WAITING_POLLS - 1
    assert all(pause > 0 for pause in pauses)
    # Who holds the lab host was asked once: the 404 says this server cannot tell.
    assert other_gets == ["/sessions"]
