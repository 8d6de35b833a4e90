"""The web page under a flood: how many messages a second Chromium takes in and shows.

One page (chat-web-client.html, served by the server under test) joins `general` in headless
Chromium (Debian's /usr/bin/chromium, through Playwright); then `senders` Python clients each
send their share of `messages` chat messages as fast as the server's raised limits allow. The
page is the bottleneck by design. Every 0.2 s the page is asked (page.evaluate) for the seq of
the newest message it shows; the answer's delay is the page's responsiveness. The result is the
rate at which the page caught up with the flood, overall and in the first and last quarter (a
per-message cost that grows with the history shows as a last quarter slower than the first).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
NEWEST = """() => {
    const ms = document.querySelectorAll('.list:not([hidden]) > .msg[data-seq]');
    return [ms.length ? Number(ms[ms.length - 1].dataset.seq) : 0, ms.length];
}"""


class PageBenchError(RuntimeError):
    """The page scenario cannot run here (no Chromium, no Playwright); str(self) says why."""


def available() -> str | None:
    """Why the scenario cannot run, or None when it can."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -r requirements-dev.txt)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    return None


def run(port: int, messages: int, senders: int, timeout: float = 300.0) -> dict[str, Any]:
    """Flood the page on `port`; returns the figures (see the module docstring)."""
    return asyncio.run(asyncio.wait_for(_run(port, messages, senders), timeout))


async def _sender(url: str, name: str, count: int, ready: asyncio.Event, start: asyncio.Event) -> None:
    from websockets.asyncio.client import connect

    # max_queue=None: keep reading what the server broadcasts, so its buffers never fill.
    async with connect(url, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "set_username", "username": name}))
        while json.loads(await ws.recv()).get("type") != "username_accepted":
            pass
        ready.set()
        await start.wait()
        for i in range(count):
            await ws.send(json.dumps({"type": "chat", "message": f"{name} message {i:05} of the flood"}))


async def _run(port: int, messages: int, senders: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    url = f"ws://127.0.0.1:{port}/"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.fill("#nameInput", "reader")
            await page.press("#nameInput", "Enter")
            await page.wait_for_selector("#status[data-state='connected']")
            start = asyncio.Event()
            share = [messages // senders + (1 if i < messages % senders else 0) for i in range(senders)]
            ready = [asyncio.Event() for _ in share]
            tasks = [
                asyncio.create_task(_sender(url, f"s{i}", n, ready[i], start)) for i, n in enumerate(share)
            ]
            await asyncio.gather(*(r.wait() for r in ready))  # their joins are not part of the flood
            base, _ = await page.evaluate(NEWEST)
            return await _watch(page, tasks, start, base, messages)
        finally:
            await browser.close()


async def _watch(
    page: Any, tasks: list[asyncio.Task[None]], start: asyncio.Event, base: int, messages: int
) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []
    slowest = 0.0
    most_nodes = 0
    started = time.monotonic()
    start.set()
    shown = 0
    while shown < messages:
        asked = time.monotonic()
        seq, nodes = await page.evaluate(NEWEST)
        slowest = max(slowest, time.monotonic() - asked)
        most_nodes = max(most_nodes, nodes)
        shown = seq - base
        samples.append((time.monotonic() - started, shown))
        await asyncio.sleep(0.2)  # the sampling interval
    await asyncio.gather(*tasks)
    elapsed = samples[-1][0]
    return {
        "messages": messages,
        "shown_all_s": elapsed,
        "rendered_per_s": messages / elapsed if elapsed else None,
        "first_quarter_per_s": _rate(samples, 0, messages // 4),
        "last_quarter_per_s": _rate(samples, messages * 3 // 4, messages),
        "slowest_answer_s": slowest,
        "most_nodes": most_nodes,
    }


def _rate(samples: list[tuple[float, int]], lo: int, hi: int) -> float | None:
    """Messages/s while the page went from `lo` to `hi` shown (from the nearest samples)."""
    t0 = next((t for t, n in samples if n >= lo), None)
    t1 = next((t for t, n in samples if n >= hi), None)
    before = [t for t, n in samples if n < lo]
    if lo > 0 and before:
        t0 = before[-1]
    if t0 is None or t1 is None or t1 <= t0:
        return None
    return (hi - lo) / (t1 - t0)
