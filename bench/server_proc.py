"""Helpers shared by the benchmarks: the server under test (its own HOME and TMPDIR, a free
loopback port read from the metadata file, SIGTERM at the end), the real netlab, and
percentiles."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import requests

ROOT = Path(__file__).resolve().parent.parent
EXTERNAL_UP_ARGS = "-q --no-config -p external -s defaults.multilab.id=default"


class BenchServer:
    """The server binary (`NEOPS_REMOTE_LAB_BIN`, default the release build), started with `args`."""

    def __init__(
        self, *args: str, binary: Path | None = None, env: dict[str, str] | None = None, log_level: str = "WARNING"
    ) -> None:
        self.binary = binary or Path(os.environ.get("NEOPS_REMOTE_LAB_BIN", ROOT / "target/release/neops-remote-lab"))
        self.args = [*args, "--log-level", log_level]
        self.extra_env = env or {}
        self.url = ""
        self.pid = 0
        self._dirs = tempfile.TemporaryDirectory()
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BenchServer:
        root = Path(self._dirs.name)
        (root / "home").mkdir()
        (root / "tmp").mkdir()
        # One server per TMPDIR is enforced by a lock, so each benchmark server gets its own.
        env = {
            **os.environ,
            "HOME": str(root / "home"),
            "TMPDIR": str(root / "tmp"),
            "NEOPS_STATE_DIR": str(root / "state"),
            **self.extra_env,
        }
        env.setdefault("NEOPS_NETLAB_UP_ARGS", EXTERNAL_UP_ARGS)
        log = root / "server.log"
        with log.open("wb") as stderr:
            self._process = subprocess.Popen(
                [str(self.binary), "--host", "127.0.0.1", "--port", "0", *self.args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.pid = self._process.pid
        meta_file = root / "tmp" / "neops_remote_lab_server.meta.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(log.read_text())
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

    def new_session(self, http: requests.Session) -> str:
        response = http.post(f"{self.url}/session", timeout=10)
        response.raise_for_status()
        session: str = response.json()["session_id"]
        return session

    def rss_bytes(self) -> int:
        """The server's resident set size now (VmRSS, which /proc reports in KiB)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {self.pid}")


def real_netlab() -> str:
    """The absolute path of the netlab on PATH: stand-ins exec it, whatever PATH the server has."""
    netlab = shutil.which("netlab")
    if netlab is None:
        sys.exit("netlab not found: run `make venv` or `pip install networklab`")
    return str(Path(netlab).absolute())


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile: a value that was actually observed (p99 of 100 samples is the 99th)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"
