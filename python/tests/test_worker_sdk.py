"""A real consumer nobody here wrote: the Worker SDK's function-block tests on our wheel and server.

The newest pre-release of PyPI `neops-worker-sdk` (Python >= 3.12) and our wheel go into a
fresh virtualenv; the SDK's `test` extra asks for `neops-remote-lab>=1.3.0`, which our wheel
must satisfy without pip swapping in the original package. A small function-block project
then runs against our server and real netlab.

Needs the package index and a Python >= 3.12, so `make test` leaves it out (marker
`worker_sdk`); `make test-worker-sdk` and CI run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from server_process import LabServer, missing, run_project

import neops_remote_lab

PROJECT = Path(__file__).resolve().parent / "worker_sdk_project"
SDK_PYTHON_ENV = "NEOPS_SDK_PYTHON"

pytestmark = pytest.mark.worker_sdk


def python_for_the_sdk() -> str:
    """`$NEOPS_SDK_PYTHON`, else a working python3.12+ on PATH, else one that pyenv installed."""
    candidates = [os.environ.get(SDK_PYTHON_ENV, "")]
    candidates += [found for name in ("python3.14", "python3.13", "python3.12") if (found := shutil.which(name))]
    pyenv_versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates += sorted((str(p) for p in pyenv_versions.glob("3.1[2-9]*/bin/python3")), reverse=True)
    usable = next((candidate for candidate in candidates if candidate and is_python_312_or_later(candidate)), None)
    if usable is None:
        missing("Python >= 3.12 for the Worker SDK", f"install one (pyenv install 3.12) or set {SDK_PYTHON_ENV}")
    return usable


def is_python_312_or_later(python: str) -> bool:
    check = [python, "-c", "import sys; assert sys.version_info >= (3, 12)"]
    return subprocess.run(check, capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def sdk_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sdk-venv")
    subprocess.run([python_for_the_sdk(), "-m", "venv", str(root)], check=True)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--pre", str(wheel), "neops-worker-sdk[test]"], check=True, timeout=900)
    return root


def test_sdk_keeps_our_package(sdk_venv: Path):
    shown = subprocess.run(
        [
            str(sdk_venv / "bin" / "python"),
            "-c",
            "import neops_remote_lab, neops_remote_lab.server_binary as b; print(neops_remote_lab.__version__); "
            "print(b.find_server_binary())",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "NEOPS_REMOTE_LAB_BIN"},
    )
    version, binary = shown.stdout.split()
    assert version == neops_remote_lab.__version__
    assert Path(binary).parent == sdk_venv / "bin"


def test_function_block_gets_the_lab_devices(sdk_venv: Path, lab_server: LabServer, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REMOTE_LAB_", "PYTEST_"))}
    env["REMOTE_LAB_URL"] = lab_server.url
    run = run_project(sdk_venv / "bin" / "python", PROJECT, tmp_path / "project", env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_read_devices.py::test_readdevices_reads_the_lab_devices PASSED" in run.stdout
    assert lab_server.health()["sessions"] == 0
