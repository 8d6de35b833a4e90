"""Driving the web page in Debian's headless Chromium with Playwright: shared by the browser tests.

Playwright's own browser download is never used: /usr/bin/chromium (Debian's package, which
test.sh installs) runs with the flags that keep it off the network.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Page, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000  # generous: other test suites may be loading the machine

expect.set_options(timeout=WAIT_MS)


async def connected(page: Page) -> None:
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")


async def say(page: Page, text: str) -> None:
    await page.fill("#msgInput", text)
    await page.press("#msgInput", "Enter")


def exactly(text: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(text) + "$")


def texts(page: Page, text: str, *, where: str = ".list:not([hidden])") -> Any:
    """Bubbles whose text is exactly `text`, in the conversation on screen by default."""
    return page.locator(f"{where} .msg .text").filter(has_text=exactly(text))
