"""Exceptions the client raises besides `TimeoutError` and `requests`' transport errors."""

from __future__ import annotations

import re

import requests

__all__ = ["AnswerLostError", "LabBringUpError", "RemoteLabHTTPError", "detail_of"]


def detail_of(response: requests.Response) -> str:
    """The server's explanation: `{"detail": ...}` on every error, else whatever the body says."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason or "no detail"
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)


class RemoteLabHTTPError(requests.HTTPError):
    """The server answered with an error status.

    A subclass of `requests.HTTPError`, which the original client raised, so existing
    `except HTTPError` clauses keep working; `status_code` is the HTTP status (int) and
    `detail` the server's message (str).
    """

    def __init__(self, method: str, path: str, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.detail = detail_of(response)
        message = f"{method} {path} failed with HTTP {self.status_code}: {self.detail}"
        super().__init__(message + _auth_hint(response), response=response)


def _auth_hint(response: requests.Response) -> str:
    """What to do about a refused token: the server's own words do not name our variable."""
    if response.status_code == 401:
        sent = "Authorization" in response.request.headers if response.request is not None else False
        if sent:
            return " (the server does not accept the token in REMOTE_LAB_TOKEN)"
        return " (the server needs a token: set REMOTE_LAB_TOKEN)"
    if response.status_code == 403:
        return " (the session was created with another token than REMOTE_LAB_TOKEN)"
    return ""


# The server's words for a failed or hung bring-up, e.g.
#   "`netlab up t.yml` failed (exit code 3); last output:\nline1\nline2"
#   "`netlab up t.yml` did not finish within 900 s and was killed; last output:\n..."
_EXIT_CODE = re.compile(r"\(exit code (-?\d+)\)")
_OUTPUT_MARK = "last output:\n"


class LabBringUpError(RemoteLabHTTPError):
    """`POST /lab` answered 502 (netlab failed) or 504 (netlab hung and was killed).

    This is netlab's verdict on the lab, so it is raised at once, never retried.
    `exit_code` is netlab's exit status (int), or None when it was killed or the detail does
    not say; `output` is the last lines netlab printed (list of str, oldest first, possibly
    empty); `timed_out` is True for 504.
    """

    def __init__(self, method: str, path: str, response: requests.Response) -> None:
        super().__init__(method, path, response)
        found = _EXIT_CODE.search(self.detail.partition("\n")[0])
        self.exit_code: int | None = int(found.group(1)) if found else None
        _, marked, tail = self.detail.partition(_OUTPUT_MARK)
        self.output: list[str] = tail.splitlines() if marked else []
        self.timed_out = response.status_code == 504


class AnswerLostError(requests.ConnectionError):
    """A `POST` reached the server, or may have, but its answer was lost (connection reset, read timeout).

    Sending it again could act twice (a second queued session, a second `netlab up`), and the
    server does not declare the `Idempotency-Key` header that makes a repeat safe, so it was
    not sent again. A subclass of `requests.ConnectionError`, the transport error raised before.
    """
