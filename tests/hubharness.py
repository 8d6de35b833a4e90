"""A Hub driven like the server drives it, without sockets: what each connection receives,
what the hub asked of the store, answered at once or when the test says."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from typing import Any

from wschat.hub import (
    Append,
    Close,
    Config,
    Execute,
    Hub,
    LoadRoom,
    Message,
    ReadPage,
    RoomState,
    Send,
    Snapshot,
)
from wschat.records import ReadMessage


class Harness:
    def __init__(self, snapshot: Snapshot | None = None, **config: Any) -> None:
        counter = itertools.count(1)
        self.hub = Hub(Config(**config), snapshot, new_token=lambda: f"tok{next(counter):06d}xxxxxxxxxxxx")
        self.now = 1_000_000.0
        self.inbox: dict[int, list[dict]] = defaultdict(list)
        self.auto_commit = True
        self.held: list[Message] = []  # appended, not yet committed (auto_commit False)
        self.held_tokens: list[int] = []
        self.closed: dict[int, tuple[int, str]] = {}
        self.fetches: list[ReadPage] = []
        self.fetch_tokens: list[int] = []
        self.stored: dict[str, RoomState] = {}  # what the "store" answers LoadRoom with
        self.auto_load = True
        self.loads: list[str] = []
        self.load_tokens: dict[str, int] = {}
        self.reads: list[ReadMessage] = []  # answered at once from `stored`

    def run(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, Send):
                assert isinstance(a.targets, tuple)
                for t in a.targets:
                    self.inbox[t].append(json.loads(a.data))
            elif isinstance(a, Execute):
                self.execute(a.token, a.command)
            elif isinstance(a, Close):
                self.closed[a.conn] = (a.code, a.reason)

    def execute(self, token: int, command: Any) -> None:
        if isinstance(command, Append):
            for m in command.messages:
                state = self.stored.setdefault(m.room, RoomState(m.epoch))
                state.recent.append(m)
                state.last_seq = m.seq
            if self.auto_commit:
                self.answer(token, None)
            else:
                self.held.extend(command.messages)
                self.held_tokens.append(token)
        elif isinstance(command, ReadPage):
            self.fetches.append(command)
            self.fetch_tokens.append(token)
        elif isinstance(command, ReadMessage):
            self.reads.append(command)
            state = self.stored.get(command.room)
            found = [m for m in (state.recent if state else []) if m.seq == command.seq]
            self.answer(token, found[0] if found else None)
        elif isinstance(command, LoadRoom):
            self.loads.append(command.room)
            if self.auto_load:
                self.answer(token, self.stored.get(command.room))
            else:
                self.load_tokens[command.room] = token

    def answer(self, token: int, result: Any) -> None:
        self.run(self.hub.store_result(token, result, self.now))

    def commit_held(self, error: BaseException | None = None) -> None:
        tokens, self.held_tokens, self.held = self.held_tokens, [], []
        for token in tokens:
            self.answer(token, error)

    def answer_fetch(self, result: Any) -> None:
        self.answer(self.fetch_tokens.pop(0), result)

    def answer_load(self, room: str, result: Any) -> None:
        self.answer(self.load_tokens.pop(room), result)

    def connect(self, cid: int) -> None:
        self.run(self.hub.connect(cid, self.now))

    def send(self, cid: int, obj: dict | str) -> None:
        self.run(self.hub.receive(cid, obj if isinstance(obj, str) else json.dumps(obj), self.now))

    def login(self, cid: int, name: str, **extra: Any) -> list[dict]:
        self.connect(cid)
        self.send(cid, {"type": "set_username", "username": name, **extra})
        return self.take(cid)

    def chat(self, cid: int, text: str, **extra: Any) -> None:
        self.send(cid, {"type": "chat", "message": text, **extra})

    def take(self, cid: int) -> list[dict]:
        frames = self.inbox.pop(cid, [])
        return frames

    def types(self, cid: int) -> list[str]:
        return [f["type"] for f in self.take(cid)]

    def leave(self, cid: int) -> None:
        self.run(self.hub.disconnect(cid, self.now))

    def advance(self, seconds: float) -> None:
        self.now += seconds


def only(frames: list[dict], kind: str) -> list[dict]:
    return [f for f in frames if f["type"] == kind]


def filled(n: int, **config: Any) -> Harness:
    h = Harness(chat_burst=10_000, **config)
    h.login(1, "Alice")
    for i in range(n):
        h.chat(1, f"m{i + 1}")
    h.take(1)
    return h
