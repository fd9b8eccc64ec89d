"""A real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium,
against ``paybridge serve`` running as a process, for the console's browser tests.

:func:`find_chromium` says why the tests must skip when no browser is installed. Selenium is
blocking: every call goes through :meth:`Browser.run` (a worker thread) so the test's event
loop keeps serving the local webhook receivers meanwhile. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

__all__ = ["Browser", "find_chromium"]

T = TypeVar("T")
WAIT_S = 20.0
_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Without the background-networking flags Chromium keeps calling out to Google's hosts, which
# this machine's closed network refuses.
_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1360,1000",
)


def find_chromium() -> tuple[str, str] | str:
    """``(browser binary, chromedriver)``, or the reason the browser tests cannot run."""
    driver = shutil.which("chromedriver")
    binary = next((b for b in map(shutil.which, _BROWSERS) if b), None)
    if driver is None or binary is None:
        return (
            "no headless Chromium: install Debian's chromium and chromium-driver"
            " (apt-get install chromium chromium-driver; .ci/run does)"
        )
    return binary, driver


class Browser:
    """One Chromium session with its own empty profile; screenshots go to ``shots``."""

    def __init__(self, base_url: str, shots: Path, binary: str, driver: str) -> None:
        self.base_url = base_url
        self.shots = shots
        self._profile = tempfile.mkdtemp(prefix="paybridge-chromium-")
        options = Options()
        options.binary_location = binary
        for flag in (*_FLAGS, f"--user-data-dir={self._profile}"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(
            service=DriverService(executable_path=driver), options=options
        )
        self.driver.set_page_load_timeout(WAIT_S)

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking selenium call off the event loop."""
        return await asyncio.to_thread(fn, *args)

    async def open(self, path: str) -> None:
        await self.run(self.driver.get, self.base_url + path)

    async def find(self, css: str) -> WebElement:
        """The element matching ``css``, waiting (bounded) for it to appear."""
        deadline = time.monotonic() + WAIT_S
        while True:
            found = await self.run(self.driver.find_elements, By.CSS_SELECTOR, css)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {css} on {self.driver.current_url}")
            await asyncio.sleep(0.05)

    async def all(self, css: str) -> list[WebElement]:
        return await self.run(self.driver.find_elements, By.CSS_SELECTOR, css)

    async def text(self, css: str) -> str:
        element = await self.find(css)
        return await self.run(lambda: element.text)

    async def click(self, css: str) -> None:
        element = await self.find(css)
        await self.run(element.click)

    async def type(self, css: str, value: str) -> None:
        element = await self.find(css)
        await self.run(element.clear)
        await self.run(element.send_keys, value)

    async def path(self) -> str:
        url: str = await self.run(lambda: self.driver.current_url)
        return url[len(self.base_url) :] if url.startswith(self.base_url) else url

    async def page(self) -> str:
        source: str = await self.run(lambda: self.driver.page_source)
        return source

    async def screenshot(self, name: str) -> Path:
        """Save the viewport as ``shots/name.png``."""
        path = self.shots / f"{name}.png"
        ok = await self.run(self.driver.save_screenshot, str(path))
        assert ok, f"screenshot {path} failed"
        return path

    async def signin(self, key: str) -> None:
        await self.open("/console/signin")
        await self.type("#key", key)
        await self.click("#signin")
        await self.find("#signout")


def shots_dir(default: Path) -> Path:
    """Where screenshots go: ``$PAYBRIDGE_TEST_ARTIFACTS`` when set, else ``default``."""
    out = Path(os.environ.get("PAYBRIDGE_TEST_ARTIFACTS") or default)
    out.mkdir(parents=True, exist_ok=True)
    return out


def start_browser(base_url: str, shots: Path) -> Browser:
    found = find_chromium()
    assert not isinstance(found, str), found
    try:
        return Browser(base_url, shots, *found)
    except WebDriverException as exc:  # a broken install: say so instead of a stack of frames
        raise AssertionError(f"Chromium did not start: {exc.msg}") from None
