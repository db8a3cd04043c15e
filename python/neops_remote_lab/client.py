"""`RemoteLabClient`: one session in a neops-remote-lab server's FIFO queue."""

from __future__ import annotations

import atexit
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import requests

from ._heartbeat import Heartbeat
from ._http import Transport, Upload
from .errors import detail_of
from .models import (
    AcquireResponseDto,
    CreateSessionResponseDto,
    DeviceInfoDto,
    SessionState,
    SessionStatusResponseDto,
)
from .progress import ProgressListener

__all__ = ["DEFAULT_HEARTBEAT_INTERVAL", "HEARTBEAT_INTERVAL_ENV", "RemoteLabClient"]

_log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_ENV = "REMOTE_LAB_HEARTBEAT_INTERVAL"
DEFAULT_HEARTBEAT_INTERVAL = 30.0

# While queued the client long-polls: the server holds `GET /session/{id}?wait=N` open until the
# position changes. Short holds keep the elapsed time shown to the user fresh.
_STATUS_WAIT = 5
# A server that ignores `wait` answers at once; then the client paces itself.
_QUEUE_POLL_INTERVAL = 2.0
# Pause between acquisitions answered with 423 Locked.
_BUSY_RETRY_INTERVAL = 5.0


class RemoteLabClient:
    """One session in the server's queue, from creation to `close()`.

    The constructor blocks until the session is ACTIVE (the head of the queue). From then on
    `acquire` uploads a topology and returns its devices, `release` gives the lab back. A
    background heartbeat keeps the session alive however long a test or a bring-up takes.
    `close()` ends the session; it is idempotent and also runs at interpreter exit.
    """

    def __init__(
        self,
        base_url: str | None,
        request_timeout: int = 30,
        session_timeout: int = 600,
        lab_acquisition_timeout: int = 600,
        *,
        heartbeat_interval: float | None = None,
        progress: ProgressListener | None = None,
    ) -> None:
        """Join the queue and wait, at most `session_timeout` seconds, until this session is ACTIVE.

        `base_url` falls back to `REMOTE_LAB_URL`. `heartbeat_interval` (seconds, 0 disables)
        falls back to `REMOTE_LAB_HEARTBEAT_INTERVAL`, then to 30. `progress` hears about the
        queue position and the lab bring-up.
        """
        url = base_url or os.environ.get("REMOTE_LAB_URL")
        if not url:
            raise ValueError("base_url must be given, or REMOTE_LAB_URL set to the server's URL")
        self.base_url = url
        self.request_timeout = request_timeout
        self.session_timeout = session_timeout
        self.lab_acquisition_timeout = lab_acquisition_timeout
        self.session_id = ""
        self._progress = progress or ProgressListener()
        self._transport = Transport(url, request_timeout)
        self._heartbeat: Heartbeat | None = None

        created = self._create_session()
        self.session_id = created.session_id
        self._transport.use_session(created.session_id)
        atexit.register(self.close)
        interval = _heartbeat_interval(heartbeat_interval)
        if interval > 0:
            self._heartbeat = Heartbeat(url, created.session_id, interval, request_timeout)
        try:
            self._wait_until_active()
        except BaseException:
            # Leave the queue instead of blocking everyone behind a session nobody waits for.
            self.close()
            raise

    def __enter__(self) -> RemoteLabClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _create_session(self) -> CreateSessionResponseDto:
        # Not idempotent: a retry after a lost answer would queue a second, orphaned session.
        response = self._transport.request("POST", "/session", idempotent=False)
        created = CreateSessionResponseDto.model_validate(response.json())
        _log.info("Session %s created at queue position %d", created.session_id[:8], created.position)
        return created

    def _wait_until_active(self) -> None:
        started = time.monotonic()
        deadline = started + self.session_timeout
        previous: SessionStatusResponseDto | None = None
        while True:
            asked = time.monotonic()
            # The first poll must answer at once: the session may already be ACTIVE, and a long
            # poll only returns early on a change.
            wait = 0 if previous is None else max(1, min(_STATUS_WAIT, int(deadline - asked)))
            status = self._session_status(wait)
            now = time.monotonic()
            if status.status is SessionState.ACTIVE:
                _log.info("Session %s is active after %.1f s", self.session_id[:8], now - started)
                self._progress.session_active(self.base_url, self.session_id, now - started)
                return
            self._progress.queued(status.position, now - started)
            if now >= deadline:
                raise TimeoutError(
                    f"Session {self.session_id[:8]} was still waiting at queue position {status.position} "
                    f"after {now - started:.0f} s (session_timeout={self.session_timeout} s): "
                    "other sessions held the lab host all that time"
                )
            if status == previous and now - asked < _QUEUE_POLL_INTERVAL:
                time.sleep(min(_QUEUE_POLL_INTERVAL - (now - asked), deadline - now))
            previous = status

    def _session_status(self, wait: int) -> SessionStatusResponseDto:
        response = self._transport.request(
            "GET",
            f"/session/{self.session_id}",
            params={"wait": wait} if wait else None,
            read_timeout=wait + self.request_timeout,
        )
        return SessionStatusResponseDto.model_validate(response.json())

    def acquire(self, topology: Path, reuse: bool, *, extra_files: Iterable[str | Path] = ()) -> list[DeviceInfoDto]:
        """Upload `topology` and return the devices of the running lab.

        `reuse=True` attaches to a running lab with byte-identical topology; `reuse=False` asks
        for a fresh one. `extra_files` (files or folders, relative to the topology's folder or
        absolute inside it) are uploaded under their path relative to that folder, e.g.
        `configs/r1.cfg`. While the server answers 423 Locked the request is repeated, with
        every file read again, until `lab_acquisition_timeout`; then `TimeoutError` says why.
        Other 4xx answers raise `RemoteLabHTTPError` at once.
        """
        topology = Path(topology)
        extra = _extra_file_names(topology, extra_files)
        started = time.monotonic()
        deadline = started + self.lab_acquisition_timeout
        refusals = 0
        _log.info("Acquiring lab %s (reuse=%s) for session %s", topology.name, reuse, self.session_id[:8])
        self._progress.acquiring(topology.name)
        while True:
            try:
                response = self._transport.request(
                    "POST",
                    "/lab",
                    tolerate=(423,),
                    idempotent=False,
                    deadline=deadline,
                    files=_multipart(topology, extra),
                    data={"reuse": "true" if reuse else "false"},
                )
            except requests.ReadTimeout:
                raise TimeoutError(
                    f"Lab {topology.name} was not ready after {time.monotonic() - started:.0f} s "
                    f"(lab_acquisition_timeout={self.lab_acquisition_timeout} s): the server was still bringing it up"
                ) from None
            now = time.monotonic()
            if response.status_code != 423:
                result = AcquireResponseDto.model_validate(response.json())
                _log.info("Lab %s ready with %d devices (reused=%s)", topology.name, len(result.devices), result.reused)
                self._progress.lab_ready(topology.name, len(result.devices), result.reused, now - started)
                return result.devices
            refusals += 1
            detail = detail_of(response)
            self._progress.lab_busy(detail, now - started)
            if now >= deadline:
                raise TimeoutError(
                    f"Lab {topology.name} was not acquired within {now - started:.0f} s "
                    f"(lab_acquisition_timeout={self.lab_acquisition_timeout} s): "
                    f"the server answered 423 Locked {refusals} times, last with {detail!r}"
                )
            pause = min(_BUSY_RETRY_INTERVAL, deadline - now)
            _log.info("Lab busy (%s); retrying in %.0f s", detail, pause)
            time.sleep(pause)

    def release(self) -> None:
        """Give one acquisition back. Never raises: failures are logged, like the original client."""
        try:
            self._transport.request("POST", "/lab/release", tolerate=(404,), idempotent=False)
        except requests.RequestException as exc:
            _log.error("Failed to release the lab of session %s: %s", self.session_id[:8], exc)

    def destroy(self, force: bool = True) -> None:
        """Tear the lab down (`force=False`: only if nobody holds it). Never raises; failures are logged."""
        try:
            self._transport.request("DELETE", "/lab", params={"force": "true" if force else "false"})
        except requests.RequestException as exc:
            _log.error("Failed to destroy the lab of session %s: %s", self.session_id[:8], exc)

    def close(self) -> None:
        """End the session so the next one in the queue gets the lab host. Safe to call again."""
        if not self.session_id:
            return
        session_id, self.session_id = self.session_id, ""
        atexit.unregister(self.close)
        if self._heartbeat is not None:
            self._heartbeat.stop()
        try:
            self._transport.request("DELETE", f"/session/{session_id}", tolerate=(404,))
            _log.info("Session %s closed", session_id[:8])
        except requests.RequestException as exc:
            _log.warning("Could not close session %s; the server will evict it: %s", session_id[:8], exc)
        finally:
            self._transport.close()


def _heartbeat_interval(explicit: float | None) -> float:
    if explicit is not None:
        return explicit
    raw = os.environ.get(HEARTBEAT_INTERVAL_ENV)
    if not raw:
        return DEFAULT_HEARTBEAT_INTERVAL
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{HEARTBEAT_INTERVAL_ENV} must be a number of seconds, not {raw!r}") from None


def _extra_file_names(topology: Path, extra_files: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """Each extra file with the name the server stores it under: its path relative to the topology's folder."""
    folder = topology.absolute().parent
    named: list[tuple[str, Path]] = []
    for entry in extra_files:
        # normpath, not resolve(): a symlink inside the folder keeps its place in the folder.
        path = Path(os.path.normpath(folder / Path(entry).expanduser()))
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if not file.is_file():
                raise FileNotFoundError(f"Extra file not found: {file}")
            if not file.is_relative_to(folder):
                raise ValueError(f"Extra file {file} is outside the topology's folder {folder}")
            named.append((file.relative_to(folder).as_posix(), file))
    return named


def _multipart(topology: Path, extra: list[tuple[str, Path]]) -> list[Upload]:
    """The request's files, read now: every attempt sends the current bytes in full."""
    parts: list[Upload] = [("topology", (topology.name, topology.read_bytes(), "application/x-yaml"))]
    parts += [("extra_files", (name, path.read_bytes(), "application/octet-stream")) for name, path in extra]
    return parts
