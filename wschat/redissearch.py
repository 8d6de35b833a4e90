"""Search under --redis: each process's SQLite full-text index of the rooms searched, fed from Redis. I/O.

Debian's redis-server has no search module (RediSearch is not packaged), and an index kept by
the writer's script would cost every message Redis time (the cluster's one shared resource).
So each process answers `Search` from a mirror of its own: an `SQLiteStore` (FTS5, the same
index and rules as a single process's search) in a temporary file, deleted when the process
stops. Before each search, every room searched is brought up to date from its Redis stream
(`XRANGE` after the last seq mirrored, in pages): chat messages and the room events among them
(edits, deletes, reactions) go through the mirror's own writer, so results are in their
current state and a deleted message is never found.

What it promises: the same matches as a single process's search, over the history Redis keeps
(`--max-messages-per-room`), current as of the moment of the search. The first search of a
room in a process reads that room's whole stream once (up to the retention); later ones read
only what is new. A room whose epoch changed (Redis lost it) empties the mirror, which is
then rebuilt from the streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from wschat.records import Append, Command, Message, Search
from wschat.store import SQLiteStore

PAGE = 1000  # stream entries read and mirrored at a time

ReadAfter = Callable[[str, int, int], Awaitable[list[Message]]]  # room, after seq, count
RoomEpoch = Callable[[str], Awaitable[str]]


class RedisSearch:
    def __init__(self, read_after: ReadAfter, room_epoch: RoomEpoch, cap: int) -> None:
        self.read_after = read_after
        self.room_epoch = room_epoch
        self.cap = cap
        self.folder = ""
        self.mirror: SQLiteStore | None = None
        self.mirrored: dict[str, tuple[str, int]] = {}  # room -> (epoch, last seq mirrored)
        self.lock = asyncio.Lock()  # one search brings rooms up to date at a time

    async def search(self, c: Search) -> list[Message]:
        async with self.lock:
            for room in c.rooms:
                await self._catch_up(room)
            return await self._ask(c)

    async def _open(self) -> SQLiteStore:
        if self.mirror is None:
            self.folder = self.folder or tempfile.mkdtemp(prefix="wschat-search-")
            path = os.path.join(self.folder, f"mirror-{len(os.listdir(self.folder))}.db")
            notify = asyncio.get_running_loop().call_soon_threadsafe
            mirror = SQLiteStore(path, notify, synchronous="off", history_cap=self.cap)
            await asyncio.to_thread(mirror.load)
            self.mirror = mirror
        return self.mirror

    async def _ask(self, command: Command) -> Any:
        mirror = await self._open()
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        mirror.execute(command, lambda result: answer.done() or answer.set_result(result))
        result = await answer
        if isinstance(result, BaseException):
            raise result
        return result

    async def _catch_up(self, room: str) -> None:
        epoch, last = self.mirrored.get(room, ("", 0))
        now = await self.room_epoch(room)
        if epoch and now != epoch:  # Redis lost the room: its seqs start again
            await self._reset()
            epoch, last = "", 0
        while True:
            messages = await self.read_after(room, last, PAGE)
            if not messages:
                return
            await self._ask(Append(messages))
            epoch, last = messages[-1].epoch, messages[-1].seq
            self.mirrored[room] = (epoch, last)
            if len(messages) < PAGE:
                return

    async def _reset(self) -> None:
        old, self.mirror = self.mirror, None
        self.mirrored.clear()
        if old is not None:
            await asyncio.to_thread(old.close)

    async def aclose(self) -> None:
        await self._reset()
        if self.folder:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(shutil.rmtree, self.folder)
