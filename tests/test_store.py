"""wschat.store: the SQLite and memory stores, on real SQLite files in a temporary folder."""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from wschat.records import Append, Command, LoadRoom, Message, ReadPage
from wschat.store import MemoryStore, SQLiteStore, StoreError, open_store


class Inbox:
    """A `notify` that collects callbacks, to run them on the test's thread like the loop does."""

    def __init__(self) -> None:
        self.q: queue.SimpleQueue = queue.SimpleQueue()

    def __call__(self, fn: Any, *args: Any) -> None:
        self.q.put((fn, args, threading.current_thread().name))

    def next(self) -> tuple[Any, tuple, str]:
        return self.q.get(timeout=10)


def msg(i: int, room: str = "general", cmid: str | None = None, epoch: str = "ep") -> Message:
    return Message(i, room, i, "Alice", "alice", "c1", f"text {i}", 1000.0 + i, cmid, epoch)


def commit(store: Any, inbox: Inbox, batch: list[Message]) -> Any:
    results: list[Any] = []
    store.execute(Append(batch), results.append)
    fn, args, _ = inbox.next()
    fn(*args)
    return results[0]


def test_sqlite_store_creates_the_database_and_reloads_messages(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    inbox = Inbox()
    store = SQLiteStore(str(path), inbox)
    snap = store.load()
    assert snap.rooms == {} and snap.next_id == 1
    assert commit(store, inbox, [msg(1, cmid="a"), msg(2), msg(3, cmid="b")]) is None
    store.close()

    again = SQLiteStore(str(path), Inbox())
    snap = again.load()
    room = snap.rooms["general"]
    assert room.epoch == "ep" and room.last_seq == 3 and room.first_seq == 1
    assert [(m.id, m.seq, m.text, m.client_msg_id) for m in room.recent] == [
        (1, 1, "text 1", "a"),
        (2, 2, "text 2", None),
        (3, 3, "text 3", "b"),
    ]
    assert snap.next_id == 4
    assert snap.sent_ids == [("alice", "a", "general", 1, 1), ("alice", "b", "general", 3, 3)]
    again.close()


def test_sqlite_store_uses_wal_mode(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "chat.db"), Inbox())
    store.load()
    store.close()
    with sqlite3.connect(tmp_path / "chat.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_commits_happen_on_the_writer_thread_and_batch_what_queued_up(tmp_path: Path) -> None:
    inbox = Inbox()
    store = SQLiteStore(str(tmp_path / "chat.db"), inbox)
    store.load()
    statements: list[tuple[str, str]] = []
    store.db.set_trace_callback(lambda sql: statements.append((threading.current_thread().name, sql)))
    done: list[Any] = []
    for i in range(1, 201):
        store.execute(Append([msg(i)]), done.append)
    for _ in range(200):
        fn, args, thread = inbox.next()
        assert thread == "chat-db-write"
        fn(*args)
    assert done == [None] * 200
    assert {name for name, _ in statements} == {"chat-db-write"}
    commits = [sql for _, sql in statements if sql == "COMMIT"]
    assert 1 <= len(commits) < 200  # group commit: fewer transactions than messages
    store.close()


def test_retention_keeps_the_newest_messages_per_room(tmp_path: Path) -> None:
    inbox = Inbox()
    store = SQLiteStore(str(tmp_path / "chat.db"), inbox, history_cap=100)
    store.load()
    for start in range(1, 501, 50):
        commit(store, inbox, [msg(i) for i in range(start, start + 50)])
    store.close()
    with sqlite3.connect(tmp_path / "chat.db") as db:
        low, high, count = db.execute("SELECT min(seq), max(seq), count(*) FROM messages").fetchone()
    assert high == 500 and count <= 200 and low > 300


def test_page_reads_older_messages_oldest_first(tmp_path: Path) -> None:
    inbox = Inbox()
    store = SQLiteStore(str(tmp_path / "chat.db"), inbox)
    store.load()
    commit(store, inbox, [msg(i) for i in range(1, 31)])
    got: list[Any] = []
    store.execute(ReadPage("general", 21, 5), got.append)
    fn, args, thread = inbox.next()
    fn(*args)
    assert thread.startswith("chat-db-read")
    assert [m.seq for m in got[0]] == [16, 17, 18, 19, 20]
    store.close()


def test_a_failed_commit_reports_the_error_and_stores_nothing(tmp_path: Path) -> None:
    inbox = Inbox()
    store = SQLiteStore(str(tmp_path / "chat.db"), inbox)
    store.load()
    assert commit(store, inbox, [msg(1)]) is None
    result = commit(store, inbox, [msg(2), msg(1)])  # msg(1) again breaks UNIQUE(room, seq)
    assert isinstance(result, sqlite3.IntegrityError)
    assert commit(store, inbox, [msg(2)]) is None  # the writer carries on
    store.close()
    with sqlite3.connect(tmp_path / "chat.db") as db:
        assert [r[0] for r in db.execute("SELECT seq FROM messages ORDER BY seq")] == [1, 2]


def junk_file(folder: Path) -> Path:
    path = folder / "junk.db"
    path.write_bytes(b"not a database at all" * 100)
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: d / "missing" / "chat.db", "does not exist"),
        (lambda d: d, "is a folder"),
        (junk_file, "corrupt"),
    ],
)
def test_a_database_that_cannot_be_used_raises_one_sentence(tmp_path: Path, make: Any, words: str) -> None:
    path = make(tmp_path)
    with pytest.raises(StoreError) as info:
        SQLiteStore(str(path), Inbox()).load()
    text = str(info.value)
    assert str(path) in text and words in text and "\n" not in text


def test_memory_store_pages_and_forgets_on_restart() -> None:
    inbox = Inbox()
    store = open_store(":memory:", inbox)
    assert isinstance(store, MemoryStore)
    assert commit(store, inbox, [msg(i) for i in range(1, 11)]) is None
    got: list[Any] = []
    store.execute(ReadPage("general", 5, 3), got.append)
    fn, args, _ = inbox.next()
    fn(*args)
    assert [m.seq for m in got[0]] == [2, 3, 4]
    assert open_store(":memory:", inbox).load().rooms == {}


def test_a_full_disk_is_reported_as_a_full_disk_not_as_a_failed_rollback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox()
    store = SQLiteStore(str(tmp_path / "chat.db"), inbox)
    store.load()
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk fills up at once
    batch = [Message(i, "general", i, "A", "a", "c1", "x" * 3000, 1.0, None, "ep") for i in range(1, 40)]
    with caplog.at_level(logging.ERROR, logger="wschat.store"):
        result = commit(store, inbox, batch)
    assert isinstance(result, sqlite3.OperationalError) and "full" in str(result)
    assert "full" in caplog.text and "cannot rollback" not in caplog.text
    store.db.execute("PRAGMA max_page_count = 1000000")  # room again: the writer carries on
    assert commit(store, inbox, [msg(1)]) is None
    store.close()


def test_a_room_load_is_not_queued_behind_page_reads(tmp_path: Path) -> None:
    inbox = Inbox()
    store = SQLiteStore(str(tmp_path / "chat.db"), inbox)
    store.load()
    commit(store, inbox, [msg(i, room="dormant") for i in range(1, 4)])
    release = threading.Event()
    real_page = store._page

    def slow_page(*args: Any) -> Any:  # a crowd paging through old history, stuck on the disk
        release.wait(10)
        return real_page(*args)

    store._page = slow_page  # type: ignore[method-assign]
    pages: list[Any] = []
    for _ in range(50):
        store.execute(ReadPage("general", 10, 5), pages.append)
    loaded: list[Any] = []
    store.execute(LoadRoom("dormant"), loaded.append)
    fn, args, _ = inbox.next()  # the first answer is the room load, while every page still waits
    fn(*args)
    assert not pages and loaded and loaded[0].last_seq == 3
    release.set()
    for _ in range(50):
        fn, args, _ = inbox.next()
        fn(*args)
    assert len(pages) == 50
    store.close()


def test_a_command_a_store_does_not_know_is_refused_not_lost(tmp_path: Path) -> None:
    class Unknown(Command):
        __slots__ = ()

    inbox = Inbox()
    for store in (SQLiteStore(str(tmp_path / "chat.db"), inbox), MemoryStore(inbox)):
        store.load()
        got: list[Any] = []
        store.execute(Unknown(), got.append)
        fn, args, _ = inbox.next()
        fn(*args)
        assert isinstance(got[0], TypeError) and "Unknown" in str(got[0])
        store.close()
