"""The page's layout on a desktop and a 375 px phone, in real headless Chromium.

The two scene tests also take the screenshots shown in the README: into a temporary folder, so
a test run leaves the checkout alone, or into the folder named by WSCHAT_SCREENSHOTS, which is
how `python tools/screenshots.py` refreshes docs/screenshot-*.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser import DESKTOP, FIXTURES, PHONE, Pages, join, say, texts
from playwright.async_api import Page, WebSocketRoute, expect
from support import Client

from wschat.server import ChatServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: WSCHAT_SCREENSHOTS (set by tools/screenshots.py) or a temporary folder."""
    folder = Path(os.environ.get("WSCHAT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------- layout and screenshots


LAST_WORDS = "Sounds good. Ping me if the tests are flaky again, I have a fix ready."


async def populate(port: int, clients: Callable[..., Any]) -> tuple[Client, Client, Client]:
    bob, carol, dave = [await clients(port, n) for n in ("Bob", "Carol", "Dave")]
    await bob.chat("Morning all! Is the build server back up?")
    await carol.chat("Yes, since about an hour ago.")
    await carol.chat("I restarted the runner and cleared the cache, so the first build will be slow.")
    await dave.chat("Thanks Carol!")
    await dave.expect("chat", message="Thanks Carol!")
    return bob, carol, dave


async def scene(page: Page, port: int, clients: Callable[..., Any]) -> None:
    bob, carol, dave = await populate(port, clients)
    await join(page, port, "Alice")
    await say(page, "Great, I will kick off the release build after lunch.")
    await bob.chat(LAST_WORDS)
    for c in (carol, dave):
        await c.send({"type": "join", "room": "design"})
        await c.expect("history", room="design")
    phone = await page.locator("#menuBtn").is_visible()
    if phone:
        await page.click("#menuBtn")
    await page.fill("#roomInput", "design")
    await page.press("#roomInput", "Enter")
    await expect(page.locator("#convTitle")).to_have_text("#design")
    if phone:
        await page.click("#menuBtn")
    await page.click("#roomList [data-conv='#general']")
    await carol.chat("New mock-ups are in the shared folder", room="design")
    await dave.chat("Love the new colours", room="design")
    await dave.send({"type": "private", "to": "Alice", "message": "Got a minute later?"})
    await expect(page.locator("#dmList [data-conv='@Dave'] .badge")).to_have_text("1")
    await expect(page.locator("#roomList [data-conv='#design'] .badge")).to_have_text("2")
    await expect(texts(page, LAST_WORDS)).to_be_visible()


async def test_desktop_view(
    pages: Pages, server: ChatServer, clients: Callable[..., Any], shots: Path
) -> None:
    page = await pages.new(DESKTOP)
    await scene(page, server.port, clients)
    await expect(page.locator("#sidebar")).to_be_visible()
    await expect(page.locator("#menuBtn")).to_be_hidden()
    assert await page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    await page.screenshot(path=str(shots / "screenshot-desktop.png"))


async def test_phone_view_has_no_horizontal_scroll_and_a_drawer(
    pages: Pages, server: ChatServer, clients: Callable[..., Any], shots: Path
) -> None:
    page = await pages.new(PHONE, color_scheme="dark")
    await scene(page, server.port, clients)
    await expect(page.locator("#sidebar")).to_be_hidden()
    await expect(page.locator("#menuBadge")).to_have_text("3")  # unread elsewhere, drawer closed
    await page.screenshot(path=str(shots / "screenshot-mobile.png"))
    await say(page, "x" * 300)  # one unbreakable word
    await expect(page.locator(".msg.pending")).to_have_count(0)
    sizes = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    width, client_width = await page.evaluate(sizes)
    assert width <= client_width == 375
    wide = await page.evaluate(
        "Array.from(document.querySelectorAll('.list:not([hidden]) .bubble'))"
        ".filter(b => b.getBoundingClientRect().right > innerWidth).length"
    )
    assert wide == 0

    await page.click("#menuBtn")
    await expect(page.locator("#roomList")).to_be_visible()
    await expect(page.locator("#menuBtn")).to_have_attribute("aria-expanded", "true")
    await page.keyboard.press("Escape")
    await expect(page.locator("#sidebar")).to_be_hidden()
    await page.click("#menuBtn")
    await page.click("#dmList [data-conv='@Dave']")  # choosing a conversation closes the drawer
    await expect(page.locator("#sidebar")).to_be_hidden()
    await expect(page.locator("#convTitle")).to_have_text("Dave")
    width, client_width = await page.evaluate(sizes)
    assert width <= client_width


async def test_on_a_phone_the_offline_state_fits_and_escape_from_the_menu_returns_to_typing(
    pages: Pages, server: ChatServer
) -> None:
    routes: list[WebSocketRoute] = []
    reachable = [True]

    async def route(ws: WebSocketRoute) -> None:
        if not reachable[0]:
            await ws.close(code=1011, reason="server unreachable")
            return
        routes.append(ws)
        upstream = ws.connect_to_server()
        upstream.on_message(ws.send)

    page = await pages.new(PHONE)
    await page.route_web_socket(re.compile(r"^ws://127\.0\.0\.1:\d+/$"), route)
    await join(page, server.port, "Alexandra-with-a-long-name")
    await page.click("#menuBtn")
    await expect(page.locator("#roomList")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.locator("#sidebar")).to_be_hidden()
    await expect(page.locator("#msgInput")).to_be_focused()  # not a focus ring left on the menu button

    reachable[0] = False
    await routes[0].close(code=1001, reason="gone")
    await expect(page.locator("#statusText")).to_contain_text("Reconnecting in")
    await expect(page.locator("#retryBtn")).to_be_visible()
    fits = """() => {
        const txt = document.getElementById('statusText'), retry = document.getElementById('retryBtn');
        const box = document.getElementById('msgInput'), cs = getComputedStyle(box);
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = cs.font;
        const room = box.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
        return {status: txt.scrollWidth <= txt.clientWidth,
                retry: retry.getBoundingClientRect().right <= innerWidth,
                placeholder: ctx.measureText(box.placeholder).width <= room};
    }"""
    assert await page.evaluate(fits) == {"status": True, "retry": True, "placeholder": True}
