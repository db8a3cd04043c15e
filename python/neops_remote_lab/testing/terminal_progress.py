"""Shows the client's waiting in the pytest terminal: queue position, elapsed time, bring-up."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

import pytest

from neops_remote_lab import __version__
from neops_remote_lab._text import shortened
from neops_remote_lab.models import QueuedSessionDto
from neops_remote_lab.progress import ProgressListener

__all__ = ["TerminalProgress"]

_PREFIX = "neops-remote-lab: "
# The first line names the package's version: `pip install neops-remote-lab` from PyPI gives
# the original 1.4.0, so a run should show which one it got.
_VERSION_PREFIX = f"neops-remote-lab {__version__}: "
# The reporter's marker for "a line is open and is not a test path" (it sets it itself after
# writing a result word): whatever pytest writes next starts on a fresh line.
_LINE_OPEN = -2
# Characters of a holder's label shown on the waiting line.
_LABEL_SHOWN = 60


class _CaptureManager(Protocol):
    """The part of pytest's capture plugin used here (live logging uses it too)."""

    def global_and_fixture_disabled(self) -> contextlib.AbstractContextManager[None]: ...


class _Writer(Protocol):
    @property
    def width_of_current_line(self) -> int: ...

    @property
    def fullwidth(self) -> int: ...


class TerminalProgress(ProgressListener):
    """Status lines that change in place on a TTY; elsewhere a plain line per change.

    The waiting happens inside fixture setup, where pytest captures output, so every write
    suspends capturing. Each line is left open, as pytest leaves its own; when the lab is
    ready the test's line is started again the way pytest started it, so the test's "." or
    "PASSED" lands where it belongs.

    netlab's lines during a bring-up arrive from a background thread: writes are serialised.
    """

    def __init__(self, reporter: pytest.TerminalReporter, writer: _Writer, capture: _CaptureManager | None) -> None:
        self._reporter = reporter
        self._writer = writer
        self._capture = capture
        # A plain bool in early pytest 8 releases, a callable bool in later ones: `bool()` of either is right,
        # calling it is not.
        self._tty = bool(reporter.isatty)
        self._status_key: object = None  # what the status line currently shows
        self._holders = ""  # who holds the lab host, for the waiting line
        self._netlab_lines = 0
        self._writing = threading.Lock()

    @classmethod
    def for_config(cls, config: pytest.Config) -> ProgressListener:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:  # `-p no:terminal`
            return ProgressListener()
        return cls(reporter, config.get_terminal_writer(), config.pluginmanager.get_plugin("capturemanager"))

    def using_server(self, server: str, *, local: bool) -> None:
        """The plugin's first line: this package's version and the server the run uses."""
        where = f"{server} (local mode)" if local else server
        with self._writing:
            self._write(f"lab server {where}", in_place=False, prefix=_VERSION_PREFIX)
            self._status_key = None

    def held_by(self, holders: Sequence[QueuedSessionDto]) -> None:
        self._holders = ", ".join(map(_who, holders))

    def queued(self, position: int, waited: float) -> None:
        text = f"waiting for the lab host: position {position} in the queue ({_age(waited)})"
        if self._holders:
            text += f", held by {self._holders}"
        self._status(("queued", position, self._holders), text)

    def session_active(self, server: str, session_id: str, waited: float) -> None:
        self._line(f"session {session_id[:8]} on {server} is active after {_age(waited)} in the queue")

    def acquiring(self, topology: str) -> None:
        self._status(("acquiring", topology), f"acquiring lab {topology} ...")

    def lab_log(self, line: str, elapsed: float) -> None:
        self._netlab_lines += 1
        self._status(("netlab", self._netlab_lines), f"netlab ({_age(elapsed)}): {line}")

    def lab_busy(self, detail: str, waited: float) -> None:
        self._status(("busy", detail), f"lab host busy ({detail}); retrying ({_age(waited)})")

    def lab_ready(self, topology: str, devices: int, reused: bool, took: float) -> None:
        how = "reused" if reused else "brought up"
        self._line(f"lab {topology} {how}: {devices} devices in {_age(took)}")
        self._resume_test_line()

    def _status(self, key: object, text: str) -> None:
        """A line the next message replaces: rewritten in place on a TTY, else printed when `key` changes."""
        with self._writing:
            if self._tty:
                # A line wider than the terminal would wrap, and only its last row be rewritten.
                text = shortened(text, max(20, self._writer.fullwidth - 1 - len(_PREFIX)))
                self._write(text, in_place=self._status_key is not None)
            elif key != self._status_key:
                self._write(text, in_place=False)
            self._status_key = key

    def _line(self, text: str) -> None:
        """A line that stays; on a TTY it replaces the status line."""
        with self._writing:
            self._write(text, in_place=self._tty and self._status_key is not None)
            self._status_key = None

    def _write(self, text: str, *, in_place: bool, prefix: str = _PREFIX) -> None:
        with self._uncaptured():
            if in_place:
                self._reporter.rewrite(prefix + text, erase=True)
            else:
                self._reporter.ensure_newline()  # ends a line the reporter knows is open
                if self._writer.width_of_current_line:  # `-q` dots leave one open silently
                    self._reporter.write("\n")
                self._reporter.write(prefix + text)
            self._reporter.flush()
            self._reporter.currentfspath = _LINE_OPEN

    def _resume_test_line(self) -> None:
        """Start a line as pytest's test-start hook did, so the test's result lands on it."""
        if self._reporter.showlongtestinfo:
            return  # `-v`: pytest writes "<test id> PASSED" on a fresh line by itself
        with self._uncaptured():
            self._reporter.currentfspath = None
            running = os.environ.get("PYTEST_CURRENT_TEST", "").rpartition(" (")[0]
            if self._reporter.showfspath and running:
                self._reporter.write_fspath_result(running, "")  # "\n<test file> "
            else:
                self._reporter.write("\n")
            self._reporter.flush()

    @contextlib.contextmanager
    def _uncaptured(self) -> Iterator[None]:
        if self._capture is None:
            yield
        else:
            with self._capture.global_and_fixture_disabled():
                yield


def _who(holder: QueuedSessionDto) -> str:
    """`user@host (label)` from what the holder's client sent, else its session's short id."""
    client = holder.client
    if client is None:
        return f"session {holder.id}"
    who = "@".join(part for part in (client.user, client.host) if part)
    label = shortened(client.label, _LABEL_SHOWN) if client.label else ""
    if who and label:
        return f"{who} ({label})"
    return who or label or f"session {holder.id}"


def _age(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60:02d}s"
