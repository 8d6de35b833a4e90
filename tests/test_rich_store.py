"""Rich messaging in the stores: reactions, edits, deletes and replies on a real SQLite file,
an older database opening, and the memory store folding the same events."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from test_store import Inbox, commit, msg

from wschat.records import LoadRoom, Message, ReadMessage, ReadPage, SaveReads
from wschat.store import MemoryStore, SQLiteStore


def event(
    i: int, kind: str, target: int, text: str = "", meta: dict | None = None, user: str = "alice"
) -> Message:
    m = Message(i, "general", i, user.title(), user, "c1", text, 2000.0 + i, None, "ep")
    m.kind, m.target, m.meta = kind, target, meta
    return m


def ask(store: Any, inbox: Inbox, command: Any) -> Any:
    results: list[Any] = []
    store.execute(command, results.append)
    fn, args, _ = inbox.next()
    fn(*args)
    return results[0]


def history_of(store: Any, inbox: Inbox) -> list[Message]:
    return ask(store, inbox, ReadPage("general", 100, 50))


def scenario(store: Any, inbox: Inbox) -> None:
    reply = msg(3)
    reply.reply_to, reply.meta = 2, {"reply_preview": {"username": "Alice", "message": "text 2"}}
    commit(store, inbox, [msg(1), msg(2), reply])
    commit(store, inbox, [
        event(4, "reaction", 1, meta={"key": "👍", "removed": False}, user="bob"),
        event(5, "reaction", 1, meta={"key": "👍", "removed": False}),
        event(6, "reaction", 1, meta={"key": "👍", "removed": True}, user="bob"),
        event(7, "edit", 1, "Café"),
        event(8, "delete", 2),
    ])  # fmt: skip


def check(msgs: list[Message]) -> None:
    assert [m.seq for m in msgs] == [1, 3]  # the deleted message and the events are not shown
    first, reply = msgs
    assert first.reactions == {"👍": ["Alice"]}
    assert first.edited_at == 2007.0
    assert reply.reply_to == 2 and reply.meta == {"reply_preview": {"username": "Alice", "message": ""}}


def test_sqlite_keeps_reactions_edits_deletes_and_replies_across_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "chat.db")
    inbox = Inbox()
    store = SQLiteStore(path, inbox)
    store.load()
    scenario(store, inbox)
    page = history_of(store, inbox)
    check(page)
    assert page[0].text == "Café"
    store.close()

    again = SQLiteStore(path, inbox)
    snap = again.load()
    window = snap.rooms["general"].recent
    assert [(m.seq, m.kind) for m in window][-5:] == [
        (4, "reaction"),
        (5, "reaction"),
        (6, "reaction"),
        (7, "edit"),
        (8, "delete"),
    ]
    deleted = ask(again, inbox, ReadMessage("general", 2))
    assert deleted.deleted and deleted.text == ""
    again.close()
    # the body is gone from the file: the message, and no edit or quote keeps it
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM messages WHERE text LIKE '%text 2%'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM messages WHERE meta LIKE '%text 2%'").fetchone()[0] == 0
    db.close()


def test_an_older_database_opens_and_gains_the_new_columns(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE rooms (name TEXT PRIMARY KEY, epoch TEXT NOT NULL);"
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, room TEXT NOT NULL, seq INTEGER NOT NULL,"
        " username TEXT NOT NULL, user_key TEXT NOT NULL, client_id TEXT NOT NULL, text TEXT NOT NULL,"
        " ts REAL NOT NULL, client_msg_id TEXT, UNIQUE (room, seq));"
        "INSERT INTO rooms VALUES ('general', 'ep');"
        "INSERT INTO messages VALUES (1, 'general', 1, 'Alice', 'alice', 'c1', 'old one', 1.0, NULL);"
    )
    db.commit()
    db.close()
    inbox = Inbox()
    store = SQLiteStore(path, inbox)
    snap = store.load()
    (old,) = snap.rooms["general"].recent
    assert (old.text, old.kind, old.deleted, old.reactions) == ("old one", "chat", False, None)
    commit(store, inbox, [event(2, "reaction", 1, meta={"key": "ok", "removed": False})])
    assert history_of(store, inbox)[0].reactions == {"ok": ["Alice"]}
    store.close()


def test_the_memory_store_folds_the_same_events() -> None:
    inbox = Inbox()
    store = MemoryStore(inbox)
    scenario(store, inbox)
    check(history_of(store, inbox))
    assert ask(store, inbox, LoadRoom("general")).last_seq == 8


def test_read_positions_are_stored_forward_only_and_reloaded(tmp_path: Path) -> None:
    path = str(tmp_path / "chat.db")
    inbox = Inbox()
    store = SQLiteStore(path, inbox)
    store.load()
    assert ask(store, inbox, SaveReads([("alice", "general", 5, False), ("bob", "dev", 2, True)])) is None
    assert ask(store, inbox, SaveReads([("alice", "general", 3, True)])) is None
    store.close()
    again = SQLiteStore(path, inbox)
    assert sorted(again.load().read_positions) == [("alice", "general", 5, True), ("bob", "dev", 2, True)]
    again.close()
