"""What a waiting client tells its caller; the pytest plugin shows it in the terminal."""

from __future__ import annotations


class ProgressListener:
    """Receives the client's progress. This base ignores everything; override what you show.

    All calls come from the thread that uses the client.
    """

    def queued(self, position: int, waited: float) -> None:
        """The session is WAITING at `position` (0 is the head) after `waited` seconds."""

    def session_active(self, server: str, session_id: str, waited: float) -> None:
        """The session on `server` became ACTIVE after `waited` seconds in the queue."""

    def acquiring(self, topology: str) -> None:
        """`POST /lab` for `topology` was sent; the server may be bringing the lab up."""

    def lab_busy(self, detail: str, waited: float) -> None:
        """The server answered 423 (`detail`); the client retries until its acquisition timeout."""

    def lab_ready(self, topology: str, devices: int, reused: bool, took: float) -> None:
        """The lab for `topology` is up, started or `reused`, `took` seconds after `acquiring`."""
