"""Headless Chromium for dashboard tests: Debian's `chromium` and `chromium-driver`, driven by selenium.

Both executables are found on PATH (never downloaded); each browser gets a fresh profile folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from server_process import missing

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


def chromium(profile: Path, width: int = 1280, height: int = 900, *, phone: bool = False) -> webdriver.Chrome:
    """A headless Chromium with a fresh user-data-dir under `profile`.

    `phone`: Chromium's mobile emulation with a viewport of `width` x `height` CSS pixels (a
    desktop window cannot be made narrower than about 500 pixels), touch and a device pixel
    ratio of 3, as on a current phone.
    """
    binary = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        missing("chromium and chromedriver", "apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    if phone:
        options.add_experimental_option(
            "mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 3.0, "touch": True}}
        )
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))
