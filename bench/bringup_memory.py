#!/usr/bin/env python3
"""P7 - memory per bring-up: what a large lab costs the server, and whether it is given back.

A generated leaf-spine fabric of 120 nodes (8 spines, 112 leaves, every leaf linked to every
spine: 896 links; OSPF and BGP on every node, so its device data is megabytes of JSON), brought
up five times in a row with real netlab and its `external` provider (`reuse=false`: each is a
fresh `netlab up`). For each bring-up: the peak resident set size during it (VmHWM, reset before it through
`/proc/<pid>/clear_refs`), and VmRSS once it answered and the lab was released. Targets: extra
peak for the lab at most 40 MB over the idle server; RSS after five bring-ups within 20 % of
RSS after the first.

Usage: bench/bringup_memory.py [--quick]
Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import requests
from server_proc import BenchServer, real_netlab, verdict

MB = 1_000_000


def fabric(spines: int, leaves: int) -> str:
    """A netlab topology: every leaf linked to every spine, OSPF and BGP everywhere."""
    names = [f"s{n}" for n in range(1, spines + 1)] + [f"l{n}" for n in range(1, leaves + 1)]
    links = [f"s{s}-l{leaf}" for s in range(1, spines + 1) for leaf in range(1, leaves + 1)]
    return f"defaults.device: eos\nmodule: [ospf, bgp]\nbgp.as: 65000\nnodes: [{', '.join(names)}]\nlinks:\n" + "".join(
        f"- {link}\n" for link in links
    )


def status_value(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} for pid {pid}")


def reset_peak(pid: int) -> None:
    """Sets VmHWM back to the current RSS (Linux `clear_refs`, value 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 12-node fabric, two bring-ups: a smoke run")
    args = parser.parse_args()
    spines, leaves, rounds = (2, 10, 2) if args.quick else (8, 112, 5)
    topology = fabric(spines, leaves)

    rows = []
    with BenchServer("--netlab-bin", real_netlab()) as server, requests.Session() as http:
        session = server.new_session(http)
        http.headers["X-Session-ID"] = session
        idle = status_value(server.pid, "VmRSS")
        for round_ in range(1, rounds + 1):
            reset_peak(server.pid)
            started = time.monotonic()
            answer = http.post(
                f"{server.url}/lab",
                files={"topology": ("fabric.yml", topology.encode())},
                data={"reuse": "false"},
                timeout=900,
            )
            answer.raise_for_status()
            took = time.monotonic() - started
            size = len(answer.content)
            devices = len(answer.json()["devices"])
            http.post(f"{server.url}/lab/release", timeout=60).raise_for_status()
            peak = status_value(server.pid, "VmHWM")
            after = status_value(server.pid, "VmRSS")
            rows.append((round_, devices, size, took, peak, after))

    first_after = rows[0][5]
    last_after = rows[-1][5]
    worst_extra = max(peak - idle for *_, peak, _ in rows)
    print(
        "| bring-up | devices | answer (MB) | took (s) | peak VmHWM (MB) | extra peak over idle (MB) "
        "| VmRSS after (MB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for round_, devices, size, took, peak, after in rows:
        print(
            f"| {round_} | {devices} | {size / MB:.1f} | {took:.1f} | {peak / MB:.1f} | {(peak - idle) / MB:.1f} "
            f"| {after / MB:.1f} |"
        )
    growth = (last_after - first_after) / first_after
    print(
        f"\nIdle before the first: {idle / MB:.1f} MB. Extra peak ≤ 40 MB: {verdict(worst_extra <= 40 * MB)}; "
        f"RSS after {len(rows)} bring-ups within 20 % of after the first ({growth:+.0%}): "
        f"{verdict(abs(growth) <= 0.20)}. MB = 10⁶ bytes; real netlab, `external` provider, "
        f"{spines} spines by {leaves} leaves, every leaf on every spine."
    )
    print(json.dumps({"P7": {"idle": idle, "rows": rows}}), file=sys.stderr)


if __name__ == "__main__":
    main()
