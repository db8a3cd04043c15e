#!/usr/bin/env python3
"""P3 - bring-up overhead: what the server adds to a bare `netlab up`.

For topologies of 2 and 10 nodes, times (median of --rounds runs):
  bare: `netlab up <file> <up args>` run directly (then `netlab down --cleanup`)
  acquire: `POST /lab` on the release server, from request to devices
and reports acquire - bare. The server's extra work is one `netlab inspect`
for all nodes, so the overhead should be flat in node count: about one
netlab start-up.

Usage: bench/bringup_overhead.py [--rounds N] [--quick]
Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from server_proc import EXTERNAL_UP_ARGS, BenchServer


def topology(nodes: int) -> str:
    names = [f"r{i}" for i in range(1, nodes + 1)]
    links = [f"{a}-{b}" for a, b in itertools.pairwise(names)]
    return f"defaults.device: eos\nnodes: [{', '.join(names)}]\nlinks: [{', '.join(links)}]\n"


def bare_up_seconds(netlab: str, text: str, home: Path) -> float:
    env = {**os.environ, "HOME": str(home)}
    with tempfile.TemporaryDirectory() as lab:
        Path(lab, "t.yml").write_text(text)
        started = time.perf_counter()
        subprocess.run(
            [netlab, "up", "t.yml", *EXTERNAL_UP_ARGS.split()],
            cwd=lab,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        elapsed = time.perf_counter() - started
        subprocess.run(
            [netlab, "down", "--cleanup"], cwd=lab, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=True
        )
    return elapsed


def acquire_seconds(server: BenchServer, session: str, text: str) -> float:
    files = {"topology": ("t.yml", text.encode())}
    started = time.perf_counter()
    response = requests.post(
        f"{server.url}/lab", files=files, data={"reuse": "false"}, headers={"X-Session-ID": session}, timeout=600
    )
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    requests.delete(f"{server.url}/lab", headers={"X-Session-ID": session}, timeout=600)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one round, 2 nodes: a smoke run")
    args = parser.parse_args()
    rounds, sizes = (1, [2]) if args.quick else (args.rounds, [2, 10])

    netlab = shutil.which("netlab")
    if netlab is None:
        sys.exit("netlab not found: run `make venv` or `pip install networklab`")
    rows = []
    with tempfile.TemporaryDirectory() as home, BenchServer() as server:
        session = requests.post(f"{server.url}/session", timeout=10).json()["session_id"]
        bare_up_seconds(netlab, topology(2), Path(home))  # warm netlab's caches once
        for nodes in sizes:
            text = topology(nodes)
            bare = statistics.median(bare_up_seconds(netlab, text, Path(home)) for _ in range(rounds))
            served = statistics.median(acquire_seconds(server, session, text) for _ in range(rounds))
            rows.append((nodes, bare, served))
    print("| nodes | bare `netlab up` (s) | `POST /lab` (s) | overhead (s) |")
    print("|---:|---:|---:|---:|")
    for nodes, bare, served in rows:
        print(f"| {nodes} | {bare:.2f} | {served:.2f} | {served - bare:.2f} |")
    print(f"\nMedian of {rounds} round(s) each; netlab's external provider.")
    print(json.dumps({"P3": [{"nodes": n, "bare_s": b, "acquire_s": s} for n, b, s in rows]}), file=sys.stderr)


if __name__ == "__main__":
    main()
