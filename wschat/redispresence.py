"""Cluster mode's presence: who is in which room on which process, and which processes live. I/O.

`RedisBroker` runs it through this mixin. `presence` publishes `p <process> <event> <name>` on
the room's channel when someone joins or leaves it here (the other processes' hubs build their
own notices, `Hub.remote_presence`, so counts and lists span the cluster) and keeps the hash
`wschat:room:<room>:online` (`<name>\n<process>` -> process: an account may be in a room on
several processes), which `_catch_up` reads after each subscription (`Hub.remote_members`).
Every process keeps `wschat:alive:<process>` alive (TTL `--redis-ttl`, 30 s by default,
refreshed every third of it, `_heartbeat`); one whose key expired has died: its users leave
every room (`Hub.process_gone`) and the hashes forget them (only fields still naming that
process: `HDEL_IF_LUA`, so a takeover elsewhere is not undone).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from wschat.effects import Effect
from wschat.hub import Hub, cluster
from wschat.redisstore import PREFIX, RedisStore, channel

log = logging.getLogger("wschat.redisbroker")  # its part: the same logger

HDEL_IF_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""


def online_key(room: str) -> str:
    return f"{PREFIX}room:{room}:online"


def alive_key(process: str) -> str:
    return f"{PREFIX}alive:{process}"


def online_field(name: str, process: str) -> str:
    """A user's field in a room's `online` hash: one per process it is in the room on."""
    return f"{name}\n{process}"


Run = Callable[[list[Effect]], None]


class ClusterPresence:
    """Presence between processes, for `RedisBroker` (its client, outbox, hub and members)."""

    process: str
    client: aioredis.Redis
    store: RedisStore
    outbox: asyncio.Queue[tuple[str, str, tuple[Any, ...]]]
    members: dict[str, Mapping[int, None]]
    hub: Hub | None
    run: Run
    closed: bool

    def presence(self, room: str, name: str, event: str) -> None:
        field = online_field(name, self.process)
        if event in ("join", "resume"):
            self.outbox.put_nowait(("hset", online_key(room), (field, self.process)))
        else:
            self.outbox.put_nowait(("hdel", online_key(room), (field, self.process)))
        message = f"p {self.process} {event} {name}".encode()
        self.outbox.put_nowait(("publish", channel(room), (message,)))

    async def _catch_up(self, room: str) -> None:
        """After (re)subscribing: who is in the room elsewhere, and what was published meanwhile."""
        if self.hub is None:
            return
        try:
            online = await self.client.hgetall(online_key(room))
        except (RedisError, OSError) as exc:
            log.warning("could not read who is in #%s: %s", room, exc)
            online = None
        now = time.time()
        if online is not None and room in self.members:
            members: dict[str, set[str]] = {}
            for k, v in online.items():
                if v.decode() != self.process:
                    members.setdefault(k.decode().rpartition("\n")[0], set()).add(v.decode())
            self.run(self.hub.remote_members(room, members, now))
        self.run(self.hub.resync(room, now))

    async def _heartbeat(self) -> None:
        """Keep this process alive in Redis; notice the processes that died."""
        while not self.closed:
            await asyncio.sleep(self.store.ttl / 3)
            hub = self.hub
            processes = cluster.processes(hub) if hub else []
            try:
                pipe = self.client.pipeline(transaction=False)
                pipe.set(alive_key(self.process), 1, ex=self.store.ttl)
                for process in processes:
                    pipe.exists(alive_key(process))
                _, *alive = await pipe.execute()
                self.store.failing = False
            except (RedisError, OSError) as exc:
                log.warning("Redis heartbeat failed: %s", exc)
                self.store.failing = True
                continue
            for process, up in zip(processes, alive, strict=True):
                if not up and hub is not None:
                    log.info("process %s stopped answering; its users are gone", process)
                    for room, who in cluster.people_of(hub, process):
                        self.outbox.put_nowait(
                            ("hdel", online_key(room), (online_field(who, process), process))
                        )
                    self.run(hub.process_gone(process, time.time()))
