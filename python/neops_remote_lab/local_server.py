"""A server on this machine for runs without `REMOTE_LAB_URL` ("local mode").

The server allows one instance per host (a lock in the temp folder) and says where it listens
in `<tmpdir>/neops_remote_lab_server.meta.json`, written once its socket is bound. Local mode
uses that server when its process is alive; otherwise it starts the bundled binary on a free
loopback port with a private work folder, and stops it again.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from .server_binary import find_server_binary

__all__ = ["LocalModeError", "LocalServer"]

_log = logging.getLogger(__name__)

NETLAB_ENV = "NEOPS_NETLAB_BIN"
_START_TIMEOUT = 60.0  # `netlab version` and a stale-lab cleanup run before the server binds
_STOP_TIMEOUT = 120.0  # SIGTERM tears the running lab down first
_POLL = 0.1


class LocalModeError(RuntimeError):
    """No server URL is known and none could be started here."""


def _meta_file() -> Path:
    # tempfile honours TMPDIR like the server does, so both name the same file.
    return Path(tempfile.gettempdir()) / "neops_remote_lab_server.meta.json"


def _find_netlab() -> str | None:
    """The netlab the server would run: `$NEOPS_NETLAB_BIN`, else `netlab` on PATH."""
    return os.environ.get(NETLAB_ENV) or shutil.which("netlab")


class LocalServer:
    """The server local mode talks to; `stop()` ends it only if this process started it."""

    def __init__(self, url: str, process: subprocess.Popen[bytes] | None = None, folder: Path | None = None) -> None:
        self.url = url
        self._process = process
        self._folder = folder
        if process is not None:
            atexit.register(self.stop)

    @classmethod
    def find_or_start(cls) -> LocalServer:
        running = _running_server_url()
        if running is not None:
            _log.info("Using the neops-remote-lab server already running at %s", running)
            return cls(running)
        return cls._start()

    @classmethod
    def _start(cls) -> LocalServer:
        netlab = _find_netlab()
        if netlab is None:
            raise LocalModeError(
                "REMOTE_LAB_URL is not set and netlab is not installed here (no `netlab` on PATH, "
                f"no {NETLAB_ENV}): set REMOTE_LAB_URL to your lab server, e.g. http://lab-host:8000, "
                "or install netlab (pip install networklab) to run a local server"
            )
        try:
            binary = find_server_binary()
        except (FileNotFoundError, RuntimeError) as exc:
            raise LocalModeError(f"REMOTE_LAB_URL is not set and no local server can be started: {exc}") from None
        folder = Path(tempfile.mkdtemp(prefix="neops-remote-lab-"))
        log_path = folder / "server.log"
        command = [
            str(binary),
            *("--host", "127.0.0.1", "--port", "0"),
            *("--work-dir", str(folder / "work")),
            *("--netlab-bin", netlab),
            # This server lives for one run: nothing of it must wait in line for the next.
            "--in-memory",
        ]
        _log.info("Starting a local neops-remote-lab server: %s (log: %s)", " ".join(command), log_path)
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = _wait_for_own_server(process, log_path)
        except BaseException:
            _terminate(process)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if url is None:
            # Another run started a server first and the host guard turned ours away: share theirs.
            shutil.rmtree(folder, ignore_errors=True)
            return cls.find_or_start()
        _log.info("Local neops-remote-lab server listening at %s", url)
        return cls(url, process, folder)

    def stop(self) -> None:
        """Stop the server if this process started it; the server tears its lab down on SIGTERM."""
        if self._process is None:
            return
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        _terminate(process)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def _read_meta() -> dict[str, Any] | None:
    try:
        meta = json.loads(_meta_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, or caught half-written
        return None
    return meta if isinstance(meta, dict) else None


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, owned by another user
    except OSError:
        return False
    return True


def _url_of(meta: dict[str, Any]) -> str:
    host = str(meta.get("host_bind") or "127.0.0.1")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - mapping a wildcard bind to loopback
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{meta['port']}"


def _running_server_url() -> str | None:
    meta = _read_meta()
    if meta is None or not _pid_alive(meta.get("pid")) or not meta.get("port"):
        return None
    url = _url_of(meta)
    return url if _healthy(url) else None


def _wait_for_own_server(process: subprocess.Popen[bytes], log_path: Path) -> str | None:
    """The URL once `process` has bound its port and answers; None if it lost the host guard."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        meta = _read_meta()
        if meta is not None and meta.get("pid") == process.pid and meta.get("port"):
            url = _url_of(meta)
            if _healthy(url):
                return url
        if process.poll() is not None:
            if _running_server_url() is not None:
                return None
            raise LocalModeError(
                f"The local neops-remote-lab server exited with status {process.returncode}:\n{_tail(log_path)}"
            )
        time.sleep(_POLL)
    raise LocalModeError(f"The local neops-remote-lab server did not start within {_START_TIMEOUT:.0f} s")


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 204
    except requests.RequestException:
        return False


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _log.warning("The local server did not stop within %.0f s; killing it", _STOP_TIMEOUT)
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"
