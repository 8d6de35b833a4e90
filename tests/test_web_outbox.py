"""The page's outbox and reconnects, in real headless Chromium against real servers: nothing
lost, nothing twice, across a restart, a frozen or killed server, a reload, a silent drop, a
replayed frame, a new epoch, a refusal for now, and a session taken over elsewhere."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser import (
    FIXTURES,
    Pages,
    Wire,
    bubble,
    connected,
    count_messages,
    frames,
    free_port,
    join,
    say,
    start_process,
    texts,
)
from playwright.async_api import WebSocketRoute, expect
from support import ServerProcess

from wschat.server import ChatServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests


# ---------------------------------------------------------------- reconnecting and the outbox


async def test_page_reconnects_after_a_server_restart_and_shows_nothing_twice(
    pages: Pages, clients: Callable[..., Any], processes: list[ServerProcess], tmp_path: Path
) -> None:
    port, db = free_port(), str(tmp_path / "chat.db")
    await start_process(processes, port, db)
    bob = await clients(port, "Bob")
    await bob.chat("before the restart")
    page = await pages.new()
    wire = Wire(page)
    await join(page, port, "Alice")
    await say(page, "Alice before the restart")
    await bob.expect("chat", message="Alice before the restart")
    await expect(page.locator(".msg.pending")).to_have_count(0)

    await processes[0].astop()
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-state", re.compile("reconnecting|connecting"))
    await expect(page.locator("#statusText")).to_contain_text(re.compile(r"Reconnect"))
    await expect(page.locator("#msgInput")).to_be_disabled()
    await expect(page.locator(".notice.system")).to_contain_text(["The server is shutting down"])

    await start_process(processes, port, db)
    await connected(page)
    await expect(page.locator("#msgInput")).to_be_enabled()
    joined, accepted = wire.of(wire.received, "joined")[0], wire.of(wire.received, "username_accepted")[0]
    last_seq = max(f["seq"] for f in wire.of(wire.received, "chat"))
    relogin = wire.of(wire.sent, "set_username")[-1]
    assert relogin["resume"] == {"general": {"epoch": joined["epoch"], "seq": last_seq}}
    assert relogin["session_token"] == accepted["session_token"]
    assert wire.of(wire.received, "history")[-1]["mode"] == "resume"
    bob = await clients(port, "Bob")
    await say(page, "Alice after the restart")
    await bob.expect("chat", message="Alice after the restart")
    for text in ("before the restart", "Alice before the restart", "Alice after the restart"):
        await expect(texts(page, text)).to_have_count(1)
    await expect(page.locator(".notice.join", has_text="You joined")).to_have_count(1)


async def test_a_send_the_dying_server_never_read_is_resent_and_appears_once(
    pages: Pages, clients: Callable[..., Any], processes: list[ServerProcess], tmp_path: Path
) -> None:
    port, db = free_port(), str(tmp_path / "chat.db")
    first = await start_process(processes, port, db)
    await clients(port, "Bob")
    alice, carol = await pages.new(), await pages.new()
    await join(alice, port, "Alice")
    await join(carol, port, "Carol")

    first.signal(signal.SIGSTOP)  # the socket still takes the bytes; nobody reads them
    await say(alice, "sent as the server froze")
    pending = bubble(alice, "sent as the server froze")
    await expect(pending).to_have_class(re.compile(r"\bpending\b"))
    await expect(pending.locator(".mark")).to_have_text("Sending…")
    first.kill()  # SIGKILL: the frame dies unread in the socket buffer

    await expect(alice.locator("#status")).not_to_have_attribute("data-state", "connected")
    await start_process(processes, port, db)
    await connected(alice)
    await connected(carol)
    await expect(pending).not_to_have_class(re.compile(r"\bpending\b"))
    await expect(pending.locator(".mark")).to_have_text("✓")
    await expect(texts(carol, "sent as the server froze")).to_have_count(1)
    newcomer = await clients(port, "Dave")
    assert count_messages(await frames(newcomer, "dave-marker"), "sent as the server froze") == 1
    await expect(texts(carol, "dave-marker")).to_have_count(1)  # Carol is live again...
    await expect(texts(carol, "sent as the server froze")).to_have_count(1)  # ...and saw it once
    await expect(texts(alice, "sent as the server froze")).to_have_count(1)
    assert await alice.evaluate("Object.keys(localStorage).filter(k => k.startsWith('wschat.outbox'))") == []


async def test_the_outbox_survives_a_reload_and_a_stored_but_unacknowledged_send_shows_once(
    pages: Pages, clients: Callable[..., Any], processes: list[ServerProcess], tmp_path: Path
) -> None:
    port, db = free_port(), str(tmp_path / "chat.db")
    proc = await start_process(processes, port, db)
    bob = await clients(port, "Bob")
    page = await pages.new()
    wire = Wire(page)
    await join(page, port, "Alice", from_file=True)  # a reload must not need the frozen server

    proc.signal(signal.SIGSTOP)
    await say(page, "survives a reload")
    await expect(bubble(page, "survives a reload")).to_have_class(re.compile(r"\bpending\b"))
    saved = await page.evaluate(
        "Object.entries(localStorage).filter(([k]) => k.startsWith('wschat.outbox')).map(([k, v]) => v)"
    )
    assert [item["text"] for item in json.loads(saved[0])] == ["survives a reload"]

    await page.reload()  # the old socket's frame is still queued at the server
    await expect(bubble(page, "survives a reload")).to_have_class(re.compile(r"\bpending\b"))
    await expect(page.locator("#app")).to_be_visible()
    # The server now reads the old socket's copy (unless the reload reset it) and the resend:
    # whichever comes first is stored, the other is acknowledged as a duplicate.
    proc.signal(signal.SIGCONT)
    await connected(page)
    await expect(bubble(page, "survives a reload")).not_to_have_class(re.compile(r"\bpending\b"))
    await expect(texts(page, "survives a reload")).to_have_count(1)
    sends = [f for f in wire.of(wire.sent, "chat") if f["message"] == "survives a reload"]
    assert len(sends) == 2 and sends[0]["client_msg_id"] == sends[1]["client_msg_id"]
    assert count_messages(await frames(bob, "bob-marker"), "survives a reload") == 1
    await expect(texts(page, "bob-marker")).to_have_count(1)
    await expect(texts(page, "survives a reload")).to_have_count(1)
    assert await page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('wschat.outbox'))") == []


async def test_after_a_dropped_connection_the_page_resumes_what_it_missed_and_resends_what_lost_its_ack(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    """The connection drops without the server noticing, after the server stored a message
    whose ack never reached the page; 120 messages go by while the page cannot get back."""
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    wire = Wire(page)
    routes: list[WebSocketRoute] = []
    deaf = asyncio.Event()  # from now on the first connection hears nothing
    can_connect = asyncio.Event()
    can_connect.set()

    async def route(ws: WebSocketRoute) -> None:
        if not can_connect.is_set():
            await ws.close(code=1011, reason="server unreachable")
            return
        first = not routes
        routes.append(ws)
        upstream = ws.connect_to_server()
        upstream.on_message(lambda m: None if first and deaf.is_set() else ws.send(m))

    await page.route_web_socket(re.compile(r"^ws://127\.0\.0\.1:\d+/$"), route)
    await join(page, server.port, "Alice")
    await bob.chat("before the drop")
    await expect(texts(page, "before the drop")).to_have_count(1)
    deaf.set()
    await say(page, "stored but never acknowledged")
    await bob.expect("chat", message="stored but never acknowledged")
    await expect(bubble(page, "stored but never acknowledged")).to_have_class(re.compile(r"\bpending\b"))

    can_connect.clear()
    await routes[0].close(code=1001, reason="gone")  # the server side stays open: a silent drop
    await expect(page.locator("#statusText")).to_contain_text("Reconnecting in")
    missed = [f"missed {i:03}" for i in range(1, 121)]
    for text in missed:
        await bob.chat(text)
    await bob.expect("chat", message=missed[-1])
    can_connect.set()

    await connected(page)
    await expect(bubble(page, "stored but never acknowledged")).not_to_have_class(re.compile("pending"))
    await expect(texts(page, missed[-1])).to_have_count(1)
    relogin = wire.of(wire.sent, "set_username")[-1]
    assert relogin["session_token"]  # took the name back from the half-dead connection
    assert relogin["resume"]["general"]["seq"] == 1  # "before the drop" was the last it saw
    history = wire.of(wire.received, "history")[-1]
    assert history["mode"] == "resume"
    assert [m["message"] for m in history["messages"]] == ["stored but never acknowledged", *missed]
    sends = [f for f in wire.of(wire.sent, "chat") if f["message"] == "stored but never acknowledged"]
    assert len(sends) == 2 and sends[0]["client_msg_id"] == sends[1]["client_msg_id"]
    # (with a route, the recorder sees what the server sent, including the ack the route ate)
    assert wire.of(wire.received, "ack")[-1] == {**wire.of(wire.received, "ack")[0], "duplicate": True}
    shown = await page.locator(".list:not([hidden]) .msg .text").all_inner_texts()
    assert shown == ["before the drop", "stored but never acknowledged", *missed]
    assert count_messages(await frames(bob, "bob-marker"), "stored but never acknowledged") == 1


async def test_a_message_delivered_twice_is_shown_once(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    """Room messages are told apart by (room, seq) and private ones by id, so a frame that
    arrives twice (a replaying proxy, a future broker) shows once."""
    bob = await clients(server.port, "Bob")

    def route(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            ws.send(message)
            if json.loads(message).get("type") in ("chat", "private", "ack"):
                ws.send(message)

        upstream.on_message(to_page)

    page = await pages.new()
    await page.route_web_socket(re.compile(r"^ws://127\.0\.0\.1:\d+/$"), route)
    await join(page, server.port, "Alice")
    await bob.chat("said once by Bob")
    await say(page, "said once by Alice")
    await bob.send({"type": "private", "to": "Alice", "message": "whispered once"})
    await expect(page.locator("#dmList [data-conv='@Bob'] .badge")).to_have_text("1")
    await bob.chat("the last word")
    await expect(texts(page, "the last word")).to_have_count(1)
    await expect(page.locator(".list:not([hidden]) .msg .text")).to_have_text(
        ["said once by Bob", "said once by Alice", "the last word"]
    )
    await page.click("#dmList [data-conv='@Bob']")
    await expect(page.locator(".list:not([hidden]) .msg .text")).to_have_text(["whispered once"])


async def test_a_new_epoch_clears_the_room_so_reused_seqs_are_not_taken_for_duplicates(
    pages: Pages, clients: Callable[..., Any], processes: list[ServerProcess]
) -> None:
    port = free_port()
    await start_process(processes, port, ":memory:")
    bob = await clients(port, "Bob")
    await bob.chat("from the lost epoch")
    page = await pages.new()
    await join(page, port, "Alice")
    await expect(texts(page, "from the lost epoch")).to_have_count(1)
    await processes[0].astop()
    await start_process(processes, port, ":memory:")  # history gone: new epoch, seq starts at 1
    await connected(page)
    await expect(page.locator(".notice.system").last).to_contain_text("lost the history")
    await expect(texts(page, "from the lost epoch")).to_have_count(0)
    bob = await clients(port, "Bob")
    await bob.chat("seq 1 of the new epoch")
    await expect(texts(page, "seq 1 of the new epoch")).to_have_count(1)


async def test_refused_for_now_sends_stay_pending_and_go_again_after_retry_after(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    seen: list[tuple[str, str, float]] = []  # (text, client_msg_id, when) of each send

    def route(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "chat" and frame["message"].startswith("refuse "):
                cmid = frame["client_msg_id"]
                seen.append((frame["message"], cmid, time.monotonic()))
                if sum(1 for s in seen if s[1] == cmid) == 1:
                    code = frame["message"].split()[1]
                    refusal = {"type": "error", "code": code, "message": "later", "client_msg_id": cmid}
                    ws.send(json.dumps({**refusal, "retry_after": 0.8}))
                    return
            upstream.send(message)

        ws.on_message(from_page)
        upstream.on_message(ws.send)

    await page.route_web_socket(re.compile(r"^ws://127\.0\.0\.1:\d+/$"), route)
    await join(page, server.port, "Alice")
    await say(page, "refuse rate_limited")
    await say(page, "refuse store_failed")
    for text in ("refuse rate_limited", "refuse store_failed"):
        await bob.expect("chat", message=text)
        await expect(bubble(page, text)).not_to_have_class(re.compile("pending"))
        await expect(texts(page, text)).to_have_count(1)
        tries = [s for s in seen if s[0] == text]
        assert len(tries) == 2 and tries[0][1] == tries[1][1]  # sent again with the same id
        assert tries[1][2] - tries[0][2] >= 0.7  # ...after retry_after
    found = await frames(bob, "bob-marker")
    assert [count_messages(found, t) for t in ("refuse rate_limited", "refuse store_failed")] == [1, 1]


async def test_a_session_taken_over_elsewhere_is_not_reconnected(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    page = await pages.new()
    await page.clock.install()  # time flows; the window below is run through at once
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await join(page, server.port, "Alice")
    token = await page.evaluate("JSON.parse(sessionStorage.getItem('wschat.session')).token")
    await clients(server.port, "Alice", session_token=token)
    await expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    await expect(page.locator("#statusText")).to_contain_text("signed in from another tab or device")
    await expect(page.locator("#retryBtn")).to_have_text("Reconnect here")
    await expect(page.locator("#msgInput")).to_be_disabled()
    # The page's timers run through 5 s, in which an automatic reconnect (first delay <= 1 s)
    # would have started; it would have shown "reconnecting", then "connecting".
    await page.clock.run_for(5_000)
    assert await page.locator("#status").get_attribute("data-state") == "offline"
    assert len(sockets) == 1
