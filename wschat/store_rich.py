"""SQLite persistence of rich messaging: reactions, edits, deletes and replies. I/O (sqlite3).

`wschat.store` calls it; it owns:

- the schema it adds (`migrate`): columns of `messages` added to an old database when missing,
  and the `reactions` table, all created only if absent, so every older database opens;
- `apply_events(db, events)`: inside the writer thread's transaction, after the event rows are
  inserted, each event changes its target: a reaction row added or removed, an edit's text
  written over the message's (the latest wins), a delete leaving a tombstone without a body
  (the row stays, so seqs stay contiguous; edits' texts, reactions and quotes of it go too);
- `with_reactions(db, room, messages)`: the reactions of messages read from the database;
- `RichSQLite` and `RichMemory`: the stores' methods for the rich-messaging commands
  (`ReadMessage`, `SaveReads`, `Search`), mixed into `SQLiteStore` and `MemoryStore`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, ClassVar

from wschat.features import fold
from wschat.records import Command, Message, ReadMessage, SaveReads, Search

Done = Callable[[Any], None]

# columns of `messages` since rich messaging, with what an older row reads as
COLUMNS = (
    ("kind", "TEXT NOT NULL DEFAULT 'chat'"),
    ("target", "INTEGER NOT NULL DEFAULT 0"),
    ("reply_to", "INTEGER NOT NULL DEFAULT 0"),
    ("meta", "TEXT"),
    ("edited_at", "REAL NOT NULL DEFAULT 0"),
    ("deleted", "INTEGER NOT NULL DEFAULT 0"),
)


def is_plain(m: Message) -> bool:
    """Whether every column of `COLUMNS` would hold its default (the usual chat message): the
    store then leaves them to SQLite (wschat.store_schema.rows). A new column: test it here."""
    return m.kind == "chat" and not (m.target or m.reply_to or m.meta or m.edited_at or m.deleted)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS reactions (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    user_key TEXT NOT NULL,
    key TEXT NOT NULL,
    username TEXT NOT NULL,
    UNIQUE (room, seq, user_key, key)
);
CREATE TABLE IF NOT EXISTS read_positions (
    user_key TEXT NOT NULL,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    private INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_key, room)
);
CREATE INDEX IF NOT EXISTS messages_replies ON messages (room, reply_to) WHERE reply_to != 0;
"""


def migrate(db: sqlite3.Connection) -> None:
    """Add what rich messaging needs to a database of any earlier version."""
    present = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
    for name, declaration in COLUMNS:
        if name not in present:
            db.execute(f"ALTER TABLE messages ADD COLUMN {name} {declaration}")
    db.executescript(_SCHEMA)  # the search index is wschat.store_index's


def fts_query(tokens: tuple[str, ...]) -> str:
    """An FTS5 query that finds every token as typed: each one double-quoted (a phrase), so
    nothing a user types (`10.0.0.1`, `"`, `AND`, `*`) is FTS5 syntax."""
    return " ".join('"' + token.replace('"', '""') + '"' for token in tokens)


def search(db: sqlite3.Connection, columns: str, command: Any) -> list[tuple]:
    """Rows of the chat messages of `command.rooms` that match, newest first."""
    marks = ", ".join("?" * len(command.rooms))
    cols = ", ".join(f"m.{c.strip()}" for c in columns.split(","))
    before = "AND m.id < ? " if command.before else ""
    args = [
        fts_query(command.tokens),
        *command.rooms,
        *([command.before] if command.before else []),
        command.limit,
    ]
    return db.execute(
        f"SELECT {cols} FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
        f"WHERE messages_fts MATCH ? AND m.room IN ({marks}) AND m.kind = 'chat' AND m.deleted = 0 {before}"
        "ORDER BY m.id DESC LIMIT ?",
        args,
    ).fetchall()


def row_extra(m: Message) -> tuple:
    """The values of `COLUMNS` for a message's row."""
    meta = json.dumps(m.meta, ensure_ascii=False) if m.meta else None
    return (m.kind, m.target, m.reply_to, meta, m.edited_at, int(m.deleted))


def message_extra(m: Message, extra: tuple) -> Message:
    kind, target, reply_to, meta, edited_at, deleted = extra
    m.kind, m.target, m.reply_to, m.edited_at, m.deleted = kind, target, reply_to, edited_at, bool(deleted)
    m.meta = json.loads(meta) if meta else None
    return m


def apply_events(db: sqlite3.Connection, events: list[Message]) -> None:
    """Each event's change to its target, in seq order, inside the caller's transaction."""
    for ev in events:
        where = (ev.room, ev.target)
        if ev.kind == "reaction":
            key = (ev.meta or {}).get("key", "")
            if (ev.meta or {}).get("removed"):
                db.execute(
                    "DELETE FROM reactions WHERE room = ? AND seq = ? AND user_key = ? AND key = ?",
                    (*where, ev.user_key, key),
                )
            else:
                db.execute(
                    "INSERT OR IGNORE INTO reactions (room, seq, user_key, key, username) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (*where, ev.user_key, key, ev.username),
                )
        elif ev.kind == "edit":
            db.execute(
                "UPDATE messages SET text = ?, edited_at = ? WHERE room = ? AND seq = ? AND kind = 'chat'",
                (ev.text, ev.ts, *where),
            )
        elif ev.kind == "delete":
            _delete(db, ev.room, ev.target)


def _delete(db: sqlite3.Connection, room: str, seq: int) -> None:
    """The body is gone: the message's text, its edits' texts, its reactions, quotes of it."""
    db.execute(
        "UPDATE messages SET text = '', deleted = 1, meta = NULL "
        "WHERE room = ? AND seq = ? AND kind = 'chat'",
        (room, seq),
    )
    db.execute("UPDATE messages SET text = '' WHERE room = ? AND target = ? AND kind = 'edit'", (room, seq))
    db.execute("DELETE FROM reactions WHERE room = ? AND seq = ?", (room, seq))
    db.execute(
        "UPDATE messages SET meta = json_set(meta, '$.reply_preview.message', '') "
        "WHERE room = ? AND reply_to = ? AND kind = 'chat' AND meta IS NOT NULL",
        (room, seq),
    )


def save_reads(db: sqlite3.Connection, positions: list[tuple[str, str, int, bool]]) -> None:
    """Read positions: each only moves forward; its privacy is the latest asked for."""
    db.executemany(
        "INSERT INTO read_positions (user_key, room, seq, private) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (user_key, room) DO UPDATE SET seq = max(seq, excluded.seq), private = excluded.private",
        [(key, room, seq, int(private)) for key, room, seq, private in positions],
    )


def read_positions(db: sqlite3.Connection) -> list[tuple[str, str, int, bool]]:
    rows = db.execute("SELECT user_key, room, seq, private FROM read_positions").fetchall()
    return [(key, room, seq, bool(private)) for key, room, seq, private in rows]


def trim(db: sqlite3.Connection, room: str, keep_from: int) -> None:
    """Retention: the reactions of messages no longer kept."""
    db.execute("DELETE FROM reactions WHERE room = ? AND seq < ?", (room, keep_from))


def with_reactions(db: sqlite3.Connection, room: str, messages: list[Message]) -> list[Message]:
    """Fill in `reactions` of the chat messages read (oldest reaction first)."""
    seqs = [m.seq for m in messages if m.kind == "chat"]
    if not seqs:
        return messages
    rows = db.execute(
        "SELECT seq, key, username FROM reactions WHERE room = ? AND seq BETWEEN ? AND ? ORDER BY rowid",
        (room, min(seqs), max(seqs)),
    ).fetchall()
    by_seq = {m.seq: m for m in messages if m.kind == "chat"}
    for seq, key, username in rows:
        m = by_seq.get(seq)
        if m is not None:
            m.reactions = m.reactions or {}
            m.reactions.setdefault(key, []).append(username)
    return messages


class RichSQLite:
    """SQLiteStore's rich-messaging commands: reads on its history reader thread, read
    positions in the writer thread's shared transaction."""

    columns: ClassVar[str]  # the `messages` columns SQLiteStore reads, in its order
    to_message: ClassVar[Callable[[tuple], Message]]  # a row of those -> a Message (set by wschat.store)
    db: sqlite3.Connection
    reader: Any
    _read: Callable[..., None]

    def read_message(self, command: ReadMessage, done: Done) -> None:
        self._read(self.reader, done, self._one, command.room, command.seq)

    def search(self, command: Search, done: Done) -> None:
        self._read(self.reader, done, self._search, command)

    def _write_reads(self, commands: list[Command]) -> Callable[[], None]:
        save_reads(self.db, [pos for c in commands if isinstance(c, SaveReads) for pos in c.positions])
        return lambda: None

    def _search(self, db: sqlite3.Connection, command: Search) -> list[Message]:
        found = [self.to_message(r) for r in search(db, self.columns, command)]
        by_room: dict[str, list[Message]] = {}
        for m in found:
            by_room.setdefault(m.room, []).append(m)
        for room, msgs in by_room.items():
            with_reactions(db, room, msgs)
        return found

    def _one(self, db: sqlite3.Connection, room: str, seq: int) -> Message | None:
        query = f"SELECT {self.columns} FROM messages WHERE room = ? AND seq = ?"
        row = db.execute(query, (room, seq)).fetchone()
        return None if row is None else with_reactions(db, room, [self.to_message(row)])[0]


class RichMemory:
    """MemoryStore's rich-messaging commands (its messages carry their folded state)."""

    rooms: dict[str, list[Message]]
    notify: Callable[..., Any]

    def read_message(self, command: ReadMessage, done: Done) -> None:
        found = [m for m in self.rooms.get(command.room, ()) if m.seq == command.seq]
        self.notify(done, found[0] if found else None)

    def save_reads(self, command: SaveReads, done: Done) -> None:
        self.notify(done, None)  # the hub keeps them while the process lives

    def search(self, command: Search, done: Done) -> None:
        found: list[Message] = []
        for room in command.rooms:
            found += [
                m for m in self.rooms.get(room, ())
                if m.kind == "chat" and not m.deleted and (not command.before or m.id < command.before)
                and fold.matches(m, command.tokens)
            ]  # fmt: skip
        found.sort(key=lambda m: m.id, reverse=True)
        self.notify(done, found[: command.limit])
