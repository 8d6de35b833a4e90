"""Accounts under --redis hold on every process: real processes on a real redis-server.

A registration on one process is a registered name on the other; a device token made on one
logs in on the other; a session revoked on one is gone on the other; a private message stored
for an offline account on one is delivered at its log-in on the other; a kick or a ban given on
one takes the user out on the other, and a ban refuses them there. A host that grows
from SQLite to Redis brings its accounts, device sessions and stored private messages along.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redisserver import RedisServer
from support import Client, ServerProcess, start_server
from test_accounts_e2e import PASSWORD, account
from test_moderation_e2e import admin, answer, closed_with

pytestmark = pytest.mark.slow


def two(redis_server: RedisServer, *extra: str) -> tuple[ServerProcess, ServerProcess]:
    args = ("--redis", redis_server.url, *extra)
    a, b = ServerProcess(*args), ServerProcess(*args)  # both start at once
    return a.wait_ready(), b.wait_ready()


async def known_as_registered(port: int, name: str) -> None:
    """Until the process at `port` refuses `name` to a guest as registered: it has had the news
    of the registration (pub/sub, a moment after the registration is answered elsewhere)."""
    for _ in range(100):
        guest, answer = await account(port, "set_username", name)
        await guest.close()
        if answer.get("code") == "name_registered":
            return
        await asyncio.sleep(0.05)  # a retry's pace; the answer is the event
    raise AssertionError(f"{name} never known as registered on port {port}")


async def test_accounts_sessions_and_stored_private_messages_hold_on_every_process(
    redis_server: RedisServer,
) -> None:
    a, b = two(redis_server)
    try:
        alice, made = await account(a.port, "register", "Alice", password=PASSWORD, device="laptop")
        assert made["type"] == "username_accepted", made
        laptop_token, laptop_id = made["session_token"], made["session_id"]
        await alice.expect("history", room="general")
        bob, bob_made = await account(b.port, "register", "Bob", password=PASSWORD, device="desk")
        bob_token = bob_made["session_token"]
        await bob.close()
        await known_as_registered(a.port, "bob")

        # Alice's private message to Bob (offline) is stored on a; Bob gets it on b.
        await alice.send({"type": "private", "to": "Bob", "message": "see you at 5", "client_msg_id": "p1"})
        ack = await alice.expect("ack", client_msg_id="p1")
        assert ack.get("stored") is True, ack
        bob, frame = await account(b.port, "login", "bob", session_token=bob_token)
        assert frame["type"] == "username_accepted", frame
        got = await bob.expect("private", offline=True)
        assert (got["from"], got["message"]) == ("Alice", "see you at 5")
        # Bob online on b: the next one reaches him at once, and Alice (on a) is told.
        await alice.send({"type": "private", "to": "Bob", "message": "are you there?", "client_msg_id": "p2"})
        got = await bob.expect("private", message="are you there?")
        assert not got.get("offline")
        await alice.expect("delivered", id=got["id"])
        await alice.close()
        await bob.close()

        # The name Alice registered on a is refused to a guest on b (and its look-alikes).
        for name in ("alice", "AIice"):
            guest, refused = await account(b.port, "set_username", name)
            assert refused["type"] == "username_error" and refused["code"] == "name_registered", name
            await guest.close()

        # Her laptop's token (made on a) logs in on b; a phone logs in there with the password.
        laptop, frame = await account(b.port, "login", "Alice", session_token=laptop_token)
        assert frame["type"] == "username_accepted" and frame["session_id"] == laptop_id, frame
        await laptop.close()
        phone, frame = await account(b.port, "login", "alice", password=PASSWORD, device="phone")
        assert frame["type"] == "username_accepted", frame
        await phone.send({"type": "sessions"})
        listing = (await phone.expect("sessions"))["sessions"]
        assert {s["device"] for s in listing} == {"laptop", "phone"}

        # The phone (on b) revokes the laptop: its token no longer logs in on a.
        await phone.send({"type": "revoke_session", "id": laptop_id})
        await phone.expect("session_revoked")
        await phone.close()
        _, refused = await account(a.port, "login", "Alice", session_token=laptop_token)
        assert refused["type"] == "username_error" and refused["code"] == "bad_token", refused
    finally:
        await asyncio.gather(a.astop(), b.astop())


async def until_logged_in(port: int, name: str, clients: list[Client]) -> Client:
    """Log in as `name`, again while refused as banned: the command line's news and the
    process reading moderation race the log-in by a few milliseconds (never a poll's 60 s)."""
    for _ in range(50):
        c = await Client.open(port)
        clients.append(c)
        await c.send({"type": "login", "username": name, "password": PASSWORD})
        got = await answer(c, "username_accepted", "username_error")
        if got["type"] == "username_accepted":
            return c
        assert got["code"] == "banned"
    raise AssertionError(f"{name} still banned")


async def test_a_ban_given_on_one_process_closes_and_refuses_the_user_on_the_other(
    redis_server: RedisServer,
) -> None:
    # moderation re-read only every minute: what happens here happens at once, not by the poll
    a, b = two(redis_server, "--admin", "Op", "--admin-poll", "60")
    clients: list[Client] = []
    try:
        op, made = await account(a.port, "register", "Op", password=PASSWORD)
        assert made["type"] == "username_accepted", made
        troll, made = await account(b.port, "register", "Troll", password=PASSWORD)
        assert made["type"] == "username_accepted", made
        clients += [op, troll]
        # A kick given on a takes Troll (on b) out of the room, then off the server.
        await op.send({"type": "kick", "username": "Troll", "room": "general", "reason": "calm down"})
        told = await troll.expect("moderation", action="kick")
        assert (told["by"], told["reason"]) == ("Op", "calm down")
        await troll.expect("left", room="general")
        await op.expect("moderation", action="kick", room="general")  # the room's event, on a
        await op.send({"type": "kick", "username": "Troll", "reason": "out"})
        assert await closed_with(troll) == 4002  # CLOSE_KICKED
        troll, made = await account(b.port, "login", "Troll", password=PASSWORD)
        assert made["type"] == "username_accepted", made  # a kick is not a ban
        clients.append(troll)
        await op.send({"type": "ban", "username": "Troll", "reason": "spam"})
        await op.expect("moderation", action="ban")
        assert await closed_with(troll) == 4003  # on b, at once (RemoteKick)
        again = await Client.open(a.port)
        clients.append(again)
        await again.send({"type": "login", "username": "Troll", "password": PASSWORD})
        refused = await answer(again, "username_accepted", "username_error")
        assert refused["code"] == "banned" and "spam" in refused["message"]
        elsewhere = await Client.open(b.port)
        clients.append(elsewhere)
        await elsewhere.send({"type": "login", "username": "Troll", "password": PASSWORD})
        refused = await answer(elsewhere, "username_accepted", "username_error")
        assert refused["code"] == "banned"

        # The host's admin command line works on the cluster's Redis.
        listing = await admin("unused.db", "--redis", redis_server.url, "accounts")
        assert "Op" in listing and "operator" in listing and "banned" in listing.splitlines()[1], listing
        await admin("unused.db", "--redis", redis_server.url, "unban", "Troll")
        back = await until_logged_in(b.port, "Troll", clients)  # b read it at once (wschat:news)
        await admin("unused.db", "--redis", redis_server.url, "ban", "Troll")
        assert await closed_with(back) == 4003  # the command line's ban closes it at once too
        await admin("unused.db", "--redis", redis_server.url, "unban", "Troll")
        back = await until_logged_in(b.port, "Troll", clients)
        # A password reset on the host closes the account's connection on b at once.
        await admin(
            "unused.db", "--redis", redis_server.url, "reset-password", "Troll", stdin="a brand new secret\n"
        )
        assert await closed_with(back) == 4001  # CLOSE_SESSION_ENDED
    finally:
        for c in clients:
            await c.close()
        await asyncio.gather(a.astop(), b.astop())


async def test_accounts_of_a_host_that_grows_to_redis_come_along(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    db = str(tmp_path / "chat.db")
    alone = await start_server("--admin", "Alice", db=db)
    try:
        alice, made = await account(alone.port, "register", "Alice", password=PASSWORD, device="laptop")
        token, session_id = made["session_token"], made["session_id"]
        bob, _ = await account(alone.port, "register", "Bob", password=PASSWORD)
        await bob.close()
        eve, _ = await account(alone.port, "register", "Eve", password=PASSWORD)
        await eve.close()
        await admin(db, "ban", "Eve", "--reason", "spam")  # moderation comes along too
        await alice.send({"type": "private", "to": "Bob", "message": "kept", "client_msg_id": "k1"})
        assert (await alice.expect("ack", client_msg_id="k1")).get("stored") is True
        await alice.close()
    finally:
        await alone.stop()
    grown = ServerProcess("--redis", redis_server.url, db=db).wait_ready()
    try:
        back, frame = await account(grown.port, "login", "Alice", session_token=token)
        assert frame["type"] == "username_accepted" and frame["session_id"] == session_id, frame
        # a private message resent after the move is recognised: acknowledged, not stored again
        await back.send({"type": "private", "to": "Bob", "message": "kept", "client_msg_id": "k1"})
        assert (await back.expect("ack", client_msg_id="k1")).get("duplicate") is True
        await back.close()
        bob, frame = await account(grown.port, "login", "Bob", password=PASSWORD)
        assert frame["type"] == "username_accepted", frame
        assert (await bob.expect("private", offline=True))["message"] == "kept"
        await bob.close()
        _, refused = await account(grown.port, "set_username", "alice")
        assert refused["code"] == "name_registered"
        _, refused = await account(grown.port, "login", "Eve", password=PASSWORD)
        assert refused["code"] == "banned" and "spam" in refused["message"]
    finally:
        await grown.astop()
