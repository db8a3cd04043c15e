"""How the package finds its server binary: only where the wheel installs it, checked by `--version`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import neops_remote_lab
from neops_remote_lab import server_binary


def fake_binary(folder: Path, prints: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / server_binary.BINARY_NAME
    binary.write_text(f"#!/bin/sh\necho '{prints}'\n")
    binary.chmod(0o755)
    return binary


@pytest.fixture
def install_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The only place searched; no override."""
    folder = tmp_path / "scripts"
    monkeypatch.delenv(server_binary.BINARY_ENV, raising=False)
    monkeypatch.setattr(server_binary, "_install_folders", lambda: [folder])
    return folder


def test_path_is_not_searched_and_the_error_lists_every_place(
    install_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    on_path = fake_binary(tmp_path / "elsewhere", f"neops-remote-lab {neops_remote_lab.__version__}")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(FileNotFoundError) as raised:
        server_binary.find_server_binary()
    assert f"  - {install_folder}" in str(raised.value)
    assert str(on_path.parent) not in str(raised.value)


def test_the_installed_binary_of_this_version_is_found(install_folder: Path):
    binary = fake_binary(install_folder, f"neops-remote-lab {neops_remote_lab.__version__}")
    assert server_binary.find_server_binary() == binary


def test_another_version_is_refused(install_folder: Path):
    fake_binary(install_folder, "neops-remote-lab 0.0.1")
    with pytest.raises(RuntimeError, match=r"is neops-remote-lab 0\.0\.1, but this package is"):
        server_binary.find_server_binary()


def test_something_else_by_that_name_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The original Python package installs a `neops-remote-lab` script that is no such binary.
    other = fake_binary(tmp_path / "bin", "usage: remote_lab [-h] [--host HOST]")
    monkeypatch.setenv(server_binary.BINARY_ENV, str(other))
    with pytest.raises(RuntimeError, match="is not a neops-remote-lab server binary"):
        server_binary.find_server_binary()
