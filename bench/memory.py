#!/usr/bin/env python3
"""P4 - memory: the server's resident set size (VmRSS) idle and with a long queue.

Reads /proc/<pid>/status of the server: right after start-up (one `/healthz` answered), then
with 1 ACTIVE + 1,000 WAITING sessions, then with each of those 1,000 sessions also holding
a long-poll open (`GET /session/{id}?wait=60`), which is how the Python client waits in the
queue - so that row is the realistic one for a long queue; each long-polling connection costs
about 14 KB, most of it the two 8 KiB buffers hyper gives every connection. The last row is
read once those long-polls have closed and the server's next check (every 10 s) has handed the
freed memory back.

Usage: bench/memory.py [--sessions N] [--quick]
Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from urllib.parse import urlsplit

import requests
from server_proc import BenchServer, verdict

MB = 1_000_000  # the targets are in MB; 10^6 bytes is the stricter reading
# How long the server gets to accept the long-polls and park them before RSS is read.
SETTLE_SECONDS = 1.0
# The server looks every 10 s whether many connections have closed, then hands memory back.
TRIM_SECONDS = 12.0


def open_long_polls(server: BenchServer, sessions: list[str]) -> list[socket.socket]:
    """One raw connection per session with its long-poll sent; the answers are never read."""
    host, port = urlsplit(server.url).netloc.rsplit(":", 1)
    polls = []
    for session in sessions:
        connection = socket.create_connection((host, int(port)))
        request = f"GET /session/{session}?wait=60 HTTP/1.1\r\nHost: {host}\r\n\r\n"
        connection.sendall(request.encode())
        polls.append(connection)
    return polls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1000, help="WAITING sessions")
    parser.add_argument("--quick", action="store_true", help="100 sessions: a smoke run")
    args = parser.parse_args()
    count = 100 if args.quick else args.sessions

    with BenchServer() as server, requests.Session() as http:
        idle = server.rss_bytes()
        server.new_session(http)  # the ACTIVE one
        waiting = [server.new_session(http) for _ in range(count)]
        queued = server.rss_bytes()
        polls = open_long_polls(server, waiting)
        time.sleep(SETTLE_SECONDS)
        health = http.get(f"{server.url}/debug/health", timeout=10).json()
        polling = server.rss_bytes()
        for connection in polls:
            connection.close()
        time.sleep(TRIM_SECONDS)
        closed = server.rss_bytes()
    if health["sessions"] != count + 1:
        raise RuntimeError(f"expected {count + 1} sessions, the server has {health['sessions']}")

    print("| server state | VmRSS (MB) | target |")
    print("|---|---:|---|")
    print(f"| idle | {idle / MB:.1f} | < 15 MB: {verdict(idle < 15 * MB)} |")
    print(f"| {count:,} waiting sessions | {queued / MB:.1f} | < 30 MB: {verdict(queued < 30 * MB)} |")
    print(f"| {count:,} waiting sessions, each long-polling | {polling / MB:.1f} | (no target) |")
    print(f"| the same, once the long-polls closed | {closed / MB:.1f} | back near the queued figure |")
    print("\nMB = 10⁶ bytes. Idle: after start-up and one `/healthz`.")
    figures = {
        "sessions": count,
        "idle_bytes": idle,
        "queued_bytes": queued,
        "polling_bytes": polling,
        "closed_bytes": closed,
    }
    print(json.dumps({"P4": figures}), file=sys.stderr)


if __name__ == "__main__":
    main()
