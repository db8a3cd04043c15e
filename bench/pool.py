#!/usr/bin/env python3
"""P9 - many lab hosts: hand-off through a pool of lab agents, and the coordinator at scale.

a) Hand-off in a pool: a coordinator with no slots of its own (`--lab-slots 0`) and two lab
   agents (separate `neops-remote-lab agent` processes, each with its own HOME and TMPDIR, real
   netlab); two clients hand the queue back and forth as in P2 (no lab runs: the queue's path
   through agents' slots). From sending `DELETE /session/{id}` to the waiter's long-poll
   answering ACTIVE.
b) Scale: `examples/pool_scale.rs` (built by `bench/run`): one coordinator and N simulated
   agents x 4 slots, each the real agent code over HTTP whose slots run labs in memory
   (**not netlab**); client tasks push 5,000 sessions through (create, wait, `POST /lab`,
   `DELETE`). Hand-off there is from a holder's `session_ended` to the next `session_promoted`
   into its slot, by the coordinator's event times (1 ms resolution): it includes the agent
   tearing the in-memory lab down and reporting back.

Usage: bench/pool.py [--scale-bin PATH] [--quick]
Prints Markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from handoff import hand_off
from server_proc import EXTERNAL_UP_ARGS, ROOT, BenchServer, percentile, real_netlab, verdict

SECRET = "bench-pool-secret-0123456789"  # noqa: S105 - the benchmark pool's agent secret


def start_agent(server: BenchServer, name: str, root: Path) -> subprocess.Popen[bytes]:
    (root / "home").mkdir(parents=True)
    (root / "tmp").mkdir()
    env = {**os.environ, "HOME": str(root / "home"), "TMPDIR": str(root / "tmp"), "NEOPS_AGENT_TOKEN": SECRET}
    command = [str(server.binary), "agent", "--coordinator", server.url, "--name", name]
    command += ["--netlab-bin", real_netlab(), "--netlab-up-args", EXTERNAL_UP_ARGS, "--log-level", "WARNING"]
    with (root / "agent.log").open("wb") as log:
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def handoff_in_a_pool(count: int) -> list[float]:
    latencies: list[float] = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        BenchServer("--lab-slots", "0", env={"NEOPS_AGENT_TOKEN": SECRET}) as server,
        requests.Session() as first,
        requests.Session() as second,
    ):
        agents = [start_agent(server, name, Path(scratch) / name) for name in ("host-a", "host-b")]
        try:
            deadline = time.monotonic() + 120
            while len(requests.get(f"{server.url}/sessions", timeout=5).json()["slots"]) < 2:
                if time.monotonic() > deadline:
                    raise RuntimeError("the agents never registered")
                time.sleep(0.05)
            # One slot stays held throughout, so every hand-off is one slot's.
            server.new_session(requests.Session())
            held = server.new_session(first)
            holder, waiter = first, second
            for _ in range(count):
                held, seconds = hand_off(server, holder, waiter, held)
                latencies.append(seconds * 1000)
                holder, waiter = waiter, holder
        finally:
            for agent in agents:
                agent.terminate()
                agent.wait(timeout=60)
    return latencies


def scale_run(binary: Path, scale_bin: Path, agents: int, sessions: int) -> dict[str, float]:
    command = [str(scale_bin), str(binary), str(agents), "4", str(sessions), str(agents * 8)]
    env = {**os.environ, "NEOPS_NETLAB_UP_ARGS": EXTERNAL_UP_ARGS}
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1800, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale-bin", type=Path, default=ROOT / "target/release/examples/pool_scale")
    parser.add_argument("--quick", action="store_true", help="a few hand-offs, one small scale run")
    args = parser.parse_args()
    binary = Path(os.environ.get("NEOPS_REMOTE_LAB_BIN", ROOT / "target/release/neops-remote-lab"))

    count = 10 if args.quick else 100
    latencies = handoff_in_a_pool(count)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print("### a) hand-off in a pool of two lab agents\n")
    print("| hand-offs | p50 (ms) | p99 (ms) | max (ms) | p99 < 100 ms |")
    print("|---:|---:|---:|---:|---|")
    print(f"| {count} | {p50:.2f} | {p99:.2f} | {max(latencies):.2f} | {verdict(p99 < 100)} |")

    runs = [(5, 200)] if args.quick else [(5, 5000), (20, 5000), (50, 5000)]
    print("\n### b) the coordinator at scale (simulated agents x 4 slots, in-memory labs)\n")
    print(
        "| agents | slots | sessions | clients | promotions/s | hand-off p50 / p99 / max (ms) | p99 < 100 ms "
        "| coordinator CPU (s) | CPU per session (ms) | coordinator peak RSS (MB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    results = []
    for agents, sessions in runs:
        r = scale_run(binary, args.scale_bin, agents, sessions)
        results.append(r)
        print(
            f"| {r['agents']} | {r['slots']} | {r['sessions']:,} | {r['clients']} | {r['promotions_per_second']:.0f} "
            f"| {r['handoff_p50_ms']:.0f} / {r['handoff_p99_ms']:.0f} / {r['handoff_max_ms']:.0f} "
            f"| {verdict(r['handoff_p99_ms'] < 100)} | {r['coordinator_cpu_seconds']:.1f} "
            f"| {1000 * r['coordinator_cpu_seconds'] / r['sessions']:.2f} | {r['coordinator_peak_rss_mb']:.1f} |"
        )
    print(
        "\nClients: 8 per agent, so every slot has a session waiting. The agents and clients share the "
        "machine's cores with the coordinator."
    )
    json.dump({"P9": {"handoff": {"p50_ms": p50, "p99_ms": p99}, "scale": results}}, sys.stderr)


if __name__ == "__main__":
    main()
