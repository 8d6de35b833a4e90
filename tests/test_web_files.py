"""File sharing in the page, in real headless Chromium against a real server: the attach button's
file chooser, a pasted image, drag and drop, progress and cancel, a resumed upload, thumbnails and
the lightbox, file cards, private conversations, and files that must never run as a page."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser import FIXTURES, Pages, join
from PIL import Image
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import expect
from test_files_e2e import upload
from test_server_e2e import get

from wschat.server import ChatServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests


def image_bytes(size: tuple[int, int] = (200, 120), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (20, 120, 220)).save(out, format=fmt)
    return out.getvalue()


async def test_the_attach_buttons_file_chooser_sends_a_file_that_arrives_byte_for_byte(
    pages: Pages, server: ChatServer, clients: Callable[..., Any], tmp_path: Path
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await join(page, server.port, "Alice")
    data = os.urandom(900_000)  # several pieces; the hash is the page's own SHA-256
    src = tmp_path / "résumé.bin"
    src.write_bytes(data)
    async with page.expect_file_chooser() as chooser:
        await page.click("#attachBtn")
    await (await chooser.value).set_files(str(src))
    got = await bob.expect("chat", username="Alice")
    assert got["file"]["name"] == "résumé.bin"
    assert got["file"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert (await get(server.port, got["file"]["url"]))[2] == data
    card = page.locator(".file-card", has_text="résumé.bin")
    await expect(card).to_contain_text("878.9 KB")
    await expect(card.locator("a.file-dl")).to_have_attribute(
        "href", f"http://127.0.0.1:{server.port}{got['file']['url']}"
    )
    await expect(page.locator("#uploads")).to_be_hidden()  # the progress bar went with the upload


async def test_a_pasted_image_shows_inline_and_opens_in_a_lightbox_that_esc_closes(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await join(page, server.port, "Alice")
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    # a real paste: the image on the browser's clipboard, then Ctrl+V in the message box
    await page.evaluate(
        """async (bytes) => {
            const blob = new Blob([new Uint8Array(bytes)], { type: 'image/png' });
            await navigator.clipboard.write([new ClipboardItem({ 'image/png': blob })]);
        }""",
        list(image_bytes()),
    )
    await page.focus("#msgInput")
    await page.keyboard.press("Control+V")
    got = await bob.expect("chat", username="Alice")
    assert got["file"]["mime"] == "image/png" and got["file"]["name"].startswith("pasted ")
    thumb = page.locator(".thumb img")
    await expect(thumb).to_have_count(1)
    await page.wait_for_function(
        "() => { const i = document.querySelector('.thumb img'); return i.complete && i.naturalWidth > 0; }"
    )
    await page.click(".thumb")
    await expect(page.locator("#lightbox")).to_be_visible()
    await page.wait_for_function(
        "() => { const i = document.querySelector('#lightboxImg');"
        " return i.complete && i.naturalWidth === 200; }"
    )
    await page.keyboard.press("Escape")
    await expect(page.locator("#lightbox")).to_be_hidden()


async def test_a_dropped_file_goes_to_the_private_conversation_on_screen(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    carol = await clients(server.port, "Carol")
    page = await pages.new()
    await join(page, server.port, "Alice")
    await bob.send({"type": "private", "to": "Alice", "message": "send me the notes"})
    await page.click("#dmList >> text=Bob")
    drop = await page.evaluate_handle(
        "() => { const dt = new DataTransfer();"
        " dt.items.add(new File(['the notes'], 'notes.txt', { type: 'text/plain' })); return dt; }"
    )
    await page.dispatch_event("#messages", "dragenter", {"dataTransfer": drop})
    await expect(page.locator("#dropZone")).to_be_visible()
    await page.dispatch_event("#messages", "drop", {"dataTransfer": drop})
    got = await bob.expect("private", username="Alice")
    assert got["file"]["name"] == "notes.txt" and got["to"] == "Bob"
    await expect(page.locator("#dropZone")).to_be_hidden()
    await expect(page.locator(".file-card", has_text="notes.txt")).to_be_visible()
    await carol.send({"type": "list_rooms"})
    await carol.expect("rooms")
    assert not [f for f in carol.drain() if "file" in f]


async def test_an_upload_shows_progress_and_can_be_cancelled(
    pages: Pages, servers: Callable[..., Any], clients: Callable[..., Any], tmp_path: Path
) -> None:
    srv = await servers("--max-frame-bytes", "4096")  # small pieces: the upload takes a while
    bob = await clients(srv.port, "Bob")
    page = await pages.new()
    await join(page, srv.port, "Alice")
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(8_000_000))
    await page.set_input_files("#fileInput", str(src))
    row = page.locator("#uploads .upload", has_text="big.bin")
    await expect(row.locator("progress")).to_be_visible()
    await page.wait_for_function("() => document.querySelector('#uploads progress').value > 0")
    await row.locator(".upload-cancel").click()
    await expect(page.locator("#uploads")).to_be_hidden()
    await bob.send({"type": "list_rooms"})
    await bob.expect("rooms")
    assert not [f for f in bob.drain() if f.get("type") == "chat"]  # nothing was posted


async def test_an_upload_cut_by_a_lost_connection_resumes_after_the_reconnect(
    pages: Pages, servers: Callable[..., Any], clients: Callable[..., Any], tmp_path: Path
) -> None:
    srv = await servers("--max-frame-bytes", "8192")
    bob = await clients(srv.port, "Bob")
    page = await pages.new()
    await join(page, srv.port, "Alice")
    data = os.urandom(3_000_000)
    src = tmp_path / "video.bin"
    src.write_bytes(data)
    await page.set_input_files("#fileInput", str(src))
    await page.wait_for_function(
        "() => { const p = document.querySelector('#uploads progress'); return p && p.value > 100000; }"
    )
    for ws in list(srv.conns.values()):  # the server drops Alice's connection mid-upload
        if ws.name == "Alice":
            ws.transport.abort()
    got = await bob.expect("chat", username="Alice", timeout=30)
    assert got["file"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert (await get(srv.port, got["file"]["url"]))[2] == data


async def test_an_svg_with_script_and_html_named_png_never_run_in_the_browser(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await join(page, server.port, "Alice")
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="document.title=\'pwned\'">'
        b'<script>document.title="pwned"</script></svg>'
    )
    html = b"<!doctype html><title>x</title><script>document.title='pwned'</script>" * 2
    svg_file = (await upload(bob, "drawing.svg", svg))["file"]
    html_file = (await upload(bob, "cat.png", html))["file"]
    for f in (svg_file, html_file):
        card = page.locator(".file-card", has_text=f["name"])
        await expect(card).to_be_visible()  # a card, not an inline image
    await expect(page.locator(".thumb")).to_have_count(0)
    for f in (svg_file, html_file):  # opened directly: a download, never a page that runs
        probe = await pages.new()
        async with probe.expect_download() as dl:
            with contextlib.suppress(PlaywrightError):  # "Download is starting": no page loads
                await probe.goto(f"http://127.0.0.1:{server.port}{f['url']}")
        assert (await dl.value).suggested_filename == f["name"]
        assert await probe.title() != "pwned"
    assert await page.title() != "pwned"


async def test_a_file_message_takes_reactions_and_an_edit_and_a_delete_removes_its_card(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await join(page, server.port, "Alice")
    done = await upload(bob, "minutes.txt", b"minutes of the meeting\n" * 40, room="general")
    posted = await bob.expect("chat", username="Bob")
    assert posted["file"] == done["file"]
    row = page.locator(".msg", has=page.locator(".file-card", has_text="minutes.txt"))
    await expect(row).to_have_count(1)
    await bob.send({"type": "react", "room": "general", "target": posted["seq"], "key": "👍"})
    await bob.send({"type": "edit", "room": "general", "target": posted["seq"], "message": "the minutes"})
    await expect(row.locator(".chip")).to_contain_text("👍")
    await expect(row.locator(".text")).to_have_text("the minutes")
    await expect(row.locator(".file-card")).to_be_visible()  # the file stays with the edited message
    await bob.send({"type": "delete", "room": "general", "target": posted["seq"]})
    gone = page.locator(".msg .text.deleted", has_text="This message was deleted.")
    await expect(gone).to_have_count(1)
    await expect(page.locator(".file-card", has_text="minutes.txt")).to_have_count(0)
