#!/usr/bin/env python3
"""P1 - throughput and latency of the two routes every waiting or working client calls.

`GET /session/{id}` (status poll) and `POST /session/heartbeat` (header `X-Session-ID`) are
driven by wrk (64 connections, 10 s, 2 threads) against the server, and in the same run against
`bench/ceiling` - a minimal axum server answering a constant JSON body, i.e. the most this
machine's HTTP stack can answer. Load generator and servers share the machine's cores, the
same way for both, so the ratio product/ceiling is the meaningful figure.

The server runs twice side by side: with its state store (the default, SQLite) and with
`--in-memory`; signs of life are never written, so the two should match. A third route,
`POST /session` + `DELETE /session/{id}` alternating, commits a change with every request.

Usage: bench/throughput.py --ceiling target/release/bench-ceiling [--duration S] [--quick]
Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from server_proc import BenchServer, verdict

HERE = Path(__file__).resolve().parent
CONNECTIONS = 64
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    socket_errors: int  # timeouts and the like: reported, not fatal (a loaded machine has them)


def run_wrk(url: str, seconds: int, lua: list[str]) -> WrkResult:
    """One wrk run; `lua` is a script and its arguments, or empty for a plain GET. A non-2xx
    answer means we measured the wrong thing (an error page), so it is an error."""
    script = ["-s", lua[0]] if lua else []
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", *script, url]
    if lua:
        command += ["--", *lua[1:]]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output:
        raise RuntimeError(f"wrk saw error answers:\n{output}")

    def latency(percent: int) -> float:
        found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)$", output, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no {percent}% line in wrk's output:\n{output}")
        return float(found[1]) * UNITS[found[2]]

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if rate is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(float(rate[1]), latency(50), latency(99), sum(map(int, errors.groups())) if errors else 0)


@dataclass
class Figures:
    stored: WrkResult
    in_memory: WrkResult
    ceiling: WrkResult


def start_ceiling(binary: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([str(binary), "0"], stdout=subprocess.PIPE, text=True)
    port = process.stdout.readline().strip() if process.stdout else ""  # printed once the socket is bound
    if not port.isdigit():
        process.kill()
        raise RuntimeError(f"{binary} did not report its port")
    return process, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ceiling", type=Path, required=True, help="the bench-ceiling binary")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--quick", action="store_true", help="1 s per run: a smoke run")
    args = parser.parse_args()
    seconds = 1 if args.quick else args.duration
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: `apt-get install -y wrk` (Debian/Ubuntu)")

    results: dict[str, Figures] = {}
    ceiling, ceiling_url = start_ceiling(args.ceiling)
    try:
        # INFO is the operators' default level; none of these routes logs per request at INFO.
        with (
            BenchServer(log_level="INFO") as stored,
            BenchServer("--in-memory", log_level="INFO") as in_memory,
            requests.Session() as http,
        ):
            sessions = {server: server.new_session(http) for server in (stored, in_memory)}
            heartbeat = str(HERE / "wrk" / "heartbeat.lua")
            routes = {
                "`GET /session/{id}`": lambda s: (f"/session/{sessions[s]}", []),
                "`POST /session/heartbeat`": lambda s: ("/session/heartbeat", [heartbeat, sessions[s]]),
            }
            # The three alternate, so a burst of load from elsewhere hits all alike.
            for name, route in routes.items():
                results[name] = Figures(
                    stored=run_wrk(stored.url + route(stored)[0], seconds, route(stored)[1]),
                    in_memory=run_wrk(in_memory.url + route(in_memory)[0], seconds, route(in_memory)[1]),
                    ceiling=run_wrk(ceiling_url + route(stored)[0], seconds, route(stored)[1]),
                )
            writes = [str(HERE / "wrk" / "create_delete.lua")]
            write_figures = {
                server: run_wrk(server.url + "/session", seconds, writes) for server in (stored, in_memory)
            }
    finally:
        ceiling.terminate()
        ceiling.wait()

    print(
        "| request | server req/s (store) | `--in-memory` req/s | store / in-memory (≥ 90 %) "
        "| ceiling req/s | ratio (≥ 50 %) | server p50 / p99 (ms) | ceiling p50 / p99 (ms) | p99 < 5 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, f in results.items():
        ratio = f.stored.requests_per_s / f.ceiling.requests_per_s
        store_cost = f.stored.requests_per_s / f.in_memory.requests_per_s
        print(
            f"| {name} | {f.stored.requests_per_s:,.0f} | {f.in_memory.requests_per_s:,.0f} "
            f"| {store_cost:.0%} ({verdict(store_cost >= 0.9)}) | {f.ceiling.requests_per_s:,.0f} "
            f"| {ratio:.0%} ({verdict(ratio >= 0.5)}) | {f.stored.p50_ms:.2f} / {f.stored.p99_ms:.2f} "
            f"| {f.ceiling.p50_ms:.2f} / {f.ceiling.p99_ms:.2f} | {verdict(f.stored.p99_ms < 5)} |"
        )
    written, unwritten = write_figures[stored], write_figures[in_memory]
    print(
        f"| `POST /session` + `DELETE /session/{{id}}` (each commits) | {written.requests_per_s:,.0f} "
        f"| {unwritten.requests_per_s:,.0f} | {written.requests_per_s / unwritten.requests_per_s:.0%} (no target) "
        f"| n/a | n/a | {written.p50_ms:.2f} / {written.p99_ms:.2f} | n/a | n/a |"
    )
    errors = sum(r.socket_errors for f in results.values() for r in (f.stored, f.in_memory, f.ceiling)) + sum(
        r.socket_errors for r in write_figures.values()
    )
    print(
        f"\nwrk, {CONNECTIONS} connections, 2 threads, {seconds} s per run; load generator and servers share the cores."
        " The store commits with `synchronous=FULL` (an fsync per transaction); concurrent changes share one."
        + (f" wrk counted {errors} socket errors (timeouts)." if errors else "")
    )
    figures = {name: asdict(f) for name, f in results.items()}
    figures["create+delete"] = {"store": asdict(written), "in_memory": asdict(unwritten)}
    print(json.dumps({"P1": figures}), file=sys.stderr)


if __name__ == "__main__":
    main()
