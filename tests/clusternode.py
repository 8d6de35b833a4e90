"""One cluster process without sockets to clients: a Hub on a real Redis store and broker.

`Node.start(url)` builds what the server builds in cluster mode (RedisStore, RedisBroker, Hub)
in this event loop and carries out the hub's effects the way the runtime does (store commands
executed, their results back to the hub; frames recorded per connection). Several nodes on one
Redis are several processes of one chat, as far as Redis and the hub can tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from wschat.effects import Close, Effect, Execute, Send
from wschat.hub import Config, Hub
from wschat.redisbroker import RedisBroker
from wschat.redisstore import RedisStore

TIMEOUT = 10.0


class Node:
    def __init__(self, store: RedisStore, broker: RedisBroker) -> None:
        self.store = store
        self.broker = broker
        self.hub: Hub
        self.inbox: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.closed: dict[int, int] = {}
        self.changed = asyncio.Event()

    @classmethod
    async def start(cls, url: str, **config: Any) -> Node:
        loop = asyncio.get_running_loop()
        store = RedisStore(url, loop.call_soon_threadsafe)
        broker = RedisBroker(store)
        node = cls(store, broker)
        snapshot = await store.aload()
        node.hub = Hub(Config(**config), snapshot, broker=broker)
        broker.attach(node.run, node.hub)
        await broker.start()
        return node

    def run(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Send):
                for cid in e.targets:
                    self.inbox[cid].append(json.loads(e.data))
                self.changed.set()
            elif isinstance(e, Execute):
                self.store.execute(e.command, functools.partial(self._result, e.token))
            elif isinstance(e, Close):
                self.closed[e.conn] = e.code

    def _result(self, token: int, result: Any) -> None:
        self.run(self.hub.store_result(token, result, time.time()))

    # -- acting as clients

    def login(self, cid: int, name: str, **extra: Any) -> None:
        self.run(self.hub.connect(cid, time.time()))
        self.send(cid, {"type": "set_username", "username": name, **extra})

    def send(self, cid: int, frame: dict[str, Any]) -> None:
        self.run(self.hub.receive(cid, json.dumps(frame), time.time()))

    def frames(self, cid: int, type_: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            f
            for f in self.inbox[cid]
            if f.get("type") == type_ and all(f.get(k) == v for k, v in fields.items())
        ]

    async def wait(
        self, cid: int, type_: str, count: int = 1, timeout: float = TIMEOUT, **fields: Any
    ) -> None:
        """Until connection `cid` has received `count` frames of `type_` matching `fields`."""
        deadline = time.monotonic() + timeout
        while len(self.frames(cid, type_, **fields)) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                got = len(self.frames(cid, type_, **fields))
                raise TimeoutError(f"{cid}: {got}/{count} {type_} {fields}; last {self.inbox[cid][-3:]}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def stop(self) -> None:
        await self.broker.aclose()
        await self.store.aclose()


async def until(condition: Callable[[], bool], *nodes: Node, timeout: float = TIMEOUT) -> None:
    """Until `condition()` holds, checked each time any of `nodes` receives something."""
    deadline = time.monotonic() + timeout
    while not condition():
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("condition not met in time")
        for node in nodes:
            node.changed.clear()
        waits = [asyncio.ensure_future(node.changed.wait()) for node in nodes]
        await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
