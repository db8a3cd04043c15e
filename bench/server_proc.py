"""Starts the release server for a benchmark: its own HOME and TMPDIR, a
free loopback port read from the metadata file, SIGTERM at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import requests

ROOT = Path(__file__).resolve().parent.parent
EXTERNAL_UP_ARGS = "-q --no-config -p external -s defaults.multilab.id=default"


class BenchServer:
    def __init__(self, *args: str, binary: Path | None = None) -> None:
        self.binary = binary or Path(
            os.environ.get("NEOPS_REMOTE_LAB_BIN", ROOT / "target/release/neops-remote-lab")
        )
        self.args = list(args)
        self.url = ""
        self.pid = 0
        self._dirs = tempfile.TemporaryDirectory()
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "BenchServer":
        root = Path(self._dirs.name)
        (root / "home").mkdir()
        (root / "tmp").mkdir()
        env = {**os.environ, "HOME": str(root / "home"), "TMPDIR": str(root / "tmp")}
        env.setdefault("NEOPS_NETLAB_UP_ARGS", EXTERNAL_UP_ARGS)
        self._process = subprocess.Popen(
            [str(self.binary), "--host", "127.0.0.1", "--port", "0", "--log-level", "WARNING", *self.args],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(root / "server.log", "wb"),
        )
        self.pid = self._process.pid
        meta_file = root / "tmp" / "neops_remote_lab_server.meta.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError((root / "server.log").read_text())
            try:
                meta = json.loads(meta_file.read_text())
                if meta["pid"] == self.pid:
                    self.url = f"http://127.0.0.1:{meta['port']}"
                    requests.get(f"{self.url}/healthz", timeout=5).raise_for_status()
                    return self
            except (OSError, ValueError, requests.RequestException):
                pass
            time.sleep(0.02)
        raise RuntimeError("server did not start")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            self._process.wait(timeout=180)
        self._dirs.cleanup()
