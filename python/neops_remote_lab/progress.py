"""What a waiting client tells its caller; the pytest plugin shows it in the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from .models import QueuedSessionDto


class ProgressListener:
    """Receives the client's progress. This base ignores everything; override what you show.

    All calls come from the thread that uses the client, except `lab_log` (see there).
    """

    def queued(self, position: int, waited: float) -> None:
        """The session is WAITING at `position` (0 is the head) after `waited` seconds."""

    def held_by(self, holders: Sequence[QueuedSessionDto]) -> None:
        """The ACTIVE sessions (the lab host's holders) while this one waits, just before each `queued`.

        Each has its `client` info (None when it sent none). Only called by servers that list
        their sessions (`GET /sessions`).
        """

    def session_active(self, server: str, session_id: str, waited: float) -> None:
        """The session on `server` became ACTIVE after `waited` seconds in the queue."""

    def acquiring(self, topology: str) -> None:
        """`POST /lab` for `topology` was sent; the server may be bringing the lab up."""

    def lab_log(self, line: str, elapsed: float) -> None:
        """One line of netlab's output of the bring-up `acquiring` started, `elapsed` seconds after it.

        Called from a background thread while the thread using the client waits for `POST /lab`;
        never after `acquire` returned (nor after `lab_ready`). Only called when the client was
        given this listener and the server streams bring-up logs (`GET /lab/log`).
        """

    def lab_busy(self, detail: str, waited: float) -> None:
        """The server answered 423 (`detail`); the client retries until its acquisition timeout."""

    def lab_ready(self, topology: str, devices: int, reused: bool, took: float) -> None:
        """The lab for `topology` is up, started or `reused`, `took` seconds after `acquiring`."""
