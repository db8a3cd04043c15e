"""`remote_lab_fixture` and the `remote_lab_client` fixture (names kept from the original package)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from neops_remote_lab._lab_files import LabFiles
from neops_remote_lab.client import RemoteLabClient
from neops_remote_lab.models import DeviceInfoDto

from . import registry
from .lab_session import LabSession
from .registry import REMOTE_LAB_FIXTURE_META, REMOTE_LAB_ORDER

__all__ = [
    "REMOTE_LAB_FIXTURE_META",
    "REMOTE_LAB_ORDER",
    "remote_lab_client",
    "remote_lab_fixture",
    "remote_lab_ssh_config",
]

_log = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def remote_lab_client(request: pytest.FixtureRequest) -> Iterator[RemoteLabClient]:
    """The run's session on the lab server, ACTIVE once this returns.

    The server is `REMOTE_LAB_URL`, or a local one (see `LabSession`). The session is closed
    right after the last test that uses it, so the next queued suite need not wait for ours.
    """
    lab_session = LabSession.of(request.config)
    yield lab_session.open_client()
    lab_session.close_client()


@pytest.fixture
def remote_lab_ssh_config(remote_lab_client: RemoteLabClient, tmp_path: Path) -> Path:
    """The path of an OpenSSH config file for the lab the test holds: `ssh -F <path> r1`.

    Request it after a lab fixture (e.g. `def test_x(my_lab, remote_lab_ssh_config)`), so the lab
    is up when it is written: one `Host` per device, with `ProxyJump` through the lab host (see
    `RemoteLabClient.ssh_config`).
    """
    path = tmp_path / "ssh_config"
    path.write_text(remote_lab_client.ssh_config())
    return path


def remote_lab_fixture(
    topology: str | Path,
    *,
    name: str | None = None,
    reuse_lab: bool = False,
    extra_files: Iterable[str | Path] = (),
    root: str | Path | None = None,
) -> Callable[..., Iterator[list[DeviceInfoDto]]]:
    """Declare a function-scoped fixture that brings `topology` up and yields its devices.

    Assign the result to a module attribute (in `conftest.py` or a test module); pytest names
    the fixture after that attribute. `topology` is relative to the working directory. `name`
    (default: the file's stem) keys the ordering registries. `reuse_lab=True` shares a running
    lab with the same files instead of asking for a fresh one.

    `extra_files` (files or folders) and `root` go with every upload, as in
    `RemoteLabClient.acquire`: relative to the topology's folder unless absolute; when a file
    lies outside that folder, the upload's root is the deepest folder holding them all (or
    `root`), and the topology is sent under its path relative to it. Fixtures whose files have
    the same bytes and names are one lab and run as one group.

    Raises `FileNotFoundError` here, at declaration, for a missing topology or extra file, and
    `ValueError` for a file outside `root`.
    """
    # Relative extra files and root stay relative to the topology's folder, whatever the
    # working directory is when a test runs.
    extra = tuple(extra_files)
    lab_files = LabFiles.collect(topology, extra, root)
    spec = registry.register(name or lab_files.topology.stem, lab_files, extra, root, reuse_lab)

    def lab(remote_lab_client: RemoteLabClient) -> Iterator[list[DeviceInfoDto]]:
        devices = remote_lab_client.acquire(
            spec.topology, reuse=spec.reuse, extra_files=spec.extra_files, root=spec.root
        )
        try:
            yield devices
        finally:
            remote_lab_client.release()

    lab.__name__ = spec.name
    registry.bind(lab, spec)
    _log.debug("Declared lab fixture %s (rank %d, reuse=%s) for %s", spec.name, spec.rank, reuse_lab, spec.topology)
    return pytest.fixture(scope="function")(lab)
