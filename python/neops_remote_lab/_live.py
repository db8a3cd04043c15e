"""The server's views for watchers, used to tell a waiting user more: `GET /sessions`, `GET /lab/log`.

Both are extras: a server without them (the original 1.4.0) answers 404, and the client shows
what it always did. Neither may slow down or break the work it accompanies.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import requests

from ._http import Transport
from ._text import printable
from .models import SessionsDto

_log = logging.getLogger(__name__)

# Seconds between looks at the slot's phase while waiting for the bring-up to begin.
_PHASE_POLL_INTERVAL = 0.25


def list_sessions(transport: Transport) -> SessionsDto | None:
    """`GET /sessions`; None when the server has no such route (404).

    Raises `requests`' errors (`RemoteLabHTTPError` for other error answers) and `ValueError`
    for an answer that is not the expected JSON.
    """
    response = transport.request("GET", "/sessions", tolerate=(404,))
    if response.status_code == 404:
        return None
    return SessionsDto.model_validate(response.json())


class BringUpFollower:
    """Reports netlab's output lines of this session's bring-up, from a daemon thread.

    It watches the session's slot (`GET /sessions`) until its phase is `starting`, then reads
    `GET /lab/log` (which streams the bring-up's lines from its first one and ends with it) and
    calls `on_line` with each non-empty line, control characters removed (the server sends only
    `netlab up`'s output, not the device data). It gives up quietly on a server without these
    routes (404) and on any failure. Reads
    time out at `deadline` (a `time.monotonic()` value).
    """

    def __init__(
        self, base_url: str, session_id: str, request_timeout: float, deadline: float, on_line: Callable[[str], None]
    ) -> None:
        # Own Transport: requests.Session must not be shared between threads.
        self._transport = Transport(base_url, request_timeout, session_id)
        self._short_id = session_id[:8]
        self._deadline = deadline
        self._on_line = on_line
        self._stopped = threading.Event()
        self._reporting = threading.Lock()
        thread = threading.Thread(target=self._run, name=f"remote-lab-bring-up-{self._short_id}", daemon=True)
        thread.start()

    def stop(self) -> None:
        """Stop reporting: once this returns, `on_line` is not called again.

        Does not wait for the thread: it ends at its next look at the slot, or when the log
        stream ends (with the bring-up, or the session).
        """
        with self._reporting:
            self._stopped.set()

    def _run(self) -> None:
        try:
            self._follow()
        except (requests.RequestException, ValueError) as exc:
            _log.debug("Stopped following the bring-up's output: %s", exc)
        finally:
            self._transport.close()

    def _follow(self) -> None:
        reported = 0  # lines of the current bring-up reported so far
        while not self._stopped.is_set():
            overview = list_sessions(self._transport)
            if overview is None:
                return
            starting = any(slot.holder == self._short_id and slot.phase == "starting" for slot in overview.slots)
            if not starting:
                reported = 0
            else:
                # A log that ended while the phase still says `starting` is read again, past
                # the lines already reported.
                read = self._read_log(skip=reported)
                if read is None:
                    return
                reported = read
            self._stopped.wait(_PHASE_POLL_INTERVAL)

    def _read_log(self, skip: int) -> int | None:
        """Report the log's lines after the first `skip`; the number of lines read, None without the route."""
        response = self._transport.request("GET", "/lab/log", tolerate=(404,), deadline=self._deadline, stream=True)
        with contextlib.closing(response):
            if response.status_code == 404:
                return None
            read = 0
            for raw in response.iter_lines():
                read += 1
                line = raw.decode("utf-8", "replace").rstrip()
                if read > skip and not self._report(printable(line)):
                    break
            return read

    def _report(self, line: str) -> bool:
        """Pass `line` on unless it is empty; False once stopped."""
        with self._reporting:
            if self._stopped.is_set():
                return False
            if line:
                self._on_line(line)
            return True
