"""Keeps a session "seen" by the server while its owner is busy elsewhere.

The server evicts an ACTIVE session after 300 s without a request. A test, or a `netlab up`,
can take longer than that; the original client sent no heartbeat and lost its lab.
"""

from __future__ import annotations

import logging
import threading

import requests

from ._http import Transport
from .errors import RemoteLabHTTPError

_log = logging.getLogger(__name__)


class Heartbeat:
    """A daemon thread posting `/session/heartbeat` every `interval` seconds until `stop()`."""

    def __init__(self, base_url: str, session_id: str, interval: float, request_timeout: float) -> None:
        # Own Transport: requests.Session must not be shared between threads. A heartbeat is
        # safe to repeat, so a lost answer or a 503 is retried like a GET.
        self._transport = Transport(base_url, request_timeout, session_id, repeatable_posts=True)
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"remote-lab-heartbeat-{session_id[:8]}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending; returns without waiting for a heartbeat that is in flight."""
        self._stopped.set()

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self._interval):
                self._beat()
        finally:
            self._transport.close()

    def _beat(self) -> None:
        try:
            self._transport.request("POST", "/session/heartbeat")
        except RemoteLabHTTPError as exc:
            if self._stopped.is_set():
                return  # close() deleted the session while this beat was in flight
            if exc.status_code == 404:
                _log.error("Session %s is gone from the server (%s)", self._transport.session_id[:8], exc.detail)
                self._stopped.set()
            else:
                _log.warning("Heartbeat refused: %s", exc)
        except requests.RequestException as exc:
            _log.warning("Heartbeat failed: %s", exc)
