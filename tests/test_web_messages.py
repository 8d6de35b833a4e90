"""What the page does with the text of messages, in real headless Chromium against a real server:
the length limit, control characters, links, and private conversations kept across a reload."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from browser import CHAT_FILE, FIXTURES, Pages, bubble, count_messages, frames, join, say, texts
from playwright.async_api import expect

from wschat.server import ChatServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests


async def test_a_message_over_the_limit_is_refused_with_a_sentence_and_never_cut(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await join(page, server.port, "Alice")
    note = page.locator("#composerNote")
    await expect(note).to_be_hidden()  # far from the limit: no count

    await page.fill("#msgInput", "a" * 3700)  # near the limit: the count shows
    await expect(note).to_have_text("3700 / 4000 characters")
    await page.fill("#msgInput", "b" * 4000)
    await page.press("#msgInput", "End")
    await page.keyboard.type("c")  # the 4,001st character is typed, not swallowed
    assert await page.input_value("#msgInput") == "b" * 4000 + "c"
    await expect(note).to_have_text("4001 / 4000 characters: too long to send")

    pasted = "p" * 4503
    await page.fill("#msgInput", pasted)
    await page.press("#msgInput", "Enter")
    await expect(note).to_have_text(
        "The message has 4503 characters; the limit is 4000. Shorten it or send it in parts."
    )
    assert await page.input_value("#msgInput") == pasted  # nothing lost, nothing sent
    await expect(page.locator(".msg.pending")).to_have_count(0)

    await page.fill("#msgInput", "q" * 4000)  # exactly the limit goes, whole
    await page.press("#msgInput", "Enter")
    got = await bob.expect("chat", username="Alice")
    assert got["message"] == "q" * 4000
    await expect(note).to_be_hidden()
    found = await frames(bob, "bob-marker")
    assert [f["message"] for f in found if f.get("type") == "chat" and f.get("username") == "Alice"] == [
        "q" * 4000
    ]


async def test_control_characters_show_as_visible_escapes_like_the_terminal(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await join(page, server.port, "Alice")
    await bob.chat("red \x1b[31mtext\x07 and \u202eevil\r\nnext line\tend")
    shown = page.locator(".list:not([hidden]) .msg .text").last
    await expect(shown).to_have_text("red \\x1b[31mtext\\x07 and \\u202eevil\nnext line\tend")
    await expect(shown.locator(".ctl")).to_have_text(["\\x1b", "\\x07", "\\u202e"])
    assert "\x1b" not in await shown.text_content()
    escaped = await page.evaluate("wschat.messageParts('a\\rb\\x9b').map(p => p.ctl || p.text)")
    assert escaped == ["a", "\\r", "b", "\\x9b"]  # as wschat.commands.escape writes them


async def test_http_links_are_clickable_and_nothing_else_becomes_a_link(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await join(page, server.port, "Alice")
    text = (
        "see https://example.com/wiki/Foo_(bar). or (http://127.0.0.1:9/a?b=1&c=<i>x</i>), "
        "not javascript:alert(1) nor data:text/html,<b>x</b> nor ftp://example.com"
    )
    await bob.chat(text)
    shown = page.locator(".list:not([hidden]) .msg .text").last
    await expect(shown).to_have_text(text)
    links = shown.locator("a")
    await expect(links).to_have_text(["https://example.com/wiki/Foo_(bar)", "http://127.0.0.1:9/a?b=1&c="])
    assert await links.evaluate_all("as => as.map(a => [a.href, a.target, a.rel])") == [
        ["https://example.com/wiki/Foo_(bar)", "_blank", "noopener noreferrer"],
        ["http://127.0.0.1:9/a?b=1&c=", "_blank", "noopener noreferrer"],
    ]
    unsafe = "Array.from(document.querySelectorAll('a')).filter(a => !/^https?:/.test(a.href)).length"
    assert await page.evaluate(unsafe) == 0
    assert await page.evaluate("document.querySelectorAll('.text i, .text b').length") == 0


async def test_private_conversations_survive_a_reload_which_returns_to_the_one_open(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    bob = await clients(server.port, "Bob")
    page = await pages.new()
    await join(page, server.port, "Alice")
    await bob.send({"type": "private", "to": "Alice", "message": "psst, Alice"})
    await page.click("#dmList [data-conv='@Bob']")
    await expect(texts(page, "psst, Alice")).to_have_count(1)
    await say(page, "yes, Bob?")
    await bob.expect("private", message="yes, Bob?")
    await expect(bubble(page, "yes, Bob?")).not_to_have_class(re.compile("pending"))
    await expect(page.locator("#usersWrap")).to_be_hidden()  # no room's "2 online" over a private chat

    await page.reload()
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#convTitle")).to_have_text("Bob")
    await expect(page.locator(".list:not([hidden]) .msg .text")).to_have_text(["psst, Alice", "yes, Bob?"])
    await expect(bubble(page, "yes, Bob?")).to_have_class(re.compile(r"\bown\b"))
    await bob.send({"type": "private", "to": "Alice", "message": "after your reload"})
    await expect(page.locator(".list:not([hidden]) .msg .text")).to_have_text(
        ["psst, Alice", "yes, Bob?", "after your reload"]
    )
    await page.click("#roomList [data-conv='#general']")
    await expect(page.locator("#usersWrap")).to_be_visible()
    await expect(page.locator("#onlineCount")).to_have_text("2")
    assert count_messages(await frames(bob, "bob-marker"), "yes, Bob?") == 1


async def test_the_pages_pure_helpers_count_like_the_server_and_limit_like_it(pages: Pages) -> None:
    page = await pages.new()
    await page.goto(CHAT_FILE)
    problems = await page.evaluate(
        """() => ['😀'.repeat(4000), '😀'.repeat(4001), 'x'.repeat(4000)]
            .map(t => wschat.lengthProblem(t, 4000))"""
    )
    assert problems[0] == "" and problems[2] == ""  # code points, as the server counts, not UTF-16 units
    assert problems[1].startswith("The message has 4001 characters; the limit is 4000.")
    waits = await page.evaluate(
        """() => { const b = new wschat.TokenBucket(2, 3);  // 2 a second, bursts of 3
                   return [b.take(0), b.take(0), b.take(0), b.take(0), b.take(250), b.take(500)]; }"""
    )
    assert waits == [0, 0, 0, 500, 250, 0]
    links = await page.evaluate(
        """() => ['javascript:alert(1)', 'data:text/html,x', 'HTTPS://Example.com/a.', 'see http://h/(x))']
            .map(t => wschat.messageParts(t).filter(p => p.url).map(p => p.url))"""
    )
    assert links == [[], [], ["https://example.com/a"], ["http://h/(x)"]]
