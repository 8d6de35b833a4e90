"""The SQLite store's search index, kept in step off the acknowledging path. I/O (sqlite3).

Indexing a message in FTS5 costs far more than storing it: an insert trigger made each stored
chat message cost ~30 us of the writer thread instead of ~2 us and halved the durable
acknowledgements per second. Indexing the same rows afterwards, 10,000 in one
`INSERT ... SELECT`, costs ~2 us a row. So the writer thread stores and acknowledges
messages first and indexes them later; this module owns how that stays exact:

- `meta.fts_indexed` is the mark: every chat row with an id at or below it is in the index
  with its current text, and no row above it is. It moves in the same transaction as the rows
  it indexes, so a crash or a restart loses nothing: indexing simply resumes from it.
- The writer indexes the rows above the mark a chunk at a time once no write has come for a
  second (`IDLE`): a burst of messages is stored and acknowledged first and indexed after it,
  so the index costs the acknowledgements nothing. A server that never pauses that long
  still catches up: a chunk after each batch once the index has been behind for `MAX_BEHIND`
  seconds or more than `MAX_LAG` rows wait, until it is in step (so the index is never far
  behind, a search never has much to index first, and no batch waits for more than one
  chunk).
- Edits and deletes reach the index through triggers guarded by the mark: a row not yet
  indexed is left alone, and gets its text of that moment when it is indexed.
- A search is queued to the writer thread: it indexes everything pending, then hands the query
  to the reader, so a message is found as soon as its send is acknowledged.
- A row at or below the mark that is stored later (ids come from the hub in order, so only an
  unusual ordering does this) is indexed in the transaction that stores it.

Indexing transactions commit with `synchronous = NORMAL` even under `--synchronous full`: the
index can always be rebuilt from the mark, and the next message commit syncs the log anyway;
the messages' own commits keep the promise of `--synchronous full`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from wschat.records import Message, Search
from wschat.sqlitetx import write_transaction

log = logging.getLogger("wschat.store")

Done = Callable[[Any], None]
# Rows indexed per transaction: ~1.8 us a row at 10,000 against ~4 at 2,000 (CPU time, a
# micro-benchmark); a write arriving during one waits for it (~20 ms) at most.
CHUNK = 10_000
# Seconds without writes before the writer indexes, chunk after chunk while none comes. Not
# shorter: under a flood the writer waits for the loop between batches (~0.1-0.3 s with 5,000
# messages in flight on a busy core), and indexing then took the loop's core (measured).
IDLE = 1.0
# Past either bound the writer indexes a chunk after each batch until the index is in step. A
# burst shorter than both costs its acknowledgements no indexing at all (the durable benchmark's
# 6 s at ~40,000 messages/s: ~3 us of the server's core per message at 100,000 rows, the bound
# before); the first search after the longest burst waits ~1 s (~2 us a pending row).
MAX_BEHIND = 10.0  # seconds the index may stay behind the committed rows without a pause
MAX_LAG = 500_000  # rows that may wait

# An FTS5 index of the chat messages' text (external content: the text is stored once).
# unicode61 with remove_diacritics 2 folds case and accents, so "cafe" finds "Café". Room events
# are not indexed; a deleted message's text is '' (so nothing of it is found), and search also
# skips deleted rows. columnsize=0: no per-row size table (only ranking uses it, and search
# orders by id), which saves a B-tree insert per row.
_TABLE = """
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2', columnsize=0
)
"""

# Edits and deletes change indexed rows only; rows above the mark are indexed later as they are.
_TRIGGERS = """
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.kind = 'chat' AND old.id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fts_indexed')
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
WHEN old.kind = 'chat' AND old.id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fts_indexed')
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
END;
"""


def migrate(db: sqlite3.Connection) -> int:
    """Create the index and its guarded triggers; return the mark.

    An index of an earlier version (made without `columnsize=0`, kept by an insert trigger) is
    dropped and made afresh: the mark starts at 0 and the writer fills it in from there, as for
    a new database or one made before search."""
    table = db.execute("SELECT sql FROM sqlite_master WHERE name = 'messages_fts'").fetchone()
    with write_transaction(db):
        if table is None or "columnsize=0" not in table[0]:
            for name in ("messages_fts_insert", "messages_fts_delete", "messages_fts_update"):
                db.execute(f"DROP TRIGGER IF EXISTS {name}")
            db.execute("DROP TABLE IF EXISTS messages_fts")
            db.execute(_TABLE)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('fts_indexed', '0')")
        for name in ("messages_fts_delete", "messages_fts_update"):
            db.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in _TRIGGERS.split("END;")[:-1]:
            db.execute(statement + "END;")
    return int(db.execute("SELECT value FROM meta WHERE key = 'fts_indexed'").fetchone()[0])


def index_above(db: sqlite3.Connection, mark: int, limit: int | None = None) -> int:
    """Inside a transaction: index the chat rows above `mark` (the next `limit` rows of any
    kind, or all), move the stored mark past them, and return the new mark."""
    if limit is None:
        upto = db.execute("SELECT max(id) FROM messages").fetchone()[0]
    else:
        upto = db.execute(
            "SELECT max(id) FROM (SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT ?)", (mark, limit)
        ).fetchone()[0]
    if upto is None or upto <= mark:
        return mark
    db.execute(
        "INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages "
        "WHERE id > ? AND id <= ? AND kind = 'chat'",
        (mark, upto),
    )
    db.execute("UPDATE meta SET value = ? WHERE key = 'fts_indexed'", (str(upto),))
    return upto


def unstored_below(db: sqlite3.Connection, messages: list[Message], mark: int) -> list[int]:
    """The ids of `messages` at or below the mark not stored yet (normally none): the caller
    indexes them once they are inserted (`index_ids`), as the mark says they are indexed."""
    low = [m.id for m in messages if m.id <= mark]
    if not low:
        return []
    marks = ", ".join("?" * len(low))
    stored = {i for (i,) in db.execute(f"SELECT id FROM messages WHERE id IN ({marks})", low)}
    return [i for i in low if i not in stored]


def index_ids(db: sqlite3.Connection, ids: list[int]) -> None:
    marks = ", ".join("?" * len(ids))
    db.execute(
        f"INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages WHERE id IN ({marks}) "
        "AND kind = 'chat'",
        ids,
    )


class IndexedSearch:
    """SQLiteStore's search and index upkeep, in its writer thread (mixed into SQLiteStore)."""

    db: sqlite3.Connection
    queue: queue.SimpleQueue
    synchronous: str
    reader: Any
    closed: bool
    notify: Callable[..., Any]
    _read: Callable[..., None]
    _search: Callable[..., Any]
    fts_mark = 0  # the committed mark (writer thread)
    last_id = 0  # the newest committed message id (writer thread)
    behind_since = 0.0  # time.monotonic() when the index fell behind the committed rows; 0: in step
    index_chunk, index_idle, index_max_lag = CHUNK, IDLE, MAX_LAG  # (tests use small ones)
    index_max_behind = MAX_BEHIND

    def search(self, command: Search, done: Done) -> None:
        """Through the writer thread: it indexes what is pending, then the reader searches."""
        if self.closed:
            self._read(self.reader, done, self._search, command)  # answers "shutting down"
            return
        self.queue.put((command, done))

    def _next_write(self) -> Any:
        """The next queued item; once none has come for `IDLE` seconds, index a chunk at a time
        until one comes (it waits for one chunk at most)."""
        idle = False
        while self.fts_mark < self.last_id:
            with contextlib.suppress(queue.Empty):
                return self.queue.get_nowait() if idle else self.queue.get(timeout=self.index_idle)
            if not self._catch_up(self.index_chunk):
                break
            idle = True
        return self.queue.get()

    def _after_commit(self, searches: list[tuple[Search, Done]]) -> None:
        """After a batch (acknowledged already): index everything for a search, or a chunk if
        the index has been behind too long or by too many rows; otherwise leave it for a pause."""
        if searches:
            self._catch_up(None)  # a search finds even a stale index's rows if this fails
            for command, done in searches:
                self._read(self.reader, done, self._search, command)
            return
        lag = self.last_id - self.fts_mark
        if lag <= 0:
            return
        now = time.monotonic()
        if not self.behind_since:
            self.behind_since = now
        if lag > self.index_max_lag or now - self.behind_since > self.index_max_behind:
            self._catch_up(self.index_chunk)

    def _catch_up(self, limit: int | None) -> bool:
        """Index the next `limit` rows above the mark (None: all) in a transaction of its own."""
        full = self.synchronous == "FULL"
        try:
            if full:
                self.db.execute("PRAGMA synchronous = NORMAL")
            try:
                with write_transaction(self.db):
                    mark = index_above(self.db, self.fts_mark, limit)
            finally:
                if full:
                    self.db.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            log.error("could not update the search index: %s", exc)
            return False
        self.fts_mark = mark
        self.last_id = max(self.last_id, mark)
        if mark >= self.last_id:
            self.behind_since = 0.0
        return True
