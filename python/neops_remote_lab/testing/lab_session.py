"""The run's one session on a lab server: where the server is, when the session opens and closes."""

from __future__ import annotations

import os
import shlex
from typing import Any

import pytest

from neops_remote_lab.client import LabDeclaration, RemoteLabClient
from neops_remote_lab.client_info import client_info_from_environment
from neops_remote_lab.local_server import LocalModeError, LocalServer

from .terminal_progress import TerminalProgress

__all__ = ["LOCAL_MODE_ENV", "TIMEOUT_ENVS", "LabSession"]

LOCAL_MODE_ENV = "REMOTE_LAB_LOCAL"
# Environment variable -> RemoteLabClient keyword, as in the original package.
TIMEOUT_ENVS = {
    "REMOTE_LAB_REQUEST_TIMEOUT": "request_timeout",
    "REMOTE_LAB_SESSION_TIMEOUT": "session_timeout",
    "REMOTE_LAB_ACQUISITION_TIMEOUT": "lab_acquisition_timeout",
}

_KEY = pytest.StashKey["LabSession"]()


class LabSession:
    """Opens the client when a test first needs it and ends what it started.

    The session declares `labs_ahead` as soon as it is created, so the server can prepare those
    labs before the run's turn comes.

    The server is `REMOTE_LAB_URL` when set. Otherwise ("local mode", unless
    `REMOTE_LAB_LOCAL=0`) it is the server already running on this host, or the bundled
    binary started for this run and stopped at its end.
    """

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._client: RemoteLabClient | None = None
        self._local: LocalServer | None = None
        self.last_user: pytest.Item | None = None  # the last test in run order that needs the client
        self.labs_ahead: list[LabDeclaration] = []  # declared when the session opens: the run's labs, in run order

    @classmethod
    def of(cls, config: pytest.Config) -> LabSession:
        return config.stash.setdefault(_KEY, cls(config))

    def open_client(self) -> RemoteLabClient:
        if self._client is None:
            url = self._server_url()
            progress = TerminalProgress.for_config(self._config)
            if isinstance(progress, TerminalProgress):
                progress.using_server(url, local=self._local is not None)
            self._client = RemoteLabClient(
                url,
                **_timeouts_from_env(),
                progress=progress,
                client_info=client_info_from_environment(label=self._invocation()),
                declare=self.labs_ahead,
            )
        return self._client

    def close_client(self) -> None:
        """End the session; the next suite in the queue gets the lab host. A later `open_client` opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def shutdown(self) -> None:
        self.close_client()
        if self._local is not None:
            self._local.stop()

    def _invocation(self) -> str:
        """How pytest was called, e.g. `pytest -m lab`: the label other users see for this run."""
        return shlex.join(["pytest", *self._config.invocation_params.args])

    def _server_url(self) -> str:
        url = os.environ.get("REMOTE_LAB_URL")
        if url:
            return url
        if os.environ.get(LOCAL_MODE_ENV, "").strip().lower() in {"0", "false", "no", "off"}:
            raise LocalModeError(
                f"REMOTE_LAB_URL is not set (and {LOCAL_MODE_ENV}=0 turns local mode off): "
                "set it to your lab server, e.g. http://lab-host:8000"
            )
        if self._local is None:
            self._local = LocalServer.find_or_start()
        return self._local.url


def _timeouts_from_env() -> dict[str, Any]:
    """`RemoteLabClient` keyword arguments (whole seconds) from the environment variables that are set."""
    timeouts: dict[str, Any] = {}
    for env, keyword in TIMEOUT_ENVS.items():
        raw = os.environ.get(env)
        if not raw:
            continue
        try:
            timeouts[keyword] = int(raw)
        except ValueError:
            raise ValueError(f"{env} must be a whole number of seconds, not {raw!r}") from None
    return timeouts
