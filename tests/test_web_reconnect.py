"""The page across disconnects and server trouble, in real headless Chromium: presence after a
restart, the "Reconnected" marker, a failed history read, and private messages whose recipient
is not back yet. Servers that must stop or freeze run as subprocesses."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser import (
    FAST,
    FIXTURES,
    Pages,
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

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests

PAGE_WS = re.compile(r"^ws://127\.0\.0\.1:\d+/$")


async def test_after_a_restart_nobody_is_announced_again_and_a_reconnected_marker_follows(
    pages: Pages, clients: Callable[..., Any], processes: list[ServerProcess], tmp_path: Path
) -> None:
    port, db = free_port(), str(tmp_path / "chat.db")
    await start_process(processes, port, db)
    await clients(port, "Bob")
    await clients(port, "Carol")
    page = await pages.new()
    await join(page, port, "Alice")
    await clients(port, "Dave")  # news: he came after Alice
    joins = page.locator(".notice.join")
    await expect(joins).to_have_text(["You joined the chat", "Dave joined the chat"])

    await processes[0].astop()
    await expect(page.locator(".notice.system")).to_contain_text(["The server is shutting down"])
    await start_process(processes, port, db)
    await connected(page)
    for name in ("Bob", "Carol", "Dave"):  # everybody comes back, after Alice
        await clients(port, name)
    await expect(page.locator("#onlineCount")).to_have_text("4")  # (after the three user_join frames)
    await expect(joins).to_have_text(["You joined the chat", "Dave joined the chat"])
    await expect(page.locator(".notice.reconnected")).to_have_text(["Reconnected"])
    notices = page.locator(".list:not([hidden]) .notice span")
    last_two = await notices.evaluate_all("ns => ns.slice(-2).map(n => n.textContent)")
    assert "shutting down" in last_two[0] and last_two[1] == "Reconnected"
    await clients(port, "Erin")  # somebody new is still news
    await expect(joins).to_have_text(["You joined the chat", "Dave joined the chat", "Erin joined the chat"])


async def test_a_resumed_join_updates_the_list_quietly_and_a_leave_shows_the_servers_sentence(
    pages: Pages, server: Any, clients: Callable[..., Any]
) -> None:
    routes: list[WebSocketRoute] = []

    def route(ws: WebSocketRoute) -> None:
        routes.append(ws)
        upstream = ws.connect_to_server()
        upstream.on_message(ws.send)

    page = await pages.new()
    await page.route_web_socket(PAGE_WS, route)
    await join(page, server.port, "Alice")
    users = ["Alice", "Zed"]
    frame = {"type": "user_join", "room": "general", "username": "Zed", "online_users": 2}
    routes[0].send(
        json.dumps({**frame, "users_list": users, "message": "Zed joined the chat", "resumed": True})
    )
    await expect(page.locator("#onlineCount")).to_have_text("2")
    leave = {
        "type": "user_leave",
        "room": "general",
        "username": "Zed",
        "online_users": 1,
        "users_list": ["Alice"],
    }
    routes[0].send(json.dumps({**leave, "message": "Zed left #general", "reason": "leave"}))
    await expect(page.locator(".notice.leave")).to_have_text(["Zed left #general"])
    await expect(page.locator("#onlineCount")).to_have_text("1")
    await expect(page.locator(".notice", has_text="Zed joined")).to_have_count(0)


async def test_a_failed_history_read_is_retried_and_not_taken_for_the_start_of_the_room(
    pages: Pages, servers: Callable[..., Any], clients: Callable[..., Any]
) -> None:
    srv = await servers(*FAST, "--history-size", "10")
    bob = await clients(srv.port, "Bob")
    for i in range(1, 31):
        await bob.chat(f"old {i:02}")
    await bob.expect("chat", message="old 30")
    fetches: list[dict[str, Any]] = []

    def route(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            f = json.loads(message)
            if f.get("type") == "fetch_history":
                fetches.append(f)
                if len(fetches) == 1:  # the store fails once
                    failed = {"type": "error", "code": "store_failed", "message": "The server could not read"}
                    ws.send(
                        json.dumps(
                            {**failed, "retry_after": 0.5, "room": f["room"], "before_seq": f["before_seq"]}
                        )
                    )
                    return
            upstream.send(message)

        ws.on_message(from_page)
        upstream.on_message(ws.send)

    page = await pages.new()
    await page.route_web_socket(PAGE_WS, route)
    await join(page, srv.port, "Alice")
    shown = page.locator(".list:not([hidden]) .msg .text")
    await expect(shown).to_have_count(10)
    await page.locator(".list:not([hidden])").evaluate("el => { el.scrollTop = 0; }")
    await expect(page.locator(".list:not([hidden]) .top-mark")).to_have_text("This is the start of #general.")
    assert await shown.all_inner_texts() == [f"old {i:02}" for i in range(1, 31)]
    assert fetches[0] == fetches[1]  # the same page asked for again
    await expect(page.locator(".notice.error")).to_have_count(0)


async def test_a_private_message_held_for_someone_not_back_yet_is_sent_once_when_they_return(
    pages: Pages, clients: Callable[..., Any], processes: list[ServerProcess], tmp_path: Path
) -> None:
    port, db = free_port(), str(tmp_path / "chat.db")
    first = await start_process(processes, port, db)
    await clients(port, "Bob")
    await clients(port, "Carol")
    page = await pages.new()
    await join(page, port, "Alice")
    for name in ("Bob", "Carol"):
        await page.click("#roomList [data-conv='#general']")  # a private chat has no users list
        await page.click("#usersBtn")
        await page.click(f"#usersList .user-item:has-text('{name}')")

    first.signal(signal.SIGSTOP)  # the frames go into a socket nobody reads
    await say(page, "pm to Carol while down")
    await page.click("#dmList [data-conv='@Bob']")
    await say(page, "pm to Bob while down")
    await expect(bubble(page, "pm to Bob while down")).to_have_class(re.compile(r"\bpending\b"))
    first.kill()
    await start_process(processes, port, db)
    await connected(page)  # before Bob and Carol: the resends find nobody

    held = bubble(page, "pm to Bob while down")
    await expect(held.locator(".mark")).to_contain_text("Will be sent when Bob comes online")
    await page.click("#dmList [data-conv='@Carol']")
    carol_pm = bubble(page, "pm to Carol while down")
    await expect(carol_pm.locator(".mark")).to_contain_text("Will be sent when Carol comes online")
    await carol_pm.locator(".discard").click()  # changed her mind
    await expect(carol_pm).to_have_count(0)

    bob = await clients(port, "Bob")
    got = await bob.expect("private", message="pm to Bob while down")
    assert got["from"] == "Alice"
    await page.click("#dmList [data-conv='@Bob']")
    await expect(held).not_to_have_class(re.compile(r"\bpending\b"))
    await expect(texts(page, "pm to Bob while down")).to_have_count(1)
    await expect(held.locator(".mark")).to_have_text("✓")
    carol = await clients(port, "Carol")
    assert count_messages(await frames(carol, "carol-marker"), "pm to Carol while down") == 0
    assert count_messages(await frames(bob, "bob-marker"), "pm to Bob while down") == 1
    stored = await page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('wschat.outbox'))")
    assert stored == []
