"""Search: FTS5 on a real SQLite file and the memory store's scan, the hub's rules, end to end."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hubharness import Harness, only
from support import logged_in, start_server
from test_rich_store import ask, event
from test_store import Inbox, commit

from wschat.records import Message, Search
from wschat.store import MemoryStore, SQLiteStore


def said(i: int, text: str, room: str = "general") -> Message:
    return Message(i, room, i, "Alice", "alice", "c1", text, 1000.0 + i, None, "ep")


TEXTS = ["Un café, s'il vous plaît", "ping 10.0.0.1 please", 'she said "hi"', "CAFE au lait", "other"]


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    inbox = Inbox()
    s = SQLiteStore(str(tmp_path / "chat.db"), inbox) if request.param == "sqlite" else MemoryStore(inbox)
    s.load()
    commit(s, inbox, [said(i + 1, t) for i, t in enumerate(TEXTS)] + [said(6, "café in dev", "dev")])
    s.inbox = inbox
    yield s
    s.close()


def find(
    store: Any, *tokens: str, rooms: tuple[str, ...] = ("general",), before: int = 0, limit: int = 10
) -> list[int]:
    return [m.seq for m in ask(store, store.inbox, Search(tokens, rooms, before, limit))]


def test_search_ignores_case_and_accents(store: Any) -> None:
    assert find(store, "cafe") == [4, 1]
    assert find(store, "CAFÉ", rooms=("general", "dev")) == [6, 4, 1]


def test_search_takes_any_input_literally(store: Any) -> None:
    assert find(store, "10.0.0.1") == [2]
    assert find(store, '"hi"') == [3]
    assert find(store, '"') == []
    assert find(store, "AND") == [] and find(store, "*") == [] and find(store, "NEAR(") == []


def test_search_pages_newest_first(store: Any) -> None:
    assert find(store, "cafe", limit=1) == [4]
    assert find(store, "cafe", before=4) == [1]


def test_deleted_messages_are_never_found_and_edits_are(store: Any) -> None:
    commit(store, store.inbox, [event(7, "delete", 1), event(8, "edit", 5, "now about tea")])
    assert find(store, "cafe") == [4]
    assert find(store, "tea") == [5] and find(store, "other") == []


def test_an_older_database_is_indexed_when_it_opens(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE rooms (name TEXT PRIMARY KEY, epoch TEXT NOT NULL);"
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, room TEXT NOT NULL, seq INTEGER NOT NULL,"
        " username TEXT NOT NULL, user_key TEXT NOT NULL, client_id TEXT NOT NULL, text TEXT NOT NULL,"
        " ts REAL NOT NULL, client_msg_id TEXT, UNIQUE (room, seq));"
        "INSERT INTO rooms VALUES ('general', 'ep');"
        "INSERT INTO messages VALUES (1, 'general', 1, 'Alice', 'alice', 'c1', 'Crème brûlée', 1.0, NULL);"
    )
    db.commit()
    db.close()
    s = SQLiteStore(path, Inbox())
    s.load()
    s.inbox = s.notify
    assert find(s, "creme", "brulee") == [1]
    s.close()


def test_the_hub_searches_only_the_rooms_you_are_in_and_says_if_there_is_more() -> None:
    h = Harness(chat_burst=10_000)
    h.login(1, "Alice", rooms=["general", "dev"])
    h.login(2, "Bob")
    h.send(1, {"type": "search", "query": "x"})
    for i in range(3):
        h.chat(1, f"café {i}")
    h.chat(1, "café in dev", room="dev")
    h.take(1), h.take(2)
    calls: list[Search] = []

    def execute(token: int, command: Any) -> None:  # a store answering from what was appended
        calls.append(command)
        msgs = [m for st in h.stored.values() for m in st.recent if m.room in command.rooms]
        h.answer(token, sorted(msgs, key=lambda m: -m.id)[: command.limit])

    original = h.execute
    h.execute = lambda token, command: (execute if isinstance(command, Search) else original)(token, command)
    h.send(2, {"type": "search", "query": "cafe", "limit": 2})
    (res,) = only(h.take(2), "search_results")
    assert calls[-1].rooms == ("general",) and calls[-1].tokens == ("cafe",)
    assert [r["seq"] for r in res["results"]] == [3, 2] and res["more"] is True and res["query"] == "cafe"
    h.send(2, {"type": "search", "query": "cafe", "room": "dev"})
    assert only(h.take(2), "error")[0]["code"] == "not_in_room"
    h.send(1, {"type": "search", "query": "cafe"})
    assert set(calls[-1].rooms) == {"general", "dev"}


def test_a_search_query_has_limits_with_clear_errors() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.send(1, {"type": "search", "query": "x" * 201})
    h.send(1, {"type": "search", "query": "   "})
    codes = [e["code"] for e in only(h.take(1), "error")]
    assert codes == ["too_long", "bad_field"]


async def test_search_on_a_real_server_finds_accent_free_words_and_never_deleted_ones(tmp_path: Path) -> None:
    server = await start_server(db=str(tmp_path / "chat.db"))
    try:
        alice = await logged_in(server.port, "Alice")
        await alice.chat("Un café noir")
        await alice.chat("un autre café")
        await alice.expect("chat", seq=2)
        await alice.send({"type": "delete", "room": "general", "target": 2})
        await alice.expect("delete")
        await alice.send({"type": "search", "query": "cafe"})
        res = await alice.expect("search_results")
        assert [(r["seq"], r["message"]) for r in res["results"]] == [(1, "Un café noir")]
        await alice.close()
    finally:
        await server.stop()
