"""The web client served over https by a `--self-signed` server, in real headless Chromium.

Chromium is told to accept the self-signed certificate (as a user would after checking its
fingerprint); a Python websockets client that trusts the certificate plays the other person.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, connected, say, texts
from playwright.async_api import Page, async_playwright, expect
from support import TIMEOUT, Client, start_server
from websockets.asyncio.client import connect

pytestmark = pytest.mark.browser

INSECURE = "This page was opened over https, where browsers allow only wss:// addresses."
PARSE = """() => ['h:1', 'ws://h:1', 'http://h:1', 'https://h:1', 'wss://h:1', 'ftp://h'].map(a => {
    const r = wschat.parseAddress(a, '/', location.protocol === 'https:');
    return r.url || r.error;
})"""


@contextlib.asynccontextmanager
async def chromium_page(problems: list[str]) -> AsyncIterator[Page]:
    """A page in a Chromium that accepts the server's self-signed certificate."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash test.sh` or `apt-get install -y chromium`.")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            context = await browser.new_context(ignore_https_errors=True)
            context.set_default_timeout(WAIT_MS)
            page = await context.new_page()
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            yield page
        finally:
            await browser.close()


async def test_page_served_over_https_talks_wss_and_refuses_plain_ws_addresses(tmp_path: Path) -> None:
    server = await start_server("--self-signed", db=str(tmp_path / "chat.db"))
    port = server.port
    trusting = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    bob = Client(await connect(f"wss://127.0.0.1:{port}/", ssl=trusting, open_timeout=TIMEOUT))
    problems: list[str] = []
    try:
        await bob.login("Bob")
        async with chromium_page(problems) as page:
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            response = await page.goto(f"https://127.0.0.1:{port}/")
            assert response is not None and response.status == 200 and page.url.startswith("https://")
            await expect(page.locator("#addrInput")).to_have_value(f"wss://127.0.0.1:{port}/")
            parsed = await page.evaluate(PARSE)
            wss, bad_scheme = "wss://h:1/", "Use a ws:// or wss:// address."
            assert parsed == [wss, INSECURE, INSECURE, wss, wss, bad_scheme]

            await page.fill("#addrInput", f"ws://127.0.0.1:{port}")  # the browser would refuse it
            await page.fill("#nameInput", "Alice")
            await page.press("#nameInput", "Enter")
            await expect(page.locator("#addrError")).to_have_text(INSECURE)
            assert sockets == []
            await page.fill("#addrInput", f"127.0.0.1:{port}")  # typed without a scheme: wss here
            await page.press("#nameInput", "Enter")
            await connected(page)
            assert sockets == [f"wss://127.0.0.1:{port}/"]

            await bob.expect("user_join", username="Alice")
            await say(page, "hello over https")
            got = await bob.expect("chat", username="Alice")
            assert got["message"] == "hello over https"
            await bob.chat("hi Alice, over wss")
            await expect(texts(page, "hi Alice, over wss")).to_have_count(1)
    finally:
        await bob.close()
        await server.stop()
    assert not problems, problems
