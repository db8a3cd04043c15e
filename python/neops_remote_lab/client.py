"""`RemoteLabClient`: one session in a neops-remote-lab server's FIFO queue."""

from __future__ import annotations

import atexit
import logging
import math
import os
import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

import requests

from ._heartbeat import Heartbeat
from ._http import Transport
from ._lab_files import LabDeclaration, LabFiles
from ._live import BringUpFollower, list_sessions
from ._sigterm import SigtermRaises
from .client_info import client_info_from_environment, fit_client_info
from .errors import LabBringUpError, RemoteLabHTTPError, detail_of
from .models import (
    AcquireResponseDto,
    CreateSessionResponseDto,
    DeclaredLabDto,
    DeviceInfoDto,
    SessionState,
    SessionStatusResponseDto,
)
from .progress import ProgressListener

__all__ = ["DEFAULT_HEARTBEAT_INTERVAL", "HEARTBEAT_INTERVAL_ENV", "LabDeclaration", "RemoteLabClient"]

_log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_ENV = "REMOTE_LAB_HEARTBEAT_INTERVAL"
# Announced to the server as the session's lease: a client killed even by SIGKILL (a cancelled CI
# job) gives its lab back three missed beats later, 15 s, instead of after the 300 s active timeout.
DEFAULT_HEARTBEAT_INTERVAL = 5.0
# The longest interval the server accepts as a lease (`heartbeat_seconds`, 1 to 300).
_MAX_LEASE_SECONDS = 300

# While queued the client long-polls: the server holds `GET /session/{id}?wait=N` open until the
# position changes. Short holds keep the elapsed time shown to the user fresh.
_STATUS_WAIT = 5
# A server that ignores `wait` answers at once; then the client paces itself.
_QUEUE_POLL_INTERVAL = 2.0
# Pause between acquisitions answered with 423 Locked.
_BUSY_RETRY_INTERVAL = 5.0
# netlab failed (502) or hung (504): its verdict, known after the first `netlab up`.
_BRING_UP_FAILED = (502, 504)
# A standalone client leaves the queue on SIGTERM: the exception unwinds `with` blocks and
# `finally` clauses, and the interpreter's exit runs `close()`; 143 is the shell's "killed by SIGTERM".
_SIGTERM = SigtermRaises(lambda: SystemExit(128 + signal.SIGTERM))


class RemoteLabClient:
    """One session in the server's queue, from creation to `close()`.

    The constructor blocks until the session is ACTIVE (the head of the queue); before it
    waits it declares the labs it was given (`declare`), so the server can prepare them. From
    then on `acquire` uploads a topology and returns its devices, `release` gives the lab back. A
    background heartbeat keeps the session alive however long a test or a bring-up takes; its
    interval is announced to the server as the session's lease, so when the process dies without
    closing (SIGKILL, a lost machine) the server hands the lab on after three missed beats.
    `close()` ends the session; it is idempotent and also runs at interpreter exit and, unless
    `close_on_sigterm=False`, when the process gets SIGTERM.

    Requests that fail on the way (connection refused, reset, 503) are retried with backoff,
    except a `POST` that reached the server: it is sent again only to a server that declares
    the `Idempotency-Key` header, else `AnswerLostError` is raised.
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
        close_on_sigterm: bool = True,
        client_info: Mapping[str, object] | None = None,
        declare: Iterable[LabDeclaration] = (),
    ) -> None:
        """Join the queue and wait, at most `session_timeout` seconds, until this session is ACTIVE.

        `base_url` falls back to `REMOTE_LAB_URL`. `request_timeout` is the seconds one ordinary
        request may take to connect and to answer; `lab_acquisition_timeout` the seconds one
        `acquire` may take. `heartbeat_interval` (seconds, 0 disables) falls back to
        `REMOTE_LAB_HEARTBEAT_INTERVAL`, then to 5; up to 300 s it is announced as the session's lease
        (`POST /session`'s `heartbeat_seconds`: the server evicts the session after max(3 x interval,
        10) seconds without a sign of life). `progress` hears about the queue position
        and the lab bring-up; given one, the client also reports the holders while it waits
        and netlab's output lines while the server brings a lab up (`held_by`, `lab_log`).

        `client_info` tells the server who is asking (`POST /session`'s body
        `{"client": {"user", "host", "ci_job_url", "label"}}`, shown by `GET /sessions` and the
        dashboard): None takes it from the environment (`client_info_from_environment()`),
        `{}` sends none; whatever is sent is fitted to the server's limits (`fit_client_info`).

        `declare`: labs this session will `acquire`, declared in this order right after the session
        is created, before it waits (see `declare_lab`). One the server refuses with an error answer
        is logged as a warning and skipped: declaring only lets the server prepare, and `acquire`
        reports real problems. A missing file or one outside `root` raises as in `declare_lab`, after
        the session left the queue.

        `close_on_sigterm`: while the session is open, SIGTERM raises `SystemExit(143)` in the
        main thread, so `with` blocks and `close()` end the session before the process exits.
        Installed only when built in the main thread and SIGTERM has its default action (under
        pytest the plugin handles it); the default comes back when the last client closes.

        Raises `TimeoutError` when the session is still queued after `session_timeout` seconds
        (it leaves the queue first), `RemoteLabHTTPError` for an error answer, and `requests`'
        `ConnectionError`/`Timeout` (`AnswerLostError` among them) once retries are spent.
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
        # Watching the server for the listener costs requests: only for one that listens.
        self._watch_server = progress is not None
        self._client_info = client_info_from_environment() if client_info is None else fit_client_info(client_info)
        self._transport = Transport(url, request_timeout)
        self._heartbeat: Heartbeat | None = None
        self._holds_sigterm = False
        self._server_declares = True  # until it answers that it does not know the route

        interval = _heartbeat_interval(heartbeat_interval)
        created = self._create_session(interval)
        self.session_id = created.session_id
        self._transport.use_session(created.session_id)
        self._holds_sigterm = close_on_sigterm and _SIGTERM.hold()
        atexit.register(self.close)
        if interval > 0:
            self._heartbeat = Heartbeat(url, created.session_id, interval, request_timeout)
        try:
            self._declare_ahead(declare)
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

    def _create_session(self, heartbeat_interval: float) -> CreateSessionResponseDto:
        # Sent again after a lost answer only with an Idempotency-Key the server honours:
        # otherwise a second, orphaned session would block everyone queued behind it.
        # A server that does not know the body (the original 1.4.0) ignores it.
        body: dict[str, object] = {}
        if self._client_info:
            body["client"] = self._client_info
        lease = math.ceil(heartbeat_interval)
        if 0 < lease <= _MAX_LEASE_SECONDS:
            body["heartbeat_seconds"] = lease
        response = self._transport.post_once("/session", json=body or None)
        created = CreateSessionResponseDto.model_validate(response.json())
        _log.info("Session %s created at queue position %d", created.session_id[:8], created.position)
        return created

    def _declare_ahead(self, labs: Iterable[LabDeclaration]) -> None:
        for lab in labs:
            try:
                self.declare_lab(lab.topology, extra_files=lab.extra_files, root=lab.root)
            except RemoteLabHTTPError as exc:
                _log.warning("Lab %s was not declared, it is brought up when acquired: %s", lab.topology, exc)

    def _wait_until_active(self) -> None:
        started = time.monotonic()
        deadline = started + self.session_timeout
        previous: SessionStatusResponseDto | None = None
        lists_sessions = self._watch_server  # until the server answers 404
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
            if lists_sessions:
                lists_sessions = self._report_holders()
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

    def _report_holders(self) -> bool:
        """Tell the listener who holds the lab host; False when the server does not list sessions."""
        try:
            overview = list_sessions(self._transport)
        except (requests.RequestException, ValueError) as exc:
            _log.debug("Could not list the server's sessions: %s", exc)
            return True
        if overview is None:
            return False
        self._progress.held_by([entry for entry in overview.sessions if entry.status is SessionState.ACTIVE])
        return True

    def _session_status(self, wait: int) -> SessionStatusResponseDto:
        response = self._transport.request(
            "GET",
            f"/session/{self.session_id}",
            params={"wait": wait} if wait else None,
            read_timeout=wait + self.request_timeout,
        )
        return SessionStatusResponseDto.model_validate(response.json())

    def declare_lab(
        self,
        topology: str | Path,
        *,
        extra_files: Iterable[str | Path] = (),
        root: str | Path | None = None,
    ) -> DeclaredLabDto | None:
        """Tell the server this session will ask for the lab `topology` names; return its place in the list.

        The files are collected and sent as `acquire` sends them (`POST /session/{id}/labs`, the
        same form and limits as `POST /lab`), so the server can prepare the lab before this session
        asks for it. Allowed while the session waits and while it is active. Declaring a lab again
        answers its first `index`; the `identity` (SHA-256 hex) is the one the server gives the lab
        when it is acquired. `GET /session/{id}` lists the declared identities (`declared_labs`).

        Returns None when the server does not know the route (the original 1.4.0 answers
        404 "Not Found"): logged once at info; later calls return None without asking.

        Raises `FileNotFoundError` for a missing file and `ValueError` for one outside `root`,
        before anything is sent; `RemoteLabHTTPError` for an error answer (400 bad topology or too
        many declared labs, 413 too large, 422 malformed form, 404 unknown session);
        `requests`' `ConnectionError`/`Timeout` once retries are spent (a declaration is
        sent again after a lost answer: the server answers a repeat with the first result).
        """
        lab = LabFiles.collect(topology, extra_files, root)
        if not self._server_declares:
            return None
        path = f"/session/{self.session_id}/labs"
        response = self._transport.post_once(path, tolerate=(404, 405), files=lab.multipart(), repeatable=True)
        if _unknown_route(response):
            self._server_declares = False
            _log.info("The server at %s does not take declared labs: each lab is prepared when acquired", self.base_url)
            return None
        if not response.ok:
            raise RemoteLabHTTPError("POST", path, response)
        declared = DeclaredLabDto.model_validate(response.json())
        _log.info("Declared lab %s (%d) for session %s", lab.topology_name, declared.index, self.session_id[:8])
        return declared

    def acquire(
        self,
        topology: Path,
        reuse: bool,
        *,
        extra_files: Iterable[str | Path] = (),
        root: str | Path | None = None,
    ) -> list[DeviceInfoDto]:
        """Upload `topology` (with its companion files) and return the devices of the running lab.

        `reuse=True` attaches to a running lab with the same files; `reuse=False` asks for a
        fresh one. `extra_files` are files or folders (a folder stands for every file below it)
        and `root` a folder, each relative to the topology's folder unless absolute. Every file
        is sent under its path relative to the upload's root: `root` if given, else the
        topology's folder when all extra files lie inside it (`configs/r1.cfg`), else the
        deepest folder holding them all; then the topology is sent as, e.g.,
        `labs/basic/topology.yml`, and a `../../defaults.yml` it names arrives where it looks.

        While the server answers 423 Locked the request is repeated, with every file read
        again, until `lab_acquisition_timeout` seconds have passed; then `TimeoutError` says
        why (also when the bring-up itself is still running then).

        Raises `FileNotFoundError` for a missing file and `ValueError` for one outside `root`,
        before anything is sent; `LabBringUpError` at once when netlab fails (502) or hangs
        (504), with netlab's exit code and last output; `RemoteLabHTTPError` for other error
        answers (400 bad topology, 413 too large); `requests`' `ConnectionError`/`Timeout`
        (`AnswerLostError` among them) once retries are spent.
        """
        lab = LabFiles.collect(topology, extra_files, root)
        shown = lab.topology.name
        started = time.monotonic()
        deadline = started + self.lab_acquisition_timeout
        _log.info("Acquiring lab %s (reuse=%s) for session %s", lab.topology_name, reuse, self.session_id[:8])
        self._progress.acquiring(shown)
        follower = (
            BringUpFollower(
                self.base_url,
                self.session_id,
                self.request_timeout,
                deadline,
                lambda line: self._progress.lab_log(line, time.monotonic() - started),
            )
            if self._watch_server
            else None
        )
        try:
            result = self._post_lab(lab, reuse, started, deadline)
        finally:
            if follower is not None:
                follower.stop()  # no netlab line may follow what comes next
        took = time.monotonic() - started
        _log.info("Lab %s ready with %d devices (reused=%s)", shown, len(result.devices), result.reused)
        self._progress.lab_ready(shown, len(result.devices), result.reused, took)
        return result.devices

    def _post_lab(self, lab: LabFiles, reuse: bool, started: float, deadline: float) -> AcquireResponseDto:
        """`POST /lab` until it is not answered 423 (see `acquire`)."""
        shown = lab.topology.name
        refusals = 0
        while True:
            try:
                response = self._transport.post_once(
                    "/lab",
                    tolerate=(423, *_BRING_UP_FAILED),
                    deadline=deadline,
                    files=lab.multipart(),
                    data={"reuse": "true" if reuse else "false"},
                )
            except requests.ReadTimeout:
                raise TimeoutError(
                    f"Lab {shown} was not ready after {time.monotonic() - started:.0f} s "
                    f"(lab_acquisition_timeout={self.lab_acquisition_timeout} s): the server was still bringing it up"
                ) from None
            if response.status_code in _BRING_UP_FAILED:
                raise LabBringUpError("POST", "/lab", response)
            now = time.monotonic()
            if response.status_code != 423:
                return AcquireResponseDto.model_validate(response.json())
            refusals += 1
            detail = detail_of(response)
            self._progress.lab_busy(detail, now - started)
            if now >= deadline:
                raise TimeoutError(
                    f"Lab {shown} was not acquired within {now - started:.0f} s "
                    f"(lab_acquisition_timeout={self.lab_acquisition_timeout} s): "
                    f"the server answered 423 Locked {refusals} times, last with {detail!r}"
                )
            pause = min(_BUSY_RETRY_INTERVAL, deadline - now)
            _log.info("Lab busy (%s); retrying in %.0f s", detail, pause)
            time.sleep(pause)

    def ssh_config(self) -> str:
        """The running lab's OpenSSH client configuration (`GET /lab/ssh-config`, ssh_config(5) text).

        One `Host` per device netlab reaches over SSH, each with `ProxyJump` through its lab host,
        as netlab's own `ssh_config` report writes it. Raises `RemoteLabHTTPError` (404 without a
        running lab; 404 from a server without the route, e.g. the original 1.4.0).
        """
        return self._transport.request("GET", "/lab/ssh-config").text

    def release(self) -> None:
        """Give one acquisition back. Never raises: failures are logged, like the original client."""
        try:
            self._transport.request("POST", "/lab/release", tolerate=(404,))
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
        if self._holds_sigterm:
            self._holds_sigterm = False
            _SIGTERM.release()
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


def _unknown_route(response: requests.Response) -> bool:
    """Whether the answer says the server has no such route, as the original 1.4.0 has no `/session/{id}/labs`.

    Its web framework answers 404 "Not Found" for an unknown path and 405 where a route matches the
    path but not the method; ours answers an unknown session with 404 too, but with its own detail.
    """
    return response.status_code == 405 or (response.status_code == 404 and detail_of(response) == "Not Found")


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
