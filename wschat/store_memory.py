"""The memory store (`--db :memory:`): history in this process only, gone when the server
stops; accounts in an in-memory SQLite database (wschat.accountstore)."""

from __future__ import annotations

import secrets
import time
from typing import ClassVar

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
from wschat.store_base import Done, Notify, Store


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
