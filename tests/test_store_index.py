"""wschat.store_index: the search index, filled in by the writer after the messages are
acknowledged, stays exactly in step with them through edits, deletes, retention and restarts.

Checked against a brute-force LIKE over the rows, on real SQLite files: at every step (from a
second connection, without forcing anything) the index holds exactly the chat rows at or below
its mark, with their current text; and a search finds exactly what the rows say.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_rich_search import said
from test_rich_store import ask, event
from test_store import Inbox, commit

from wschat.records import Search
from wschat.store import SQLiteStore

WORDS = ("alpha", "bravo", "delta", "kilo", "lima", "oscar")


class Chat:
    """A store under test: its ids and seqs, and a way to restart it."""

    def __init__(self, path: Path, *, lazy: bool = True, cap: int = 10_000) -> None:
        self.path, self.lazy, self.cap = str(path), lazy, cap
        self.next = 1
        self.store = self._open()

    def _open(self) -> SQLiteStore:
        inbox = Inbox()
        store = SQLiteStore(self.path, inbox, synchronous="normal", history_cap=self.cap)
        if self.lazy:  # never idle-index; index past 3 pending rows, 2 at a time: partial marks
            store.index_idle, store.index_max_lag, store.index_chunk = 3600.0, 3, 2
        store.load()
        store.inbox = inbox  # type: ignore[attr-defined]
        return store

    def restart(self) -> None:
        self.store.close()
        self.store = self._open()

    def send(self, *texts: str) -> None:
        batch = [said(self.next + i, text) for i, text in enumerate(texts)]
        self.next += len(texts)
        assert commit(self.store, self.store.inbox, batch) is None  # type: ignore[attr-defined]

    def change(self, kind: str, target: int, text: str = "") -> None:
        assert commit(self.store, self.store.inbox, [event(self.next, kind, target, text)]) is None  # type: ignore[attr-defined]
        self.next += 1

    def search(self, word: str) -> list[int]:
        found = ask(self.store, self.store.inbox, Search((word,), ("general",), 0, 1000))  # type: ignore[attr-defined]
        return [m.id for m in found]


def rows_with(db: sqlite3.Connection, word: str, where: str = "1", *args: Any) -> list[int]:
    """The brute force: chat rows whose text has `word` as a whole word, newest first."""
    rows = db.execute(
        f"SELECT id FROM messages WHERE kind = 'chat' AND ' ' || text || ' ' LIKE ? AND {where} "
        "ORDER BY id DESC",
        (f"% {word} %", *args),
    )
    return [i for (i,) in rows]


def assert_in_step(path: Path) -> None:
    """From a connection of its own: the index holds exactly the chat rows at or below the
    mark, with their current text (deleted ones have none), and nothing above it."""
    db = sqlite3.connect(str(path))
    try:
        db.execute("BEGIN")  # one snapshot for the mark and both sides
        mark = int(db.execute("SELECT value FROM meta WHERE key = 'fts_indexed'").fetchone()[0])
        for word in WORDS:
            indexed = db.execute(
                "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid DESC", (word,)
            ).fetchall()
            assert [i for (i,) in indexed] == rows_with(db, word, "id <= ?", mark), (word, mark)
    finally:
        db.close()


def assert_search_is_exact(chat: Chat, path: Path) -> None:
    """A search indexes everything first and finds exactly the live chat rows with the word."""
    for word in WORDS:
        found = chat.search(word)
        db = sqlite3.connect(str(path))
        try:
            assert found == rows_with(db, word, "deleted = 0"), word
            last = db.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]
            assert db.execute("SELECT value FROM meta WHERE key = 'fts_indexed'").fetchone()[0] == str(last)
            # FTS5's own check of the index's structure (not against `messages`: events are not indexed)
            db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
        finally:
            db.close()


step = st.one_of(
    st.tuples(
        st.just("send"),
        st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3), min_size=1, max_size=4),
    ),
    st.tuples(st.just("edit"), st.integers(1, 30), st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)),
    st.tuples(st.just("delete"), st.integers(1, 30)),
    st.tuples(st.just("restart")),
    st.tuples(st.just("search"), st.sampled_from(WORDS)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=14))
@example(
    steps=[("send", [["alpha"]]), ("edit", 1, ["bravo"]), ("delete", 1), ("restart",)]
)  # not indexed yet
@example(
    steps=[("send", [["alpha"], ["kilo"]] * 2), ("edit", 1, ["bravo"]), ("delete", 3), ("search", "kilo")]
)
def test_the_index_stays_in_step_through_edits_deletes_and_restarts(
    tmp_path_factory: Any, steps: list
) -> None:
    path = tmp_path_factory.mktemp("index") / "chat.db"
    chat = Chat(path)
    try:
        for op, *args in steps:
            if op == "send":
                chat.send(*(" ".join(words) for words in args[0]))
            elif op == "edit":
                chat.change("edit", args[0], " ".join(args[1]))
            elif op == "delete":
                chat.change("delete", args[0])
            elif op == "restart":
                chat.restart()
            else:
                db = sqlite3.connect(str(path))
                expected = rows_with(db, args[0], "deleted = 0")
                db.close()
                assert chat.search(args[0]) == expected
            assert_in_step(path)
        assert_search_is_exact(chat, path)
    finally:
        chat.store.close()


def test_retention_removes_trimmed_rows_from_the_index(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    chat = Chat(path, cap=10)  # keeps 10 messages a room, trimming past 10 + 100
    chat.send(*["alpha bravo"] * 60)
    chat.search("alpha")  # indexes the first 60
    chat.send(*["alpha kilo"] * 60)  # past 110: the oldest are deleted, indexed or not
    assert_in_step(path)
    assert len(chat.search("alpha")) == 10 and chat.search("bravo") == []
    assert_search_is_exact(chat, path)
    chat.store.close()


def test_a_row_stored_below_the_mark_is_indexed_with_it(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    chat = Chat(path)
    chat.next = 10
    chat.send("alpha")
    assert chat.search("alpha") == [10]  # the mark is now 10
    late = said(5, "bravo")
    late.seq = 2
    assert commit(chat.store, chat.store.inbox, [late]) is None  # type: ignore[attr-defined]
    assert_in_step(path)
    assert chat.search("bravo") == [5]
    assert_search_is_exact(chat, path)
    chat.store.close()


def test_the_writer_indexes_by_itself_once_writes_pause(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    chat = Chat(path, lazy=False)
    chat.send("alpha", "bravo")
    db = sqlite3.connect(str(path))
    try:
        for _ in range(2000):  # bounded: the writer indexes 1 s after the last write
            if db.execute("SELECT value FROM meta WHERE key = 'fts_indexed'").fetchone()[0] == "2":
                break
            db.execute("SELECT 1 FROM messages_fts WHERE messages_fts MATCH 'x'")  # a real wait: a query
            chat.store.writer.join(0.01)  # type: ignore[union-attr]
        assert db.execute("SELECT value FROM meta WHERE key = 'fts_indexed'").fetchone()[0] == "2"
    finally:
        db.close()
    assert_in_step(path)
    chat.store.close()


def wait_for_mark(path: Path, chat: Chat, mark: int) -> None:
    """Until the stored mark reaches `mark` (the writer moves it after acknowledging a batch)."""
    db = sqlite3.connect(str(path))
    try:
        for _ in range(2000):  # bounded
            if int(db.execute("SELECT value FROM meta WHERE key = 'fts_indexed'").fetchone()[0]) >= mark:
                break
            chat.store.writer.join(0.01)  # type: ignore[union-attr]
        assert int(db.execute("SELECT value FROM meta WHERE key = 'fts_indexed'").fetchone()[0]) == mark
    finally:
        db.close()


def test_a_burst_is_indexed_after_it_and_a_writer_that_never_pauses_catches_up(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    chat = Chat(path)  # never idle-indexes; chunks of 2
    chat.store.index_max_lag = 10**9  # rows alone never force it: only time does here
    chat.store.index_max_behind = 0.0  # behind since the previous batch is too long
    chat.send("alpha", "bravo")  # the index falls behind now: nothing is indexed after this batch
    assert_in_step(path)
    chat.send("delta")  # behind since the last batch: a chunk (2 rows) after this one
    wait_for_mark(path, chat, 2)
    chat.send("kilo")  # still behind: the next chunk brings it in step (4 rows)
    wait_for_mark(path, chat, 4)
    assert_in_step(path)
    assert_search_is_exact(chat, path)
    chat.store.close()


def test_an_index_of_the_previous_version_is_rebuilt(tmp_path: Path) -> None:
    """The previous version kept the index with an insert trigger and per-row sizes."""
    path = tmp_path / "chat.db"
    chat = Chat(path)
    chat.send("alpha bravo", "kilo")
    chat.store.close()
    db = sqlite3.connect(str(path))
    db.executescript(
        "DROP TRIGGER messages_fts_delete; DROP TRIGGER messages_fts_update; DROP TABLE messages_fts;"
        "CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='id',"
        " tokenize='unicode61 remove_diacritics 2');"
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind = 'chat' BEGIN"
        " INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text); END;"
        "INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages;"
        "UPDATE meta SET value = '0' WHERE key = 'fts_indexed';"
    )
    db.close()
    chat.store = chat._open()
    chat.send("alpha")
    assert chat.search("alpha") == [3, 1]
    assert_search_is_exact(chat, path)
    chat.store.close()
