"""Hands the lab host on as early as possible: the session ends after the last test that needs it.

The ordering plugin runs lab tests first, so the next suite in the server's queue starts
while this run is still busy with its plain tests. When the session opens it declares the labs
the selected tests use, in run order, so the server can prepare them while the run waits.

A run stopped with SIGTERM (how CI systems cancel a job) ends like one stopped with Ctrl-C: the
lab is released and the session deleted before the process exits, whether it was queued,
bringing a lab up or running tests.
"""

from __future__ import annotations

import logging
from collections.abc import Generator

import pytest

from neops_remote_lab._sigterm import SigtermRaises
from neops_remote_lab.client import LabDeclaration

from .lab_session import LabSession
from .registry import labs_used_by

_log = logging.getLogger("remote-lab-plugin")  # the original plugin's logger name
_SIGTERM = pytest.StashKey[SigtermRaises]()


def _interrupted() -> KeyboardInterrupt:
    _log.warning("SIGTERM: ending the run as after Ctrl-C; the lab session is closed first")
    return KeyboardInterrupt("SIGTERM")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "remote_lab: the test uses a lab on the neops-remote-lab server")
    sigterm = SigtermRaises(_interrupted)
    if sigterm.hold():
        config.stash[_SIGTERM] = sigterm


def pytest_unconfigure(config: pytest.Config) -> None:
    sigterm = config.stash.get(_SIGTERM, None)
    if sigterm is not None:
        sigterm.release()


def pytest_collection_finish(session: pytest.Session) -> None:
    # Runs after every plugin has reordered the items: this is the order they run in.
    # Deselected tests (`-k`, `-m`) are gone from the items by now.
    users = [item for item in session.items if "remote_lab_client" in getattr(item, "fixturenames", ())]
    lab_session = LabSession.of(session.config)
    lab_session.last_user = users[-1] if users else None
    lab_session.labs_ahead = [
        LabDeclaration(spec.topology, spec.extra_files, spec.root) for spec in labs_used_by(session.items)
    ]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        lab_session = LabSession.of(item.config)
        if item is lab_session.last_user:
            lab_session.close_client()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # trylast: pytest's own hook has finalized the session fixtures by now.
    LabSession.of(session.config).shutdown()
