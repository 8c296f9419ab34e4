"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium.

Pages under test are opened by URL, as a user would; the browser plays media with its own
decoders.  Where Chromium or its driver is missing the tests are skipped on a developer's
machine and fail in CI (``CI`` set), where ``.ci/run`` installs both.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: .ci/run installs it")
    pytest.skip(f"{what} is missing (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium for the session (autoplay allowed, no sandbox: CI runs as root)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        _missing("chromium or chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="ppsp-chromium-")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
