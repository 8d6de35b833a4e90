"""The SQLite store's `messages` schema and rows: the tables it creates, the columns it reads
and writes (the base ones, a shared file's JSON, rich messaging's), and a row <-> `Message`.
I/O (sqlite3); used by `wschat.store` only.
"""

from __future__ import annotations

import json
import sqlite3

from wschat import store_rich
from wschat.records import Message

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    epoch TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    username TEXT NOT NULL,
    user_key TEXT NOT NULL,
    client_id TEXT NOT NULL,
    text TEXT NOT NULL,
    ts REAL NOT NULL,
    client_msg_id TEXT,
    UNIQUE (room, seq)
);
CREATE INDEX IF NOT EXISTS messages_sent_ids ON messages (id) WHERE client_msg_id IS NOT NULL;
"""
# the base columns, a shared file's JSON object (wschat.features.files), then rich messaging's
COLUMNS = "id, room, seq, username, user_key, client_id, text, ts, client_msg_id, file"
COLUMNS += "".join(f", {name}" for name, _ in store_rich.COLUMNS)  # rich messaging (wschat.store_rich)
INSERT = f"INSERT INTO messages ({COLUMNS}) VALUES ({', '.join('?' * (10 + len(store_rich.COLUMNS)))})"


# A plain chat message (no file, nothing of rich messaging) leaves the later columns to their
# defaults: building and binding all 16 values cost ~3 us a row more than these 9 (measured).
_BASE = "id, room, seq, username, user_key, client_id, text, ts, client_msg_id"
INSERT_PLAIN = f"INSERT INTO messages ({_BASE}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


def rows(messages: list[Message]) -> tuple[list[tuple], list[tuple]]:
    """The messages' rows: the plain ones (for `INSERT_PLAIN`), and the others (for `INSERT`)."""
    plain: list[tuple] = []
    full: list[tuple] = []
    is_plain = store_rich.is_plain
    for m in messages:
        if m.file is None and is_plain(m):
            plain.append(
                (m.id, m.room, m.seq, m.username, m.user_key, m.client_id, m.text, m.ts, m.client_msg_id)
            )
        else:
            full.append(row(m))
    return plain, full


def row(m: Message) -> tuple:
    file = json.dumps(m.file) if m.file is not None else None
    head = (m.id, m.room, m.seq, m.username, m.user_key, m.client_id, m.text, m.ts, m.client_msg_id, file)
    return head + store_rich.row_extra(m)


def message(values: tuple) -> Message:
    m = Message(*values[:9])
    if values[9] is not None:
        m.file = json.loads(values[9])
    return store_rich.message_extra(m, values[10:])


def add_file_column(db: sqlite3.Connection) -> None:
    """Databases made before file sharing get the `file` column (a shared file's JSON object)."""
    if "file" not in {col[1] for col in db.execute("PRAGMA table_info(messages)")}:
        db.execute("ALTER TABLE messages ADD COLUMN file TEXT")


store_rich.RichSQLite.to_message = staticmethod(message)  # rows -> Messages, as this module reads them
