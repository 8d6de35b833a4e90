"""Published device keys in the accounts' database (`wschat.accountstore` runs these). I/O.

Table `device_keys`: one public key per account session. Reads join the live sessions, so a
session that ended (revoked, logged out, password changed) no longer lists its key; its row is
dropped at the account's next `publish_key`.
"""

from __future__ import annotations

import sqlite3

from wschat.features.e2ee_records import DeviceKey, ReadDeviceKeys, SaveDeviceKey
from wschat.sqlitetx import write_transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS device_keys (
    session_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS device_keys_by_account ON device_keys (account);
"""


def _keys(db: sqlite3.Connection, account: str) -> list[DeviceKey]:
    rows = db.execute(
        "SELECT k.session_id, k.key_id, k.public_key, s.device, k.created FROM device_keys k "
        "JOIN account_sessions s ON s.id = k.session_id WHERE k.account = ? ORDER BY k.created",
        (account,),
    ).fetchall()
    return [DeviceKey(*row) for row in rows]  # one key may be two sessions' (two tabs of a browser)


def save(db: sqlite3.Connection, c: SaveDeviceKey) -> list[DeviceKey]:
    with write_transaction(db):
        db.execute(
            "DELETE FROM device_keys WHERE account = ? "
            "AND session_id NOT IN (SELECT id FROM account_sessions)",
            (c.key,),
        )
        db.execute(
            "INSERT OR REPLACE INTO device_keys (session_id, account, key_id, public_key, created) "
            "VALUES (?, ?, ?, ?, coalesce("
            "(SELECT created FROM device_keys WHERE session_id = ? AND key_id = ?), ?))",
            (c.session_id, c.key, c.key_id, c.public, c.session_id, c.key_id, c.now),
        )
    return _keys(db, c.key)


def read(db: sqlite3.Connection, c: ReadDeviceKeys) -> dict[str, list[DeviceKey]]:
    return {key: _keys(db, key) for key in dict.fromkeys(c.keys)}
