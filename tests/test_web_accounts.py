"""Accounts in the web page, in real headless Chromium against a real server: the log-in /
register / guest choice, "remember this device", the account dialog (devices, password, log
out), and stored private messages (waiting, delivered, paged back; a guest's not stored)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from browser import FIXTURES, Pages, bubble, connected, say, served
from playwright.async_api import Page, expect
from support import Client

from wschat.server import ChatServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests

PASSWORD = "correct horse battery"


async def account_page(
    page: Page, port: int, mode: str, name: str, password: str = PASSWORD, *, remember: bool = False
) -> None:
    await page.goto(served(port))
    await page.check(f"#modeSet input[value='{mode}']")
    await page.fill("#nameInput", name)
    await page.fill("#passInput", password)
    if remember:
        await page.check("#rememberBox")
    await page.click("#joinBtn")


async def python_account(port: int, kind: str, name: str, **fields: Any) -> tuple[Client, dict[str, Any]]:
    c = await Client.open(port)
    secret = {} if "session_token" in fields else {"password": PASSWORD}
    await c.send({"type": kind, "username": name, **secret, **fields})
    return c, await c.expect("username_accepted")


async def test_register_then_a_remembered_device_logs_in_without_the_password(
    pages: Pages, server: ChatServer
) -> None:
    page = await pages.new()
    await page.goto(served(server.port))
    await expect(page.locator("#passField")).to_be_hidden()  # a guest needs no password
    await account_page(page, server.port, "register", "Alice", remember=True)
    await connected(page)
    await expect(page.locator("#accountBtn")).to_be_visible()
    stored = await page.evaluate("JSON.stringify(localStorage)")
    assert PASSWORD not in stored and "wschat.account:" in stored  # the token, never the password
    await page.reload()  # the tab goes back in as the account
    await connected(page)
    await expect(page.locator("#meName")).to_have_text("Alice")
    other = await page.context.new_page()  # another tab of the same browser: remembered
    await other.goto(served(server.port))
    await expect(other.locator("#joinNote")).to_have_text(
        "This device is remembered for Alice: no password needed."
    )
    await expect(other.locator("#passField")).to_be_hidden()
    await other.click("#joinBtn")
    await connected(other)


async def test_a_wrong_password_and_a_guest_taking_a_registered_name_are_explained(
    pages: Pages, server: ChatServer
) -> None:
    bob, _ = await python_account(server.port, "register", "Bob")
    await bob.close()
    page = await pages.new()
    await account_page(page, server.port, "login", "Bob", "not the password")
    await expect(page.locator("#passError")).to_have_text("The name or the password is wrong.")
    await expect(page.locator("#passInput")).to_be_focused()
    await page.check("#modeSet input[value='guest']")
    await page.fill("#nameInput", "bob")
    await page.click("#joinBtn")
    await expect(page.locator("#nameError")).to_contain_text("is a registered name")
    await page.check("#modeSet input[value='register']")
    await page.fill("#nameInput", "Carol")
    await page.fill("#passInput", "short")
    await page.click("#joinBtn")
    await expect(page.locator("#passError")).to_have_text("Choose a password of at least 8 characters.")


async def test_the_account_dialog_lists_devices_logs_one_out_changes_the_password_and_logs_out(
    pages: Pages, server: ChatServer
) -> None:
    page = await pages.new()
    await account_page(page, server.port, "register", "Dana", remember=True)
    await connected(page)
    phone, _ = await python_account(server.port, "login", "Dana", device="phone")  # both online
    await page.click("#accountBtn")
    dialog = page.locator("#accountDlg")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".sessions li")).to_have_count(2)
    await expect(dialog.locator(".sessions li").filter(has_text="this device")).to_have_count(1)
    await dialog.get_by_role("button", name="Log out phone").click()
    await expect(dialog.locator(".sessions li")).to_have_count(1)
    await asyncio.wait_for(phone.ws.wait_closed(), 10)  # the phone, online, is logged out at once
    assert phone.ws.close_code == 4001
    await connected(page)
    await page.fill("#oldPass", "wrong password")
    await page.fill("#newPass", "a brand new password")
    await dialog.get_by_role("button", name="Change password").click()
    await expect(page.locator("#pwError")).to_have_text("The current password is wrong; nothing was changed.")
    await page.fill("#oldPass", PASSWORD)
    await page.fill("#newPass", "a brand new password")
    await dialog.get_by_role("button", name="Change password").click()
    await expect(page.locator("#pwDone")).to_contain_text("Your password is changed")
    await page.click("#logoutBtn")
    await expect(page.locator("#joinView")).to_be_visible()
    await expect(page.locator("#joinNote")).to_have_text("You are logged out on this device.")
    assert "wschat.account:" not in await page.evaluate("JSON.stringify(localStorage)")
    await expect(page.locator("#passField")).to_be_visible()  # no longer remembered


async def test_private_messages_wait_for_an_offline_account_with_unread_counts_and_delivered_marks(
    pages: Pages, server: ChatServer
) -> None:
    erin, erin_login = await python_account(server.port, "register", "Erin")
    await erin.close()
    page = await pages.new()
    await account_page(page, server.port, "register", "Frank")
    await connected(page)
    await page.click("#signOutBtn")  # Frank goes offline
    await expect(page.locator("#joinView")).to_be_visible()
    erin, _ = await python_account(server.port, "login", "Erin", session_token=erin_login["session_token"])
    for i in range(3):
        await erin.send(
            {"type": "private", "to": "Frank", "message": f"while away {i}", "client_msg_id": f"e{i}"}
        )
        await erin.expect("ack", client_msg_id=f"e{i}")
    await account_page(page, server.port, "login", "Frank")
    await connected(page)
    dm = page.locator("#dmList .nav-item").filter(has_text="Erin")
    await expect(dm.locator(".badge")).to_have_text("3")
    told = [await erin.expect("delivered") for _ in range(3)]
    assert [d["seq"] for d in told] == [1, 2, 3]
    await dm.click()
    await expect(bubble(page, "while away 2")).to_be_visible()
    await erin.close()
    await say(page, "got them, thanks")  # Erin is offline now: stored, then delivered later
    await expect(bubble(page, "got them, thanks").locator(".mark")).to_have_text("✓")
    erin, _ = await python_account(server.port, "login", "Erin", session_token=erin_login["session_token"])
    assert (await erin.expect("private"))["message"] == "got them, thanks"
    await expect(bubble(page, "got them, thanks").locator(".mark")).to_have_text("✓✓ Delivered")
    await erin.close()


async def test_a_guests_private_messages_are_said_to_be_unstored(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    gus = await clients(server.port, "Gus")
    page = await pages.new()
    await page.goto(served(server.port))
    await page.fill("#nameInput", "Hal")
    await page.press("#nameInput", "Enter")
    await connected(page)
    await page.evaluate("() => 0")
    await page.locator("#usersBtn").click()
    await page.locator("#usersList button").filter(has_text="Gus").click()
    await say(page, "psst")
    await gus.expect("private", message="psst")
    await expect(page.locator(".list:not([hidden]) .notice")).to_contain_text(
        ["Not stored (you are a guest): these private messages reach Gus only while online."]
    )


async def test_a_stored_conversation_opens_on_a_new_device_and_pages_back(
    pages: Pages, server: ChatServer
) -> None:
    ivy, _ = await python_account(server.port, "register", "Ivy", rooms=["general"])
    jay, _ = await python_account(server.port, "register", "Jay")
    for i in range(60):
        await ivy.send({"type": "private", "to": "Jay", "message": f"note {i}", "client_msg_id": f"i{i}"})
    for i in range(60):
        await ivy.expect("ack", client_msg_id=f"i{i}")
    await jay.close()
    page = await pages.new()  # a device Jay has never used: the past is paged, not pushed
    await account_page(page, server.port, "login", "Jay")
    await connected(page)
    await page.locator("#usersBtn").click()
    await page.locator("#usersList button").filter(has_text="Ivy").click()
    await expect(bubble(page, "note 59")).to_be_visible()
    await expect(bubble(page, "note 9")).to_have_count(0)
    await page.locator(".list:not([hidden])").get_by_role("button", name="Load earlier messages").click()
    await expect(bubble(page, "note 0")).to_have_count(1)
    await expect(page.locator(".list:not([hidden]) .msg")).to_have_count(60)
    await ivy.close()


async def test_a_server_for_accounts_only_turns_a_guest_to_the_log_in(
    pages: Pages, servers: Callable[..., Any]
) -> None:
    srv = await servers("--accounts", "required")
    page = await pages.new()
    await page.goto(served(srv.port))
    await page.fill("#nameInput", "Kim")
    await page.press("#nameInput", "Enter")
    await expect(page.locator("#nameError")).to_have_text(
        "This server is for registered users only: log in or register."
    )
    await expect(page.locator("#modeSet input[value='login']")).to_be_checked()
    await expect(page.locator("#passField")).to_be_visible()


async def test_the_page_stays_online_beside_another_device_of_its_account(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    kim = await clients(server.port, "Kim")
    page = await pages.new()
    await account_page(page, server.port, "register", "Lou")
    await connected(page)
    phone, _ = await python_account(server.port, "login", "Lou", device="phone")  # not a takeover
    await phone.send({"type": "join", "room": "porch"})
    await phone.expect("history", room="porch")
    await expect(page.locator("#roomList .nav-item").filter(has_text="porch")).to_be_visible()
    await phone.send({"type": "private", "to": "Kim", "message": "sent from the phone"})
    await kim.expect("private", message="sent from the phone")
    await page.locator("#dmList .nav-item").filter(has_text="Kim").click()
    await expect(bubble(page, "sent from the phone")).to_be_visible()
    await phone.send({"type": "leave", "room": "porch"})
    await expect(page.locator("#roomList .nav-item").filter(has_text="porch")).to_have_count(0)
    await connected(page)
    await phone.close()


async def test_profiles_in_the_online_list_the_profile_dialog_and_away_when_idle(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    kim = await clients(server.port, "Kim")
    await kim.send({"type": "set_profile", "status": "at lunch", "presence": "away"})
    await kim.expect("profile", username="Kim")
    page = await pages.new()
    await page.clock.install()  # time flows; the idle wait below is fast-forwarded
    await account_page(page, server.port, "register", "Pam")
    await connected(page)
    await page.locator("#usersBtn").click()
    kim_row = page.locator("#usersList .user-item").filter(has_text="Kim")
    await expect(kim_row.locator(".presence")).to_have_text("away")
    await expect(kim_row.locator(".ustatus")).to_have_text("at lunch")
    await page.get_by_role("button", name="Profile of Kim").click()
    dialog = page.locator("#profileDlg")
    await expect(dialog.locator("#profileName")).to_have_text("Kim")
    await expect(dialog.locator("#profilePresence")).to_have_text("Away · guest")
    await expect(dialog.locator("#profileForm")).to_be_hidden()  # someone else's: not editable
    await page.click("#profileClose")
    await page.click("#profileBtn")  # our own: editable
    await expect(dialog.locator("#profileName")).to_have_text("Pam")
    await page.fill("#statusInput", "writing tests")
    await page.select_option("#presenceSel", "busy")
    await page.select_option("#awaySel", "60")
    await dialog.get_by_role("button", name="Save").click()
    told = await kim.expect("profile", username="Pam")
    assert (told["presence"], told["status"]) == ("busy", "writing tests")
    await expect(page.locator("#meState")).to_have_text("busy · writing tests")
    await page.click("#profileBtn")
    await page.select_option("#presenceSel", "online")
    await dialog.get_by_role("button", name="Save").click()
    assert (await kim.expect("profile", username="Pam"))["presence"] == "online"
    # idle: 35 s, a message arrives (the connection is alive, Pam is not active), 30 s more
    await page.clock.fast_forward(35_000)
    await kim.send({"type": "chat", "room": "general", "message": "anyone there?"})
    await expect(bubble(page, "anyone there?")).to_be_visible()
    await page.clock.fast_forward(30_000)
    assert (await kim.expect("profile", username="Pam"))["presence"] == "away"
    await page.keyboard.press("Shift")  # back
    assert (await kim.expect("profile", username="Pam"))["presence"] == "online"
    await connected(page)


async def test_an_uploaded_avatar_is_chosen_in_the_profile_dialog_and_shown_beside_messages(
    pages: Pages, server: ChatServer, clients: Callable[..., Any]
) -> None:
    from test_files_e2e import png, upload

    kim = await clients(server.port, "Kim")
    ada, _ = await python_account(server.port, "register", "Ada")
    page = await pages.new()
    await account_page(page, server.port, "register", "Zed")
    await connected(page)
    await page.click("#profileBtn")  # our own: choose an image, it is uploaded then set
    await page.set_input_files(
        "#avatarInput", files=[{"name": "me.png", "mimeType": "image/png", "buffer": png()}]
    )
    told = await kim.expect("profile", username="Zed")
    assert told["avatar"]["url"].startswith("/media/") and told["avatar"]["url"].endswith("/thumb")
    await expect(page.locator("#profileAvatar img")).to_have_count(1)
    await expect(page.locator("#meAvatar img")).to_have_count(1)
    await page.click("#profileClose")
    done = await upload(ada, "ada.png", png(20, 20), **{"for": "avatar"})
    await ada.send({"type": "set_profile", "avatar": done["file"]["id"]})
    await ada.send({"type": "chat", "room": "general", "message": "my face"})
    row = page.locator(".msg").filter(has_text="my face")
    await expect(row.locator(".avatar img")).to_have_attribute(
        "src", f"http://127.0.0.1:{server.port}{done['file']['thumb_url']}"
    )
    await expect(bubble(page, "my face")).to_be_visible()
    kim_row = page.locator(".msg").filter(has_text="plain")
    await kim.send({"type": "chat", "room": "general", "message": "plain"})
    await expect(kim_row.locator(".avatar")).to_have_text("K")  # no image: the initials
    await expect(kim_row.locator(".avatar img")).to_have_count(0)
    await page.locator("#usersBtn").click()
    ada_item = page.locator("#usersList .user-item").filter(has_text="Ada")
    await expect(ada_item.locator(".avatar img")).to_have_count(1)
    await ada.close()
