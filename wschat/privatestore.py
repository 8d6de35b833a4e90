"""Stored private messages in the accounts' database (`wschat.accountstore` runs these). I/O.

Tables: `private_messages` (one row per message, `seq` per conversation, `delivered` when the
recipient first got it) and `device_cursors` (per account session, the last message id that
device was given). A new session's cursor starts before the account's oldest undelivered
message, so a new device gets what is waiting and not the whole past (which it can page).
"""

from __future__ import annotations

import json
import sqlite3

from wschat.features.private_records import (
    MarkDelivered,
    ReadConversation,
    ReadMissed,
    StoredPrivate,
    StorePrivate,
)
from wschat.sqlitetx import write_transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS private_messages (
    id INTEGER PRIMARY KEY,
    conversation TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    sender_key TEXT NOT NULL,
    recipient TEXT NOT NULL,
    recipient_key TEXT NOT NULL,
    text TEXT NOT NULL,
    ts REAL NOT NULL,
    client_msg_id TEXT,
    delivered REAL,
    UNIQUE (conversation, seq)
);
CREATE INDEX IF NOT EXISTS private_by_recipient ON private_messages (recipient_key, id);
CREATE INDEX IF NOT EXISTS private_by_sender ON private_messages (sender_key, id);
CREATE TABLE IF NOT EXISTS device_cursors (
    session_id TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
"""
_COLUMNS = (
    "conversation, sender, sender_key, recipient, recipient_key, text, ts, client_msg_id, id, seq, delivered"
    ", file"  # a shared file (wschat.features.files)
    ", call"  # a call's outcome (wschat.features.calls)
    ", e2ee"  # an end-to-end encrypted message's envelope (wschat.features.e2ee_wire)
)

_CURSOR = "SELECT last_id FROM device_cursors WHERE session_id = ?"


def _record(row: tuple) -> StoredPrivate:
    m = StoredPrivate(*row[:-3])
    file, call, e2ee = (json.loads(v) if v else None for v in row[-3:])
    m.file, m.call, m.e2ee = file, call, e2ee
    return m


def migrate(db: sqlite3.Connection) -> None:
    """Databases made before file sharing, calls or encryption get the `file`, `call` and `e2ee`
    columns (JSON objects)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(private_messages)")}
    if "file" not in columns:
        db.execute("ALTER TABLE private_messages ADD COLUMN file TEXT")
    if "call" not in columns:  # calls' outcomes
        db.execute("ALTER TABLE private_messages ADD COLUMN call TEXT")
    if "e2ee" not in columns:  # end-to-end encrypted messages' envelopes
        db.execute("ALTER TABLE private_messages ADD COLUMN e2ee TEXT")


def start_cursor(db: sqlite3.Connection, session_id: str, key: str) -> None:
    """A new device's cursor: just before the oldest message waiting for the account."""
    db.execute(
        "INSERT OR REPLACE INTO device_cursors (session_id, last_id) VALUES (?, coalesce("
        "(SELECT min(id) - 1 FROM private_messages WHERE recipient_key = ? AND delivered IS NULL),"
        "(SELECT max(id) FROM private_messages), 0))",
        (session_id, key),
    )


def store(db: sqlite3.Connection, c: StorePrivate) -> None:
    with write_transaction(db):
        for m in c.messages:
            (last,) = db.execute(
                "SELECT coalesce(max(seq), 0) FROM private_messages WHERE conversation = ?", (m.conversation,)
            ).fetchone()
            m.seq = last + 1
            cur = db.execute(
                "INSERT INTO private_messages (conversation, seq, sender, sender_key, recipient, "
                "recipient_key, text, ts, client_msg_id, file, call, e2ee) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (m.conversation, m.seq, m.sender, m.sender_key, m.recipient, m.recipient_key, m.text, m.ts,
                 m.client_msg_id, None if m.file is None else json.dumps(m.file),
                 None if m.call is None else json.dumps(m.call),
                 None if m.e2ee is None else json.dumps(m.e2ee)),
            )  # fmt: skip
            m.id = cur.lastrowid or 0


def mark_delivered(db: sqlite3.Connection, c: MarkDelivered) -> None:
    with write_transaction(db):
        db.executemany(
            "UPDATE private_messages SET delivered = ? WHERE id = ? AND delivered IS NULL",
            [(c.ts, i) for i in c.ids],
        )
        db.executemany(
            "UPDATE device_cursors SET last_id = max(last_id, ?) WHERE session_id = ?",
            [(last, sid) for sid, last in c.cursors.items()],
        )


def read_missed(db: sqlite3.Connection, c: ReadMissed) -> list[StoredPrivate]:
    row = db.execute(_CURSOR, (c.session_id,)).fetchone()
    if row is None:  # a session from before stored private messages existed
        start_cursor(db, c.session_id, c.key)
        row = db.execute(_CURSOR, (c.session_id,)).fetchone()
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM private_messages WHERE id > ? AND (recipient_key = ? OR sender_key = ?) "
        "ORDER BY id LIMIT ?",
        (row[0], c.key, c.key, c.limit),
    ).fetchall()
    return [_record(r) for r in rows]


def read_conversation(db: sqlite3.Connection, c: ReadConversation) -> list[StoredPrivate]:
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM private_messages WHERE conversation = ? AND seq < ? "
        "ORDER BY seq DESC LIMIT ?",
        (c.conversation, c.before_seq, c.limit),
    ).fetchall()
    return [_record(r) for r in reversed(rows)]
