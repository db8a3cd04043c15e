"""A lab upload: the topology, its companion files, and the names the server stores them under.

The server rebuilds the upload as a folder: every file name is a path relative to the upload's
root, the topology's too (`labs/basic/topology.yml`), and netlab runs in the topology's folder.
So a topology that refers to `../../defaults.yml` comes up when the upload's root is two
folders above it and the defaults file is sent along.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `neops_remote_lab` imports this module before `_http` can be imported
    from ._http import Upload

__all__ = ["LabDeclaration", "LabFiles"]


@dataclass(frozen=True)
class LabDeclaration:
    """A lab a session will ask for, named as `RemoteLabClient.acquire` takes it (see `LabFiles.collect`).

    `topology` is relative to the working directory; `extra_files` (files or folders) and `root`
    are relative to the topology's folder unless absolute.
    """

    topology: str | Path
    extra_files: Sequence[str | Path] = ()
    root: str | Path | None = None


@dataclass(frozen=True)
class LabFiles:
    """The files of one lab upload, each with its name relative to `root` (a `/`-separated path)."""

    root: Path
    topology: Path
    extra: tuple[tuple[str, Path], ...]

    @classmethod
    def collect(
        cls, topology: str | Path, extra_files: Iterable[str | Path] = (), root: str | Path | None = None
    ) -> LabFiles:
        """Find the files and the upload's root.

        `topology` is relative to the working directory. `extra_files` are files or folders (a
        folder stands for every file below it) and `root` a folder, each relative to the
        topology's folder unless absolute. The root is `root` when given; otherwise the
        topology's folder when every extra file lies inside it (the topology is then sent under
        its bare name, as the original client did), else the deepest folder holding them all.

        Raises `FileNotFoundError` for a missing topology or extra file, `ValueError` for a
        file outside the given `root`.
        """
        topology = _absolute(Path.cwd(), topology)
        if not topology.is_file():
            raise FileNotFoundError(f"Topology not found: {topology}")
        folder = topology.parent
        files: dict[Path, None] = {}  # ordered and without repeats
        for entry in extra_files:
            path = _absolute(folder, entry)
            if path.is_dir():
                files.update(dict.fromkeys(sorted(p for p in path.rglob("*") if p.is_file())))
            elif path.is_file():
                files[path] = None
            else:
                raise FileNotFoundError(f"Extra file not found: {path}")
        files.pop(topology, None)  # a listed folder may hold the topology itself
        base = _absolute(folder, root) if root is not None else Path(os.path.commonpath([folder, *files]))
        for file in (topology, *files):
            if not file.is_relative_to(base):
                raise ValueError(f"{file} is outside the upload's root {base}")
        return cls(base, topology, tuple((file.relative_to(base).as_posix(), file) for file in files))

    @property
    def topology_name(self) -> str:
        """The topology's name in the upload: its path relative to the root."""
        return self.topology.relative_to(self.root).as_posix()

    def digest(self) -> str:
        """SHA-256 (hex) over the topology's bytes and every extra file's name and bytes, in name order.

        Two uploads with the same digest are the same lab to the server; the topology's own
        file name is not part of it.
        """
        sha = hashlib.sha256()
        for name, path in [("", self.topology), *sorted(self.extra)]:
            content = path.read_bytes()
            sha.update(f"{len(name)}:{name}{len(content)}:".encode())
            sha.update(content)
        return sha.hexdigest()

    def multipart(self) -> list[Upload]:
        """The request's file parts, read now: every attempt sends the current bytes in full."""
        parts: list[Upload] = [("topology", (self.topology_name, self.topology.read_bytes(), "application/x-yaml"))]
        parts += [("extra_files", (name, path.read_bytes(), "application/octet-stream")) for name, path in self.extra]
        return parts


def _absolute(base: Path, path: str | Path) -> Path:
    # normpath, not resolve(): a symlink inside the lab keeps its place in the lab.
    return Path(os.path.normpath(base / Path(path).expanduser()))
