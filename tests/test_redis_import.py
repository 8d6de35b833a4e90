"""The SQLite history imported into Redis on the first start in cluster mode, once."""

from __future__ import annotations

from pathlib import Path

from clusternode import Node
from redisserver import RedisServer

from wschat.records import Message
from wschat.redisimport import import_sqlite
from wschat.store import SQLiteStore

FILE = {"id": "abc", "name": "a.txt", "size": 1, "mime": "text/plain", "sha256": "0" * 64, "url": "/m/abc"}


def fill_database(path: Path) -> str:
    """A real chat database: 30 messages in general and 5 in dev; returns its epoch."""
    from test_store import Inbox, commit

    inbox = Inbox()
    store = SQLiteStore(str(path), inbox)
    epoch = store.load().epoch
    for i in range(1, 31):
        commit(
            store,
            inbox,
            [Message(i, "general", i, "Alice", "alice", "c1", f"g{i}", 1000.0 + i, f"c{i}", epoch)],
        )
    for i in range(1, 6):
        m = Message(30 + i, "dev", i, "Bob", "bob", "c2", f"d{i}", 2000.0 + i, None, epoch)
        if i == 5:  # a shared file (wschat.features.files) goes to Redis with its message
            m.file = FILE
        commit(store, inbox, [m])
    store.close()
    return epoch


async def test_history_seqs_and_epoch_continue_in_redis_and_a_second_start_imports_nothing(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    db = tmp_path / "chat.db"
    epoch = fill_database(db)
    lines: list[str] = []
    assert import_sqlite(str(db), redis_server.url, 10_000, lines.append) == 35
    assert lines and "35" in lines[-1]
    assert import_sqlite(str(db), redis_server.url, 10_000, lines.append) == 0  # once
    node = await Node.start(redis_server.url, history_size=3)
    try:
        # a client that was at general seq 28 before the move resumes with exactly what it missed
        node.login(1, "alice", resume={"general": {"epoch": epoch, "seq": 28}}, rooms=["dev"])
        await node.wait(1, "history", 2)
        general = node.frames(1, "history", room="general")[0]
        assert general["epoch"] == epoch and general["mode"] == "resume"
        assert [m["message"] for m in general["messages"]] == ["g29", "g30"]
        node.send(1, {"type": "chat", "room": "dev", "message": "after", "client_msg_id": "n1"})
        node.send(1, {"type": "chat", "message": "again", "client_msg_id": "c30"})  # sent before the move
        await node.wait(1, "ack", 2)
        acks = {a["client_msg_id"]: a for a in node.frames(1, "ack")}
        assert (acks["n1"]["seq"], int(acks["n1"]["id"])) == (6, 36)  # seqs and ids go on
        assert acks["c30"]["duplicate"] is True and acks["c30"]["seq"] == 30
        dev = node.frames(1, "history", room="dev")[0]["messages"]
        assert dev[-1]["message"] == "d5" and dev[-1]["file"] == FILE
    finally:
        await node.stop()
