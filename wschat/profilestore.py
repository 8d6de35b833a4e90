"""Profiles in the accounts' SQLite database: an account's status, last-seen time and avatar. I/O.

Run by `wschat.accountstore` on its accounts thread (the same connection and lock); the
commands are `wschat.features.profile_records`. Kept apart from the accounts' tables so that a
cluster-wide store can execute the same commands beside it.
"""

from __future__ import annotations

import sqlite3

from wschat.features.profile_records import ReadProfile, SaveProfile, StoredProfile

SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT '',
    last_seen REAL
);
"""
# the avatar came later: a database made before it gets the column (migrate)
AVATAR_COLUMN = "ALTER TABLE profiles ADD COLUMN avatar TEXT NOT NULL DEFAULT ''"


def migrate(db: sqlite3.Connection) -> None:
    """Add what later versions keep (the avatar's media id) to an older database's table."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(profiles)")}
    if "avatar" not in columns:
        db.execute(AVATAR_COLUMN)


def read(db: sqlite3.Connection, c: ReadProfile) -> StoredProfile:
    row = db.execute("SELECT status, last_seen, avatar FROM profiles WHERE key = ?", (c.key,)).fetchone()
    return StoredProfile() if row is None else StoredProfile(row[0], row[1], row[2])


def save(db: sqlite3.Connection, c: SaveProfile) -> None:
    db.execute("INSERT OR IGNORE INTO profiles (key) VALUES (?)", (c.key,))
    if c.status is not None:
        db.execute("UPDATE profiles SET status = ? WHERE key = ?", (c.status, c.key))
    if c.last_seen is not None:
        db.execute("UPDATE profiles SET last_seen = ? WHERE key = ?", (c.last_seen, c.key))
    if c.avatar is not None:
        db.execute("UPDATE profiles SET avatar = ? WHERE key = ?", (c.avatar, c.key))
