"""Cluster mode's store commands that reach other processes rather than the history. I/O.

`RedisStore` runs them through this mixin. Each publishes one line: on a process's own channel
(`wschat:proc:<process>`) for that process alone, `d <connection> <frame>` (a private message,
`Forward`), `s <...>` (a stored private message, `DeliverStored`), `c <json>` (call set-up,
`RelayCall`), `k <json>` (a moderator's act on one of its connections, `RemoteKick`); or on
`wschat:news` for every process, `<kind> <process> <payload>`: `k` (an unban) and `P` (a profile
change, `ShareProfile`). The receiving side is `wschat.redisbroker`. A command's result is
whether (or how many) processes listened; a Redis failure gives `store_failed` like any command.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis

from wschat.features.call_relay import RelayCall
from wschat.features.mod_records import RemoteKick
from wschat.features.private_records import DeliverStored
from wschat.features.profile_records import ShareProfile
from wschat.records import Forward
from wschat.redisaccounts import NEWS
from wschat.store import Done

PROCESS_CHANNEL = "wschat:proc:"


def process_channel(process: str) -> str:
    return PROCESS_CHANNEL + process


class Relay:
    """The publishing commands of `RedisStore` (its `client`, `process` and `_run`)."""

    client: aioredis.Redis
    process: str

    _run: Callable[[Done, Coroutine[Any, Any, Any], str], None]

    def forward(self, command: Forward, done: Done) -> None:
        data = b"d " + str(command.cid).encode() + b" " + command.data
        self._run(done, self._to_process(command.process, data), "forwarding a private message")

    def deliver_stored(self, command: DeliverStored, done: Done) -> None:
        published = self._to_process(command.process, b"s " + command.payload())
        self._run(done, published, "delivering a stored private message")

    def relay_call(self, command: RelayCall, done: Done) -> None:
        published = self._to_process(command.process, b"c " + command.payload)
        self._run(done, published, "relaying a call's set-up")  # result: how many listened

    def remote_kick(self, command: RemoteKick, done: Done) -> None:
        if not command.process:  # for every process (an unban): on wschat:news
            self._run(done, self._news(b"k", command.payload()), "moderating on every process")
            return
        published = self._to_process(command.process, b"k " + command.payload())
        self._run(done, published, "moderating on another process")

    def share_profile(self, command: ShareProfile, done: Done) -> None:
        self._run(done, self._news(b"P", command.payload()), "sharing a profile change")

    async def _news(self, kind: bytes, payload: bytes) -> None:
        """Publish `<kind> <process> <payload>` to every process (wschat:news, `RedisBroker._news`)."""
        await self.client.publish(NEWS, b" ".join((kind, self.process.encode(), payload)))

    async def _to_process(self, process: str, data: bytes) -> bool:
        """Publish on a process's own channel; whether it is there (subscribed)."""
        return bool(await self.client.publish(process_channel(process), data))
