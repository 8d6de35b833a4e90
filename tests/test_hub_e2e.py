"""The hub's wire behaviour end to end, on a real server: join and leave notices, a failed
history read, the flood rule behind the outbox promise (PROTOCOL.md)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from rawws import RawClient, text
from support import logged_in, start_server


async def test_a_room_leave_and_a_disconnect_are_told_apart() -> None:
    srv = await start_server()
    try:
        alice = await logged_in(srv.port, "Alice")
        bob = await logged_in(srv.port, "Bob")
        await bob.send({"type": "leave", "room": "general"})
        left = await alice.expect("user_leave")
        assert left["message"] == "Bob left #general" and left["reason"] == "leave"
        await bob.send({"type": "join", "room": "general"})
        await alice.expect("user_join", username="Bob")
        await bob.close()
        gone = await alice.expect("user_leave")
        assert gone["message"] == "Bob left the chat" and gone["reason"] == "disconnect"
    finally:
        await srv.stop()


async def test_a_reconnect_that_resumes_is_a_resumed_join() -> None:
    srv = await start_server()
    try:
        alice = await logged_in(srv.port, "Alice")
        bob = await logged_in(srv.port, "Bob")
        first = await alice.expect("user_join", username="Bob")
        assert "resumed" not in first
        epoch = srv.hub.rooms["general"].epoch
        await bob.close()
        await alice.expect("user_leave", username="Bob")
        await logged_in(srv.port, "Bob", resume={"general": {"epoch": epoch, "seq": 0}})
        back = await alice.expect("user_join", username="Bob")
        assert back["resumed"] is True and back["online_users"] == 2
    finally:
        await srv.stop()


def history_db(path: Path, n: int) -> None:
    """A chat database whose general room holds `n` messages (more than a room keeps in memory)."""
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE rooms (name TEXT PRIMARY KEY, epoch TEXT NOT NULL);"
            "CREATE TABLE messages (id INTEGER PRIMARY KEY, room TEXT NOT NULL, seq INTEGER NOT NULL,"
            " username TEXT NOT NULL, user_key TEXT NOT NULL, client_id TEXT NOT NULL, text TEXT NOT NULL,"
            " ts REAL NOT NULL, client_msg_id TEXT, UNIQUE (room, seq));"
            "INSERT INTO meta VALUES ('epoch', 'ep1'); INSERT INTO rooms VALUES ('general', 'ep1');"
        )
        rows = [(i, "general", i, "Old", "old", "c1", f"old {i}", 1e9 + i, None) for i in range(1, n + 1)]
        db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


async def test_a_failed_history_read_is_store_failed_not_the_end_of_history(tmp_path: Path) -> None:
    history_db(tmp_path / "chat.db", 1100)
    srv = await start_server(db=str(tmp_path / "chat.db"))
    failing = True
    real_page = srv.store._page

    def page(*args: Any) -> Any:
        if failing:
            raise sqlite3.OperationalError("disk I/O error")
        return real_page(*args)

    srv.store._page = page
    try:
        alice = await logged_in(srv.port, "Alice")
        await alice.send({"type": "fetch_history", "room": "general", "before_seq": 60, "limit": 10})
        err = await alice.expect("error")
        assert err["code"] == "store_failed" and err["room"] == "general" and err["before_seq"] == 60
        assert err["retry_after"] > 0
        assert not [f for f in alice.drain() if f["type"] == "history"]  # no empty page
        failing = False
        await alice.send({"type": "fetch_history", "room": "general", "before_seq": 60, "limit": 10})
        page_frame = await alice.expect("history", mode="page")
        assert [m["seq"] for m in page_frame["messages"]] == list(range(50, 60))
    finally:
        await srv.stop()


async def flush_outbox(port: int, n: int) -> RawClient:
    """Log in, then send `n` chat messages in one packet, as an outbox flushed after a reconnect."""
    c = await RawClient.connect(port)
    c.send({"type": "set_username", "username": "Outbox"})
    while (await c.recv_json())["type"] != "user_join":
        pass
    packet = [text({"type": "chat", "message": f"m{i}", "client_msg_id": f"id{i}"}) for i in range(n)]
    c.send_raw(b"".join(packet))
    return c


async def test_an_outbox_of_70_flushed_at_once_is_answered_in_full_and_stays_connected() -> None:
    srv = await start_server()  # default limits: burst 20, 50 strikes
    try:
        c = await flush_outbox(srv.port, 70)
        acks = refused = 0
        while acks < 20 or refused < 50:
            frame = await c.recv_json()  # raises EOFError if the server closed
            acks += frame["type"] == "ack"
            refused += frame.get("code") == "rate_limited"
        assert (acks, refused) == (20, 50)
        c.send({"type": "get_users"})
        while (frame := await c.recv_json())["type"] != "online_users":
            pass
        assert frame["users"] == ["Outbox"]
        c.close()
    finally:
        await srv.stop()


async def test_one_more_than_the_outbox_promise_is_a_flood_and_closes_with_1008() -> None:
    srv = await start_server()
    try:
        c = await flush_outbox(srv.port, 71)
        assert await c.wait_closed() == 1008
        c.close()
    finally:
        await srv.stop()
