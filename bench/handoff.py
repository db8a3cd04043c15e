#!/usr/bin/env python3
"""P2 - hand-off: how long the next suite waits after the previous one leaves.

Two clients, each with its own keep-alive connection. The holder's session is ACTIVE; the
waiter's session is WAITING and long-polls `GET /session/{id}?wait=30`. The holder sends
`DELETE /session/{id}`; the figure is the time from sending that DELETE to the waiter holding
an answer that says ACTIVE. Then the roles swap: the former holder opens a new session and
long-polls. No lab runs, so this is the queue's own hand-off (push via the long-poll).

Usage: bench/handoff.py [--handoffs N] [--quick]
Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import requests
from server_proc import BenchServer, percentile, verdict

# Long enough for the waiter's GET to reach the server and park, so each hand-off is pushed
# through a waiting long-poll rather than found by a late poll. Not part of the measured time.
PARK_SECONDS = 0.02


def wait_until_active(server: BenchServer, http: requests.Session, session: str, done: list[float]) -> None:
    """The waiter: long-polls until ACTIVE, then records when it knew."""
    while True:
        response = http.get(f"{server.url}/session/{session}", params={"wait": 30}, timeout=40)
        response.raise_for_status()
        if response.json()["status"] == "active":
            done.append(time.perf_counter())
            return


def hand_off(server: BenchServer, holder: requests.Session, waiter: requests.Session, held: str) -> tuple[str, float]:
    """One hand-off from the session `held` (ACTIVE, on `holder`) to a new session on `waiter`."""
    waiting = server.new_session(waiter)
    done: list[float] = []
    thread = threading.Thread(target=wait_until_active, args=(server, waiter, waiting, done))
    thread.start()
    time.sleep(PARK_SECONDS)
    sent = time.perf_counter()
    holder.delete(f"{server.url}/session/{held}", timeout=10).raise_for_status()
    thread.join(timeout=40)
    if not done:
        raise RuntimeError("the waiter never became active")
    return waiting, done[0] - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--handoffs", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="10 hand-offs: a smoke run")
    args = parser.parse_args()
    count = 10 if args.quick else args.handoffs

    latencies: list[float] = []
    with BenchServer() as server, requests.Session() as first, requests.Session() as second:
        held = server.new_session(first)  # empty queue: ACTIVE at once
        holder, waiter = first, second
        for _ in range(count):
            held, seconds = hand_off(server, holder, waiter, held)
            latencies.append(seconds * 1000)
            holder, waiter = waiter, holder

    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print("| hand-offs | p50 (ms) | p99 (ms) | max (ms) | p99 < 50 ms |")
    print("|---:|---:|---:|---:|---|")
    print(f"| {count} | {p50:.2f} | {p99:.2f} | {max(latencies):.2f} | {verdict(p99 < 50)} |")
    print("\nFrom sending `DELETE /session/{id}` to the waiter's long-poll answering ACTIVE, measured by the clients.")
    print(
        json.dumps({"P2": {"handoffs": count, "p50_ms": p50, "p99_ms": p99, "max_ms": max(latencies)}}), file=sys.stderr
    )


if __name__ == "__main__":
    main()
