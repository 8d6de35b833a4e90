"""The Redis broker (cluster mode): fan-out between the processes that share one Redis. I/O.

It implements `wschat.broker.Broker`. Each process subscribes to the channel of every room it
has in memory (`follow`, `unfollow`) and to a channel of its own. Two kinds of message cross a
room's channel, both text made by the project's encoders (never pickle):

- `m <id> <seq> <epoch> <json>`: a stored message, published by the store's Lua script
  (`wschat.redisstore`); it goes to `Hub.arrived`, which delivers in seq order, exactly once
  (this process's own messages come through there too, whichever of the store's answer and
  the echo is first);
- `f <process> <frame>`: a frame that is not stored (presence notices), published by
  `publish`; the process that sent it has delivered it locally already and drops its echo.

Pub/sub is at most once: when the reader's connection fails (Redis restarted, or dropped this
process as a slow subscriber under `client-output-buffer-limit pubsub`), it reconnects with a
backoff, subscribes again to every followed room, and asks the hub to `resync` each of them
from the streams. After each new subscription it asks the same for that room, for what was
published before the subscription took effect. The reader has no socket timeout (one causes
reconnect storms); `health_check_interval` pings the connection while it is idle.

Its own channel (`wschat:proc:<process>`) brings `d <connection> <frame>` (a private message
for one of its connections, `Forward`) and `t <connection>` (that session was taken over on
another process: `Hub.taken_over`). Names are claimed through the store (`names_by_store`,
`wschat.redisnames`); `release` frees one there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from wschat.effects import Effect, Send
from wschat.hub import Hub
from wschat.redisstore import ROOM_CHANNEL, RedisStore, channel, connect, parse_entry, process_channel

log = logging.getLogger("wschat.redisbroker")

Run = Callable[[list[Effect]], None]


class RedisBroker:
    stored_seqs = True

    names_by_store = True

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.process = store.process
        self.own_channel = process_channel(self.process)
        self.client = store.client  # publishing: commands with a timeout
        url = store.url
        self.reader = connect(url, timeout=None)  # pub/sub: no socket timeout
        self.members: dict[str, Mapping[int, None]] = {}
        self.outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.pubsub: PubSub | None = None
        self.connected = False
        self.tasks: set[asyncio.Task] = set()
        self.run: Run = lambda effects: None
        self.hub: Hub | None = None

    def attach(self, run: Run, hub: Hub) -> None:
        """Where effects go (the runtime's `run`) and the hub whose cluster entry points to call."""
        self.run, self.hub = run, hub

    async def start(self) -> None:
        """Subscribe to this process's channel; then read and publish in tasks of their own."""
        self.pubsub = await self._subscribe_all()
        self.connected = True
        self._spawn(self._read_loop())
        self._spawn(self._publish_loop())

    # -- the Broker interface (called by the hub, on the loop thread)

    def follow(self, room: str, members: Mapping[int, None], last_seq: int) -> None:
        self.members[room] = members
        self._spawn(self._follow(room))

    def unfollow(self, room: str) -> None:
        self.members.pop(room, None)
        self._spawn(self._unfollow(room))

    def next_seq(self, room: str) -> int:
        return 0  # the store's script assigns it

    def publish(self, room: str, data: bytes) -> Send:
        self.outbox.put_nowait((channel(room), b"f " + self.process.encode() + b" " + data))
        return Send(tuple(self.members.get(room, ())), data)

    def claim(self, key: str, owner: int) -> bool:
        # A race between processes cannot be answered at once: with `names_by_store` the hub
        # claims through the store (ClaimName, wschat.redisnames) and never calls this.
        raise RuntimeError("in cluster mode names are claimed with the ClaimName store command")

    def release(self, key: str, owner: int) -> None:
        self.store.names.release(key, owner)

    # -- subscriptions

    async def _follow(self, room: str) -> None:
        if self.pubsub is None or not self.connected:
            return  # the reader subscribes to every followed room when it reconnects
        try:
            await self.pubsub.subscribe(channel(room))
        except (RedisError, OSError) as exc:
            log.warning("could not subscribe to #%s: %s", room, exc)
            return
        if room in self.members and self.hub is not None:
            self.run(self.hub.resync(room, time.time()))

    async def _unfollow(self, room: str) -> None:
        if self.pubsub is None or not self.connected or room in self.members:
            return
        with contextlib.suppress(RedisError, OSError):
            await self.pubsub.unsubscribe(channel(room))

    async def _subscribe_all(self) -> PubSub:
        pubsub = self.reader.pubsub()
        try:
            await pubsub.subscribe(self.own_channel, *(channel(r) for r in self.members))
        except BaseException:
            await pubsub.aclose()
            raise
        return pubsub

    # -- reading

    async def _read_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                if self.pubsub is None:
                    self.pubsub = await self._subscribe_all()
                    self.connected = True
                    backoff = 0.1
                    log.info("Redis pub/sub reconnected; catching up %d rooms", len(self.members))
                    now = time.time()
                    for room in list(self.members):
                        if self.hub is not None:
                            self.run(self.hub.resync(room, now))
                msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None and msg["type"] == "message":
                    self._received(msg["channel"], msg["data"])
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning("Redis pub/sub connection lost (%s); reconnecting", exc)
                self.connected = False
                if self.pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self.pubsub.aclose()
                self.pubsub = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _received(self, chan: bytes, data: bytes) -> None:
        hub = self.hub
        if hub is None:
            return
        kind, now = data[:2], time.time()
        if kind == b"m ":
            try:
                m = parse_entry(data)
            except (ValueError, KeyError) as exc:
                log.error("unreadable message on Redis: %s", exc)
                return
            self.run(hub.arrived(m, now))
        elif kind == b"f ":
            _, origin, frame = data.split(b" ", 2)
            if origin.decode() == self.process:
                return  # delivered locally when it was published
            room = chan.decode()[len(ROOM_CHANNEL) :]
            self.run([Send(tuple(self.members.get(room, ())), frame)])
        elif kind == b"d ":  # a private message for one of this process's connections
            _, cid, frame = data.split(b" ", 2)
            self.run([Send((int(cid),), frame)])
        elif kind == b"t ":  # a session of this process was taken over on another process
            self.run(hub.taken_over(int(data[2:]), now))

    # -- publishing

    async def _publish_loop(self) -> None:
        """Publish in order, everything queued at once in one pipeline."""
        while True:
            first = await self.outbox.get()
            batch = [first]
            while not self.outbox.empty() and len(batch) < 1000:
                batch.append(self.outbox.get_nowait())
            pipe = self.client.pipeline(transaction=False)
            for ch, data in batch:
                pipe.publish(ch, data)
            try:
                await pipe.execute()
            except (RedisError, OSError) as exc:
                # Presence notices only (stored messages are published by the store's script):
                # the other processes' online lists are refreshed when their users ask again.
                log.warning("could not publish %d notices to Redis: %s", len(batch), exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping()) and self.connected
        except (RedisError, OSError):
            return False

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()
        await self.reader.aclose()
