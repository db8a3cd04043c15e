"""The queue wait against a server that ignores `?wait=` and lists no sessions, as the original 1.4.0.

The stand-in below is a scripted fake, not the server: it answers every status poll at once,
as servers without long-polling do, so the client must pace its polls itself; `GET /sessions`
gets 404, so the client must stop asking who holds the lab host.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from standin_http import JsonAnswers, serving

import neops_remote_lab.client as client_module
from neops_remote_lab.client import RemoteLabClient
from neops_remote_lab.progress import ProgressListener

WAITING_POLLS = 3  # status polls answered "waiting" before the session turns active


class ImpatientServer(JsonAnswers):
    """Answers at once and records the status polls' query strings and the other GETs' paths."""

    polls: list[str]
    other_gets: list[str]

    def do_POST(self) -> None:
        self.answer(201, {"session_id": "stand-in-session", "position": 1})

    def do_GET(self) -> None:
        if not self.path.startswith("/session/"):
            self.other_gets.append(self.path)
            self.answer(404, {"detail": "Not Found"})
            return
        self.polls.append(self.path.partition("?")[2])
        waiting = len(self.polls) <= WAITING_POLLS
        self.answer(200, {"status": "waiting" if waiting else "active", "position": 1 if waiting else 0})

    def do_DELETE(self) -> None:
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def impatient_server() -> Iterator[tuple[str, list[str], list[str]]]:
    polls: list[str] = []
    other_gets: list[str] = []
    handler = type("Handler", (ImpatientServer,), {"polls": polls, "other_gets": other_gets})
    with serving(handler) as url:
        yield url, polls, other_gets


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
