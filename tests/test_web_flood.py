"""The page under a flood that stays within the rate limits (issue 11): it keeps answering, shows
the last message, and keeps a bounded number of message nodes, in real headless Chromium.

The old page measured the whole list for every message and froze: a script evaluation took
seconds, then tens of seconds, and the server dropped it for not answering pings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from browser import FAST, FIXTURES, Pages, join, texts
from playwright.async_api import expect
from support import Client

from wschat.server import ChatServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests

SENDERS = 4
BATCH = 100  # each sender has at most this many in flight: well under the burst of 1,000
BATCHES = 25  # 4 senders x 25 batches x 100 = 10,000 messages
PAUSE = 0.25  # between batches: at most 400 messages/s per sender, under the rate of 500/s
WINDOW = 300  # the page's bound on message nodes per conversation (WINDOW in the page)

VISIBLE_MSGS = "document.querySelectorAll('.list:not([hidden]) > .msg').length"


async def send_batches(c: Client, i: int) -> None:
    for b in range(BATCHES):
        for n in range(BATCH):
            await c.chat(f"flood {i} {b * BATCH + n:04}")
        await c.expect("chat", message=f"flood {i} {b * BATCH + BATCH - 1:04}", timeout=60)
        c.drain()  # what the senders see does not matter; the page is under test
        c.seen.clear()
        await asyncio.sleep(PAUSE)  # pacing, to stay within the rate limit (not a synchronisation)


async def test_the_page_stays_responsive_under_ten_thousand_messages_and_shows_the_last(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    assert FAST[:2] == ("--rate", "500") and FAST[2:] == ("--burst", "1000")
    # The page must answer before the server would give up on it: a connection silent for two
    # ping intervals is dropped (the old page took 24 s at the median, and was dropped).
    answer_within = 2 * server.opts.ping_interval
    senders = [await clients(server.port, f"flood{i}") for i in range(SENDERS)]
    page = await pages.new()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await join(page, server.port, "Reader")

    flood = asyncio.gather(*(send_batches(c, i) for i, c in enumerate(senders)))
    slowest, most_nodes, probes = 0.0, 0, 0
    while not flood.done():
        started = time.monotonic()
        nodes = await asyncio.wait_for(page.evaluate(VISIBLE_MSGS), answer_within)
        slowest = max(slowest, time.monotonic() - started)
        most_nodes = max(most_nodes, nodes)
        probes += 1
        await asyncio.wait([flood], timeout=0.2)  # the next probe, unless the flood is over
    await flood
    await senders[0].chat("the flood is over")
    for c in senders:  # read to the end, so that closing them does not wait on unread frames
        await c.expect("chat", message="the flood is over", timeout=60)
        c.drain()

    await expect(texts(page, "the flood is over")).to_be_visible()
    assert probes >= 3, "the flood ended before the page was probed"
    assert slowest < answer_within
    assert most_nodes <= WINDOW
    shown = page.locator(".list:not([hidden]) > .msg .text")
    assert await shown.count() <= WINDOW
    assert await page.locator("#status").get_attribute("data-state") == "connected"
    assert len(sockets) == 1  # never dropped (a reconnect would have opened another)

    before = await shown.first.inner_text()  # older messages come back from memory on scroll
    await page.locator(".list:not([hidden])").evaluate("el => { el.scrollTop = 0; }")
    await expect(shown.first).not_to_have_text(before)
    assert await shown.count() <= WINDOW
    for _ in range(5):  # a few pages up: the newest messages leave the page
        await page.locator(".list:not([hidden])").evaluate("el => { el.scrollTop = 0; }")
    await expect(texts(page, "the flood is over")).to_have_count(0)
    await page.click("#jumpBtn")  # and come back
    await expect(texts(page, "the flood is over")).to_be_in_viewport()
    assert await shown.count() <= WINDOW
