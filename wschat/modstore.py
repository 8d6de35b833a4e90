"""Moderation in the accounts' database: operators, room rules, bans and mutes, the audit. I/O.

`wschat.accountstore` runs `Moderate` and `ReadModeration` here on its accounts thread; the
admin command line (`wschat.admin`) calls the same functions on a connection of its own while
the server runs (SQLite WAL; the server re-reads what it holds every few seconds).
"""

from __future__ import annotations

import sqlite3

from wschat.features.mod_records import Moderate, ModState, Restriction, RoomRules
from wschat.sqlitetx import write_transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS operators (
    key TEXT PRIMARY KEY,
    granted INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS room_rules (
    room TEXT PRIMARY KEY,
    creator TEXT NOT NULL DEFAULT '',
    topic TEXT NOT NULL DEFAULT '',
    invite_only INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS room_invites (
    room TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (room, key)
);
CREATE TABLE IF NOT EXISTS restrictions (
    what TEXT NOT NULL,
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    name TEXT NOT NULL,
    until REAL NOT NULL,
    reason TEXT NOT NULL,
    by TEXT NOT NULL,
    PRIMARY KEY (what, scope, subject)
);
CREATE TABLE IF NOT EXISTS moderation_audit (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    scope TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""

_RULE_COLUMNS = {"topic": "topic", "invite_only": "invite_only", "creator": "creator"}


def _change(db: sqlite3.Connection, c: Moderate) -> None:
    if c.action in ("ban", "mute") and c.restriction is not None:
        r = c.restriction
        db.execute(
            "INSERT OR REPLACE INTO restrictions (what, scope, subject, name, until, reason, by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (r.what, r.scope, r.subject, r.name, r.until, r.reason, r.by),
        )
    elif c.action in ("unban", "unmute"):
        db.execute(
            "DELETE FROM restrictions WHERE what = ? AND scope = ? AND subject = ?",
            (c.action[2:], c.scope, c.subject),
        )
    elif c.action in _RULE_COLUMNS:
        value: str | int = int(c.value == "on") if c.action == "invite_only" else c.value
        db.execute("INSERT OR IGNORE INTO room_rules (room) VALUES (?)", (c.scope,))
        db.execute(f"UPDATE room_rules SET {_RULE_COLUMNS[c.action]} = ? WHERE room = ?", (value, c.scope))
    elif c.action == "invite":
        db.execute("INSERT OR IGNORE INTO room_invites (room, key) VALUES (?, ?)", (c.scope, c.subject))
    elif c.action in ("grant", "revoke"):
        granted = int(c.action == "grant")
        db.execute("INSERT OR REPLACE INTO operators (key, granted) VALUES (?, ?)", (c.subject, granted))


def moderate(db: sqlite3.Connection, c: Moderate) -> None:
    """Apply one action and write its audit row, in one transaction."""
    with write_transaction(db):
        db.execute("DELETE FROM restrictions WHERE until > 0 AND until <= ?", (c.at,))  # run out
        _change(db, c)
        detail = c.value or (c.restriction.reason if c.restriction else "")
        db.execute(
            "INSERT INTO moderation_audit (at, actor, action, scope, target, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (c.at, c.actor, c.action, c.scope, c.target, detail),
        )


def read(db: sqlite3.Connection, now: float) -> ModState:
    """What the hub holds, restrictions that have run out left out. Only reads: the server asks
    every few seconds, and must not take the database's write lock for it."""
    state = ModState()
    operators = db.execute("SELECT key, granted FROM operators")
    state.operators = {key: bool(granted) for key, granted in operators}
    rules = db.execute("SELECT room, creator, topic, invite_only FROM room_rules")
    for room, creator, topic, invite_only in rules:
        state.rooms[room] = RoomRules(creator, topic, bool(invite_only))
    for room, key in db.execute("SELECT room, key FROM room_invites"):
        state.rooms.setdefault(room, RoomRules()).invited.add(key)
    rows = db.execute(
        "SELECT what, scope, subject, name, until, reason, by FROM restrictions WHERE until = 0 OR until > ?",
        (now,),
    )
    state.restrictions = [Restriction(*row) for row in rows]
    return state


def audit(db: sqlite3.Connection, limit: int = 50) -> list[tuple]:
    """The most recent audit rows, newest first: (at, actor, action, scope, target, detail)."""
    return db.execute(
        "SELECT at, actor, action, scope, target, detail FROM moderation_audit ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
