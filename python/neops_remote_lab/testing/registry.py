"""Every `remote_lab_fixture` declared in this process, and which one a test uses.

`REMOTE_LAB_ORDER` and `REMOTE_LAB_FIXTURE_META` keep the original package's shape (keyed by
the fixture's `name`). Tests are matched to fixtures through the fixture *function* instead of
that name, because pytest names a fixture after the attribute it is assigned to, which need
not be the topology's stem.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from neops_remote_lab._lab_files import LabFiles

__all__ = [
    "REMOTE_LAB_FIXTURE_META",
    "REMOTE_LAB_ORDER",
    "LabFixtureSpec",
    "bind",
    "lab_fixtures_of",
    "labs_used_by",
    "register",
]

REMOTE_LAB_ORDER: dict[str, int] = {}  # fixture name -> rank (declaration order)
REMOTE_LAB_FIXTURE_META: dict[str, dict[str, object]] = {}

_ranks = itertools.count()
_specs: dict[Callable[..., object], LabFixtureSpec] = {}


@dataclass(frozen=True)
class LabFixtureSpec:
    """One declared lab fixture."""

    name: str
    rank: int
    topology: Path  # absolute
    extra_files: tuple[str | Path, ...]  # as declared: relative to the topology's folder, expanded at each upload
    root: str | Path | None
    reuse: bool
    digest: str  # over the topology's and every extra file's bytes: the server's identity of a lab


def register(
    name: str, lab: LabFiles, extra_files: tuple[str | Path, ...], root: str | Path | None, reuse: bool
) -> LabFixtureSpec:
    spec = LabFixtureSpec(name, next(_ranks), lab.topology, extra_files, root, reuse, lab.digest())
    REMOTE_LAB_ORDER[name] = spec.rank
    REMOTE_LAB_FIXTURE_META[name] = {
        "rank": spec.rank,
        "reuse": reuse,
        "topology": _display_path(lab.topology),
        "remote": bool(os.environ.get("REMOTE_LAB_URL")),
    }
    return spec


def bind(function: Callable[..., object], spec: LabFixtureSpec) -> None:
    """Remember that pytest will run `function` for the fixture `spec`."""
    _specs[function] = spec


def lab_fixtures_of(item: pytest.Item) -> list[tuple[str, LabFixtureSpec]]:
    """The lab fixtures `item` requests, directly or through other fixtures, by their pytest name."""
    info = getattr(item, "_fixtureinfo", None)  # only Function items have fixtures
    if info is None:
        return []
    found = []
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name)
        # The last definition is the one visible to this test (a closer scope overrides).
        spec = _specs.get(definitions[-1].func) if definitions else None
        if spec is not None:
            found.append((name, spec))
    return found


def labs_used_by(items: Iterable[pytest.Item]) -> list[LabFixtureSpec]:
    """The labs `items` use, each once (the first fixture of each `digest`), in the order they are first used."""
    labs: dict[str, LabFixtureSpec] = {}
    for item in items:
        for _, spec in lab_fixtures_of(item):
            labs.setdefault(spec.digest, spec)
    return list(labs.values())


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
