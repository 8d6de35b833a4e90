"""The installable page and the join page on a real server: the manifest, icons, service worker
and /join served with the right types and headers, and in headless Chromium the service worker
registers on localhost and the page opens again, saying it is reconnecting, once the server has
stopped."""

from __future__ import annotations

import asyncio
import io
import json
import re
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from browser import FAST, FIXTURES, Pages, connected
from PIL import Image
from playwright.async_api import expect

from wschat import qr

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()


async def fetch(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(get, port, path)


async def test_the_manifest_and_its_icons_are_served_with_their_types(server: Any) -> None:
    status, headers, body = await fetch(server.port, "/manifest.webmanifest")
    assert status == 200 and headers["content-type"] == "application/manifest+json"
    assert headers["x-content-type-options"] == "nosniff"
    manifest = json.loads(body)
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    assert manifest["theme_color"] == "#4f46e5" and manifest["name"] == "wschat"
    purposes = set()
    for icon in manifest["icons"]:
        status, headers, data = await fetch(server.port, "/" + icon["src"])
        assert status == 200 and headers["content-type"] == icon["type"], icon
        purposes.add(icon.get("purpose", "any"))
        if icon["type"] == "image/png":
            img = Image.open(io.BytesIO(data))
            assert img.format == "PNG" and f"{img.width}x{img.height}" == icon["sizes"]
        else:
            assert data.startswith(b"<svg") and icon["sizes"] == "any"
    assert {"any", "maskable"} <= purposes
    assert any(i["sizes"] == "512x512" for i in manifest["icons"])  # what browsers ask to install
    status, headers, data = await fetch(server.port, "/icons/icon-180.png")  # apple-touch-icon
    assert headers["content-type"] == "image/png" and Image.open(io.BytesIO(data)).size == (180, 180)


async def test_the_service_worker_and_the_join_page_are_served_with_safe_headers(server: Any) -> None:
    status, headers, body = await fetch(server.port, "/sw.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert headers["cache-control"] == "no-cache" and b"addEventListener('fetch'" in body
    status, headers, body = await fetch(server.port, "/join")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    page = body.decode()
    # --host 127.0.0.1: the one address to show, and its QR code is segno's for that address
    url = f"http://127.0.0.1:{server.port}/"
    assert f'<a href="{url}">{url}</a>' in page
    assert qr.svg(url) in page
    assert f"python chat-client.py 127.0.0.1:{server.port}" in page
    assert "<h1>Join wschat on " in page  # the name it is announced by (no --name here)


async def test_the_page_links_its_manifest_and_the_service_worker_keeps_it_for_offline_use(
    pages: Pages, servers: Callable[..., Any]
) -> None:
    srv = await servers(*FAST)
    page = await pages.new()
    await page.goto(f"http://localhost:{srv.port}/")
    manifest = page.locator("link[rel=manifest]")
    await expect(manifest).to_have_attribute("href", "manifest.webmanifest")
    await page.fill("#nameInput", "alice")
    await page.press("#nameInput", "Enter")
    await connected(page)
    # registered, installed (the page kept) and in control of this page
    scope = await page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == f"http://localhost:{srv.port}/"
    await page.wait_for_function("navigator.serviceWorker.controller !== null")
    await srv.stop()
    await expect(page.locator("#status")).not_to_have_attribute("data-state", "connected")
    response = await page.reload()
    assert response is not None and response.from_service_worker and response.status == 200
    await expect(page.locator("#app")).to_be_visible()
    await expect(page.locator("#status")).to_have_attribute("data-state", re.compile("reconnecting|offline"))
    await expect(page.locator("#statusText")).to_contain_text("Reconnecting in")
