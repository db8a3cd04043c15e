#!/usr/bin/env python3
"""P5 - responsiveness: status routes while a long bring-up runs.

The server gets `bench/slow-netlab-standin` as its netlab: every command goes to the real
netlab, but `up` first sleeps 20 s. While one client's `POST /lab` waits on that bring-up,
another client times `GET /healthz` and `GET /session/{id}` (the status poll of a waiting
suite) back to back, paced every few milliseconds, until the `POST /lab` returns. The same
loop runs for a few seconds before, with no bring-up, for comparison.

Usage: bench/responsiveness.py [--up-seconds S] [--quick]
Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from server_proc import BenchServer, percentile, real_netlab, verdict

STANDIN = Path(__file__).resolve().parent / "slow-netlab-standin"
TOPOLOGY = b"defaults.device: eos\nnodes: [r1, r2]\nlinks: [r1-r2]\n"
# A pause between samples, so the poller is a steady client rather than a load generator
# that competes with the bring-up for the two cores.
PACE_SECONDS = 0.005

Samples = dict[str, list[float]]


def sample_while(server: BenchServer, session: str, keep_going: Callable[[], bool]) -> Samples:
    """Times both routes (ms) on one keep-alive connection while `keep_going()` is true."""
    routes = {"`GET /healthz`": "/healthz", "`GET /session/{id}`": f"/session/{session}"}
    samples: Samples = {name: [] for name in routes}
    with requests.Session() as http:
        while keep_going():
            for name, path in routes.items():
                started = time.perf_counter()
                http.get(server.url + path, timeout=10).raise_for_status()
                samples[name].append((time.perf_counter() - started) * 1000)
            time.sleep(PACE_SECONDS)
    return samples


def bring_up(server: BenchServer, session: str, outcome: list[int]) -> None:
    response = requests.post(
        f"{server.url}/lab",
        files={"topology": ("t.yml", TOPOLOGY)},
        data={"reuse": "false"},
        headers={"X-Session-ID": session},
        timeout=600,
    )
    outcome.append(response.status_code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--up-seconds", type=float, default=20, help="how long the stand-in's `up` sleeps")
    parser.add_argument("--quick", action="store_true", help="1 s bring-up: a smoke run")
    args = parser.parse_args()
    up_seconds = 1 if args.quick else args.up_seconds
    baseline_seconds = 0.5 if args.quick else 3

    env = {"SLOW_NETLAB_REAL": real_netlab(), "SLOW_NETLAB_UP_SECONDS": str(up_seconds)}
    with BenchServer("--netlab-bin", str(STANDIN), env=env) as server, requests.Session() as http:
        holder = server.new_session(http)  # ACTIVE: brings the lab up
        waiter = server.new_session(http)  # WAITING: its status poll is what a queued suite sends
        stop = time.monotonic() + baseline_seconds
        idle = sample_while(server, waiter, lambda: time.monotonic() < stop)

        outcome: list[int] = []
        thread = threading.Thread(target=bring_up, args=(server, holder, outcome))
        started = time.perf_counter()
        thread.start()
        busy = sample_while(server, waiter, thread.is_alive)
        thread.join()
        took = time.perf_counter() - started
        if outcome != [200]:
            raise RuntimeError(f"POST /lab answered {outcome}")
        http.delete(f"{server.url}/lab", headers={"X-Session-ID": holder}, timeout=600).raise_for_status()

    print("| request | idle p50 / p99 (ms) | during bring-up p50 / p99 / max (ms) | samples | p99 < 5 ms |")
    print("|---|---:|---:|---:|---|")
    for name, during in busy.items():
        p99 = percentile(during, 99)
        print(
            f"| {name} | {percentile(idle[name], 50):.2f} / {percentile(idle[name], 99):.2f} "
            f"| {percentile(during, 50):.2f} / {p99:.2f} / {max(during):.2f} | {len(during)} | {verdict(p99 < 5)} |"
        )
    print(
        f"\nBring-up: `POST /lab` took {took:.1f} s (stand-in sleeps {up_seconds:g} s, then the real `netlab up`); "
        "latency as seen by a Python client (`requests`, keep-alive)."
    )
    figures = {
        name: {"idle_p99_ms": percentile(idle[name], 99), "p99_ms": percentile(s, 99), "max_ms": max(s), "n": len(s)}
        for name, s in busy.items()
    }
    print(json.dumps({"P5": {"bring_up_s": took, **figures}}), file=sys.stderr)


if __name__ == "__main__":
    main()
