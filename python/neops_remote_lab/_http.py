"""HTTP to the server: one place that decides what is retried and what fails at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence

import requests

from . import __version__
from .errors import RemoteLabHTTPError

_log = logging.getLogger(__name__)

# One multipart file field: (field name, (file name, content, content type)).
Upload = tuple[str, tuple[str, bytes, str]]

# Transient failures (transport errors, 5xx) are retried this many times, waiting
# 0.5, 1, 2, 4, 8 s: long enough to ride out a server restart, short enough to fail a run visibly.
_RETRIES = 5
_FIRST_BACKOFF = 0.5
_MAX_BACKOFF = 8.0


class Transport:
    """A `requests.Session` bound to one server and, once known, one queue session.

    Not thread-safe (neither is `requests.Session`): each thread gets its own Transport.
    """

    def __init__(self, base_url: str, request_timeout: float, session_id: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.request_timeout = request_timeout
        self._http = requests.Session()
        self._http.headers["User-Agent"] = f"neops-remote-lab-client/{__version__}"
        self.session_id = ""
        if session_id:
            self.use_session(session_id)

    def use_session(self, session_id: str) -> None:
        """Send `X-Session-ID: session_id` from now on."""
        self.session_id = session_id
        self._http.headers["X-Session-ID"] = session_id

    def request(
        self,
        method: str,
        path: str,
        *,
        tolerate: Collection[int] = (),
        read_timeout: float | None = None,
        deadline: float | None = None,
        idempotent: bool = True,
        params: Mapping[str, str | int] | None = None,
        data: Mapping[str, str] | None = None,
        files: Sequence[Upload] | None = None,
    ) -> requests.Response:
        """Send one request; return 2xx answers and the statuses in `tolerate`.

        Other 4xx answers raise `RemoteLabHTTPError` at once: asking again gets the same answer.
        Transport errors and 5xx are retried with backoff. A read timeout is retried only for
        idempotent requests, since the server may still be acting on the first one. With a
        `deadline` (a `time.monotonic()` value) every attempt must finish by then.
        """
        attempt = 0
        while True:
            timeout = (self.request_timeout, self._read_timeout(read_timeout, deadline))
            try:
                response = self._http.request(
                    method, self.base_url + path, params=params, data=data, files=files, timeout=timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if isinstance(exc, requests.ReadTimeout) and not idempotent:
                    raise
                failure: Exception = exc
            else:
                if response.ok or response.status_code in tolerate:
                    return response
                failure = RemoteLabHTTPError(method, path, response)
                if response.status_code < 500:
                    raise failure
            delay = min(_FIRST_BACKOFF * 2**attempt, _MAX_BACKOFF)
            if attempt == _RETRIES or (deadline is not None and time.monotonic() + delay >= deadline):
                raise failure
            _log.warning("%s %s failed (%s); retrying in %.1f s", method, path, failure, delay)
            time.sleep(delay)
            attempt += 1

    def _read_timeout(self, read_timeout: float | None, deadline: float | None) -> float:
        if deadline is not None:
            return max(1.0, deadline - time.monotonic())
        return read_timeout if read_timeout is not None else self.request_timeout

    def close(self) -> None:
        self._http.close()
