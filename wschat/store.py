"""History persistence behind one interface, `execute(command, done)`: memory and SQLite.

A store owns its threads; it never touches the event loop. Results come back through the
`notify(callback, *args)` function given at construction (the server passes
`loop.call_soon_threadsafe`), so callbacks always run on the caller's thread, never inside a
store call.

- `load()` returns the `Snapshot` the hub starts from (the database's epoch, `general` with its
  recent messages, the names of recently active rooms, the next id, recently used client
  message ids).
- `execute(command, done)` carries out one store command of `wschat.records` and calls
  `done(result)`, or `done(exc)` if it failed: `Append` (result None once committed),
  `ReadPage` (the messages, oldest first), `LoadRoom` (a `RoomState`, or None for a room with
  no history). Each store's `executors` maps a command class to the method that runs it; a
  command it does not know gets `done(TypeError)`.
- `close()` finishes pending writes and releases the database.

SQLite runs in WAL mode with one writer thread that commits whatever has queued up since its
last commit in one transaction (group commit), so the cost of a commit is shared by everyone who
sent a message meanwhile: every write command (`Append` today) goes through that thread, and its
`writers` entry writes a list of them inside the shared transaction. Reads run on two reader
threads: one for room loads (someone waits to enter a room) and one for history pages, so a
crowd paging old history never delays a join.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, ClassVar

from wschat import store_rich
from wschat.accountstore import COMMANDS as ACCOUNT_COMMANDS
from wschat.accountstore import AccountStore
from wschat.features import fold
from wschat.records import (
    Append,
    Command,
    LoadRoom,
    Message,
    ReadMessage,
    ReadPage,
    RoomState,
    SaveReads,
    Search,
    Snapshot,
)

log = logging.getLogger("wschat.store")

Notify = Callable[..., Any]
Done = Callable[[Any], None]
SENT_IDS_LOADED = 200_000


class StoreError(Exception):
    """The store cannot be used; str(self) is one sentence naming the file and the problem."""


class Store:
    notify: Notify  # runs a callback on the caller's thread: the server's loop.call_soon_threadsafe
    # command class -> the name of the method that executes it: method(command, done)
    executors: ClassVar[dict[type[Command], str]] = {}
    # another store's commands (the media store's), set by attach(); empty and read-only until then
    attached: Mapping[type[Command], Callable[[Any, Done], None]] = MappingProxyType({})

    def load(self) -> Snapshot:
        raise NotImplementedError

    def attach(self, executors: dict[type[Command], Callable[[Any, Done], None]]) -> None:
        """Commands that another store carries out (the media store) but that come through here."""
        self.attached = {**self.attached, **executors}

    def execute(self, command: Command, done: Done) -> None:
        """Carry out `command`; `done(result)` or `done(exc)` later, on the caller's thread."""
        if (other := self.attached.get(type(command))) is not None:
            other(command, done)
            return
        method = self.executors.get(type(command))
        if method is None:
            self.notify(done, TypeError(f"this store cannot execute {type(command).__name__}"))
            return
        getattr(self, method)(command, done)

    def close(self) -> None:
        """Finish pending writes. Idempotent."""

    # accounts and their sessions (wschat.accountstore), in the same database
    accounts: AccountStore

    def account(self, command: Command, done: Done) -> None:
        self.accounts.execute(command, done)


class MemoryStore(store_rich.RichMemory, Store):
    """History in this process only: gone when the server stops."""

    executors: ClassVar[dict[type[Command], str]] = {
        Append: "append",
        ReadPage: "read_page",
        LoadRoom: "load_room",
        ReadMessage: "read_message",
        SaveReads: "save_reads",
        Search: "search",
        **dict.fromkeys(ACCOUNT_COMMANDS, "account"),
    }

    def __init__(self, notify: Notify, *, history_cap: int = 10_000) -> None:
        self.notify = notify
        self.accounts = AccountStore(":memory:", notify)
        self.cap = history_cap
        self.rooms: dict[str, list[Message]] = {}
        self.epoch = secrets.token_urlsafe(9)

    def load(self) -> Snapshot:
        accounts = self.accounts.open()
        return Snapshot(epoch=self.epoch, accounts=accounts, moderation=self.accounts.moderation(time.time()))

    def close(self) -> None:
        self.accounts.close()

    def load_room(self, command: LoadRoom, done: Done) -> None:
        msgs = self.rooms.get(command.room)
        state = None
        if msgs:
            state = RoomState(self.epoch, msgs[-1].seq, msgs[0].seq, msgs[-1000:])
        self.notify(done, state)

    def append(self, command: Append, done: Done) -> None:
        for m in command.messages:
            msgs = self.rooms.setdefault(m.room, [])
            msgs.append(m)
            if m.kind != "chat":
                fold.into_list(msgs, m)
            if len(msgs) > 2 * self.cap:
                del msgs[: -self.cap]
        self.notify(done, None)

    def read_page(self, command: ReadPage, done: Done) -> None:
        older = [
            m for m in self.rooms.get(command.room, ())
            if m.seq < command.before_seq and m.kind == "chat" and not m.deleted
        ]  # fmt: skip
        self.notify(done, older[-command.limit :])


_SCHEMA = """
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
_COLUMNS = "id, room, seq, username, user_key, client_id, text, ts, client_msg_id, file"
_COLUMNS += "".join(f", {name}" for name, _ in store_rich.COLUMNS)  # rich messaging (wschat.store_rich)
_INSERT = f"INSERT INTO messages ({_COLUMNS}) VALUES ({', '.join('?' * (10 + len(store_rich.COLUMNS)))})"
_STOP = object()


def _row(m: Message) -> tuple:
    file = json.dumps(m.file) if m.file is not None else None
    head = (m.id, m.room, m.seq, m.username, m.user_key, m.client_id, m.text, m.ts, m.client_msg_id, file)
    return head + store_rich.row_extra(m)


def _message(row: tuple) -> Message:
    m = Message(*row[:9])
    if row[9] is not None:
        m.file = json.loads(row[9])
    return store_rich.message_extra(m, row[10:])


def _add_file_column(db: sqlite3.Connection) -> None:
    """Databases made before file sharing get the `file` column (a shared file's JSON object)."""
    if "file" not in {row[1] for row in db.execute("PRAGMA table_info(messages)")}:
        db.execute("ALTER TABLE messages ADD COLUMN file TEXT")


store_rich.RichSQLite.to_message = staticmethod(_message)  # rows -> Messages, as this module reads them


class SQLiteStore(store_rich.RichSQLite, Store):
    """SQLite in WAL mode; `synchronous` is "full" (survives power loss) or "normal"."""

    columns = _COLUMNS  # for the rich-messaging reads (wschat.store_rich.RichSQLite)

    executors: ClassVar[dict[type[Command], str]] = {
        Append: "write",
        ReadPage: "read_page",
        LoadRoom: "load_room",
        ReadMessage: "read_message",
        SaveReads: "write",
        Search: "search",
        **dict.fromkeys(ACCOUNT_COMMANDS, "account"),
    }
    # command class -> the method that writes a list of them inside the writer thread's
    # transaction; it returns what to remember once they are committed
    writers: ClassVar[dict[type[Command], str]] = {Append: "_write_appends", SaveReads: "_write_reads"}

    def __init__(
        self,
        path: str,
        notify: Notify,
        *,
        synchronous: str = "full",
        history_cap: int = 10_000,
        window: int = 1000,
    ) -> None:
        self.path = path
        self.notify = notify
        self.accounts = AccountStore(path, notify)
        self.synchronous = synchronous.upper()
        self.cap = history_cap
        self.window = window
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.first_seq: dict[str, int] = {}  # the writer's view, for retention
        self.known_rooms: set[str] = set()  # rooms with a row in the rooms table
        self.writer: threading.Thread | None = None
        # Room loads have a reader of their own: someone is waiting to enter the room, and must
        # not queue behind a crowd paging through old history (which took seconds).
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="chat-db-read")
        self.loader = ThreadPoolExecutor(1, thread_name_prefix="chat-db-load")
        self._local = threading.local()
        self.closed = False

    # -- opening

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute(f"PRAGMA synchronous = {self.synchronous}")
        return db

    def load(self) -> Snapshot:
        """Open (creating if needed) the database and read the start-up snapshot."""
        try:
            return self._load()
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot use the database {self.path}: {_explain(exc, self.path)}") from None
        except OSError as exc:
            raise StoreError(f"Cannot use the database {self.path}: {exc.strerror}.") from None

    def _load(self) -> Snapshot:
        if self.path != ":memory:":
            folder = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(folder):
                raise StoreError(f"Cannot use the database {self.path}: the folder {folder} does not exist.")
            if os.path.isdir(self.path):
                raise StoreError(f"Cannot use the database {self.path}: it is a folder, not a file.")
        db = self._connect()
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal" and self.path != ":memory:":
            raise StoreError(f"Cannot use the database {self.path}: WAL mode is not available there.")
        db.executescript(_SCHEMA)
        _add_file_column(db)
        store_rich.migrate(db)
        # One epoch per database, made when the file is: history is lost exactly when the file is.
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)", (secrets.token_urlsafe(9),))
        snap = Snapshot(epoch=db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])
        # Only general now; other rooms are read when someone joins them (load_room).
        general = self._room_state(db, "general")
        if general is not None:
            snap.rooms["general"] = general
        self.known_rooms = {name for (name,) in db.execute("SELECT name FROM rooms")}
        recent_rooms = db.execute(
            "SELECT room FROM messages GROUP BY room ORDER BY max(id) DESC LIMIT 200"
        ).fetchall()
        snap.known_rooms = [name for (name,) in reversed(recent_rooms) if name != "general"]
        snap.next_id = (db.execute("SELECT max(id) FROM messages").fetchone()[0] or 0) + 1
        rows = db.execute(
            "SELECT user_key, client_msg_id, room, id, seq FROM messages "
            "WHERE client_msg_id IS NOT NULL ORDER BY id DESC LIMIT ?",
            (SENT_IDS_LOADED,),
        ).fetchall()
        snap.sent_ids = list(reversed(rows))
        snap.read_positions = store_rich.read_positions(db)
        snap.accounts = self.accounts.open()
        snap.moderation = self.accounts.moderation(time.time())
        snap.sent_ids += self.accounts.sent_ids(SENT_IDS_LOADED)  # stored private messages
        self.db = db
        self.writer = threading.Thread(target=self._write_loop, name="chat-db-write", daemon=True)
        self.writer.start()
        return snap

    # -- writing

    def write(self, command: Command, done: Done) -> None:
        """Queue a write for the writer thread: it commits all that queued up in one transaction."""
        if type(command) not in self.writers:
            self.notify(done, TypeError(f"this store cannot write {type(command).__name__}"))
            return
        self.queue.put((command, done))

    def _write_loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                break
            items = [item]
            stop = False
            with contextlib.suppress(queue.Empty):
                while len(items) < 10_000:
                    nxt = self.queue.get_nowait()
                    if nxt is _STOP:
                        stop = True
                        break
                    items.append(nxt)
            self._commit(items)
            if stop:
                break
        self.db.close()

    def _commit(self, items: list[tuple[Command, Done]]) -> None:
        kinds: dict[type[Command], list[Command]] = {}
        for command, _ in items:
            kinds.setdefault(type(command), []).append(command)
        error: BaseException | None = None
        afterwards: list[Callable[[], None]] = []
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for kind, commands in kinds.items():
                    afterwards.append(getattr(self, self.writers[kind])(commands))
                self.db.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back by itself (a full disk, an I/O error): a ROLLBACK
                # then fails with "no transaction is active", which must not hide the cause.
                if self.db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                raise
        except Exception as exc:  # the thread must survive anything: senders are told and retry
            log.error("could not store %d writes (%s): %s", len(items), _kinds(kinds), exc)
            error = exc
        else:
            for remember in afterwards:
                remember()
        for _, done in items:
            self.notify(done, error)

    def _write_appends(self, commands: list[Command]) -> Callable[[], None]:
        messages = [m for c in commands if isinstance(c, Append) for m in c.messages]
        new_rooms = {m.room: m.epoch for m in messages if m.room not in self.known_rooms}
        self.db.executemany("INSERT OR IGNORE INTO rooms (name, epoch) VALUES (?, ?)", new_rooms.items())
        self.db.executemany(_INSERT, [_row(m) for m in messages])
        store_rich.apply_events(self.db, [m for m in messages if m.kind != "chat"])
        self._trim(messages)

        def committed() -> None:
            for m in messages:
                self.known_rooms.add(m.room)
                self.first_seq.setdefault(m.room, m.seq)

        return committed

    def _trim(self, messages: list[Message]) -> None:
        """Retention: keep the newest `cap` messages per room, deleting in chunks."""
        slack = max(100, self.cap // 100)
        newest: dict[str, int] = {}
        for m in messages:
            if m.seq > newest.get(m.room, 0):
                newest[m.room] = m.seq
        for room, last in newest.items():
            first = self.first_seq.get(room, 1)
            if last - first + 1 > self.cap + slack:
                keep_from = last - self.cap + 1
                self.db.execute("DELETE FROM messages WHERE room = ? AND seq < ?", (room, keep_from))
                store_rich.trim(self.db, room, keep_from)
                self.first_seq[room] = keep_from

    # -- reading

    def _room_state(self, db: sqlite3.Connection, name: str) -> RoomState | None:
        row = db.execute("SELECT epoch FROM rooms WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        first, last = db.execute("SELECT min(seq), max(seq) FROM messages WHERE room = ?", (name,)).fetchone()
        recent = db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? ORDER BY seq DESC LIMIT ?", (name, self.window)
        ).fetchall()
        msgs = store_rich.with_reactions(db, name, [_message(r) for r in reversed(recent)])
        return RoomState(row[0], last or 0, first or 1, msgs)

    def load_room(self, command: LoadRoom, done: Done) -> None:
        self._read(self.loader, done, self._room_state, command.room)

    def read_page(self, command: ReadPage, done: Done) -> None:
        self._read(self.reader, done, self._page, command.room, command.before_seq, command.limit)

    def _page(self, db: sqlite3.Connection, room: str, before_seq: int, limit: int) -> list[Message]:
        # chat messages only: room events reach clients folded into the messages they changed
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND seq < ? AND kind = 'chat' AND deleted = 0 "
            "ORDER BY seq DESC LIMIT ?",
            (room, before_seq, limit),
        ).fetchall()
        return store_rich.with_reactions(db, room, [_message(r) for r in reversed(rows)])

    def _read(self, pool: ThreadPoolExecutor, done: Done, query: Callable[..., Any], *args: Any) -> None:
        """Run `query(db, *args)` on a thread of `pool`; `done(result)`, or `done(exc)`."""

        def run() -> None:
            try:
                db = getattr(self._local, "db", None)
                if db is None:
                    db = self._local.db = self._connect()
                result: Any = query(db, *args)
            except Exception as exc:
                log.error("could not read the history (%s): %s", args[0], exc)
                result = exc
            self.notify(done, result)

        if self.closed:  # shutting down: say so instead of queueing on a stopped thread
            self.notify(done, StoreError("the server is shutting down"))
            return
        pool.submit(run)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.writer is not None:
            self.queue.put(_STOP)
            self.writer.join()
        self.reader.shutdown(wait=True)
        self.loader.shutdown(wait=True)
        self.accounts.close()


def _kinds(kinds: dict[type[Command], list[Command]]) -> str:
    return ", ".join(f"{len(commands)} {kind.__name__}" for kind, commands in kinds.items())


def _explain(exc: sqlite3.Error, path: str) -> str:
    text = str(exc)
    if "unable to open" in text:
        return "it cannot be opened or created (check the path and the folder's permissions)."
    if "readonly" in text:
        return "it is read-only (check the file's permissions)."
    if "not a database" in text or "malformed" in text:
        return "it is not a chat database or it is corrupt (move it away to start afresh)."
    return f"{text}."


def open_store(
    path: str, notify: Notify, *, synchronous: str = "full", history_cap: int = 10_000, window: int = 1000
) -> Store:
    """The store for a `--db` value: ':memory:' keeps history in this process only."""
    if path == ":memory:":
        return MemoryStore(notify, history_cap=history_cap)
    return SQLiteStore(path, notify, synchronous=synchronous, history_cap=history_cap, window=window)
