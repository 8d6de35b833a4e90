"""Accounts end to end on a real server: sign-up, log-in by password and by device token
(across a restart), log-out, sessions and revoking one, password change, registered names
refused to guests, the log-in limits, and no account enumeration (PROTOCOL.md, Accounts)."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path
from typing import Any

from support import Client, logged_in, start_server

PASSWORD = "correct horse battery"
PAIRS = 30  # tries of each kind in the no-enumeration test
LOGIN_WAIT = 60  # --login-wait: the first wait after too many failures (1 s by default)


async def account(port: int, kind: str, name: str, **fields: Any) -> tuple[Client, dict[str, Any]]:
    """A connection that sent `register` or `login`, and the first answer it got."""
    c = await Client.open(port)
    await c.send({"type": kind, "username": name, **fields})
    while True:
        frame = await c.recv()
        if frame["type"] in ("username_accepted", "username_error"):
            return c, frame


async def test_register_then_log_in_with_the_password_and_with_the_token(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    srv = await start_server(db=db)
    try:
        alice, accepted = await account(srv.port, "register", "Alice", password=PASSWORD, device="laptop")
        assert accepted["type"] == "username_accepted" and accepted["account"] is True
        token, first_id = accepted["session_token"], accepted["session_id"]
        assert len(token) >= 43 and first_id
        await alice.expect("history", room="general")
        await alice.close()
        again, frame = await account(srv.port, "login", "alice", password=PASSWORD, device="phone")
        assert frame["type"] == "username_accepted" and frame["username"] == "Alice"
        assert frame["session_token"] != token and frame["session_id"] != first_id
        await again.close()
    finally:
        await srv.stop()
    srv = await start_server(db=db)  # the token outlives the server
    try:
        back, frame = await account(srv.port, "login", "Alice", session_token=token)
        assert frame["type"] == "username_accepted" and frame["account"] is True
        assert frame["session_id"] == first_id and frame["session_token"] == token
        await back.send({"type": "sessions"})
        listing = (await back.expect("sessions"))["sessions"]
        assert {s["device"] for s in listing} == {"laptop", "phone"}
        assert [s["current"] for s in listing if s["id"] == first_id] == [True]
    finally:
        await srv.stop()


async def test_wrong_password_and_unknown_name_get_the_same_answer() -> None:
    srv = await start_server()
    try:
        await account(srv.port, "register", "Alice", password=PASSWORD)
        _, wrong = await account(srv.port, "login", "Alice", password="not the password")
        _, unknown = await account(srv.port, "login", "Nobody", password="not the password")
        assert wrong == unknown
        assert wrong["code"] == "bad_credentials" and wrong["message"] == "The name or the password is wrong."
        _, bad_token = await account(srv.port, "login", "Alice", session_token="x" * 43)
        assert bad_token["code"] == "bad_token"
    finally:
        await srv.stop()


async def test_a_guest_cannot_take_a_registered_name_nor_a_look_alike() -> None:
    srv = await start_server()
    try:
        alice, _ = await account(srv.port, "register", "Alice", password=PASSWORD)
        await alice.close()
        for name in ("alice", "AIice", "Аlice"):  # case, capital I, Cyrillic A
            _, refused = await account(srv.port, "set_username", name)
            assert refused["type"] == "username_error" and refused["code"] == "name_registered", name
        _, taken = await account(srv.port, "register", "ALICE", password=PASSWORD)
        assert taken["code"] == "name_registered"
        bob = await logged_in(srv.port, "Bob")  # other names stay first come, first served
        _, held = await account(srv.port, "register", "bob", password=PASSWORD)
        assert held["code"] == "name_taken"
        await bob.close()
        _, weak = await account(srv.port, "register", "Carol", password="short")
        assert weak["code"] == "weak_password"
    finally:
        await srv.stop()


async def test_logout_ends_the_device_session_and_revoke_ends_another() -> None:
    srv = await start_server()
    try:
        laptop, first = await account(srv.port, "register", "Alice", password=PASSWORD, device="laptop")
        await laptop.send({"type": "logout"})
        assert (await laptop.expect("logged_out"))["message"]
        await laptop.ws.wait_closed()
        assert laptop.ws.close_code == 1000
        _, ended = await account(srv.port, "login", "Alice", session_token=first["session_token"])
        assert ended["code"] == "bad_token"
        phone, second = await account(srv.port, "login", "Alice", password=PASSWORD, device="phone")
        await phone.close()
        desk, third = await account(srv.port, "login", "Alice", password=PASSWORD, device="desk")
        await desk.send({"type": "revoke_session", "id": second["session_id"]})
        assert (await desk.expect("session_revoked"))["id"] == second["session_id"]
        await desk.send({"type": "revoke_session", "id": second["session_id"]})
        assert (await desk.expect("error"))["code"] == "no_such_session"
        _, gone = await account(srv.port, "login", "Alice", session_token=second["session_token"])
        assert gone["code"] == "bad_token"
        await desk.send({"type": "revoke_session", "id": third["session_id"]})  # this very device
        await desk.ws.wait_closed()
        assert desk.ws.close_code == 4001
    finally:
        await srv.stop()


async def test_changing_the_password_ends_every_other_session() -> None:
    srv = await start_server()
    try:
        _, old = await account(srv.port, "register", "Alice", password=PASSWORD, device="old")
        c, current = await account(srv.port, "login", "Alice", password=PASSWORD, device="current")
        await c.send({"type": "change_password", "old": "wrong password", "new": "a new password"})
        assert (await c.expect("error"))["code"] == "bad_credentials"
        await c.send({"type": "change_password", "old": PASSWORD, "new": "a new password"})
        changed = await c.expect("password_changed")
        assert changed["sessions_ended"] == 1
        _, stale = await account(srv.port, "login", "Alice", session_token=old["session_token"])
        assert stale["code"] == "bad_token"
        _, by_old = await account(srv.port, "login", "Alice", password=PASSWORD)
        assert by_old["code"] == "bad_credentials"
        await c.close()
        _, ok = await account(srv.port, "login", "Alice", session_token=current["session_token"])
        assert ok["type"] == "username_accepted"
    finally:
        await srv.stop()


async def test_guest_requests_for_account_features_are_refused() -> None:
    srv = await start_server()
    try:
        guest = await logged_in(srv.port, "Guest")
        await guest.send({"type": "sessions"})
        assert (await guest.expect("error"))["code"] == "not_an_account"
        await guest.send({"type": "login", "username": "Guest", "password": PASSWORD})
        assert (await guest.expect("error"))["code"] == "already_logged_in"
        c = await Client.open(srv.port)
        await c.send({"type": "login", "username": "x", "password": "p", "session_token": "t"})
        assert (await c.expect("error"))["code"] == "bad_field"
    finally:
        await srv.stop()


async def test_failed_log_ins_wait_longer_and_longer_per_name() -> None:
    # The first wait outlasts the tries that must meet it, however slow the machine is.
    srv = await start_server("--login-wait", str(LOGIN_WAIT))
    try:
        await account(srv.port, "register", "Alice", password=PASSWORD)
        c = await Client.open(srv.port)
        codes = []
        for _ in range(8):
            await c.send({"type": "login", "username": "Alice", "password": "wrong password"})
            frame = await c.expect("username_error")
            codes.append(frame["code"])
            if frame["code"] == "rate_limited":
                assert LOGIN_WAIT / 2 < frame["retry_after"] <= LOGIN_WAIT and "wait" in frame["message"]
        assert codes[:5] == ["bad_credentials"] * 5 and codes[5] == "bad_credentials"
        assert codes[6:] == ["rate_limited"] * 2
        # the right password is refused too while the name waits: the wait is not a hint
        await c.send({"type": "login", "username": "Alice", "password": PASSWORD})
        assert (await c.expect("username_error"))["code"] == "rate_limited"
    finally:
        await srv.stop()


async def test_no_enumeration_unknown_name_and_wrong_password_take_as_long() -> None:
    """An unknown name costs a hash as a wrong password does: compared pair by pair.

    Each try of one kind is timed next to one of the other (in a random order within the pair),
    so both see the same load, and the median ratio of the pairs is compared. Load noise moves
    single tries, and both of a pair alike; it cannot move the median ratio far from 1. Skipping
    the dummy hash for unknown names (tried) puts it near 0.05: an unknown name then costs a
    round trip and a wrong password a hash (about 50 ms).
    """
    srv = await start_server("--control-burst", "1000", "--control-rate", "1000")
    try:
        # One address and one account make every attempt here: their allowances are reset
        # between tries, so that each try is a real verification (the limits have tests of
        # their own).
        c, _ = await account(srv.port, "register", "user", password=PASSWORD)
        await c.close()
        c = await Client.open(srv.port)

        async def timed(who: str) -> float:
            srv.hub.accounts.by_address.entries.clear()
            srv.hub.accounts.by_account.entries.clear()
            start = time.perf_counter()
            await c.send({"type": "login", "username": who, "password": "wrong password"})
            frame = await c.expect("username_error")
            assert frame["code"] == "bad_credentials"
            return time.perf_counter() - start

        order = random.Random(15)
        ratios = []
        for i in range(PAIRS):
            pair = {}
            for kind, who in order.sample([("wrong", "user"), ("unknown", f"ghost{i}")], 2):
                pair[kind] = await timed(who)
            ratios.append(pair["unknown"] / pair["wrong"])
        ratio = statistics.median(ratios)
        assert 0.5 < ratio < 2, (ratio, sorted(ratios))
    finally:
        await srv.stop()


async def test_a_flood_of_200_wrong_log_ins_is_limited_and_does_not_hold_up_the_chat() -> None:
    """200 wrong passwords at once from 20 connections: at most a few are hashed at a time and
    the rest refused at once; a chat message sent meanwhile is acknowledged while hashes are
    still outstanding (it does not queue behind them)."""
    srv = await start_server("--login-wait", str(LOGIN_WAIT))
    try:
        alice, _ = await account(srv.port, "register", "Alice", password=PASSWORD)
        bob = await logged_in(srv.port, "Bob")
        attackers = [await Client.open(srv.port) for _ in range(20)]
        arrivals: list[str] = []  # what reached the clients, in the order it arrived

        async def answers(c: Client) -> list[dict[str, Any]]:
            got = []
            for _ in range(10):
                got.append(await c.expect("username_error"))
                arrivals.append(got[-1]["code"])
            return got

        for c in attackers:
            for _ in range(10):
                await c.send({"type": "login", "username": "Alice", "password": "wrong password"})
        waiting = [asyncio.ensure_future(answers(c)) for c in attackers]
        await bob.chat("still here", client_msg_id="m1")
        await bob.expect("ack", client_msg_id="m1")
        arrivals.append("ack")
        got = [a for task in waiting for a in await task]
        codes = [a["code"] for a in got]
        assert codes.count("bad_credentials") <= 20 and codes.count("rate_limited") >= 180
        assert all(0 < a["retry_after"] <= LOGIN_WAIT for a in got if a["code"] == "rate_limited")
        last_hashed = max(i for i, code in enumerate(arrivals) if code == "bad_credentials")
        assert arrivals.index("ack") < last_hashed  # not queued behind the hashes
        await alice.chat("and me", client_msg_id="m2")  # the account's own connection is unaffected
        await alice.expect("ack", client_msg_id="m2")
    finally:
        await srv.stop()


async def test_accounts_required_refuses_guests_and_admits_accounts() -> None:
    srv = await start_server("--accounts", "required")
    try:
        _, refused = await account(srv.port, "set_username", "Guest")
        assert refused["code"] == "accounts_required" and "registered users only" in refused["message"]
        _, accepted = await account(srv.port, "register", "Alice", password=PASSWORD)
        assert accepted["type"] == "username_accepted" and accepted["account"] is True
    finally:
        await srv.stop()
