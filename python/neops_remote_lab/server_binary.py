"""Where the `neops-remote-lab` server binary that ships in this wheel was installed."""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

BINARY_NAME = "neops-remote-lab"
BINARY_ENV = "NEOPS_REMOTE_LAB_BIN"


def find_server_binary() -> Path:
    """`$NEOPS_REMOTE_LAB_BIN`, else the copy pip put next to this interpreter, else `PATH`."""
    override = os.environ.get(BINARY_ENV)
    if override:
        if not Path(override).is_file():
            raise FileNotFoundError(f"{BINARY_ENV}={override} does not name a file")
        return Path(override)
    # maturin installs the binary as a script of the environment the package went into:
    # the interpreter's scripts folder, or the user scheme's after `pip install --user`.
    for scheme in (sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")):
        candidate = Path(sysconfig.get_path("scripts", scheme)) / BINARY_NAME
        if candidate.is_file():
            return candidate
    found = shutil.which(BINARY_NAME)
    if found is None:
        raise FileNotFoundError(
            f"The {BINARY_NAME} server binary is not installed here; reinstall the neops-remote-lab wheel "
            f"or set {BINARY_ENV} to the binary"
        )
    return Path(found)
