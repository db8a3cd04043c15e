"""Exceptions the client raises besides `TimeoutError` and `requests`' transport errors."""

from __future__ import annotations

import requests


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
    `except HTTPError` clauses keep working; `detail` carries the server's message.
    """

    def __init__(self, method: str, path: str, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.detail = detail_of(response)
        super().__init__(f"{method} {path} failed with HTTP {self.status_code}: {self.detail}", response=response)
