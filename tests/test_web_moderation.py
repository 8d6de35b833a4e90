"""Moderation in the web page, in real headless Chromium against a real server: the room's
topic in the header, Kick / Mute / Ban in the online list and on another's message for a
moderator (and not for others), a moderator's Delete, and the notices that say who did what."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from browser import FIXTURES, Pages, bubble, connected, join, served
from playwright.async_api import Page, expect
from support import Client

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests

PASSWORD = "correct horse battery"


async def test_a_moderator_uses_the_user_and_message_menus(pages: Pages, servers: Callable[..., Any]) -> None:
    srv = await servers("--admin", "Carol", "--admin", "Alice")
    carol = await Client.open(srv.port)  # an operator, to set the topic
    await carol.send({"type": "register", "username": "Carol", "password": PASSWORD})
    await carol.expect("history", room="general")
    page = await pages.new()
    await page.goto(served(srv.port))
    await page.check("#modeSet input[value='register']")
    await page.fill("#nameInput", "Alice")
    await page.fill("#passInput", PASSWORD)
    await page.click("#joinBtn")
    await connected(page)
    guest = await pages.new()
    await join(guest, srv.port, "Bob")

    await carol.send({"type": "set_topic", "room": "general", "topic": "be kind"})
    await expect(page.locator("#convTopic")).to_have_text("be kind")
    await expect(page.locator(".notice", has_text="Carol set the topic: be kind")).to_have_count(1)
    await expect(guest.locator("#convTopic")).to_have_text("be kind")  # everyone sees the topic

    await guest.fill("#msgInput", "rude words")
    await guest.press("#msgInput", "Enter")
    msg = bubble(page, "rude words")
    await msg.hover()
    await expect(msg.locator("[data-act=delete]")).to_have_count(1)  # a moderator deletes anyone's
    theirs = bubble(guest, "rude words")
    await theirs.hover()
    await expect(theirs.locator("[data-act=moderate]")).to_have_count(0)  # not for a guest
    await msg.locator("[data-act=moderate]").click()
    await msg.get_by_role("combobox", name="How long to mute Bob").select_option("3600")
    await msg.get_by_role("button", name="Mute Bob in #general for the time chosen").click()
    await expect(page.locator(".notice", has_text="Alice muted Bob until")).to_have_count(1)
    await msg.get_by_role("button", name="Unmute Bob in #general").click()
    await expect(page.locator(".notice", has_text="Alice unmuted Bob")).to_have_count(1)

    await page.click("#usersBtn")
    tools = page.get_by_role("group", name="Moderate Bob")
    await expect(tools).to_be_visible()
    await guest.click("#usersBtn")
    await expect(guest.get_by_role("group", name="Moderate Alice")).to_have_count(0)
    ban = tools.get_by_role("button", name="Ban Bob from #general")
    await ban.click()  # asks once
    await expect(tools.get_by_role("button", name="Kick Bob off the server")).to_be_visible()  # an operator
    await tools.get_by_role("button", name="Really: Ban Bob from #general").click()
    await expect(page.locator(".notice", has_text="Alice banned Bob")).to_have_count(1)
    await room_settings(page, guest)
    await carol.send({"type": "chat", "room": "general", "message": "after all that"})
    await expect(bubble(page, "after all that")).to_be_visible()
    await page.reload()  # a newcomer's history carries the room's moderation events
    await connected(page)
    await expect(page.locator(".notice", has_text="Alice banned Bob")).to_have_count(1)
    await expect(page.locator(".notice", has_text="Alice set the topic: be kinder")).to_have_count(1)
    await in_seq_order(
        page, "Carol set the topic: be kind", "rude words", "Alice banned Bob", "after all that"
    )
    await carol.close()


async def in_seq_order(page: Page, *texts: str) -> None:
    """The history's events sit among its messages by seq, as they happened, not after them all."""
    await expect(bubble(page, texts[-1])).to_be_visible()
    shown = await page.locator(".list:not([hidden]) .notice, .list:not([hidden]) .msg").all_inner_texts()
    at = [next(i for i, t in enumerate(shown) if text in t) for text in texts]
    assert at == sorted(at), shown


async def room_settings(page: Page, guest: Page) -> None:
    """The room's settings dialog: topic, lifting a ban, an invitation; not for a guest."""
    await page.keyboard.press("Escape")
    await page.click("#roomModBtn")
    dialog = page.locator("#modDlg")
    await expect(dialog.locator("#modTopic")).to_have_value("be kind")
    await page.fill("#modTopic", "be kinder")
    await dialog.get_by_role("button", name="Set topic").click()
    await expect(page.locator("#convTopic")).to_have_text("be kinder")
    await page.fill("#modLiftName", "Bob")
    await dialog.get_by_role("button", name="Unban").click()
    await expect(page.locator(".notice", has_text="Alice lifted the ban on Bob")).to_have_count(1)
    await page.fill("#modInviteName", "Carol")
    await dialog.get_by_role("button", name="Invite").click()
    await expect(page.locator(".notice", has_text="Alice invited Carol")).to_have_count(1)
    await page.click("#modClose")
    await expect(guest.locator("#roomModBtn")).to_be_hidden()  # not a moderator
