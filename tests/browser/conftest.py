"""The browser tier: a headless Chromium (Debian packages ``chromium`` and ``chromium-driver``)
driven through chromedriver by selenium, against a worker with live calls.

Where no Chromium can be found the tier is skipped in one line, except under CI, where
that is a failure (``.ci/run`` installs both packages when they are missing).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser


def _browser_or_skip() -> tuple[str, str]:
    chromium = os.environ.get("CALLWORKER_TEST_CHROMIUM") or shutil.which("chromium")
    driver = os.environ.get("CALLWORKER_TEST_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path]
    if missing or chromium is None or driver is None:
        why = f"{' and '.join(missing)} not found (Debian packages chromium, chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"browser tier: {why}", pytrace=False)
        pytest.skip(f"browser tier skipped: {why}")
    return chromium, driver


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture (the session's broker and database included): is there a browser?"""
    if item.path.is_relative_to(Path(__file__).parent):
        _browser_or_skip()


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium; its window is laptop-sized until a test changes it."""
    chromium, driver_path = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1100", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
