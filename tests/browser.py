"""Driving the web page in Debian's headless Chromium with Playwright: shared by the browser tests.

Playwright's own browser download is never used: /usr/bin/chromium (Debian's package, which
test.sh installs) runs with the flags that keep it off the network. A browser test module says
`pytest_plugins = ["browser"]` to get the fixtures below: one browser per module (launching
Chromium is the slow part), fresh contexts per test (no storage leaks between tests), servers in
the test's event loop or as subprocesses, and Python clients playing the other people.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect
from support import Client, ServerProcess, logged_in, start_server

from wschat.server import ChatServer

ROOT = Path(__file__).resolve().parent.parent
CHAT_FILE = (ROOT / "chat-web-client.html").as_uri()
DEMO_FILE = (ROOT / "websocket-demo.html").as_uri()
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 667}
FAST = ("--rate", "500", "--burst", "1000")  # let the Python clients post quickly

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


# ---------------------------------------------------------------- fixtures


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash test.sh` or `apt-get install -y chromium`.")
    async with async_playwright() as pw:
        # Playwright gives every launch a fresh temporary user-data dir.
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield b
        finally:
            await b.close()


class Pages:
    """Opens pages in fresh contexts; records dialogs, uncaught errors and CSP violations."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[Any] = []
        self.dialogs: list[str] = []
        self.problems: list[str] = []

    async def new(self, viewport: dict[str, int] = DESKTOP, color_scheme: str = "light") -> Page:
        ctx = await self.browser.new_context(viewport=viewport, color_scheme=color_scheme, locale="en-GB")
        ctx.set_default_timeout(WAIT_MS)
        self.contexts.append(ctx)
        page = await ctx.new_page()

        async def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))
        page.on(
            "console",
            lambda m: self.problems.append(m.text) if "Content Security Policy" in m.text else None,
        )
        return page

    async def close(self) -> None:
        for ctx in self.contexts:
            await ctx.close()


@pytest_asyncio.fixture(loop_scope="module")
async def pages(browser: Browser) -> AsyncIterator[Pages]:
    p = Pages(browser)
    try:
        yield p
    finally:
        await p.close()
    assert not p.problems, p.problems
    assert not p.dialogs, f"a dialog opened: {p.dialogs}"


@pytest_asyncio.fixture(loop_scope="module")
async def servers() -> AsyncIterator[Callable[..., Any]]:
    """start(*args): a server in this event loop on an ephemeral port."""
    started: list[ChatServer] = []

    async def start(*args: str) -> ChatServer:
        srv = await start_server(*args)
        started.append(srv)
        return srv

    try:
        yield start
    finally:
        for srv in started:
            await srv.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def server(servers: Callable[..., Any]) -> ChatServer:
    return await servers(*FAST)


@pytest_asyncio.fixture(loop_scope="module")
async def clients() -> AsyncIterator[Callable[..., Any]]:
    """login(port, name, **extra): a logged-in Python client, closed at the end."""
    opened: list[Client] = []

    async def login(port: int, name: str, **extra: Any) -> Client:
        c = await logged_in(port, name, **extra)
        opened.append(c)
        return c

    try:
        yield login
    finally:
        for c in opened:
            await c.close()


@pytest.fixture
def processes() -> Any:
    """Server subprocesses started by a test; killed at the end whatever state they are in."""
    procs: list[ServerProcess] = []
    yield procs
    for p in procs:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGCONT)
            p.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_process(procs: list[ServerProcess], port: int, db: str, *args: str) -> ServerProcess:
    proc = ServerProcess(*FAST, *args, db=db, port=port)
    procs.append(proc)
    return await asyncio.to_thread(proc.wait_ready, 30.0)


# ---------------------------------------------------------------- helpers


def served(port: int, path: str = "/") -> str:
    return f"http://127.0.0.1:{port}{path}"


async def join(page: Page, port: int, name: str, *, from_file: bool = False) -> None:
    if from_file:
        await page.goto(CHAT_FILE)
        await page.fill("#addrInput", f"127.0.0.1:{port}")
    else:
        await page.goto(served(port))
    await page.fill("#nameInput", name)
    await page.press("#nameInput", "Enter")
    await connected(page)


def bubble(page: Page, text: str) -> Any:
    return page.locator(".list:not([hidden]) .msg").filter(has=page.locator(".text", has_text=exactly(text)))


async def frames(client: Client, marker: str) -> list[dict[str, Any]]:
    """Every frame `client` received up to the chat `marker`, which it sends itself (so all that
    was in flight before it has arrived too)."""
    await client.chat(marker)
    await client.expect("chat", message=marker)
    return list(client.seen)


def count_messages(found: list[dict[str, Any]], text: str) -> int:
    n = 0
    for f in found:
        if f.get("type") == "history":
            n += sum(1 for m in f["messages"] if m["message"] == text)
        elif f.get("message") == text:
            n += 1
    return n


class Wire:
    """Every JSON frame a page's WebSockets send and receive, in order, across reconnects."""

    def __init__(self, page: Page) -> None:
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        page.on("websocket", self._attach)

    def _attach(self, ws: Any) -> None:
        ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: self.received.append(json.loads(payload)))

    def of(self, frames: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
        return [f for f in frames if f.get("type") == type_]


FIXTURES = (browser, pages, servers, server, clients, processes)
