"""HTTP to the server: one place that decides what is retried, what fails at once, and what is sent again.

- Connection failures before a request left (refused, connect timeout) are retried for every
  method: the server never saw it.
- `GET` and `DELETE` (and heartbeats, on their own transport) are also retried after a lost
  answer and on 503, with backoff — urllib3's `Retry` on the session's adapter does it.
- A `POST` whose bytes left is never sent again blindly: `post_once` sends an `Idempotency-Key`
  and repeats it only when the server declares that header for the route in `/openapi.json`,
  or when the route answers a repeat with the first result anyway (`POST /session/{id}/labs`).
- Every other error status fails at once with the server's detail.

Every request carries `Authorization: Bearer $REMOTE_LAB_TOKEN` when that variable is set (a
server with auth on needs it; one without ignores it). The token is never logged.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from . import __version__
from .errors import AnswerLostError, RemoteLabHTTPError

_log = logging.getLogger(__name__)

# One multipart file field: (field name, (file name, content, content type)).
Upload = tuple[str, tuple[str, bytes, str]]

IDEMPOTENCY_HEADER = "Idempotency-Key"
BEARER_TOKEN_ENV = "REMOTE_LAB_TOKEN"  # noqa: S105 (a variable name, not a secret)

# Up to 5 retries, waiting 0, 1, 2, 4, 8 s: long enough to ride out a server restart, short
# enough to fail a run visibly. Errors that are neither connect nor read errors (TLS) are not retried.
_RETRIES = 5
_BACKOFF_FACTOR = 0.5
_MAX_BACKOFF = 8.0
_SAFE_METHODS = frozenset({"GET", "DELETE"})


def _retry(methods: Collection[str]) -> Retry:
    return Retry(
        total=_RETRIES,
        other=0,
        allowed_methods=frozenset(methods),
        status_forcelist=(503,),
        backoff_factor=_BACKOFF_FACTOR,
        backoff_max=_MAX_BACKOFF,
        raise_on_status=False,  # the last 503 comes back as a response and becomes RemoteLabHTTPError
    )


class Transport:
    """A `requests.Session` bound to one server and, once known, one queue session.

    `repeatable_posts=True` is for a transport that only sends POSTs safe to repeat
    (heartbeats): they are retried like `GET`. Not thread-safe (neither is
    `requests.Session`): each thread gets its own Transport.
    """

    def __init__(
        self, base_url: str, request_timeout: float, session_id: str = "", *, repeatable_posts: bool = False
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.request_timeout = request_timeout
        self._http = requests.Session()
        self._http.headers["User-Agent"] = f"neops-remote-lab-client/{__version__}"
        token = os.environ.get(BEARER_TOKEN_ENV, "").strip()
        if token:
            self._http.headers["Authorization"] = f"Bearer {token}"
        methods = _SAFE_METHODS | {"POST"} if repeatable_posts else _SAFE_METHODS
        adapter = HTTPAdapter(max_retries=_retry(methods))
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)
        self._idempotent_routes: frozenset[str] | None = None
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
        params: Mapping[str, str | int] | None = None,
        data: Mapping[str, str] | None = None,
        files: Sequence[Upload] | None = None,
        json: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request (with the retries above); return 2xx answers and the statuses in `tolerate`.

        Other statuses raise `RemoteLabHTTPError`. Transport failures raise `requests`'
        `ConnectionError` or `Timeout` once the retries are spent. Timeouts are seconds: the
        connect timeout is `request_timeout`, the read timeout `read_timeout` (default
        `request_timeout`), or with a `deadline` (a `time.monotonic()` value) the time left until then.
        `json` is sent as a JSON body; `stream=True` leaves the body unread (then the read timeout
        applies to each read, and the caller closes the response).
        """
        timeout = (self.request_timeout, self._read_timeout(read_timeout, deadline))
        response = self._http.request(
            method,
            self.base_url + path,
            params=params,
            data=data,
            files=files,
            json=json,
            headers=headers,
            timeout=timeout,
            stream=stream,
        )
        if response.ok or response.status_code in tolerate:
            return response
        raise RemoteLabHTTPError(method, path, response)

    def post_once(
        self,
        path: str,
        *,
        tolerate: Collection[int] = (),
        deadline: float | None = None,
        data: Mapping[str, str] | None = None,
        files: Sequence[Upload] | None = None,
        json: Mapping[str, object] | None = None,
        repeatable: bool = False,
    ) -> requests.Response:
        """`POST path` that the server acts on once, even when its answer is lost.

        The request carries a fresh `Idempotency-Key`. When the connection fails after the
        request left (reset, read timeout), it is sent again with the same key — at most
        `_RETRIES` times, with backoff, and never past `deadline` — but only if the server
        declares the header for `path`, or `repeatable` says the route itself answers a repeat
        with the first result (a lab declaration). Otherwise `AnswerLostError` is raised. A read
        timeout at the deadline is raised as `requests.ReadTimeout`. Statuses as in `request`.
        """
        headers = {IDEMPOTENCY_HEADER: str(uuid.uuid4())}
        attempt = 0
        while True:
            try:
                return self.request(
                    "POST",
                    path,
                    tolerate=tolerate,
                    deadline=deadline,
                    data=data,
                    files=files,
                    json=json,
                    headers=headers,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not _maybe_delivered(exc):
                    raise
                delay = min(_BACKOFF_FACTOR * 2**attempt, _MAX_BACKOFF)
                if attempt == _RETRIES or (deadline is not None and time.monotonic() + delay >= deadline):
                    raise
                if not (repeatable or self.declares_idempotency(path)):
                    raise AnswerLostError(
                        f"POST {path}: the answer was lost after the request reached the server ({exc}). "
                        f"The server does not declare the {IDEMPOTENCY_HEADER} header for {path}, so sending it "
                        "again could act twice; it was not sent again"
                    ) from exc
                _log.warning(
                    "POST %s: answer lost (%s); sending it again with the same %s in %.1f s",
                    path,
                    exc,
                    IDEMPOTENCY_HEADER,
                    delay,
                )
                time.sleep(delay)
                attempt += 1

    def declares_idempotency(self, path: str) -> bool:
        """Whether the server's `/openapi.json` declares the `Idempotency-Key` header on `POST path`.

        Asked once per transport; a server whose document cannot be read counts as not declaring it
        (and is asked again next time).
        """
        if self._idempotent_routes is None:
            try:
                document = self.request("GET", "/openapi.json").json()
            except (requests.RequestException, ValueError) as exc:
                _log.warning("Could not read the server's /openapi.json: %s", exc)
                return False
            self._idempotent_routes = _routes_with_idempotency_key(document)
        return path in self._idempotent_routes

    def _read_timeout(self, read_timeout: float | None, deadline: float | None) -> float:
        if deadline is not None:
            return max(1.0, deadline - time.monotonic())
        return read_timeout if read_timeout is not None else self.request_timeout

    def close(self) -> None:
        self._http.close()


def _maybe_delivered(exc: requests.RequestException) -> bool:
    """False only when the request certainly never reached the server (it could not connect)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    reason = exc.args[0] if exc.args else None
    return not (isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError))


def _routes_with_idempotency_key(document: object) -> frozenset[str]:
    """The paths whose `post` operation declares an `Idempotency-Key` header parameter."""
    if not isinstance(document, dict):
        return frozenset()
    shared = document.get("components", {}).get("parameters", {})

    def resolve(parameter: dict[str, Any]) -> dict[str, Any]:
        ref = str(parameter.get("$ref", ""))
        found = shared.get(ref.rpartition("/")[2], {}) if ref.startswith("#/components/parameters/") else parameter
        return found if isinstance(found, dict) else {}

    routes = set()
    for path, operations in document.get("paths", {}).items():
        post = operations.get("post") if isinstance(operations, dict) else None
        parameters = post.get("parameters", []) if isinstance(post, dict) else []
        for parameter in map(resolve, (p for p in parameters if isinstance(p, dict))):
            if parameter.get("in") == "header" and str(parameter.get("name", "")).lower() == IDEMPOTENCY_HEADER.lower():
                routes.add(path)
    return frozenset(routes)
