"""The web page under a flood: how many messages a second Chromium takes in and shows.

One page (chat-web-client.html, served by the server under test) joins `general` in headless
Chromium (Debian's /usr/bin/chromium, through Playwright); then `senders` raw WebSocket
connections each send their share of `messages` chat messages as fast as the server's raised
limits allow (they drop what the server sends them unparsed, so this process is never what
limits the flood: the page is the bottleneck by design). Every 0.05 s the page is asked
(page.evaluate) for the seq of the newest message it shows; the answer's delay is the page's
responsiveness. The result is the rate at which the page took in and showed the flood, overall
and in the first and last quarter (a per-message cost that grows with the history shows as a
last quarter slower than the first).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
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


def _frame(obj: dict[str, Any]) -> bytes:
    """A masked client text frame (RFC 6455 5.2) carrying `obj` as JSON."""
    from websockets.utils import apply_mask  # the C version when websockets has its speedups

    payload = json.dumps(obj).encode()
    n = len(payload)
    size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    mask = os.urandom(4)
    return b"\x81" + size + mask + apply_mask(payload, mask)


async def _sender(port: int, name: str, count: int, ready: asyncio.Event, flood: Flood) -> None:
    """A sender that never parses what the server broadcasts (it reads and drops the bytes), so
    that the benchmark's own process cannot be what limits the flood."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    writer.write(_frame({"type": "set_username", "username": name}))
    seen = b""
    while b"username_accepted" not in seen:
        seen = seen[-64:] + await reader.read(1 << 16)
    ready.set()
    drop = asyncio.create_task(_drain(reader))
    await flood.start.wait()
    for i in range(count):
        writer.write(_frame({"type": "chat", "message": f"{name} message {i:05} of the flood"}))
        if i % 100 == 99:
            await writer.drain()
    await writer.drain()
    await flood.over.wait()
    writer.close()
    drop.cancel()


class Flood:
    """When the senders start, and when the page has shown it all (they may hang up)."""

    def __init__(self) -> None:
        self.start = asyncio.Event()
        self.over = asyncio.Event()


async def _drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(1 << 16):
        pass


async def _run(port: int, messages: int, senders: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.fill("#nameInput", "reader")
            await page.press("#nameInput", "Enter")
            await page.wait_for_selector("#status[data-state='connected']")
            flood = Flood()
            share = [messages // senders + (1 if i < messages % senders else 0) for i in range(senders)]
            ready = [asyncio.Event() for _ in share]
            tasks = [
                asyncio.create_task(_sender(port, f"s{i}", n, ready[i], flood)) for i, n in enumerate(share)
            ]
            await asyncio.gather(*(r.wait() for r in ready))  # their joins are not part of the flood
            base, _ = await page.evaluate(NEWEST)
            return await _watch(page, tasks, flood, base, messages)
        finally:
            await browser.close()


async def _watch(
    page: Any, tasks: list[asyncio.Task[None]], flood: Flood, base: int, messages: int
) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []
    slowest = 0.0
    most_nodes = 0
    started = time.monotonic()
    flood.start.set()
    shown = 0
    while shown < messages:
        asked = time.monotonic()
        seq, nodes = await page.evaluate(NEWEST)
        slowest = max(slowest, time.monotonic() - asked)
        most_nodes = max(most_nodes, nodes)
        shown = seq - base
        samples.append((time.monotonic() - started, shown))
        await asyncio.sleep(0.05)  # the sampling interval
    flood.over.set()
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
    """Messages/s while the page went from `lo` to `hi` shown (interpolated between samples)."""
    t0, t1 = _when(samples, lo), _when(samples, hi)
    if t0 is None or t1 is None or t1 <= t0:
        return None
    return (hi - lo) / (t1 - t0)


def _when(samples: list[tuple[float, int]], n: int) -> float | None:
    """When the page reached `n` shown, assuming a steady pace between two samples."""
    before = (0.0, 0)
    for t, shown in samples:
        if shown >= n:
            t0, n0 = before
            return t0 + (t - t0) * (n - n0) / (shown - n0) if shown > n0 else t
        before = (t, shown)
    return None
