"""Calls between two web pages in one Chromium with fake camera and microphone, through a real
server: both reach "connected" with audio and video bytes flowing (getStats), hang-up ends
both, decline, no answer, busy, glare and a reload of the callee's page while it rings."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from browser import CHROMIUM, CHROMIUM_ARGS, FIXTURES, Pages, Wire, connected, served
from playwright.async_api import Browser, Page, async_playwright, expect

from wschat.server import ChatServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
_, pages, servers, _, clients, processes = FIXTURES  # shared with the other browser tests

HOST = socket.gethostname().lower()  # a name of this machine: not a secure origin, unlike 127.0.0.1
MEDIA_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--auto-select-desktop-capture-source=Entire screen",  # screen sharing without a picker
    f"--host-resolver-rules=MAP {HOST} 127.0.0.1",  # and it stays on loopback
]

# Test instrumentation, not part of the page: keep every RTCPeerConnection the page makes and
# sum its inbound RTP bytes by kind every 200 ms, so a test can wait for them to grow.
WATCH_PEERS = """
(() => {
  const Original = window.RTCPeerConnection;
  window.__inbound = { audio: 0, video: 0 };
  window.__configs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    window.__configs.push(args[0]);
    const timer = setInterval(async () => {
      if (pc.connectionState === 'closed') { clearInterval(timer); return; }
      const sum = { audio: 0, video: 0 };
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp') sum[r.kind] += r.bytesReceived || 0;
      });
      window.__inbound = sum;
    }, 200);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
})();
"""


WIRES: dict[Page, Wire] = {}  # every frame each page sent and received


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the module, with a fake camera and microphone that need no permission."""
    async with async_playwright() as pw:
        args = CHROMIUM_ARGS + MEDIA_ARGS
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=args, timeout=60_000)
        try:
            yield b
        finally:
            await b.close()


@pytest_asyncio.fixture(loop_scope="module")
async def server(servers: Callable[..., Any]) -> ChatServer:
    return await servers("--call-timeout", "20")


async def person(pages: Pages, port: int, name: str) -> Page:
    page = await pages.new()
    WIRES[page] = Wire(page)
    await page.add_init_script(WATCH_PEERS)
    await page.goto(served(port))
    await page.fill("#nameInput", name)
    await page.press("#nameInput", "Enter")
    await connected(page)
    return page


async def talk_to(page: Page, name: str) -> None:
    """Open the private conversation with `name` from the list of people online."""
    await page.click("#usersBtn")
    await page.click(f"#usersList .user-item:has-text('{name}')")
    await expect(page.locator("#convTitle")).to_have_text(name)


def panel(page: Page) -> Any:
    return page.locator("#callPanel")


async def media_flowing(page: Page, video: bool = True) -> None:
    """Inbound audio (and video) bytes grow: read once, then wait until there are more."""
    first = await page.evaluate("() => window.__inbound")
    await page.wait_for_function(
        "([a, v]) => window.__inbound.audio > a && (v < 0 || window.__inbound.video > v)",
        arg=[first["audio"], first["video"] if video else -1],
        timeout=20_000,
    )


async def test_a_video_call_connects_with_media_both_ways_and_hang_up_ends_both(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    alice, bob = await person(pages, server.port, "Alice"), await person(pages, server.port, "Bob")
    carol = await clients(server.port, "Carol")
    await talk_to(alice, "Bob")
    await alice.click("#callVideoBtn")
    await expect(panel(bob)).to_have_attribute("data-state", "incoming")
    await expect(bob.locator("#callState")).to_have_text("Alice is calling you (video call)")
    await expect(alice.locator("#callState")).to_have_text("Ringing…")
    await bob.click("#callAccept")
    for page in (alice, bob):
        await expect(panel(page)).to_have_attribute("data-state", "connected")
        await expect(page.locator("#callTimer")).to_have_text(re.compile(r"^0:0\d$"))
    for page in (alice, bob):
        await media_flowing(page)
        assert await page.evaluate("() => window.__configs") == [{"iceServers": []}]  # none by default
    await bob.click("#callMute")
    await expect(bob.locator("#callMute")).to_have_attribute("aria-pressed", "true")
    await expect(bob.locator("#callMute")).to_have_text("Unmute")
    await bob.click("#callCamera")
    await expect(bob.locator("#callCamera")).to_have_text("Camera on")
    await alice.click("#callScreen")
    await expect(alice.locator("#callScreen")).to_have_text("Stop sharing")
    await media_flowing(bob)  # Alice's screen now, in the same video stream (no new offer)
    await alice.click("#callScreen")
    await expect(alice.locator("#callScreen")).to_have_text("Share screen")

    invite = {"type": "call", "call_id": "carol-call-1", "to": "Bob", "action": "invite", "sdp": "v=0"}
    await carol.send(invite)
    assert (await carol.expect("call", call_id="carol-call-1"))["reason"] == "busy"

    await alice.click("#callHangup")
    await expect(alice.locator("#callState")).to_have_text("Call ended: You hung up.")
    await expect(bob.locator("#callState")).to_have_text("Call ended: Alice hung up.")
    event = re.compile(r"^📞 Video call, 0:\d\d$")
    for page in (alice, bob):
        await expect(page.locator("#messages .msg .text").filter(has_text=event)).to_have_count(1)
    await carol.send({"type": "list_rooms"})
    await carol.expect("rooms")
    assert not [f for f in carol.seen if f["type"] == "call" and f["call_id"] != "carol-call-1"]


async def test_decline_and_a_reload_while_ringing(pages: Pages, server: ChatServer) -> None:
    dan, eve = await person(pages, server.port, "Dan"), await person(pages, server.port, "Eve")
    await talk_to(dan, "Eve")
    await dan.click("#callAudioBtn")
    await expect(panel(eve)).to_have_attribute("data-state", "incoming")
    await eve.click("#callDecline")
    await expect(dan.locator("#callState")).to_have_text("Call ended: Eve declined the call.")
    declined = dan.locator("#messages .msg .text").filter(has_text="📞 Declined voice call")
    await expect(declined).to_have_count(1)

    await dan.click("#callAudioBtn")
    await expect(panel(eve)).to_have_attribute("data-state", "incoming")
    await eve.reload()  # the page goes away while it rings, and comes back
    await connected(eve)
    await expect(panel(eve)).to_have_attribute("data-state", "incoming")
    await eve.click("#callAccept")
    for page in (dan, eve):
        await expect(panel(page)).to_have_attribute("data-state", "connected")
    await media_flowing(eve, video=False)
    await expect(eve.locator("#callMedia")).to_be_hidden()  # a voice call: no pictures...
    await dan.click("#callScreen")
    await expect(eve.locator("#callMedia")).to_be_visible()  # ...until Dan shares his screen
    await media_flowing(eve)
    await eve.click("#callHangup")
    await expect(dan.locator("#callState")).to_have_text("Call ended: Eve hung up.")


async def test_both_calling_at_once_ends_in_one_call(pages: Pages, server: ChatServer) -> None:
    fay, gus = await person(pages, server.port, "Fay"), await person(pages, server.port, "Gus")
    await talk_to(fay, "Gus")
    await talk_to(gus, "Fay")
    wires = [WIRES[fay], WIRES[gus]]
    await asyncio.gather(fay.click("#callVideoBtn"), gus.click("#callVideoBtn"))
    for page in (fay, gus):
        await expect(panel(page)).to_have_attribute("data-state", "connected")
    await media_flowing(fay)
    accepts = [f for w in wires for f in w.of(w.sent, "call") if f["action"] == "accept"]
    assert len(accepts) == 1  # one call, answered once (the other one ended as glare, or never began)
    await gus.click("#callHangup")
    await expect(fay.locator("#callState")).to_have_text("Call ended: Gus hung up.")


async def test_a_call_nobody_answers_stops_as_missed(pages: Pages, servers: Callable[..., Any]) -> None:
    srv = await servers("--call-timeout", "1.5")
    hal, ida = await person(pages, srv.port, "Hal"), await person(pages, srv.port, "Ida")
    await talk_to(hal, "Ida")
    await hal.click("#callAudioBtn")
    await expect(panel(ida)).to_have_attribute("data-state", "incoming")
    await expect(hal.locator("#callState")).to_have_text("Call ended: No answer from Ida.")
    await expect(ida.locator("#callState")).to_have_text("Call ended: Missed call from Hal.")
    await expect(ida.locator("#dmList [data-conv='@Hal']")).to_have_count(1)
    await ida.click("#dmList [data-conv='@Hal']")
    await expect(ida.locator("#messages .msg .text").filter(has_text="📞 Missed voice call")).to_have_count(1)


async def test_a_page_not_on_a_secure_origin_says_why_it_cannot_call(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    kay = await clients(server.port, "Kay")
    jay = await pages.new()
    await jay.goto(f"http://{HOST}:{server.port}/")
    await jay.fill("#nameInput", "Jay")
    await jay.press("#nameInput", "Enter")
    await connected(jay)
    await kay.send({"type": "private", "to": "Jay", "message": "call me"})
    await jay.click("#dmList [data-conv='@Kay']")
    await jay.click("#callAudioBtn")
    await expect(jay.locator("#callState")).to_have_text(re.compile("not on a secure origin"))
    await kay.send({"type": "list_rooms"})
    await kay.expect("rooms")
    assert not [f for f in kay.seen if f["type"] == "call"]
