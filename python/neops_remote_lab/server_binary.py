"""Where the `neops-remote-lab` server binary that ships in this wheel was installed.

Only the places an installer puts this wheel's scripts are searched, never `PATH`: there a
`neops-remote-lab` may be the original Python package's script or an older binary.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

from . import __version__

__all__ = ["BINARY_ENV", "BINARY_NAME", "find_server_binary"]

BINARY_NAME = "neops-remote-lab" + (sysconfig.get_config_var("EXE") or "")
BINARY_ENV = "NEOPS_REMOTE_LAB_BIN"
_VERSION_TIMEOUT = 30.0  # seconds


def find_server_binary() -> Path:
    """`$NEOPS_REMOTE_LAB_BIN`, else the copy installed with this package; checked with `--version`.

    Raises `FileNotFoundError` naming every folder searched when there is none, and
    `RuntimeError` when the binary found is not this package's server or not its version
    (`$NEOPS_REMOTE_LAB_BIN` need only be a neops-remote-lab server).
    """
    override = os.environ.get(BINARY_ENV)
    if override:
        if not Path(override).is_file():
            raise FileNotFoundError(f"{BINARY_ENV}={override} does not name a file")
        _check_version(Path(override), exact=False)
        return Path(override)
    searched: list[Path] = []
    for folder in _install_folders():
        if folder in searched:
            continue
        searched.append(folder)
        candidate = folder / BINARY_NAME
        if candidate.is_file():
            _check_version(candidate, exact=True)
            return candidate
    places = "\n".join(f"  - {folder}" for folder in searched)
    raise FileNotFoundError(
        f"The {BINARY_NAME} server binary of neops-remote-lab {__version__} is not installed in any of:\n{places}\n"
        f"Reinstall the neops-remote-lab wheel, or set {BINARY_ENV} to the binary"
    )


def _install_folders() -> list[Path]:
    """Scripts folders an installer may have put this wheel's binary in, most likely first."""
    package = Path(__file__).resolve().parent
    folders = [
        Path(sysconfig.get_path("scripts")),  # this interpreter's environment
        Path(sysconfig.get_path("scripts", vars={"base": sys.base_prefix})),
    ]
    # `pip install --prefix`: <prefix>/lib/python3.X/site-packages/neops_remote_lab -> <prefix>/bin
    if package.parent.name == "site-packages" and len(package.parents) > 3:
        folders.append(package.parents[3] / ("Scripts" if os.name == "nt" else "bin"))
    folders.append(package.parent / "bin")  # `pip install --target <dir>`: <dir>/bin
    folders.append(Path(sysconfig.get_path("scripts", sysconfig.get_preferred_scheme("user"))))  # `--user`
    return folders


def _check_version(binary: Path, *, exact: bool) -> None:
    try:
        answer = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=_VERSION_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{binary} is not a usable neops-remote-lab server: `--version` failed: {exc}") from None
    name, _, version = answer.stdout.strip().partition(" ")
    if answer.returncode != 0 or name != "neops-remote-lab" or not version:
        said = (answer.stdout + answer.stderr).strip()[:200]
        raise RuntimeError(f"{binary} is not a neops-remote-lab server binary: `--version` said {said!r}")
    if exact and _normalized(version) != _normalized(__version__):
        raise RuntimeError(
            f"{binary} is neops-remote-lab {version}, but this package is {__version__}: reinstall the wheel"
        )


def _normalized(version: str) -> str:
    # Cargo writes "1.5.0-rc.1" where Python writes "1.5.0rc1".
    return re.sub(r"[-_.]", "", version.lower())
