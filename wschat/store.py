"""History persistence behind one interface, `execute(command, done)`: memory and SQLite.

This module owns the SQLite store and `open_store`; the interface `Store` is in
`wschat.store_base`, the memory store in `wschat.store_memory`, the search index's upkeep in
`wschat.store_index` (all importable from here).

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
crowd paging old history never delays a join. The writer thread also indexes committed messages
for search, after acknowledging them (`wschat.store_index`); a search goes through it so that
everything acknowledged is indexed before the reader queries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from wschat import store_index, store_rich, store_schema
from wschat.accountstore import COMMANDS as ACCOUNT_COMMANDS
from wschat.accountstore import AccountStore
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
from wschat.sqlitetx import write_transaction
from wschat.store_base import SENT_IDS_LOADED, Done, Notify, Store, StoreError
from wschat.store_memory import MemoryStore
from wschat.store_schema import COLUMNS as _COLUMNS
from wschat.store_schema import INSERT as _INSERT
from wschat.store_schema import SCHEMA as _SCHEMA
from wschat.store_schema import add_file_column as _add_file_column
from wschat.store_schema import message as _message

# the interface and the memory store live in modules of their own; callers import them from here
__all__ = [
    "SENT_IDS_LOADED",
    "Done",
    "MemoryStore",
    "Notify",
    "SQLiteStore",
    "Store",
    "StoreError",
    "open_store",
]

log = logging.getLogger("wschat.store")

_STOP = object()


class SQLiteStore(store_index.IndexedSearch, store_rich.RichSQLite, Store):
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
        self.fts_mark = store_index.migrate(db)
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
        self.last_id = snap.next_id - 1
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
            item = self._next_write()  # the search index catches up while nothing is queued
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
            searches = [it for it in items if type(it[0]) is Search]  # queued by search()
            if searches:
                items = [it for it in items if type(it[0]) is not Search]
            if items:
                self._commit(items)
            self._after_commit(searches)
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
            with write_transaction(self.db):
                for kind, commands in kinds.items():
                    afterwards.append(getattr(self, self.writers[kind])(commands))
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
        if new_rooms:
            self.db.executemany("INSERT OR IGNORE INTO rooms (name, epoch) VALUES (?, ?)", new_rooms.items())
        late = store_index.unstored_below(self.db, messages, self.fts_mark)
        plain, full = store_schema.rows(messages)
        self.db.executemany(store_schema.INSERT_PLAIN, plain)
        if full:
            self.db.executemany(_INSERT, full)
        if late:  # indexed before the events apply: an edit's trigger removes the indexed text
            store_index.index_ids(self.db, late)
        if full:  # an event is never plain: a batch of plain rows has none to apply
            store_rich.apply_events(self.db, [m for m in messages if m.kind != "chat"])
        self._trim(messages)

        def committed() -> None:
            self.known_rooms.update(new_rooms)
            first_seq = self.first_seq
            for m in messages:
                if m.room not in first_seq:
                    first_seq[m.room] = m.seq
            self.last_id = max(self.last_id, max(m.id for m in messages))

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
