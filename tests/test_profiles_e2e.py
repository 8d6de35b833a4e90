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


async def test_an_uploaded_image_becomes_an_accounts_avatar_shown_to_the_room_and_stored(
    tmp_path: Path,
) -> None:
    from test_files_e2e import png, upload
    from test_server_e2e import get

    srv = await start_server("--db", str(tmp_path / "chat.db"), "--media-dir", str(tmp_path / "files"))
    try:
        bob = await logged_in(srv.port, "Bob")
        laptop, _ = await alice(srv.port, password=PASSWORD)
        refused = await upload(bob, "me.png", png(), **{"for": "avatar"})
        assert refused["type"] == "error" and refused["code"] == "not_an_account"  # guests cannot
        done = await upload(laptop, "me.png", png(), **{"for": "avatar"})
        assert done["type"] == "upload_done", done
        await laptop.send({"type": "set_profile", "avatar": done["file"]["id"]})
        told = await bob.expect("profile", username="Alice")
        assert not [f for f in bob.backlog if f["type"] == "chat"]  # the image was posted nowhere
        file = done["file"]
        assert (told["avatar"]["id"], told["avatar"]["url"]) == (file["id"], file["thumb_url"])
        status, headers, _ = await get(srv.port, told["avatar"]["url"])
        assert status == 200 and headers["Content-Type"] == "image/png"
        pdf = await upload(laptop, "cv.pdf", b"%PDF-1.4 hello", **{"for": "avatar"})
        await laptop.send({"type": "set_profile", "avatar": pdf["file"]["id"]})
        assert (await laptop.expect("error"))["code"] == "not_an_image"
        await laptop.send({"type": "set_profile", "avatar": "NoSuchFile"})
        assert (await laptop.expect("error"))["code"] == "no_such_file"
        await laptop.close()
        await bob.expect("user_leave", username="Alice")
        await bob.send({"type": "whois", "username": "Alice"})
        seen = await bob.expect("profile", username="Alice")  # read back from the store
        assert seen["online"] is False and seen["avatar"]["id"] == done["file"]["id"]
    finally:
        await srv.stop()
