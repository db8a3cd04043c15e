"""The dashboard in a real browser (headless Chromium): it loads from the server alone, shows a
session created through the API without a reload, follows a real bring-up's phases live and shows
a failed bring-up with netlab's last lines.

netlab runs through `tests/fixtures/faulty-netlab-standin`, the project's fault-injection stand-in:
it holds `netlab up` until the test lets it go, so the "starting" phase can be seen, then hands
over to the real netlab; later it makes `netlab up` fail.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from browser import chromium
from conftest import StartServer
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from server_process import REPO, TOPOLOGIES, LabServer

STANDIN = REPO / "tests" / "fixtures" / "faulty-netlab-standin"
WAIT = 60


@pytest.fixture
def faults(tmp_path: Path, netlab_bin: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "faults"
    folder.mkdir()
    monkeypatch.setenv("FAULTY_NETLAB_REAL", str(netlab_bin))
    monkeypatch.setenv("FAULTY_NETLAB_FAULTS", str(folder))
    return folder


@pytest.fixture
def server(server_bin: Path, faults: Path, tmp_path: Path) -> Iterator[LabServer]:
    lab_server = LabServer(server_bin, STANDIN, tmp_path / "server")
    yield lab_server
    lab_server.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    driver = chromium(tmp_path / "profile")
    yield driver
    driver.quit()


def text_of(browser: webdriver.Chrome, selector: str) -> str:
    found = browser.find_elements(By.CSS_SELECTOR, selector)
    return found[0].text if found else ""


def wait_for(browser: webdriver.Chrome, selector: str, containing: str = "") -> None:
    # The queue is redrawn every second and the timeline at every event: an element found may be
    # replaced before its text is read, which only means "look again".
    WebDriverWait(browser, WAIT, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda b: bool(b.find_elements(By.CSS_SELECTOR, selector)) and containing in text_of(b, selector),
        f"{selector} showing {containing!r}",
    )


def test_the_dashboard_shows_the_queue_and_a_bring_up_live(
    server: LabServer, browser: webdriver.Chrome, faults: Path
) -> None:
    browser.get(f"{server.url}/")
    WebDriverWait(browser, WAIT).until(
        lambda b: b.find_element(By.ID, "connection").get_attribute("data-state") == "live", "the event stream"
    )
    assert "Nobody is queued" in browser.page_source

    body = {"client": {"user": "ada", "host": "ci-runner-7", "label": "pytest -m lab"}}
    created = requests.post(f"{server.url}/session", json=body, timeout=10)
    session = created.json()["session_id"]
    row = f'#queue tr[data-session="{session[:8]}"]'
    wait_for(browser, row, "ada@ci-runner-7")
    assert "active" in text_of(browser, row)

    # Hold `netlab up` until the page has shown the bring-up starting.
    (faults / "up-hangs").touch()
    topology = (TOPOLOGIES / "two_routers.yml").read_bytes()
    answers: list[requests.Response] = []

    def acquire() -> None:
        files = {"topology": ("two_routers.yml", topology)}
        answers.append(requests.post(f"{server.url}/lab", headers={"X-Session-ID": session}, files=files, timeout=120))

    bring_up = threading.Thread(target=acquire)
    bring_up.start()
    wait_for(browser, '[data-slot="1"] .phase', "STARTING")
    wait_for(browser, '#events li[data-type="lab_starting"]', "two_routers.yml")
    # Let it go: without the fault file, killing the sleeper hands over to the real `netlab up`.
    (faults / "up-hangs").unlink()
    os.kill(int((faults / "up-hangs.pid").read_text()), 9)
    bring_up.join(timeout=WAIT)
    assert answers, "POST /lab answered"
    assert answers[0].status_code == 200, answers[0].text

    wait_for(browser, '[data-slot="1"] .phase', "UP")
    wait_for(browser, '#events li[data-type="lab_up"]', "devices in")
    wait_for(browser, '[data-slot="1"] li[data-device="r1"]', "192.168.121.101")
    assert "two_routers.yml" in text_of(browser, '[data-slot="1"]')

    # A failed bring-up shows netlab's last lines.
    assert requests.post(f"{server.url}/lab/release", headers={"X-Session-ID": session}, timeout=10).status_code == 204
    (faults / "up-fails").touch()
    other = {"topology": ("three_routers.yml", (TOPOLOGIES / "three_routers.yml").read_bytes())}
    failed = requests.post(f"{server.url}/lab", headers={"X-Session-ID": session}, files=other, timeout=120)
    assert failed.status_code == 502, failed.text
    wait_for(browser, '[data-slot="1"] .phase', "FAILED")
    wait_for(browser, '#events li[data-type="lab_failed"] pre.tail', "provider failed to start the lab")
    assert "exit code 3" in text_of(browser, '#events li[data-type="lab_failed"]')

    # Everything came from the server itself: no CDN, no external fonts.
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources, "the page loaded its script and stylesheet"
    assert all(name.startswith(server.url) for name in resources), resources


def test_with_auth_on_the_dashboard_asks_for_a_token(
    start_server: StartServer, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("ci:ci-t0ken-4711-0123\nada:ada-t0ken-0815-4567\n")
    tokens.chmod(0o600)  # the server refuses a tokens file others may read
    server = start_server("--tokens-file", str(tokens))
    created = requests.post(
        f"{server.url}/session",
        headers={"Authorization": "Bearer ci-t0ken-4711-0123"},
        json={"client": {"user": "bob"}},
        timeout=10,
    )
    session = created.json()["session_id"]

    browser.get(f"{server.url}/")
    wait_for(browser, "#login", "needs a token")
    assert browser.find_element(By.ID, "connection").get_attribute("data-state") == "locked"
    token = browser.find_element(By.CSS_SELECTOR, "#login input")
    token.send_keys("n0t-a-t0ken")
    token.submit()
    wait_for(browser, "#login-refused", "refused")

    token.send_keys("ada-t0ken-0815-4567")
    token.submit()
    row = f'#queue tr[data-session="{session[:8]}"]'
    wait_for(browser, row, "ci bob")
    WebDriverWait(browser, WAIT).until(
        lambda b: b.find_element(By.ID, "connection").get_attribute("data-state") == "live", "the event stream"
    )
    wait_for(browser, '#events li[data-type="session_joined"]', "token ci")
    assert not browser.find_element(By.ID, "login").is_displayed()


# Every element that would scroll sideways: the page itself, or a box whose content is wider.
SIDEWAYS = """
return [document.documentElement, ...document.querySelectorAll('body *')]
  .filter((node) => node.scrollWidth > node.clientWidth + 1
    && (node === document.documentElement || ['auto', 'scroll'].includes(getComputedStyle(node).overflowX)))
  .map((node) => `${node.tagName}#${node.id}.${node.className}: ${node.scrollWidth} > ${node.clientWidth}`);
"""


def test_the_dashboard_fits_a_phone_without_sideways_scrolling(server: LabServer, tmp_path: Path) -> None:
    phone = chromium(tmp_path / "phone", width=390, height=844, phone=True)
    try:
        clients = (
            {
                "user": "ada",
                "host": "ci-runner-3",
                "ci_job_url": "https://ci.example.com/jobs/4711",
                "label": "pytest -m lab",
            },
            {
                "user": "grace",
                "host": "a-rather-long-laptop-name.example.com",
                "label": "pytest tests/ospf -k 'not slow'",
            },
            {"user": "ci", "host": "ci-runner-5", "ci_job_url": "https://ci.example.com/jobs/4712", "label": "nightly"},
        )
        sessions = [
            requests.post(f"{server.url}/session", json={"client": client}, timeout=10).json()["session_id"]
            for client in clients
        ]
        topology = {"topology": ("three_routers.yml", (TOPOLOGIES / "three_routers.yml").read_bytes())}
        answer = requests.post(f"{server.url}/lab", headers={"X-Session-ID": sessions[0]}, files=topology, timeout=120)
        assert answer.status_code == 200, answer.text
        phone.get(f"{server.url}/")
        WebDriverWait(phone, WAIT).until(
            lambda b: (
                len(b.find_elements(By.CSS_SELECTOR, "#queue tbody tr")) == len(clients)
                and b.find_elements(By.CSS_SELECTOR, '#events li[data-type="lab_up"]')
                and b.find_elements(By.CSS_SELECTOR, "#slots ul.devices li")
                and b.find_elements(By.CSS_SELECTOR, '#timeline .seg[data-state="up"]')
                and len(b.find_elements(By.CSS_SELECTOR, "#timeline .wait-label")) == len(clients)
            ),
            "the queue, the lab and its devices, the timeline on the page",
        )
        assert phone.execute_script("return window.innerWidth") == 390
        assert phone.execute_script(SIDEWAYS) == []
        # Nothing is hidden to make it fit: each session's times and lease are still shown.
        # (one script: the rows are redrawn every second)
        times = phone.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map((cell) => "
            "[cell.dataset.label, cell.getBoundingClientRect().width > 0, cell.getBoundingClientRect().right]);",
            f'#queue tr[data-session="{sessions[0][:8]}"] td[data-label]',
        )
        assert [(label, shown) for label, shown, _ in times] == [
            ("waited", True),
            ("holding", True),
            ("lease", True),
        ], times
        assert all(right <= 390 for _, _, right in times), times
        # The timeline's hour is squeezed into the width, not cut off: "now" is on screen.
        now = phone.find_element(By.CSS_SELECTOR, "#timeline .ticks span:last-child").rect
        assert 0 < now["x"] + now["width"] <= 390, now
    finally:
        phone.quit()


def test_a_kept_lab_shows_its_time_left_and_its_warm_hand_over(
    server_bin: Path, netlab_bin: Path, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    kept = LabServer(server_bin, netlab_bin, tmp_path / "kept", "--keep-idle-lab", "600")
    try:
        browser.get(f"{kept.url}/")
        topology = {"topology": ("two_routers.yml", (TOPOLOGIES / "two_routers.yml").read_bytes())}
        first = requests.post(f"{kept.url}/session", timeout=10).json()["session_id"]
        up = requests.post(f"{kept.url}/lab", headers={"X-Session-ID": first}, files=topology, timeout=120)
        assert up.status_code == 200, up.text
        assert requests.delete(f"{kept.url}/session/{first}", timeout=60).status_code == 204

        wait_for(browser, '[data-slot="1"] .phase', "KEPT")
        wait_for(browser, '[data-slot="1"] .kept', "torn down in")
        wait_for(browser, '#events li[data-type="lab_kept"]', "kept up for the next session")

        second = requests.post(f"{kept.url}/session", timeout=10).json()["session_id"]
        warm = requests.post(f"{kept.url}/lab", headers={"X-Session-ID": second}, files=topology, timeout=120)
        assert warm.json()["reused"] is True
        wait_for(browser, '[data-slot="1"] .phase', "UP")
        wait_for(browser, '#events li[data-type="lab_attached"]', "warm hand-over")
        assert not browser.find_elements(By.CSS_SELECTOR, '[data-slot="1"] .kept')
    finally:
        kept.stop()


# Every segment and wait bar of the timeline, read in one script: the timeline is redrawn every few
# seconds and at every event, so elements found one by one could be gone before they are read.
TIMELINE = """
return [...document.querySelectorAll('#timeline .seg, #timeline .wait, #timeline .wait-label')].map((node) => ({
  kind: node.className.split(' ')[0],
  slot: node.closest('.lane').dataset.slot || null,
  state: node.dataset.state || null,
  session: node.dataset.session || null,
  open: node.dataset.open === 'true',
  title: node.title,
  text: node.textContent,
  width: node.getBoundingClientRect().width,
}));
"""


def timeline(browser: webdriver.Chrome) -> list[dict]:
    return browser.execute_script(TIMELINE)


def lane_states(browser: webdriver.Chrome, slot: int) -> list[tuple[str, str | None]]:
    """(state, session) of each segment in slot `slot`'s lane, lab track after the holders' track."""
    return [(n["state"], n["session"]) for n in timeline(browser) if n["kind"] == "seg" and n["slot"] == str(slot)]


def test_the_timeline_shows_each_slots_hour_and_each_sessions_wait(
    server_bin: Path, netlab_bin: Path, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    kept = LabServer(server_bin, netlab_bin, tmp_path / "timeline", "--keep-idle-lab", "600")
    try:
        browser.get(f"{kept.url}/")
        wait_for(browser, '#timeline-lanes .lane[data-slot="1"]', "Slot 1")
        assert timeline(browser) == []

        topology = {"topology": ("two_routers.yml", (TOPOLOGIES / "two_routers.yml").read_bytes())}
        first = requests.post(f"{kept.url}/session", timeout=10).json()["session_id"]
        second = requests.post(f"{kept.url}/session", timeout=10).json()["session_id"]
        # The waiting session declares its lab: the queue lists its identity prefix.
        declared = requests.post(f"{kept.url}/session/{second}/labs", files=topology, timeout=60)
        assert declared.status_code == 201, declared.text
        prefix = declared.json()["identity"][:12]
        wait_for(browser, f'#queue tr[data-session="{second[:8]}"] td.declared', prefix)
        wait_for(browser, f'#timeline .wait[data-session="{second[:8]}"][data-open="true"]')

        up = requests.post(f"{kept.url}/lab", headers={"X-Session-ID": first}, files=topology, timeout=120)
        assert up.status_code == 200, up.text
        # The lab the waiting session declared now runs in slot 1: its prefix is marked.
        wait_for(browser, f'#queue [data-identity="{prefix}"].running')
        # The first session leaves: its lab is kept, the second is promoted to slot 1.
        assert requests.delete(f"{kept.url}/session/{first}", timeout=60).status_code == 204
        wait_for(browser, '[data-slot="1"] .phase', "KEPT")

        def shows_the_hour(b: webdriver.Chrome) -> bool:
            states = lane_states(b, 1)
            waited = [n for n in timeline(b) if n["kind"] == "wait" and n["session"] == second[:8]]
            return (
                {("booting", None), ("held", first[:8]), ("kept", None), ("held", second[:8])} <= set(states)
                and len(waited) == 1
                and not waited[0]["open"]
            )

        WebDriverWait(browser, WAIT).until(shows_the_hour, "booting, held, kept and the second session's wait")
        nodes = timeline(browser)
        # The lab track in time order: the bring-up, the lab up while held, then kept.
        assert [n["state"] for n in nodes if n["kind"] == "seg" and n["state"] != "held"] == ["booting", "up", "kept"]
        assert all(n["width"] > 0 for n in nodes), nodes
        (booting,) = [n for n in nodes if n["state"] == "booting"]
        assert "slot 1: bring-up of two_routers.yml" in booting["title"], booting
        # One wait per session, labelled with its id: the first was promoted at once (a 0 s wait).
        assert [n["text"] for n in nodes if n["kind"] == "wait-label"] == [first[:8], second[:8]]
        (second_wait,) = [n for n in nodes if n["kind"] == "wait" and n["session"] == second[:8]]
        assert f"{second[:8]} waited" in second_wait["title"], second_wait
        (kept_idle,) = [n for n in nodes if n["state"] == "kept"]
        assert kept_idle["open"]
        assert "so far" in kept_idle["title"]

        # A page opened now draws the same hour from the server's history (GET /events?replay=…).
        browser.refresh()
        WebDriverWait(browser, WAIT).until(shows_the_hour, "the same timeline from the replayed history")
        assert browser.find_elements(By.CSS_SELECTOR, '#timeline-legend [data-state="kept"]')
    finally:
        kept.stop()
