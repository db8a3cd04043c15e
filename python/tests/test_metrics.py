"""`GET /metrics` parsed by a real Prometheus text parser (`prometheus_client`), and its counters and
histograms moving with real traffic: sessions, a real netlab bring-up and teardown, an eviction."""

from __future__ import annotations

import time

import requests
from prometheus_client.parser import text_string_to_metric_families
from server_process import TOPOLOGIES, LabServer, wait_until

import neops_remote_lab

PREFIX = "neops_remote_lab_"


def scrape(server: LabServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics`, keyed by name and sorted labels; the text must parse."""
    response = requests.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((PREFIX + name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_move_with_traffic(start_server) -> None:
    server = start_server("--claim-timeout", "1")
    before = scrape(server)
    assert value(before, "build_info", version=neops_remote_lab.__version__) == 1

    holder = server.create_session()
    waiter = server.create_session()
    during = scrape(server)
    assert value(during, "sessions_active") == 1
    assert value(during, "sessions_waiting") == 1
    created = value(during, "http_requests_total", method="POST", route="/session", status="201")
    assert created - value(before, "http_requests_total", method="POST", route="/session", status="201") == 2

    topology = (TOPOLOGIES / "two_routers.yml").read_bytes()
    answer = requests.post(
        f"{server.url}/lab", headers={"X-Session-ID": holder}, files={"topology": ("t.yml", topology)}, timeout=120
    )
    assert answer.status_code == 200, answer.text
    requests.get(f"{server.url}/session/{'0' * 32}", timeout=10)  # a 404, counted under the route pattern
    requests.request("PROPFIND", f"{server.url}/no/such/path", timeout=10)  # bounded labels for scanners
    server.delete_session(holder)  # tears the lab down, promotes the waiter

    # The waiter never claims its slot: evicted when the 1 s claim window ends.
    wait_until(lambda: server.active_session() is None, "the unclaimed session to be evicted")
    after = scrape(server)
    assert value(after, "lab_bringup_seconds_count", slot="1") == 1
    assert value(after, "lab_bringup_seconds_sum", slot="1") > 0
    assert value(after, "lab_bringup_seconds_bucket", slot="1", le="+Inf") == 1
    assert value(after, "lab_teardown_seconds_count", slot="1") == 1
    assert value(after, "queue_wait_seconds_count") == 2
    assert value(after, "session_hold_seconds_count") == 2
    assert value(after, "evictions_total", reason="claim_expired") == 1
    assert value(after, "sessions_active") == 0
    assert value(after, "sessions_waiting") == 0
    assert value(after, "http_requests_total", method="POST", route="/lab", status="200") == 1
    assert value(after, "http_requests_total", method="GET", route="/session/{session_id}", status="404") == 1
    assert value(after, "http_requests_total", method="other", route="unmatched", status="404") == 1
    assert waiter not in requests.get(f"{server.url}/metrics", timeout=10).text


def test_a_failed_bring_up_is_counted_by_command(start_server, tmp_path) -> None:
    server = start_server()
    session = server.create_session()
    broken = b"nodes: [r1]\nlinks: [r1-nowhere]\n"
    answer = requests.post(
        f"{server.url}/lab", headers={"X-Session-ID": session}, files={"topology": ("t.yml", broken)}, timeout=120
    )
    assert answer.status_code == 502, answer.text
    deadline = time.monotonic() + 30
    while value(scrape(server), "netlab_failures_total", command="up") != 1:
        assert time.monotonic() < deadline, "netlab_failures_total{command=up} never reached 1"
        time.sleep(0.1)
