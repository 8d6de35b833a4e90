"""Rich messaging on a real server: reactions, replies, edits and deletes reach everyone, a
client that missed them gets them on resume, and the folded state survives a restart."""

from __future__ import annotations

from pathlib import Path

from support import Client, logged_in, start_server


async def test_a_resuming_client_and_a_newcomer_see_the_same_final_state(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    server = await start_server(db=db)
    try:
        alice = await logged_in(server.port, "Alice")
        bob = await logged_in(server.port, "Bob")
        await alice.chat("Café crème")
        first = await bob.expect("chat", seq=1)
        epoch = bob.seen[[f["type"] for f in bob.seen].index("joined")]["epoch"]
        await bob.close()
        await alice.chat("second", reply_to=1)
        reply = await alice.expect("chat", seq=2)
        assert reply["reply_preview"] == {"username": "Alice", "message": "Café crème"}
        await alice.send({"type": "react", "room": "general", "target": 1, "key": "👍"})
        await alice.send({"type": "edit", "room": "general", "target": 1, "message": "Thé"})
        await alice.send({"type": "delete", "room": "general", "target": 2})
        await alice.expect("delete", seq=5)

        back = await Client.open(server.port)
        await back.send({"type": "set_username", "username": "Bob",
                         "resume": {"general": {"epoch": epoch, "seq": first["seq"]}}})  # fmt: skip
        hist = await back.expect("history")
        assert [(m["type"], m["seq"]) for m in hist["messages"]] == [
            ("reaction", 3),
            ("edit", 4),
            ("delete", 5),
        ]
        await back.close()
        await alice.close()
    finally:
        await server.stop()

    server = await start_server(db=db)
    try:
        carol = await Client.open(server.port)
        await carol.send({"type": "set_username", "username": "Carol"})
        hist = await carol.expect("history")
        (msg,) = hist["messages"]
        assert msg["seq"] == 1 and msg["message"] == "Thé" and msg["reactions"] == {"👍": ["Alice"]}
        assert "edited_at" in msg and hist["last_seq"] == 5
        await carol.send({"type": "edit", "room": "general", "target": 1, "message": "mine now"})
        err = await carol.expect("error")
        assert err["code"] == "not_allowed"
        await carol.close()
    finally:
        await server.stop()


async def test_typing_mentions_and_receipts_on_a_real_server() -> None:
    server = await start_server()
    try:
        alice = await logged_in(server.port, "Alice")
        bob = await logged_in(server.port, "Bob")
        await alice.send({"type": "typing", "room": "general", "active": True})
        got = await bob.expect("typing")
        assert got["users"] == ["Alice"] and got["count"] == 1
        await alice.chat("hey Bob", mentions=["Bob"])
        msg = await bob.expect("chat", seq=1)
        assert msg["mentions_you"] is True
        await bob.send({"type": "read", "room": "general", "seq": 1})
        rc = await alice.expect("receipt")
        assert rc == {"type": "receipt", "username": "Bob", "seq": 1, "room": "general"}
        await bob.close()
        back = await Client.open(server.port)
        await back.send({"type": "set_username", "username": "Bob"})
        pos = await back.expect("read_position")
        assert pos["seq"] == 1
        await back.close()
        await alice.close()
    finally:
        await server.stop()
