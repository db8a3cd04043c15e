#!/usr/bin/env python3
"""P8 - suite makespan: how long 12 suites over 3 topologies take to get through one lab host.

12 suites over 3 small topologies X, Y, Z arrive at once, interleaved (X Y Z X Y Z …) or grouped
(X X X X Y Y Y Y Z Z Z Z), on 1 and on 2 lab slots. Each suite is one thread: `POST /session`
(the 12 a few ms apart, in order), in policies c-e `POST /session/{id}/labs` (its lab), waits
until ACTIVE, `POST /lab` (`reuse=true`), sleeps 10 s ("tests"), `POST /lab/release`,
`DELETE /session`. Every `netlab up` is slowed to 20 s by `bench/slow-netlab-standin` (**not
netlab**: it sleeps, then runs the real netlab) and counted by `bench/counting-netlab-passthrough`.

Policies: a) the original 1.4.0 server (its venv: --orig-venv or NEOPS_ORIG_VENV; one slot only;
its client polls every 5 s, so ours does too against it); b) ours, default flags; c) ours
`--keep-idle-lab 600` + declared labs; d) c plus `--placement batch --max-bypass 2`; e) the
same with `--max-bypass 6`. Each row is compared with the lower bound
((distinct labs * bring-up + suites * tests) / slots) and with `bench/makespan_sim.py`'s
zero-overhead schedule of the same policy.

Usage: bench/makespan.py [--policies abc] [--scale F] [--orig-venv DIR] [--quick]
Prints a Markdown table on stdout (and a JSON line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import requests
from makespan_sim import TEST_SECONDS, UP_SECONDS, overtaken_counts, simulate, suite_labs
from server_proc import EXTERNAL_UP_ARGS, BenchServer, real_netlab

HERE = Path(__file__).resolve().parent
SLOW = HERE / "slow-netlab-standin"
COUNTING = HERE / "counting-netlab-passthrough"
TOPOLOGIES = {  # three small labs for netlab's external provider
    "X": "defaults.device: eos\nnodes: [x1, x2]\nlinks: [x1-x2]\n",
    "Y": "defaults.device: eos\nnodes: [y1]\n",
    "Z": "defaults.device: eos\nnodes: [z1, z2]\n",
}
OURS_FLAGS = {
    "b": [],
    "c": ["--keep-idle-lab", "600"],
    "d": ["--keep-idle-lab", "600", "--placement", "batch", "--max-bypass", "2"],
    "e": ["--keep-idle-lab", "600", "--placement", "batch", "--max-bypass", "6"],
}
SIM_POLICY = {"a": "fifo", "b": "fifo", "c": "warm", "d": "batch:2", "e": "batch:6"}
DECLARES = {"c", "d", "e"}
ORIG_POLL_SECONDS = 5.0  # the 1.4.0 client's poll interval while it waits


@dataclass
class Suite:
    """One suite's timeline, in seconds since the first `POST /session`."""

    lab: str
    created: float = 0.0
    active: float = 0.0  # its client saw ACTIVE
    lab_up: float = 0.0  # its `POST /lab` answered
    ended: float = 0.0  # its `DELETE /session` answered
    error: str = ""


class OrigServer(AbstractContextManager["OrigServer"]):
    """The original 1.4.0 server from its venv, its `netlab` (on PATH) being the counting, slow chain."""

    def __init__(self, venv: Path, env: dict[str, str]) -> None:
        self.venv, self.extra_env, self.url = venv, env, ""
        self._dirs = tempfile.TemporaryDirectory()
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OrigServer:
        root = Path(self._dirs.name)
        for sub in ("home", "tmp", "bin"):
            (root / sub).mkdir()
        # The original runs `netlab up <file>` from PATH, with no provider: give it the external one.
        shim = root / "bin" / "netlab"
        shim.write_text(
            f'#!/bin/sh\nif [ "$1" = up ]; then shift; exec "{COUNTING}" up {EXTERNAL_UP_ARGS} "$@"; fi\n'
            f'exec "{COUNTING}" "$@"\n'
        )
        shim.chmod(0o755)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, "HOME": str(root / "home"), "TMPDIR": str(root / "tmp"), **self.extra_env}
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{env['PATH']}"
        command = [str(self.venv / "bin/neops-remote-lab"), "--host", "127.0.0.1", "--port", str(port)]
        with (root / "server.log").open("wb") as log:
            self._process = subprocess.Popen(
                [*command, "--log-level", "WARNING"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError((root / "server.log").read_text())
            try:
                requests.get(f"{self.url}/healthz", timeout=5).raise_for_status()
                return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("the original server did not start")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=180)
        self._dirs.cleanup()


def run_suite(url: str, suite: Suite, session: str, *, t0: float, poll: float, test_s: float) -> None:
    """One suite's client after its session exists: wait for ACTIVE, lab, tests, release, end."""
    header = {"X-Session-ID": session}
    # A fresh connection per request: uvicorn (the original) closes idle keep-alive connections
    # after 5 s, its client's poll interval, and reusing one it is closing resets the request.
    try:
        while True:  # long-poll (ours); the original ignores `wait` and answers at once
            answer = requests.get(f"{url}/session/{session}", params={"wait": 30}, timeout=60)
            answer.raise_for_status()
            if answer.json()["status"] == "active":
                break
            time.sleep(poll)
        suite.active = time.monotonic() - t0
        files = {"topology": (f"{suite.lab}.yml", TOPOLOGIES[suite.lab])}
        while True:
            answer = requests.post(f"{url}/lab", files=files, data={"reuse": "true"}, headers=header, timeout=900)
            if answer.status_code != 423:
                break
            time.sleep(1)
        answer.raise_for_status()
        suite.lab_up = time.monotonic() - t0
        time.sleep(test_s)
        requests.post(f"{url}/lab/release", headers=header, timeout=60).raise_for_status()
        requests.delete(f"{url}/session/{session}", timeout=300).raise_for_status()
        suite.ended = time.monotonic() - t0
    except (requests.RequestException, KeyError, ValueError) as error:
        suite.error = f"{type(error).__name__}: {error}"


def run_suites(url: str, suites: list[Suite], *, declare: bool, poll: float, test_s: float) -> None:
    """Opens the suites' sessions in order, a few ms apart (declaring each one's lab when `declare`),
    each then run by its own thread; returns when all have ended."""
    threads = []
    t0 = time.monotonic()
    with requests.Session() as http:
        for suite in suites:
            suite.created = time.monotonic() - t0
            answer = http.post(f"{url}/session", timeout=10)
            answer.raise_for_status()
            session = answer.json()["session_id"]
            if declare:
                files = {"topology": (f"{suite.lab}.yml", TOPOLOGIES[suite.lab])}
                http.post(f"{url}/session/{session}/labs", files=files, timeout=10).raise_for_status()
            timing = {"t0": t0, "poll": poll, "test_s": test_s}
            threads.append(threading.Thread(target=run_suite, args=(url, suite, session), kwargs=timing))
            threads[-1].start()
            time.sleep(0.005)
    for thread in threads:
        thread.join()


def run_policy(policy: str, labs: list[str], slots: int, args: argparse.Namespace) -> tuple[list[Suite], int]:
    """Starts the policy's server, runs the suites `labs` against it: their timelines, the `netlab up` count."""
    up_s, test_s = UP_SECONDS * args.scale, TEST_SECONDS * args.scale
    with tempfile.TemporaryDirectory() as scratch:
        commands = Path(scratch) / "netlab-commands.log"
        env = {
            "COUNTING_NETLAB_LOG": str(commands),
            "COUNTING_NETLAB_REAL": str(SLOW),
            "SLOW_NETLAB_REAL": real_netlab(),
            "SLOW_NETLAB_UP_SECONDS": f"{up_s:g}",
        }
        server: BenchServer | OrigServer
        if policy == "a":
            server, poll = OrigServer(args.orig_venv, env), ORIG_POLL_SECONDS * args.scale
        else:
            server, poll = (
                BenchServer("--netlab-bin", str(COUNTING), "--lab-slots", str(slots), *OURS_FLAGS[policy], env=env),
                0.0,
            )
        with server:
            commands.write_text("")  # forget the start-up calls
            suites = [Suite(lab) for lab in labs]
            run_suites(server.url, suites, declare=policy in DECLARES, poll=poll, test_s=test_s)
            ups = sum(1 for line in commands.read_text().splitlines() if line.split()[:1] == ["up"])
    failed = [s.error for s in suites if s.error]
    if failed:
        raise RuntimeError(f"policy {policy}: {len(failed)} suite(s) failed, first: {failed[0]}")
    return suites, ups


def supports(flag: str) -> bool:
    """Whether our server binary knows `flag` (from its --help)."""
    binary = os.environ.get("NEOPS_REMOTE_LAB_BIN", str(HERE.parent / "target/release/neops-remote-lab"))
    return flag in subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", default="abcde", help="which of a-e to run (default all)")
    parser.add_argument("--orders", default="interleaved,grouped", help="comma-separated arrival orders")
    parser.add_argument("--slots", default="1,2", help="comma-separated slot counts")
    parser.add_argument("--suites", type=int, default=12, help="number of suites (default 12)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the 20 s bring-up and 10 s tests")
    parser.add_argument("--orig-venv", type=Path, default=os.environ.get("NEOPS_ORIG_VENV"), help="1.4.0's venv")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 suites, scale 0.1, 1 slot, b and c")
    args = parser.parse_args()
    if args.quick:
        args.policies, args.orders, args.slots, args.suites, args.scale = "bc", "interleaved", "1", 3, 0.1
    if not set(args.policies) <= set("abcde"):
        parser.error("--policies takes letters a-e")
    if {"d", "e"} & set(args.policies) and not supports("--max-bypass"):
        sys.exit("policies d and e need `--placement batch --max-bypass K`, which this server binary lacks")

    real_netlab()  # exits with a hint when there is none, before any output
    up_s, test_s = UP_SECONDS * args.scale, TEST_SECONDS * args.scale
    print(
        "| policy | order | slots | makespan (s) | / bound | sim (s) | / sim | wait mean (s) | wait max (s) "
        "| `netlab up` | busy share | max overtaken |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes, results = [], []
    for policy in args.policies:
        for order in args.orders.split(","):
            for slots in map(int, args.slots.split(",")):
                labs = suite_labs(order, args.suites)
                if policy == "a" and (slots > 1 or args.orig_venv is None or not Path(args.orig_venv).is_dir()):
                    why = "it has one slot" if slots > 1 else "no 1.4.0 venv (--orig-venv)"
                    notes.append(f"a, {order}, {slots} slot(s) not run: {why}.")
                    continue
                suites, ups = run_policy(policy, labs, slots, args)
                makespan = max(s.ended for s in suites)
                bound = (len(set(labs)) * up_s + len(labs) * test_s) / slots
                sim = simulate(labs, slots, SIM_POLICY[policy], up_s, test_s).makespan
                waits = [s.lab_up - s.created for s in suites]
                busy = sum(s.ended - s.active for s in suites) / (makespan * slots)
                overtaken = max(overtaken_counts([s.active for s in suites]))
                print(
                    f"| {policy} | {order} | {slots} | {makespan:.1f} | {makespan / bound:.2f} | {sim:.0f} | "
                    f"{makespan / sim:.2f} | {sum(waits) / len(waits):.1f} | {max(waits):.1f} | {ups} | "
                    f"{busy:.0%} | {overtaken} |",
                    flush=True,
                )
                results.append({"policy": policy, "order": order, "slots": slots, "makespan_s": makespan, "ups": ups})
    print(
        f"\n{args.suites} suites over 3 topologies, bring-up {up_s:g} s (`bench/slow-netlab-standin`), "
        f"tests {test_s:g} s. Wait: from `POST /session` to its lab up. Busy share: slot time from ACTIVE to "
        "`DELETE /session` answered over makespan * slots. Overtaken: later suites seen ACTIVE first."
    )
    for note in notes:
        print(f"\n{note}")
    print(json.dumps({"P8": results}), file=sys.stderr)


if __name__ == "__main__":
    main()
