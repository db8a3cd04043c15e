#!/usr/bin/env python3
"""P6 - suite cost: how many `netlab up` runs a test suite costs.

Runs `bench/sample_suite` (6 tests: 5 use 3 lab fixtures over 2 distinct topology contents -
two fixtures point at different files with identical bytes - interleaved, plus a plain test)
with the package's pytest plugin against a server whose netlab is
`bench/counting-netlab-passthrough`, which logs every netlab command and runs the real netlab.
With the plugin grouping tests by topology content and the server sharing identical content,
the suite costs one `netlab up` per distinct topology: 2.

Needs the Python package (`python/neops_remote_lab`) and pytest in this interpreter's
environment; runs pytest with `PYTHONPATH=<repo>/python`.

Usage: bench/suite_cost.py [--quick]   (--quick runs the same suite: it is already short)
Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path

from server_proc import ROOT, BenchServer, real_netlab, verdict

HERE = Path(__file__).resolve().parent
SUITE = HERE / "sample_suite"
PASSTHROUGH = HERE / "counting-netlab-passthrough"
LAB_TESTS, FIXTURES, CONTENTS = 5, 3, 2


def pytest_command() -> list[str]:
    command = [sys.executable, "-m", "pytest", "-q", str(SUITE)]
    # An installed package registers the plugin through its pytest11 entry point; naming it
    # again with -p would load it twice, which pytest refuses.
    if "neops-remote-lab" not in {entry.name for entry in entry_points(group="pytest11")}:
        command += ["-p", "neops_remote_lab.pytest_plugins"]
    return command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="accepted for bench/run; the same run")
    parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        commands = Path(scratch) / "netlab-commands.log"
        env = {"COUNTING_NETLAB_REAL": real_netlab(), "COUNTING_NETLAB_LOG": str(commands)}
        with BenchServer("--netlab-bin", str(PASSTHROUGH), env=env) as server:
            commands.write_text("")  # forget the server's start-up calls (`version`, stale-lab cleanup)
            python_path = os.pathsep.join(filter(None, [str(ROOT / "python"), os.environ.get("PYTHONPATH")]))
            suite_env = {**os.environ, "REMOTE_LAB_URL": server.url, "PYTHONPATH": python_path}
            started = time.perf_counter()
            run = subprocess.run(
                pytest_command(), cwd=SUITE, env=suite_env, capture_output=True, text=True, check=False
            )
            took = time.perf_counter() - started
        if run.returncode != 0:
            sys.exit(f"the sample suite failed (exit {run.returncode}):\n{run.stdout}\n{run.stderr}")
        ups = sum(1 for line in commands.read_text().splitlines() if line.split()[:1] == ["up"])

    print("| lab tests | lab fixtures | distinct topologies | `netlab up` runs | target 2 | suite wall time (s) |")
    print("|---:|---:|---:|---:|---|---:|")
    print(f"| {LAB_TESTS} | {FIXTURES} | {CONTENTS} | {ups} | {verdict(ups <= CONTENTS)} | {took:.1f} |")
    print("\n`bench/sample_suite`, `reuse_lab=True`; `up` runs counted by `bench/counting-netlab-passthrough`.")
    print(json.dumps({"P6": {"netlab_up_runs": ups, "suite_s": took}}), file=sys.stderr)


if __name__ == "__main__":
    main()
