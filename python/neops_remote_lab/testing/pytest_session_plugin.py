"""Hands the lab host on as early as possible: the session ends after the last test that needs it.

The ordering plugin runs lab tests first, so the next suite in the server's queue starts
while this run is still busy with its plain tests.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from .lab_session import LabSession


def pytest_collection_finish(session: pytest.Session) -> None:
    # Runs after every plugin has reordered the items: this is the order they run in.
    users = [item for item in session.items if "remote_lab_client" in getattr(item, "fixturenames", ())]
    LabSession.of(session.config).last_user = users[-1] if users else None


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
