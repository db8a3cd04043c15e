"""`python -m neops_remote_lab ...` runs the bundled server binary with the same arguments."""

from __future__ import annotations

import os
import sys

from .server_binary import find_server_binary


def main() -> None:
    try:
        binary = find_server_binary()
    except (FileNotFoundError, RuntimeError) as exc:
        sys.exit(f"error: {exc}")
    os.execv(binary, [str(binary), *sys.argv[1:]])  # noqa: S606 - replaces this process with the server


if __name__ == "__main__":
    main()
