"""Runs lab tests first, grouped so that each lab is brought up once.

Groups follow fixture declaration order; fixtures whose topology files have identical bytes
share a group (the server sees them as one lab). Inside a group the collection order is
kept. Then come tests that use `remote_lab_client` directly, then all other tests. A test
using two lab fixtures fails collection: the server runs one lab at a time.
"""

from __future__ import annotations

import logging

import pytest

from .registry import REMOTE_LAB_FIXTURE_META, REMOTE_LAB_ORDER, LabFixtureSpec, lab_fixtures_of

__all__ = ["REMOTE_LAB_FIXTURE_META", "REMOTE_LAB_ORDER"]

_log = logging.getLogger("remote-lab-plugin")  # the original plugin's logger name

# Sort classes, in run order.
_LAB, _CLIENT_ONLY, _PLAIN = 0, 1, 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    specs = {item: _lab_spec(item) for item in items}
    group_rank: dict[str, int] = {}  # topology digest -> rank of its first fixture
    for spec in sorted({s for s in specs.values() if s is not None}, key=lambda s: s.rank):
        group_rank.setdefault(spec.digest, spec.rank)

    def sort_key(indexed: tuple[int, pytest.Item]) -> tuple[int, int, int, int]:
        position, item = indexed
        spec = specs[item]
        if spec is not None:
            return (_LAB, group_rank[spec.digest], spec.rank, position)
        uses_client = "remote_lab_client" in getattr(item, "fixturenames", ())
        return (_CLIENT_ONLY if uses_client else _PLAIN, 0, 0, position)

    items[:] = [item for _, item in sorted(enumerate(items), key=sort_key)]
    _log.debug("Run order: %s", ", ".join(item.nodeid for item in items))


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """The run order, shown at `-v`."""
    if config.get_verbosity() < 1:
        return []
    lines = ["remote lab test order:"]
    shown: LabFixtureSpec | None = None
    others = 0
    for item in items:
        spec = _lab_spec(item)
        if spec is None:
            others += 1
            continue
        if spec != shown:
            shown = spec
            kind = "reuses a running lab" if spec.reuse else "fresh lab"
            lines.append(f"  {spec.name}: {spec.topology.name}, lab {spec.digest[:8]}, {kind}")
        lines.append(f"    {item.nodeid}")
    lines.append(f"  then {others} {'test' if others == 1 else 'tests'} without a lab fixture")
    return lines


def _lab_spec(item: pytest.Item) -> LabFixtureSpec | None:
    found = lab_fixtures_of(item)
    if len(found) > 1:
        names = ", ".join(name for name, _ in found)
        raise ValueError(
            f"Test {item.nodeid} uses several remote lab fixtures ({names}); "
            "the lab server runs one lab at a time, so a test may use only one"
        )
    return found[0][1] if found else None
