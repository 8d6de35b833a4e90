"""Accounts in the store: argon2id password hashes and device sessions, off the event loop. I/O.

`AccountStore` executes the accounts feature's store commands
(`wschat.features.account_records`) for both stores (`wschat.store`): in the SQLite file the
history lives in, or in a private in-memory database for `--db :memory:`.

- Passwords are hashed with argon2id (argon2-cffi, OWASP's parameters: 19 MiB, t=2, p=1) on one
  hashing thread: a flood of log-ins queues there (the hub also bounds how many may be in flight)
  and never on the event loop or the history's threads. `check_needs_rehash` upgrades a hash
  made with older parameters at the next successful log-in.
- An unknown name is verified against a dummy hash, so it costs what a wrong password costs.
- Session tokens come from `secrets.token_urlsafe(32)`; only their SHA-256 is stored, one row per
  device with its last use; a presented token is compared with each of the account's in
  constant time (`hmac.compare_digest`).
- Everything else (token log-ins, sessions lists, log-outs) runs on a second thread, so a token
  log-in on reconnect never waits behind password hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from wschat.features.account_records import (
    AccountSession,
    CheckPassword,
    CheckToken,
    CreateAccount,
    DeviceSession,
    EndSession,
    ReadSessionEnds,
    ReadSessions,
    SetPassword,
)
from wschat.features.e2ee_records import ReadDeviceKeys, SaveDeviceKey
from wschat.features.mod_records import Moderate, ModState, ReadModeration
from wschat.features.private_records import MarkDelivered, ReadConversation, ReadMissed, StorePrivate
from wschat.features.profile_records import ReadProfile, SaveProfile, StoredProfile
from wschat.keystore import SCHEMA as KEYS_SCHEMA
from wschat.keystore import read as read_keys
from wschat.keystore import save as save_key
from wschat.modstore import SCHEMA as MODERATION_SCHEMA
from wschat.modstore import moderate
from wschat.modstore import read as read_moderation
from wschat.privatestore import SCHEMA as PRIVATE_SCHEMA
from wschat.privatestore import mark_delivered, read_conversation, read_missed, start_cursor, store
from wschat.privatestore import migrate as migrate_private
from wschat.profilestore import SCHEMA as PROFILE_SCHEMA
from wschat.profilestore import migrate as migrate_profiles
from wschat.profilestore import read as read_profile
from wschat.profilestore import save as save_profile
from wschat.records import Command
from wschat.sqlitetx import write_transaction

log = logging.getLogger("wschat.accounts")

COMMANDS: tuple[type[Command], ...] = (
    CreateAccount, CheckPassword, CheckToken, EndSession, ReadSessions, SetPassword,
    StorePrivate, MarkDelivered, ReadMissed, ReadConversation, Moderate, ReadModeration,
    ReadProfile, SaveProfile, ReadSessionEnds,
    SaveDeviceKey, ReadDeviceKeys,
)  # fmt: skip
_HASHING = (CreateAccount, CheckPassword, SetPassword)

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS account_sessions (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    device TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS account_sessions_by_account ON account_sessions (account);
-- the host's admin command line ended these accounts' sessions (wschat.features.session_watch)
CREATE TABLE IF NOT EXISTS session_ends (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    at REAL NOT NULL
);
"""


def hasher() -> PasswordHasher:
    """argon2id with OWASP's minimum parameters (about 50 ms here)."""
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class PasswordCheck:
    """argon2id verification shared by the SQLite and Redis account stores: against a dummy hash
    when there is no account, so an unknown name costs what a wrong password costs."""

    hasher: PasswordHasher
    _dummy: str

    def _verify(self, stored: str | None, password: str) -> bool:
        if stored is None:
            if not self._dummy:
                self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
            stored = self._dummy
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False


class AccountStore(PasswordCheck):
    """The accounts tables of one database; `execute(command, done)` as the stores have it."""

    def __init__(self, path: str, notify: Callable[..., Any]) -> None:
        self.path = path
        self.notify = notify
        self.hasher = hasher()
        self._dummy = ""  # a hash to verify unknown names against, made on the hashing thread
        self.lock = threading.Lock()  # one connection, used by both threads in turn
        self.db: sqlite3.Connection | None = None
        self.hashing = ThreadPoolExecutor(1, thread_name_prefix="chat-hash")
        self.other = ThreadPoolExecutor(1, thread_name_prefix="chat-accounts")
        self.closed = False

    def open(self) -> list[str]:
        """Create the tables if needed; every registered name (for the start-up snapshot)."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 5000")
        db.executescript(SCHEMA)
        db.executescript(PRIVATE_SCHEMA)
        migrate_private(db)
        db.executescript(MODERATION_SCHEMA)
        db.executescript(PROFILE_SCHEMA)
        migrate_profiles(db)
        db.executescript(KEYS_SCHEMA)
        self.db = db
        return [name for (name,) in db.execute("SELECT name FROM accounts ORDER BY created")]

    def moderation(self, now: float) -> ModState:
        """Moderation's state at start-up (wschat.modstore)."""
        assert self.db is not None
        return read_moderation(self.db, now)

    def sent_ids(self, limit: int) -> list[tuple[str, str, str, str, int]]:
        """Recent stored private messages' client ids, oldest first, as the hub remembers sent ids
        (sender key, client_msg_id, "@" + recipient, id, seq): a resend after a restart is
        recognised, not stored twice."""
        assert self.db is not None
        rows = self.db.execute(
            "SELECT sender_key, client_msg_id, '@' || recipient, 'pm' || id, seq FROM private_messages "
            "WHERE client_msg_id IS NOT NULL ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return list(reversed(rows))

    def execute(self, command: Command, done: Callable[[Any], None]) -> None:
        method: Callable[[Any], Any] = getattr(self, "_" + type(command).__name__.lower())
        pool = self.hashing if isinstance(command, _HASHING) else self.other

        def run() -> None:
            try:
                result = method(command)
            except Exception as exc:
                log.error("accounts: %s failed: %s", type(command).__name__, exc)
                result = exc
            self.notify(done, result)

        if self.closed:
            self.notify(done, RuntimeError("the server is shutting down"))
            return
        pool.submit(run)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.hashing.shutdown(wait=True)
        self.other.shutdown(wait=True)
        if self.db is not None:
            self.db.close()

    # -- on the threads

    def _sql(self, query: str, args: tuple = ()) -> list[tuple]:
        assert self.db is not None
        with self.lock:
            return self.db.execute(query, args).fetchall()

    def _new_session(self, key: str, name: str, device: str, now: float) -> AccountSession:
        token = secrets.token_urlsafe(32)
        session_id = secrets.token_hex(8)
        self._sql(
            "INSERT INTO account_sessions (id, account, token_hash, device, created, last_used) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (session_id, key, token_hash(token), device, now, now),
        )
        with self.lock:
            assert self.db is not None
            start_cursor(self.db, session_id, key)
        return AccountSession(name, key, session_id, token)

    def _createaccount(self, c: CreateAccount) -> AccountSession | None:
        if self._sql("SELECT 1 FROM accounts WHERE key = ?", (c.key,)):
            return None
        hashed = self.hasher.hash(c.password)
        try:
            self._sql(
                "INSERT INTO accounts (key, name, hash, created) VALUES (?, ?, ?, ?)",
                (c.key, c.name, hashed, c.now),
            )
        except sqlite3.IntegrityError:  # registered meanwhile (another process, the admin)
            return None
        return self._new_session(c.key, c.name, c.device, c.now)

    def _checkpassword(self, c: CheckPassword) -> AccountSession | None:
        rows = self._sql("SELECT name, hash FROM accounts WHERE key = ?", (c.key,))
        name, stored = rows[0] if rows else ("", None)
        if not self._verify(stored, c.password) or stored is None:
            return None
        if self.hasher.check_needs_rehash(stored):
            self._sql("UPDATE accounts SET hash = ? WHERE key = ?", (self.hasher.hash(c.password), c.key))
        return self._new_session(c.key, name, c.device, c.now)

    def _checktoken(self, c: CheckToken) -> AccountSession | None:
        offered = token_hash(c.token)
        rows = self._sql(
            "SELECT s.id, s.token_hash, a.name FROM account_sessions s JOIN accounts a ON a.key = s.account "
            "WHERE s.account = ?",
            (c.key,),
        )
        found = None
        for session_id, stored, name in rows:  # every row compared: the time says nothing
            if hmac.compare_digest(offered, stored):
                found = (session_id, name)
        if found is None:
            return None
        self._sql("UPDATE account_sessions SET last_used = ? WHERE id = ?", (c.now, found[0]))
        return AccountSession(found[1], c.key, found[0])

    def _endsession(self, c: EndSession) -> bool:
        assert self.db is not None
        with self.lock:
            cur = self.db.execute(
                "DELETE FROM account_sessions WHERE account = ? AND id = ?", (c.key, c.session_id)
            )
            return cur.rowcount > 0

    def _readsessions(self, c: ReadSessions) -> list[DeviceSession]:
        rows = self._sql(
            "SELECT id, device, created, last_used FROM account_sessions WHERE account = ? "
            "ORDER BY last_used DESC",
            (c.key,),
        )
        return [DeviceSession(*row) for row in rows]

    # -- stored private messages (wschat.privatestore)

    def _locked(self, run: Callable[[sqlite3.Connection, Any], Any], command: Command) -> Any:
        assert self.db is not None
        with self.lock:
            return run(self.db, command)

    def _storeprivate(self, c: StorePrivate) -> None:
        self._locked(store, c)

    def _markdelivered(self, c: MarkDelivered) -> None:
        self._locked(mark_delivered, c)

    def _readmissed(self, c: ReadMissed) -> list:
        return self._locked(read_missed, c)

    def _readconversation(self, c: ReadConversation) -> list:
        return self._locked(read_conversation, c)

    def _moderate(self, c: Moderate) -> None:
        self._locked(moderate, c)

    def _savedevicekey(self, c: SaveDeviceKey) -> list:
        return self._locked(save_key, c)  # end-to-end encryption (wschat.keystore)

    def _readdevicekeys(self, c: ReadDeviceKeys) -> dict:
        return self._locked(read_keys, c)

    def _readmoderation(self, c: ReadModeration) -> ModState:
        return self._locked(lambda db, cmd: read_moderation(db, cmd.now), c)

    def _readsessionends(self, c: ReadSessionEnds) -> tuple[int, list[str]]:
        latest = self._sql("SELECT coalesce(max(seq), 0) FROM session_ends")[0][0]
        if c.after < 0:
            return latest, []
        rows = self._sql("SELECT account FROM session_ends WHERE seq > ? AND seq <= ?", (c.after, latest))
        return latest, [key for (key,) in rows]

    def _readprofile(self, c: ReadProfile) -> StoredProfile:  # wschat.profilestore
        return self._locked(read_profile, c)

    def _saveprofile(self, c: SaveProfile) -> None:
        self._locked(save_profile, c)

    def _setpassword(self, c: SetPassword) -> int | None:
        rows = self._sql("SELECT hash FROM accounts WHERE key = ?", (c.key,))
        if not rows or not self._verify(rows[0][0], c.old):
            return None
        hashed = self.hasher.hash(c.new)
        assert self.db is not None
        with self.lock, write_transaction(self.db):
            self.db.execute("UPDATE accounts SET hash = ? WHERE key = ?", (hashed, c.key))
            cur = self.db.execute(
                "DELETE FROM account_sessions WHERE account = ? AND id != ?", (c.key, c.keep)
            )
        return cur.rowcount
