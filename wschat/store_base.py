"""The interface every history store implements (`wschat.store` has the SQLite and memory
stores, `wschat.redisstore` the Redis one): `load()`, `execute(command, done)`, `close()`, and
the commands another store attaches. See `wschat.store` for what each does. I/O only by what
the stores it describes do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from wschat.accountstore import AccountStore
from wschat.records import Command, Snapshot

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
