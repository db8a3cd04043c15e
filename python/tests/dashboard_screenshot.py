"""Saves a screenshot of the dashboard for the README: a queue of three, a lab up on real netlab.

Usage: python dashboard_screenshot.py OUTPUT.png (run by `make docs-screenshot`).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import requests
from browser import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from server_process import TOPOLOGIES, LabServer, netlab_binary, server_binary

CLIENTS = (
    {"user": "ada", "host": "ci-runner-3", "ci_job_url": "https://ci.example.com/jobs/4711", "label": "pytest -m lab"},
    {"user": "grace", "host": "laptop", "label": "pytest tests/ospf"},
    {"user": "ci", "host": "ci-runner-5", "ci_job_url": "https://ci.example.com/jobs/4712", "label": "nightly"},
)


def main(output: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="neops-screenshot-"))
    # The browser first: without chromium nothing is started that would need stopping.
    browser = chromium(root / "profile", width=1280, height=1000)
    try:
        server = LabServer(server_binary(), netlab_binary(), root / "server")
    except BaseException:
        browser.quit()
        raise
    try:
        sessions = [
            requests.post(f"{server.url}/session", json={"client": client}, timeout=10).json()["session_id"]
            for client in CLIENTS
        ]
        topology = (TOPOLOGIES / "three_routers.yml").read_bytes()
        answer = requests.post(
            f"{server.url}/lab",
            headers={"X-Session-ID": sessions[0]},
            files={"topology": ("three_routers.yml", topology)},
            timeout=300,
        )
        answer.raise_for_status()
        browser.get(f"{server.url}/")
        WebDriverWait(browser, 60).until(
            lambda b: (
                len(b.find_elements(By.CSS_SELECTOR, "#queue tbody tr")) == len(CLIENTS)
                and b.find_elements(By.CSS_SELECTOR, '#events li[data-type="lab_up"]')
            ),
            "the queue and the lab on the page",
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(output))
        print(f"saved {output}")
    finally:
        browser.quit()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]))
    except pytest.skip.Exception as missing_tool:  # the helpers shared with the tests skip when a tool is missing
        sys.exit(f"dashboard_screenshot: {missing_tool.msg}")
