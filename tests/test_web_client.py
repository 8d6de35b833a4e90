"""The web client and the echo demo in real headless Chromium, against real servers: joining,
talking, people, rooms, private messages, hostile text and history. The outbox and reconnects
are in test_web_outbox.py and test_web_reconnect.py; the fixtures are in browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from browser import (
    CHAT_FILE,
    DEMO_FILE,
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
    served,
    texts,
)
from playwright.async_api import expect

from wschat.server import ChatServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests


# ---------------------------------------------------------------- joining


async def test_served_page_fills_in_its_own_address_and_shows_history_as_earlier(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    await bob.chat("said before Alice came")
    await bob.expect("chat", message="said before Alice came")
    page = await pages.new()
    await page.goto(served(server.port))
    await expect(page.locator("#addrInput")).to_have_value(f"ws://127.0.0.1:{server.port}/")
    await expect(page.locator("#nameInput")).to_be_focused()
    await page.keyboard.type("Alice")
    await page.keyboard.press("Enter")
    await connected(page)
    await expect(page.locator("#statusText")).to_have_text("Connected")
    await expect(page.locator(".msg.earlier .text")).to_have_text(["said before Alice came"])
    await expect(page.locator(".divider.earlier-mark")).to_have_text("Earlier messages")
    await expect(page.locator(".notice.join")).to_contain_text(["You joined the chat"])
    await expect(page.locator("#onlineCount")).to_have_text("2")
    await expect(page.locator("#msgInput")).to_be_focused()


async def test_file_page_joins_by_keyboard_with_a_typed_address_and_remembers_it(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await page.goto(CHAT_FILE)
    await expect(page.locator("#addrInput")).to_have_value("")
    await expect(page.locator("#addrInput")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#addrError")).to_contain_text("Enter the server address")
    await page.keyboard.type(f"127.0.0.1:{server.port}")
    await page.keyboard.press("Tab")
    await expect(page.locator("#nameInput")).to_be_focused()
    await page.keyboard.type("Alice")
    await page.keyboard.press("Tab")
    await expect(page.locator("#joinBtn")).to_be_focused()
    await page.keyboard.press("Enter")
    await connected(page)
    await expect(page.locator("#msgInput")).to_be_focused()
    await page.keyboard.type("typed from a file page")
    await page.keyboard.press("Enter")
    await bob.expect("chat", message="typed from a file page", username="Alice")

    unlabeled = """() => Array.from(document.querySelectorAll('input, textarea, select'))
        .filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.id)"""
    assert await page.evaluate(unlabeled) == []

    again = await page.context.new_page()  # same profile, new tab: no session, but memory
    await again.goto(CHAT_FILE)
    await expect(again.locator("#addrInput")).to_have_value(f"ws://127.0.0.1:{server.port}/")
    await expect(again.locator("#nameInput")).to_have_value("Alice")


async def test_taken_name_shows_the_servers_reason_and_the_form_stays_usable(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await page.goto(served(server.port))
    await page.fill("#nameInput", "BOB")
    await page.press("#nameInput", "Enter")
    await expect(page.locator("#nameError")).to_contain_text("is taken")
    await expect(page.locator("#nameInput")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#joinBtn")).to_be_enabled()
    await expect(page.locator("#app")).to_be_hidden()
    await page.fill("#nameInput", "Bobby")
    await page.press("#nameInput", "Enter")
    await connected(page)
    await expect(page.locator("#meName")).to_have_text("Bobby")
    await bob.expect("user_join", username="Bobby")

    await page.click("#signOutBtn")
    await expect(page.locator("#joinView")).to_be_visible()
    await expect(page.locator("#nameInput")).to_have_value("Bobby")
    await bob.expect("user_leave", username="Bobby")
    await page.reload()  # signed out stays signed out
    await expect(page.locator("#joinView")).to_be_visible()


async def test_bad_address_and_unreachable_server_are_explained(pages: Pages) -> None:
    page = await pages.new()
    await page.goto(CHAT_FILE)
    await page.fill("#addrInput", "ftp://example")
    await page.fill("#nameInput", "Alice")
    await page.press("#nameInput", "Enter")
    await expect(page.locator("#addrError")).to_have_text("Use a ws:// or wss:// address.")
    await page.fill("#addrInput", f"127.0.0.1:{free_port()}")  # nothing listens there
    await page.click("#joinBtn")
    await expect(page.locator("#addrError")).to_contain_text("Could not connect")
    await expect(page.locator("#joinBtn")).to_be_enabled()


async def test_address_parsing_and_backoff_helpers(pages: Pages) -> None:
    page = await pages.new()
    await page.goto(CHAT_FILE)
    parsed = await page.evaluate(
        """() => ['192.168.1.100:8765', 'ws://h:1', 'wss://h/x', 'http://h:2/', ' h ', '', 'ftp://h']
            .map(a => { const r = wschat.parseAddress(a, '/'); return r.url || 'error'; })"""
    )
    assert (
        parsed
        == ["ws://192.168.1.100:8765/", "ws://h:1/", "wss://h/x", "ws://h:2/", "ws://h/"] + ["error"] * 2
    )
    delays = await page.evaluate(
        """() => [1, 2, 3, 6, 20].flatMap(k => [wschat.backoffDelay(k, 0), wschat.backoffDelay(k, 1)])"""
    )
    assert delays == [0.5, 1, 1, 2, 2, 4, 15, 30, 15, 30]  # doubling, jittered, capped at 30 s


# ---------------------------------------------------------------- talking


async def test_two_pages_and_a_python_client_exchange_messages_in_all_directions(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    alice, carol = await pages.new(), await pages.new()
    await join(alice, server.port, "Alice")
    await join(carol, server.port, "Carol", from_file=True)

    await say(alice, "hello from Alice")
    await bob.expect("chat", message="hello from Alice", username="Alice")
    await expect(texts(carol, "hello from Alice")).to_have_count(1)
    await expect(bubble(alice, "hello from Alice")).to_have_class(re.compile(r"\bown\b"))
    await expect(bubble(carol, "hello from Alice")).not_to_have_class(re.compile(r"\bown\b"))
    await expect(bubble(carol, "hello from Alice").locator(".who")).to_have_text("Alice")
    await expect(bubble(carol, "hello from Alice").locator("time")).to_have_text(re.compile(r"\d:\d\d"))

    await say(carol, "hello from Carol")
    await bob.expect("chat", message="hello from Carol", username="Carol")
    await expect(texts(alice, "hello from Carol")).to_have_count(1)

    await bob.chat("hello from Bob")
    for page in (alice, carol):
        await expect(texts(page, "hello from Bob")).to_have_count(1)
        await expect(bubble(page, "hello from Bob").locator(".who")).to_have_text("Bob")
    await expect(carol.locator(".notice.join")).to_contain_text(["You joined the chat"])
    await expect(alice.locator(".notice.join").last).to_have_text("Carol joined the chat")
    for page in (alice, carol):  # everything once, own messages confirmed
        for text in ("hello from Alice", "hello from Carol", "hello from Bob"):
            await expect(texts(page, text)).to_have_count(1)
        await expect(page.locator(".msg.pending")).to_have_count(0)


async def test_users_dropdown_lists_everyone_and_closes_on_escape_or_a_click_outside(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    await clients(server.port, "Bob")
    await clients(server.port, "Carol")
    page = await pages.new()
    await join(page, server.port, "Alice")
    await expect(page.locator("#onlineCount")).to_have_text("3")
    await page.focus("#usersBtn")
    await page.keyboard.press("Enter")
    await expect(page.locator("#usersPop")).to_be_visible()
    await expect(page.locator("#usersBtn")).to_have_attribute("aria-expanded", "true")
    await expect(page.locator("#usersList .label")).to_have_text(["Alice", "Bob", "Carol"])
    await expect(page.locator("#usersList .user-item:not(:disabled)").first).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.locator("#usersPop")).to_be_hidden()
    await expect(page.locator("#usersBtn")).to_be_focused()

    await page.click("#usersBtn")
    await expect(page.locator("#usersPop")).to_be_visible()
    await page.mouse.click(640, 400)  # the message list
    await expect(page.locator("#usersPop")).to_be_hidden()

    await clients(server.port, "Dave")
    await expect(page.locator("#onlineCount")).to_have_text("4")
    await expect(page.locator(".notice.join").last).to_have_text("Dave joined the chat")


async def test_users_dropdown_in_a_large_room_asks_the_server_for_the_list(
    pages: Pages, servers: Callable[..., Any], clients: Callable[..., Any]
) -> None:
    srv = await servers(*FAST, "--large-room", "2")
    bob = await clients(srv.port, "Bob")
    await clients(srv.port, "Carol")
    await clients(srv.port, "Dave")  # the third member: the room is large from here on
    await bob.expect("user_join", usernames=["Dave"])  # batched, a second later
    page = await pages.new()
    await join(page, srv.port, "Alice")
    await bob.expect("user_join", usernames=["Alice"])  # no presence news will reach Alice now...
    await expect(page.locator("#onlineCount")).to_have_text("4")
    await page.click("#usersBtn")  # ...so only asking with get_users can fill the list
    await expect(page.locator("#usersList .label")).to_have_text(["Alice", "Bob", "Carol", "Dave"])
    await clients(srv.port, "Erin")  # batched notice, no member list: the open list asks again
    await expect(page.locator(".notice.join", has_text="Erin")).to_have_count(1)
    await expect(page.locator("#usersList .label")).to_have_text(["Alice", "Bob", "Carol", "Dave", "Erin"])
    await expect(page.locator("#onlineCount")).to_have_text("5")


async def test_rooms_can_be_created_joined_and_switched_with_unread_counts(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await join(page, server.port, "Alice")
    await page.fill("#roomInput", "#Dev")
    await page.press("#roomInput", "Enter")
    await expect(page.locator("#convTitle")).to_have_text("#dev")
    await expect(page.locator("#roomList .label")).to_have_text(["general", "dev"])
    await expect(page.locator("#msgInput")).to_have_attribute("placeholder", "Message #dev")
    await say(page, "first words in dev")

    await bob.send({"type": "join", "room": "dev"})
    await bob.expect("history", room="dev")
    await expect(page.locator(".notice.join").last).to_have_text("Bob joined #dev")
    await page.click("#roomList [data-conv='#general']")
    await expect(page.locator("#convTitle")).to_have_text("#general")
    await bob.chat("one", room="dev")
    await bob.chat("two", room="dev")
    badge = page.locator("#roomList [data-conv='#dev'] .badge")
    await expect(badge).to_have_text("2")
    await expect(page).to_have_title("(2) wschat")
    await bob.chat("in general")
    await expect(texts(page, "in general")).to_have_count(1)
    await expect(page.locator("#roomList [data-conv='#general'] .badge")).to_have_text("")

    await page.click("#roomList [data-conv='#dev']")
    await expect(badge).to_have_text("")
    await expect(page).to_have_title("wschat")
    await expect(page.locator(".list:not([hidden]) .msg .text")).to_have_text(
        ["first words in dev", "one", "two"]
    )
    await page.click("#browse summary")
    await expect(page.locator("#allRooms .label")).to_have_text(["dev", "general"])
    await page.fill("#roomInput", "Bad Room!")
    await page.press("#roomInput", "Enter")
    await expect(page.locator("#roomError")).to_contain_text("letters, digits")

    await page.click("#leaveBtn")  # leave #dev
    await expect(page.locator("#convTitle")).to_have_text("#general")
    await expect(page.locator("#roomList .label")).to_have_text(["general"])
    left = await bob.expect("user_leave", room="dev")
    assert left["username"] == "Alice"


async def test_private_messages_open_from_the_users_list_and_go_only_to_the_two(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    alice, carol = await pages.new(), await pages.new()
    await join(alice, server.port, "Alice")
    await join(carol, server.port, "Carol")
    await alice.click("#usersBtn")
    await alice.click("#usersList .user-item:has-text('Carol')")
    await expect(alice.locator("#convTitle")).to_have_text("Carol")
    await expect(alice.locator("#msgInput")).to_be_focused()
    await say(alice, "just between us")
    await expect(bubble(alice, "just between us")).not_to_have_class(re.compile("pending"))
    dm_badge = carol.locator("#dmList [data-conv='@Alice'] .badge")
    await expect(dm_badge).to_have_text("1")
    await expect(texts(carol, "just between us", where="#messages")).to_have_count(1)
    await expect(texts(carol, "just between us")).to_have_count(0)  # not in #general
    await carol.click("#dmList [data-conv='@Alice']")
    await expect(texts(carol, "just between us")).to_have_count(1)
    await say(carol, "sure")
    await expect(texts(alice, "sure")).to_have_count(1)

    await bob.send({"type": "private", "to": "Alice", "message": "hi from python"})
    await expect(alice.locator("#dmList [data-conv='@Bob'] .badge")).to_have_text("1")
    await alice.click("#dmList [data-conv='@Bob']")
    await say(alice, "hi back")
    got = await bob.expect("private", message="hi back")
    assert got["from"] == "Alice" and got["to"] == "Bob"
    assert count_messages(await frames(bob, "bob-marker"), "just between us") == 0

    await carol.context.close()  # Carol is gone: a private message to her cannot be delivered
    await bob.expect("user_leave", username="Carol")
    await alice.click("#dmList [data-conv='@Carol']")
    await say(alice, "are you there?")
    failed = bubble(alice, "are you there?")
    await expect(failed).to_have_class(re.compile(r"\bfailed\b"))
    await expect(failed.locator(".mark")).to_have_text("Not sent: Carol is not online.")


async def test_html_in_names_and_messages_is_shown_as_text(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    evil_name = "<img src=x onerror=alert(1)>"
    payloads = ["<script>alert(2)</script>", "<img src=x onerror=alert(3)>", "<b>bold</b> &amp; x"]
    bob = await clients(server.port, "<script>alert(4)</script>")
    page, other = await pages.new(), await pages.new()
    await join(page, server.port, evil_name)
    await join(other, server.port, "Watcher")
    for text in payloads:
        await say(page, text)
        await bob.chat(text)
    await bob.send({"type": "private", "to": "Watcher", "message": payloads[1]})
    for p in (page, other):
        for text in payloads:
            await expect(texts(p, text)).to_have_count(2)
    await expect(bubble(other, payloads[0]).first.locator(".who")).to_have_text(evil_name)
    await expect(other.locator("#dmList [data-conv='@<script>alert(4)</script>'] .label")).to_have_text(
        "<script>alert(4)</script>"
    )
    await other.click("#usersBtn")
    await expect(other.locator("#usersList .label")).to_contain_text([evil_name])
    await expect(page.locator("#meName")).to_have_text(evil_name)
    for p in (page, other):
        injected = await p.evaluate(
            """() => ({img: document.querySelectorAll('img').length,
                       script: document.querySelectorAll('script').length,
                       b: document.querySelectorAll('.text b, .who b, .label b').length})"""
        )
        assert injected == {"img": 0, "script": 1, "b": 0}
    assert pages.dialogs == []


# ---------------------------------------------------------------- history


async def test_scrolling_to_the_top_loads_older_messages_and_new_ones_do_not_yank_the_view(
    pages: Pages, servers: Callable[..., Any], clients: Callable[..., Any]
) -> None:
    srv = await servers(*FAST, "--history-size", "30")
    bob = await clients(srv.port, "Bob")
    for i in range(1, 121):
        await bob.chat(f"old message {i:03}")
    await bob.expect("chat", message="old message 120", timeout=30)
    page = await pages.new()
    await join(page, srv.port, "Alice")
    shown = page.locator(".list:not([hidden]) .msg .text")
    await expect(shown).to_have_count(30)
    await expect(shown.first).to_have_text("old message 091")
    await expect(page.locator(".list:not([hidden]) .top-mark button")).to_have_text("Load earlier messages")
    log = page.locator(".list:not([hidden])")

    await log.evaluate("el => { el.scrollTop = 0; }")
    await expect(shown).to_have_count(80)
    assert await log.evaluate("el => el.scrollTop") > 100  # the view stayed where it was
    await expect(shown.first).to_have_text("old message 041")
    await log.evaluate("el => { el.scrollTop = 0; }")
    await expect(shown).to_have_count(120)
    await expect(page.locator(".list:not([hidden]) .top-mark")).to_have_text("This is the start of #general.")
    assert await shown.all_inner_texts() == [f"old message {i:03}" for i in range(1, 121)]

    await log.evaluate("el => { el.scrollTop = 200; }")
    top = await log.evaluate("el => el.scrollTop")
    await bob.chat("news while Alice reads")
    await expect(texts(page, "news while Alice reads")).to_have_count(1)
    assert await log.evaluate("el => el.scrollTop") == top
    await expect(page.locator("#jumpBtn")).to_be_visible()
    await page.click("#jumpBtn")
    await expect(page.locator("#jumpBtn")).to_be_hidden()
    assert await log.evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight") < 2
    await bob.chat("news at the bottom")  # at the bottom, the view follows
    await expect(texts(page, "news at the bottom")).to_be_in_viewport()


# ---------------------------------------------------------------- the echo demo


@pytest.mark.parametrize("from_file", [False, True], ids=["served", "file"])
async def test_demo_page_echoes_a_message(pages: Pages, server: ChatServer, from_file: bool) -> None:
    page = await pages.new()
    if from_file:
        await page.goto(DEMO_FILE)
        await page.fill("#address", f"127.0.0.1:{server.port}")
    else:
        await page.goto(served(server.port, "/demo"))
        await expect(page.locator("#address")).to_have_value(f"ws://127.0.0.1:{server.port}/echo")
    await page.click("#connect")
    await expect(page.locator("#state")).to_have_text(f"Connected to ws://127.0.0.1:{server.port}/echo")
    await page.fill("#text", "<b>ping</b> 1")
    await page.press("#text", "Enter")
    await expect(page.locator("#log .sent")).to_contain_text(["→ sent  <b>ping</b> 1"])
    await expect(page.locator("#log .received")).to_contain_text(["← received  <b>ping</b> 1"])
    assert await page.evaluate("document.querySelectorAll('#log b').length") == 0
    await page.click("#disconnect")
    await expect(page.locator("#log .info").last).to_contain_text("closed, code 1000")
    await expect(page.locator("#text")).to_be_disabled()
