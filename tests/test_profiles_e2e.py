"""Profiles on a real server with a SQLite file: a status set, pushed to the room, kept across a
restart for an account; "last seen" once its last device is gone; `whois` (PROTOCOL.md, Profiles)."""

from __future__ import annotations

from pathlib import Path

from support import Client, logged_in, start_server

PASSWORD = "correct horse battery"


async def alice(port: int, **fields: str) -> tuple[Client, dict]:
    c = await Client.open(port)
    kind = "login" if "session_token" in fields else "register"
    await c.send({"type": kind, "username": "Alice", **fields})
    accepted = await c.expect("username_accepted")
    await c.expect("history", room="general")
    return c, accepted


async def test_status_presence_last_seen_and_whois_across_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    srv = await start_server(db=db)
    try:
        bob = await logged_in(srv.port, "Bob")
        laptop, accepted = await alice(srv.port, password=PASSWORD)
        await laptop.send({"type": "set_profile", "status": "on a train", "presence": "busy"})
        told = await bob.expect("profile", username="Alice")
        assert (told["status"], told["presence"], told["online"]) == ("on a train", "busy", True)
        assert told["avatar"]["initials"] == "A" and told["avatar"]["colour"].startswith("#")
        await laptop.send({"type": "set_profile", "status": "x" * 101})
        assert (await laptop.expect("error"))["code"] == "too_long"
        carol = await Client.open(srv.port)
        await carol.send({"type": "set_username", "username": "Carol"})
        cards = await carol.expect("profiles", room="general")
        assert cards["profiles"]["Alice"]["presence"] == "busy" and "Bob" not in cards["profiles"]
        await laptop.close()
        await bob.expect("user_leave", username="Alice")
        await bob.send({"type": "whois", "username": "alice"})
        seen = await bob.expect("profile", username="Alice")
        assert seen["online"] is False and seen["presence"] == "offline" and seen["account"] is True
        assert seen["status"] == "on a train" and seen["last_seen"]
    finally:
        await srv.stop()
    srv = await start_server(db=db)
    try:
        bob = await logged_in(srv.port, "Bob")
        back, _ = await alice(srv.port, session_token=accepted["session_token"])
        told = await bob.expect("profile", username="Alice")  # the stored status comes back
        assert told["status"] == "on a train" and told["presence"] == "online"
        await back.send({"type": "whois", "username": "Bob"})
        guest = await back.expect("profile", username="Bob")
        assert guest["account"] is False and guest["online"] is True and guest["last_seen"] is None
        await back.send({"type": "whois", "username": "nobody"})
        assert (await back.expect("error"))["code"] == "no_such_user"
    finally:
        await srv.stop()
