"""End-to-end encryption in the web page, in real headless Chromium against a real server: the
WebCrypto construction against PROTOCOL.md's test vector, interoperability with the terminal
client both ways (and with a second device of the account), the safety number identical on both
ends, a changed key flagged, a tampered message refused visibly, offline delivery, and the
notice on a page opened over plain http from a LAN name (no WebCrypto there)."""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from browser import CHROMIUM, CHROMIUM_ARGS, FIXTURES, Pages, connected, say, served
from cryptography.hazmat.primitives.asymmetric import ec
from e2eedevice import Device, answer
from playwright.async_api import Browser, Page, async_playwright, expect
from terminal import ENV, Term

from wschat import e2ee
from wschat.server import ChatServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
_, pages, servers, server, clients, processes = FIXTURES  # shared with the other browser tests

PASSWORD = "correct horse battery"
DOC = (Path(__file__).resolve().parent.parent / "PROTOCOL.md").read_text()
# This machine's name, as people on the LAN reach it (the server admits its own host names as
# origins); Chromium alone resolves it to 127.0.0.1. Plain http on it is not a secure origin.
LAN_NAME = socket.gethostname().lower()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the module, which also maps a LAN-like name to 127.0.0.1."""
    async with async_playwright() as pw:
        args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {LAN_NAME} 127.0.0.1"]
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=args, timeout=60_000)
        try:
            yield b
        finally:
            await b.close()


def jwk(scalar: int) -> dict[str, str]:
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    nums = key.private_numbers()

    def enc(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    pub = nums.public_numbers
    return {"kty": "EC", "crv": "P-256", "x": enc(pub.x), "y": enc(pub.y), "d": enc(nums.private_value)}


async def account(page: Page, port: int, mode: str, name: str, host: str = "127.0.0.1") -> None:
    await page.goto(f"http://{host}:{port}/")
    await page.check(f"#modeSet input[value='{mode}']")
    await page.fill("#nameInput", name)
    await page.fill("#passInput", PASSWORD)
    await page.click("#joinBtn")
    await connected(page)


async def open_dm(page: Page, name: str) -> None:
    await page.locator("#dmList .nav-item").filter(has_text=name).click()


def notices(page: Page, text: str) -> object:
    return page.locator(".list:not([hidden])").get_by_text(text)


async def test_the_page_matches_the_test_vector(pages: Pages, server: ChatServer) -> None:
    page = await pages.new()
    await page.goto(served(server.port))
    ct = re.search(r'"ct": "([^"]+)"', DOC[DOC.index("**Test vector.**") :])
    assert ct
    env = {
        "v": 1, "mid": "m-0001", "from_key": "3305755a247c19e4",
        "from_pub": e2ee.public_text(ec.derive_private_key(0x0A11CE, ec.SECP256R1())),
        "copies": {"2636bb0ae1f1163d": {"iv": "AQIDBAUGBwgJCgsM", "ct": ct.group(1)}},
    }  # fmt: skip
    got = await page.evaluate(
        """async ([alice, bob, env]) => {
          const E = window.wschatE2EE, a = await E.fromJwk(alice), b = await E.fromJwk(bob);
          const text = await E.decrypt(b, 'Alice', 'Bob', env);
          let tampered = '';
          try { await E.decrypt(b, 'Alice', 'Carol', env); } catch (e) { tampered = e.message; }
          const mine = await E.encrypt(a, 'Alice', 'Bob', 'm-2', 'round trip', [{ id: b.id, key: b.pub }]);
          return { text, tampered, ids: [a.id, b.id], mine, number: await E.safetyNumber([a.pub], [b.pub]) };
        }""",
        [jwk(0x0A11CE), jwk(0x0B0B), env],
    )
    assert got["text"] == "Hello, Bob! 🔒"
    assert got["tampered"] == "it was tampered with or is not for this conversation"
    assert got["ids"] == ["3305755a247c19e4", "2636bb0ae1f1163d"]
    bob = ec.derive_private_key(0x0B0B, ec.SECP256R1())
    assert e2ee.decrypt(bob, "Alice", "Bob", got["mine"]) == "round trip"  # the page's, read in Python
    assert got["number"] in DOC


async def second_device_and_offline(pages: Pages, page: Page, server: ChatServer) -> None:
    # Tom's second device (a test device) reads what the browser sends, and the browser flags
    # its key as a change, loudly, until it is accepted
    phone = await Device.login(server.port, "Tom", device="phone")
    assert (await phone.send("Bea", "from Tom's phone", "p1"))["type"] == "ack"
    await expect(page.locator("#e2eeBar")).to_contain_text(
        "Tom's keys changed: verify before you trust this conversation"
    )
    await expect(
        notices(page, "⚠ Tom's keys changed: verify before you trust this conversation.")
    ).to_be_visible()
    await say(page, "to both of Tom's devices")  # held: not sealed for a key not accepted
    held = """() => Object.keys(localStorage).filter((k) => k.startsWith('wschat.outbox:'))
                 .flatMap((k) => JSON.parse(localStorage[k])).filter((x) => x.blocked && !x.env).length"""
    await page.wait_for_function(f"({held})() === 1")
    await page.locator("#e2eeBar button", has_text="Accept new keys").click()
    await expect(page.locator("#e2eeBar")).not_to_contain_text("changed")
    got = await phone.client.expect("private", **{"from": "Bea"})
    assert phone.read(got) == "to both of Tom's devices"

    # refused visibly, never shown: a tampered copy
    env = await phone.envelope("Bea", "TAMPERED-TEXT", "m-t")
    for copy in env["copies"].values():
        copy["ct"] = e2ee.b64(bytes(b ^ 1 for b in e2ee.unb64(copy["ct"])))
    await phone.client.send({"type": "private", "to": "Bea", "client_msg_id": "p2", "e2ee": env})
    await answer(phone.client, "p2")
    await expect(
        notices(page, re.compile("A private message from Tom could not be decrypted"))
    ).to_be_visible()
    # ... a copy encrypted for another conversation (wrong associated data), and a replay
    targets = [*await phone.devices("Bea"), *await phone.devices("Tom")]
    wrong = e2ee.encrypt(phone.key, "Tom", "Carol", "m-w", "MISDIRECTED-TEXT", targets)
    await phone.client.send({"type": "private", "to": "Bea", "client_msg_id": "p4", "e2ee": wrong})
    await answer(phone.client, "p4")
    once = await phone.envelope("Bea", "said once", "m-once")
    for cmid in ("p5", "p6"):
        await phone.client.send({"type": "private", "to": "Bea", "client_msg_id": cmid, "e2ee": once})
        await answer(phone.client, cmid)
    await expect(
        notices(page, "⚠ Refused a replayed message from Tom: the same message was delivered before.")
    ).to_be_visible()
    await expect(notices(page, re.compile("from Tom could not be decrypted"))).to_have_count(2)
    await expect(page.locator(".list:not([hidden]) .msg .text").filter(has_text="said once")).to_have_count(1)
    content = await page.content()
    assert "TAMPERED-TEXT" not in content and "MISDIRECTED-TEXT" not in content

    # offline: the page goes away, Tom's phone writes, the same browser (its key in IndexedDB)
    # logs in again and reads it
    context = page.context
    await page.close()
    await phone.client.expect("user_leave", username="Bea", timeout=30)  # the server saw it go
    assert (await phone.send("Bea", "while you were away", "p3"))["type"] == "ack"
    back = await context.new_page()
    await account(back, server.port, "login", "Bea")
    await open_dm(back, "Tom")
    await expect(
        back.locator(".list:not([hidden]) .msg .text").filter(has_text="while you were away")
    ).to_be_visible()
    await phone.close()


async def test_terminal_and_browser_read_each_other_and_agree_on_the_safety_number(
    pages: Pages, server: ChatServer, tmp_path: Path
) -> None:
    page = await pages.new()
    await account(page, server.port, "register", "Bea")
    term = Term(
        f"127.0.0.1:{server.port}",
        "--register",
        "Tom",
        env={**ENV, "WSCHAT_SESSIONS": str(tmp_path / "s.json")},
    )
    try:
        await term.expect("Password for Tom: ")
        term.type(PASSWORD)
        await term.expect("The same password again: ")
        term.type(PASSWORD)
        await term.expect("#general> ")
        term.type("/msg Bea hello from the terminal")  # terminal -> browser
        await term.expect("🔒 private you → Bea: hello from the terminal")
        await open_dm(page, "Tom")
        bubble = page.locator(".list:not([hidden]) .msg").filter(has_text="hello from the terminal")
        await expect(bubble.locator(".e2ee-lock")).to_have_text("🔒")
        await expect(page.locator("#e2eeBar")).to_contain_text("End-to-end encrypted")
        extractable = await page.evaluate(
            """() => new Promise((ok) => { const r = indexedDB.open('wschat-e2ee');
                 r.onsuccess = () => { const all = r.result.transaction('keys').objectStore('keys').getAll();
                   all.onsuccess = () => ok(all.result.map((k) => k.privateKey.extractable)); }; })"""
        )
        assert extractable == [False]  # the device key: in IndexedDB, never exportable
        await say(page, "hello from the browser")  # browser -> terminal
        await term.expect("🔒 private Bea → you: hello from the browser")
        # the safety number: the page's dialog and the terminal's /safety say the same digits
        await page.locator("#e2eeBar button", has_text="Safety number").click()
        await expect(page.locator("#safetyNum")).to_have_text(re.compile(r"^(\d{5} ){11}\d{5}$"))
        number = (await page.locator("#safetyNum").text_content()) or ""
        term.type("/safety Bea")
        await term.expect(" ".join(number.split()[:6]))
        await term.expect(" ".join(number.split()[6:]))
        await page.click("#safetyVerify")
        await expect(page.locator("#e2eeBar")).to_contain_text("Tom is verified")
        term.type("/quit")
        assert await term.exit_status() == 0
    finally:
        term.kill()

    await second_device_and_offline(pages, page, server)


async def test_a_page_on_an_insecure_origin_says_encryption_needs_https(
    pages: Pages, server: ChatServer
) -> None:
    page = await pages.new()
    await account(page, server.port, "register", "Lan", host=LAN_NAME)
    assert await page.evaluate("window.isSecureContext") is False
    other = await Device.login(server.port, "Remy", "register")
    await other.client.send({"type": "private", "to": "Lan", "message": "hi in clear", "client_msg_id": "r1"})
    await open_dm(page, "Remy")
    notice = f"open https://{LAN_NAME}:{server.port}/ to use encrypted messages"
    await expect(page.locator("#e2eeBar")).to_contain_text(notice)
    await say(page, "sent in clear")
    got = await other.client.expect("private", **{"from": "Lan"})
    assert got["message"] == "sent in clear" and "e2ee" not in got
    await other.close()
