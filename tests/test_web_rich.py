"""Rich messaging in the page, in real headless Chromium against a real server: reactions,
replies, edits and deletes, typing, mentions, read receipts, the new-messages divider, search."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from browser import CHAT_FILE, FIXTURES, Pages, Wire, bubble, join, say, texts
from playwright.async_api import WebSocketRoute, expect

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests


async def two_pages(pages: Pages, port: int) -> tuple[Any, Any]:
    alice = await pages.new()
    await join(alice, port, "Alice")
    bob = await pages.new()
    await join(bob, port, "Bob")
    return alice, bob


async def test_two_pages_react_reply_edit_and_delete(pages: Pages, servers: Callable[..., Any]) -> None:
    server = await servers()
    alice, bob = await two_pages(pages, server.port)
    await say(bob, "coffee anyone?")
    msg = bubble(alice, "coffee anyone?")
    await msg.hover()
    await msg.locator("[data-act=pick]").click()
    await msg.locator("[data-act=react][data-key='🎉']").click()
    for page in (alice, bob):
        await expect(bubble(page, "coffee anyone?").locator(".chip")).to_have_text(["🎉 1"])
    await expect(msg.locator(".chip.mine")).to_have_count(1)
    await bubble(bob, "coffee anyone?").locator(".chip").click()  # Bob adds his
    await expect(msg.locator(".chip")).to_have_text(["🎉 2"])
    await msg.locator(".chip").click()  # Alice takes hers back
    await expect(bubble(bob, "coffee anyone?").locator(".chip")).to_have_text(["🎉 1"])

    await msg.hover()
    await msg.locator("[data-act=reply]").click()
    await expect(alice.locator("#composeModeText")).to_have_text("Replying to Bob: coffee anyone?")
    await say(alice, "yes please")
    quote = bubble(bob, "yes please").locator(".quote")
    await expect(quote).to_have_text("↱ Bob: coffee anyone?")
    await quote.click()
    await expect(bubble(bob, "coffee anyone?")).to_have_class(re.compile(r"\bflash\b"))

    await alice.press("#msgInput", "ArrowUp")  # Up edits her last message
    await expect(alice.locator("#msgInput")).to_have_value("yes please")
    await alice.fill("#msgInput", "yes, two please")
    await alice.press("#msgInput", "Enter")
    edited = bubble(bob, "yes, two please")
    await expect(edited.locator(".edited")).to_have_text("(edited)")

    mine = bubble(alice, "yes, two please")
    await mine.hover()
    await mine.locator("[data-act=delete]").click()
    await mine.locator("[data-act=delete]").click()  # "Delete?": the second click is the one
    for page in (alice, bob):
        await expect(texts(page, "This message was deleted.")).to_have_count(1)
    await expect(texts(bob, "yes, two please")).to_have_count(0)


async def test_typing_mentions_and_seen_by(pages: Pages, servers: Callable[..., Any]) -> None:
    server = await servers()
    alice, bob = await two_pages(pages, server.port)
    await bob.locator("#msgInput").press_sequentially("hi @Al")
    await expect(bob.locator("#suggest button")).to_have_text(["@Alice"])
    await expect(alice.locator("#typingLine")).to_have_text("Bob is typing…")
    await bob.press("#msgInput", "Tab")
    await expect(bob.locator("#msgInput")).to_have_value("hi @Alice ")
    await bob.locator("#msgInput").press_sequentially("look")
    await bob.press("#msgInput", "Enter")
    await expect(bubble(alice, "hi @Alice look")).to_have_class(re.compile(r"\bmention\b"))
    await expect(bubble(bob, "hi @Alice look")).not_to_have_class(re.compile(r"\bmention\b"))
    await expect(alice.locator("#typingLine")).to_have_text("")
    await expect(bubble(bob, "hi @Alice look").locator(".seen-at .avatar")).to_have_text(["A"])  # read


async def test_each_reader_is_shown_at_the_message_they_read_up_to_and_moves_with_it(
    pages: Pages, servers: Callable[..., Any], clients: Callable[..., Any]
) -> None:
    server = await servers()
    alice, bob = await two_pages(pages, server.port)
    carol = await clients(server.port, "Carol")
    for text in ("one", "two", "three"):
        await say(bob, text)
        await carol.expect("chat", message=text)
    await carol.send({"type": "read", "room": "general", "seq": 1})  # Carol read only the first
    for page in (alice, bob):
        await expect(bubble(page, "one").locator(".seen-at .avatar")).to_have_text(["C"])
    await expect(bubble(bob, "three").locator(".seen-at .avatar")).to_have_text(["A"])  # Alice, at the end
    await expect(bubble(alice, "three").locator(".seen-at .avatar")).to_have_text(["B"])
    dave = await pages.new()
    await join(dave, server.port, "Dave")  # a newcomer gets everyone's place on entering
    await expect(bubble(dave, "one").locator(".seen-at .avatar")).to_have_text(["C"])
    await carol.send({"type": "read", "room": "general", "seq": 2})  # her place moves on
    for page in (alice, bob, dave):
        await expect(bubble(page, "two").locator(".seen-at .avatar")).to_have_text(["C"])
        await expect(bubble(page, "one").locator(".seen-at")).to_have_count(0)
    await expect(bubble(alice, "two").locator(".seen-at")).to_have_attribute("title", "Seen by Carol")


async def test_a_readers_place_past_a_long_run_of_events_is_found_without_a_walk(pages: Pages) -> None:
    page = await pages.new()
    await page.goto(CHAT_FILE)
    found = await page.evaluate(
        """() => {
            const msg = (seq) => ({ type: 'msg', seq });
            const entries = [{ type: 'divider' }, msg(1), { type: 'notice' }, msg(2),
                             { type: 'msg', seq: null }, msg(200), { type: 'notice' }, { type: 'notice' },
                             msg(300)];
            const bySeq = new Map(entries.filter((e) => Number.isInteger(e.seq)).map((e) => [e.seq, e]));
            const c = { entries, bySeq, minSeq: 1, lastSeq: 400 };  // 301..400: reactions, edits
            return [1, 2, 150, 250, 299, 300, 400, 999, 0].map((pos) => {
                const e = wschat.readPlace(c, pos);
                return e ? e.seq : null;
            });
        }"""
    )
    assert found == [1, 2, 2, 200, 200, 300, 300, 300, None]


async def test_search_finds_an_accent_free_word_and_jumps_to_it(
    pages: Pages, servers: Callable[..., Any]
) -> None:
    server = await servers()
    page = await pages.new()
    await join(page, server.port, "Alice")
    await say(page, "Un café noir")
    await say(page, "something else")
    await say(page, "gone café")
    await expect(texts(page, "gone café")).to_have_count(1)
    gone = bubble(page, "gone café")
    await gone.hover()
    await gone.locator("[data-act=delete]").click()
    await gone.locator("[data-act=delete]").click()
    await expect(texts(page, "This message was deleted.")).to_have_count(1)
    await page.click("#searchBtn")
    await page.fill("#searchInput", "CAFE")
    await page.press("#searchInput", "Enter")
    results = page.locator("#searchResults li")
    await expect(results).to_have_count(1)
    await expect(results.locator(".text")).to_have_text(["Un café noir"])
    await results.first.locator("button").click()
    await expect(bubble(page, "Un café noir")).to_have_class(re.compile(r"\bflash\b"))


async def test_a_page_that_missed_events_shows_the_same_final_state_with_a_new_messages_divider(
    pages: Pages, servers: Callable[..., Any], clients: Callable[..., Any]
) -> None:
    server = await servers()
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    wire = Wire(page)
    routes: list[WebSocketRoute] = []
    can_connect = asyncio.Event()
    can_connect.set()

    async def route(ws: WebSocketRoute) -> None:
        if not can_connect.is_set():
            await ws.close(code=1011, reason="server unreachable")
            return
        routes.append(ws)
        upstream = ws.connect_to_server()
        upstream.on_message(ws.send)

    await page.route_web_socket(re.compile(r"^ws://127\.0\.0\.1:\d+/$"), route)
    await join(page, server.port, "Alice")
    await bob.chat("first")
    await bob.chat("second")
    await bob.chat("third")
    await expect(texts(page, "third")).to_have_count(1)
    await bob.expect("receipt", username="Alice", seq=3)  # the page, at the bottom, read them

    can_connect.clear()
    await routes[0].close(code=1001, reason="gone")
    await expect(page.locator("#statusText")).to_contain_text("Reconnecting in")
    await bob.send({"type": "react", "room": "general", "target": 1, "key": "👍"})
    await bob.send({"type": "edit", "room": "general", "target": 2, "message": "second, edited"})
    await bob.send({"type": "delete", "room": "general", "target": 3})
    await bob.chat("fourth")
    await bob.expect("chat", message="fourth")
    can_connect.set()

    await expect(bubble(page, "first").locator(".chip")).to_have_text(["👍 1"])
    await expect(bubble(page, "second, edited").locator(".edited")).to_have_count(1)
    await expect(texts(page, "This message was deleted.")).to_have_count(1)
    await expect(texts(page, "fourth")).to_have_count(1)
    divider = page.locator(".list:not([hidden]) .new-mark")  # where her read position was
    await expect(divider).to_have_text("New messages")
    after = page.locator(".list:not([hidden]) .new-mark + .msg .text")
    await expect(after).to_have_text("fourth")
    history = [f for f in wire.received if f.get("type") == "history"][-1]
    assert [(m["type"], m["seq"]) for m in history["messages"]] == [
        ("reaction", 4),
        ("edit", 5),
        ("delete", 6),
        ("chat", 7),
    ]  # exactly the missed events, once

    fresh = await pages.new()  # one that never left sees the same
    await join(fresh, server.port, "Carol")
    await expect(bubble(fresh, "first").locator(".chip")).to_have_text(["👍 1"])
    await expect(bubble(fresh, "second, edited").locator(".edited")).to_have_count(1)
    await expect(texts(fresh, "third")).to_have_count(0)
    # Alice's read position was stored: a new tab of hers shows where the new messages start
    await page.close()
    again = await pages.new()
    await join(again, server.port, "Alice")
    await expect(again.locator(".list:not([hidden]) .new-mark")).to_have_count(0)  # she had read all


async def test_a_private_message_shows_delivered_then_read(pages: Pages, servers: Callable[..., Any]) -> None:
    server = await servers()
    alice, bob = await two_pages(pages, server.port)
    await alice.locator("#usersBtn").click()
    await alice.locator("#usersList button", has_text="Bob").click()
    await say(alice, "psst")
    tick = bubble(alice, "psst").locator(".mark")
    await expect(tick).to_have_attribute("title", "Delivered")
    await bob.locator("#dmList [data-conv='@Alice']").click()  # Bob opens the conversation
    await expect(tick).to_have_text("✓✓")
    await expect(tick).to_have_attribute("title", "Read")


async def test_a_search_result_older_than_what_is_loaded_is_fetched_and_shown(
    pages: Pages, servers: Callable[..., Any], clients: Callable[..., Any]
) -> None:
    server = await servers("--rate", "500", "--burst", "1000")
    bob = await clients(server.port, "Bob")
    await bob.chat("the needle in the haystack")
    for i in range(120):
        await bob.chat(f"hay {i}")
    await bob.expect("chat", message="hay 119")
    page = await pages.new()
    await join(page, server.port, "Alice")
    await expect(texts(page, "hay 119")).to_have_count(1)
    await expect(texts(page, "the needle in the haystack")).to_have_count(0)  # not loaded yet
    await page.click("#searchBtn")
    await page.fill("#searchInput", "needle")
    await page.press("#searchInput", "Enter")
    await page.locator("#searchResults li button").first.click()
    await expect(bubble(page, "the needle in the haystack")).to_have_class(re.compile(r"\bflash\b"))


async def test_messages_that_came_while_looking_elsewhere_start_under_a_divider(
    pages: Pages, servers: Callable[..., Any], clients: Callable[..., Any]
) -> None:
    server = await servers()
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await join(page, server.port, "Alice")
    await bob.chat("seen before")
    await expect(texts(page, "seen before")).to_have_count(1)
    await bob.expect("receipt", username="Alice")
    await page.fill("#roomInput", "dev")
    await page.press("#roomInput", "Enter")
    await expect(page.locator("#convTitle")).to_have_text("#dev")
    await bob.chat("while away 1")
    await bob.chat("while away 2")
    await expect(page.locator("#roomList [data-conv='#general'] .badge")).to_have_text("2")
    await page.locator("#roomList [data-conv='#general']").click()
    after = page.locator(".list:not([hidden]) .new-mark + .msg .text")
    await expect(after).to_have_text("while away 1")


async def test_a_mention_elsewhere_counts_on_the_room_and_in_the_title(
    pages: Pages, servers: Callable[..., Any], clients: Callable[..., Any]
) -> None:
    server = await servers()
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await join(page, server.port, "Alice")
    await page.fill("#roomInput", "dev")
    await page.press("#roomInput", "Enter")
    await expect(page.locator("#convTitle")).to_have_text("#dev")
    await bob.chat("@Alice look at this", mentions=["Alice"])
    await bob.chat("and this")
    general = page.locator("#roomList [data-conv='#general']")
    await expect(general.locator(".at-badge")).to_have_text("@1")
    await expect(general.locator(".badge")).to_have_text("2")
    await expect(page).to_have_title(re.compile(r"^@1 \(2\) "))
    await general.click()
    await expect(general.locator(".at-badge")).to_have_text("")
    await expect(bubble(page, "@Alice look at this")).to_have_class(re.compile(r"\bmention\b"))
    await page.press("#msgInput", "ArrowUp")  # nothing of hers to edit: the box stays empty
    await expect(page.locator("#composeMode")).to_be_hidden()
