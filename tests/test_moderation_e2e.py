"""Moderation end to end on a real server: kick, mute and its expiry, a ban that survives a
reconnect, a restart and a new guest name, an invite-only room invisible to outsiders, topics,
a moderator's delete, refusals of non-moderators, and the host's admin command line working on
the database of a running server (PROTOCOL.md, Moderation)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from support import ROOT, TIMEOUT, Client, start_server

PASSWORD = "correct horse battery"
ADMIN_POLL = "0.2"  # --admin-poll: how soon a server sees what the admin command line did


async def account(port: int, name: str, kind: str = "register", **fields: Any) -> Client:
    c = await Client.open(port)
    await c.send({"type": kind, "username": name, "password": PASSWORD, **fields})
    got = await answer(c, "username_accepted", "username_error")
    assert got["type"] == "username_accepted", got
    await c.expect("history", room="general")
    return c


async def answer(c: Client, *types: str) -> dict[str, Any]:
    """The next frame of one of `types` (frames of other types are dropped)."""
    while True:
        frame = await c.recv()
        if frame["type"] in types:
            return frame


async def enter(c: Client, room: str) -> dict[str, Any]:
    await c.send({"type": "join", "room": room})
    return await c.expect("room_info", room=room)


async def closed_with(c: Client) -> int | None:
    await asyncio.wait_for(c.ws.wait_closed(), TIMEOUT)
    return c.ws.close_code


async def test_a_rooms_creator_kicks_and_a_non_moderator_is_refused() -> None:
    srv = await start_server()
    try:
        op = await account(srv.port, "Op")  # the first account: the operator
        carol = await account(srv.port, "Carol")
        bob = await account(srv.port, "Bob")
        info = await enter(carol, "den")
        assert info["creator"] == "Carol" and info["moderator"] is True
        assert (await enter(bob, "den"))["moderator"] is False
        await bob.send({"type": "kick", "room": "den", "username": "Carol"})
        refused = await bob.expect("error")
        assert refused["code"] == "not_moderator" and "creator" in refused["message"]
        await carol.send({"type": "kick", "room": "den", "username": "Op"})
        assert (await carol.expect("error"))["code"] == "not_moderator"  # a creator cannot kick an operator
        await carol.send({"type": "kick", "room": "den", "username": "Bob", "reason": "cool off"})
        told = await bob.expect("moderation", action="kick")
        assert told["by"] == "Carol" and told["reason"] == "cool off" and told["room"] == "den"
        await bob.expect("left", room="den")
        event = await carol.expect("moderation", action="kick", room="den")
        assert event["username"] == "Bob" and event["by"] == "Carol" and event["seq"] >= 1
        await enter(bob, "den")  # a kick is not a ban
        await op.send({"type": "kick", "username": "Bob"})  # off the server: an operator
        assert (await bob.expect("moderation", action="kick"))["by"] == "Op"
        assert await closed_with(bob) == 4002
    finally:
        await srv.stop()


async def carol_and_bob_in_den(port: int) -> tuple[Client, Client]:
    """Op (the first account: the operator), then Carol, who creates #den, and Bob, who joins it."""
    await account(port, "Op")
    carol = await account(port, "Carol")
    bob = await account(port, "Bob")
    await enter(carol, "den")
    await enter(bob, "den")
    return carol, bob


async def test_a_mute_refuses_chat_until_it_runs_out() -> None:
    srv = await start_server()
    try:
        carol, bob = await carol_and_bob_in_den(srv.port)
        await carol.send({"type": "mute", "room": "den", "username": "Bob", "seconds": 1})
        muted = await bob.expect("moderation", action="mute", room="den")
        assert muted["by"] == "Carol" and muted["until"]
        await bob.chat("let me speak", room="den", client_msg_id="m1")
        refused = await bob.expect("error", code="muted")
        assert refused["client_msg_id"] == "m1" and refused["retry_after"] >= 1
        await bob.chat("in general I may", room="general")
        await bob.expect("chat", room="general", username="Bob")
        ended = await bob.expect("moderation", action="unmute", room="den", timeout=TIMEOUT)
        assert ended["by"] == "Server" and ended["username"] == "Bob"
        await bob.chat("back again", room="den")
        assert (await carol.expect("chat", room="den"))["message"] == "back again"
    finally:
        await srv.stop()


async def test_a_guest_ban_survives_reconnect_restart_and_a_new_guest_name(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    srv = await start_server(db=db)
    try:
        op = await account(srv.port, "Op")
        troll = await Client.open(srv.port)
        await troll.login("Troll")
        await op.send({"type": "ban", "username": "Troll", "reason": "spam"})
        told = await troll.expect("moderation", action="ban")
        assert told["reason"] == "spam" and told["by"] == "Op"
        assert await closed_with(troll) == 4003
        again = await Client.open(srv.port)
        await again.send({"type": "set_username", "username": "Troll"})
        assert (await answer(again, "username_accepted", "username_error"))["code"] == "banned"
    finally:
        await srv.stop()
    srv = await start_server(db=db)
    try:
        other = await Client.open(srv.port)
        await other.send({"type": "set_username", "username": "NiceNewName"})
        refused = await answer(other, "username_accepted", "username_error")
        assert refused["code"] == "banned" and "spam" in refused["message"] and "Op" in refused["message"]
        op = await account(srv.port, "Op", "login")  # accounts from the address are not guests
        await op.send({"type": "unban", "username": "Troll"})
        await op.expect("moderation", action="unban")
        guest = await Client.open(srv.port)
        await guest.login("NiceNewName")
    finally:
        await srv.stop()


async def test_an_invite_only_room_is_invisible_to_outsiders() -> None:
    srv = await start_server()
    try:
        await account(srv.port, "Op")
        carol = await account(srv.port, "Carol")
        bob = await account(srv.port, "Bob")
        await enter(carol, "secret")
        await carol.chat("plans", room="secret")
        await carol.send({"type": "set_invite_only", "room": "secret", "invite_only": True})
        await carol.expect("moderation", action="invite_only", invite_only=True)
        await carol.send({"type": "set_topic", "room": "secret", "topic": "the plans"})
        await carol.expect("moderation", action="topic", topic="the plans")
        await bob.send({"type": "list_rooms"})
        assert "secret" not in {r["name"] for r in (await bob.expect("rooms"))["rooms"]}
        await carol.send({"type": "list_rooms"})
        assert "secret" in {r["name"] for r in (await carol.expect("rooms"))["rooms"]}
        await bob.send({"type": "get_users", "room": "secret"})
        assert (await bob.expect("error"))["code"] == "no_such_room"
        await bob.send({"type": "join", "room": "secret"})
        assert (await bob.expect("error"))["code"] == "invite_only"
        await bob.send({"type": "invite", "room": "secret", "username": "Bob"})
        assert (await bob.expect("error"))["code"] == "not_in_room"
        await carol.send({"type": "invite", "room": "secret", "username": "Bob"})
        assert (await bob.expect("moderation", action="invite"))["room"] == "secret"
        info = await enter(bob, "secret")
        assert info["topic"] == "the plans" and info["invite_only"] is True and info["moderator"] is False
    finally:
        await srv.stop()


async def test_a_moderator_deletes_anyones_message_in_their_room() -> None:
    srv = await start_server()
    try:
        carol, bob = await carol_and_bob_in_den(srv.port)
        await carol.chat("mine", room="den")
        mine = (await bob.expect("chat", message="mine"))["seq"]
        await bob.chat("rude", room="den")
        rude = (await carol.expect("chat", message="rude"))["seq"]
        await bob.send({"type": "delete", "room": "den", "target": mine})
        assert (await bob.expect("error"))["code"] == "not_allowed"
        await carol.send({"type": "delete", "room": "den", "target": rude})
        deleted = await bob.expect("delete", room="den")
        assert deleted["target"] == rude and deleted["username"] == "Carol"
    finally:
        await srv.stop()


async def admin(db: str, *args: str, stdin: str = "") -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "chat-server.py"), "admin", "--db", db, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), TIMEOUT * 3)
    assert proc.returncode == 0, out
    return out.decode()


async def test_the_admin_command_line_works_on_a_running_servers_database(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    srv = await start_server("--admin-poll", ADMIN_POLL, db=db)
    try:
        op = await account(srv.port, "Op")
        bob = await account(srv.port, "Bob")
        listing = await admin(db, "accounts")
        assert "Op" in listing and "operator" in listing.splitlines()[0] and "Bob" in listing
        await admin(db, "ban", "Bob", "--reason", "from the host")
        assert await closed_with(bob) == 4003  # the server re-read the bans
        c = await Client.open(srv.port)
        await c.send({"type": "login", "username": "Bob", "password": PASSWORD})
        assert "from the host" in (await answer(c, "username_accepted", "username_error"))["message"]
        assert "ban" in await admin(db, "bans")
        await admin(db, "unban", "Bob")
        for _ in range(100):  # until the server has re-read the bans (every --admin-poll)
            bob = await Client.open(srv.port)
            await bob.send({"type": "login", "username": "Bob", "password": PASSWORD})
            got = await answer(bob, "username_accepted", "username_error")
            if got["type"] == "username_accepted":
                break
            await bob.close()
            assert got["code"] == "banned"
            await asyncio.sleep(0.1)  # polling for the re-read; the answer is the event
        assert got["type"] == "username_accepted"
        await admin(db, "reset-password", "Bob", stdin="a brand new secret\n")
        assert await closed_with(bob) == 4001  # the server noticed the reset (every --admin-poll)
        c = await account(srv.port, "Bob", "login", password="a brand new secret")
        await c.close()
        audit = await admin(db, "audit")
        assert "ban" in audit and "unban" in audit and "admin (host)" in audit
        await admin(db, "revoke", "Op")
        for _ in range(100):
            await op.send({"type": "kick", "username": "Bob"})
            got = await answer(op, "error")
            if got["code"] == "not_moderator":
                break
            await asyncio.sleep(0.1)
        assert got["code"] == "not_moderator"
    finally:
        await srv.stop()
