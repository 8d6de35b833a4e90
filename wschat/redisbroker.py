"""The Redis broker (cluster mode): fan-out between the processes that share one Redis. I/O.

It implements `wschat.broker.Broker`. Each process subscribes to the channel of every room it
has in memory (`follow`, `unfollow`) and to a channel of its own. Two kinds of message cross a
room's channel, both text (never pickle):

- `b <process>` and `m <id> <seq> <epoch> <json>` lines: stored messages, published by the
  store's Lua script (`wschat.redisstore`), one or more entries of one room joined by newlines,
  in seq order, after a line naming the process that stored them. This process delivers its
  own from the script's answer (`Hub.store_result`), so their copy is skipped unparsed; the
  others' go to `Hub.arrived`, which delivers in seq order, exactly once (a copy whose last
  entry was delivered already is dropped without parsing). If a script call fails, the store
  has the broker read its rooms again once Redis answers (`resync`);
- `p <process> <event> <name>`: someone joined or left the room on that process (`presence`,
  with who is where and which processes live: `wschat.redispresence`).

`publish` delivers to this process's members only: frames are built where they are delivered.

Pub/sub is at most once: when the reader's connection fails (Redis restarted, or dropped this
process as a slow subscriber under `client-output-buffer-limit pubsub`), it reconnects with a
backoff, subscribes again to every followed room, and asks the hub to `resync` each of them
from the streams. After each new subscription it asks the same for that room, for what was
published before the subscription took effect. The reader has no socket timeout (one causes
reconnect storms); `health_check_interval` pings the connection while it is idle.

Its own channel (`wschat:proc:<process>`) brings `d <connection> <frame>` (a private message
for one of its connections, `Forward`), `s <connection> <id> <session> <frame>` (a stored
one, `DeliverStored`: `wschat.features.offline.delivered_here` moves that device's cursor),
`c <json>` (call frames for its users, `RelayCall`: `Hub.call_arrived`), `t <connection>` (that
session was taken over on another process: `Hub.taken_over`) and `k <json>` (a moderator
elsewhere kicked, muted or banned it: `RemoteKick`, `wschat.features.mod_cluster.arrived`).
Names are claimed through the store (`names_by_store`, `wschat.redisnames`); `release` frees one there.

`wschat:news` brings what another process did to accounts (`wschat.redisaccounts`): a name
registered (a guest can no longer take it here) and sessions ended by a log-out, a revoke or a
password change (their connections here close, `wschat.features.accounts.sessions_ended`); and
`k <process> <json>` (a ban lifted, for every process: `RemoteKick`), `P <process> <json>` (a
user's profile changed: `wschat.features.profile_cluster.arrived`) and `m <process> moderation`
(the admin command line banned, unbanned, granted or revoked: moderation is read again now).
Every process also re-reads moderation from Redis every --admin-poll seconds (2 by default).
`wschat:reads` brings every read position saved by another process (`wschat.redisreads`):
`live.remote_read` keeps it, tells the user's connections here and a small room's members.
After a reconnect, registered names and read positions are read from Redis again, for what was
published meanwhile.
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
from wschat.features import accounts, live, mod_cluster, mod_hooks, offline, profile_cluster
from wschat.hub import Hub
from wschat.redisaccounts import NEWS
from wschat.redisentry import parse_entry
from wschat.redispresence import HDEL_IF_LUA, ClusterPresence, Run, alive_key
from wschat.redisreads import READS
from wschat.redisreads import parse as parse_read
from wschat.redisrelay import process_channel
from wschat.redisstore import ROOM_CHANNEL, RedisStore, channel, connect

log = logging.getLogger("wschat.redisbroker")

# What this process's channel brings for one of its connections, by kind: a moderator on another
# process acted on it (`RemoteKick`); a stored private message for it (`DeliverStored`).
FOR_CONNECTION: dict[bytes, Callable[[Hub, bytes, float], list[Effect]]] = {
    b"k ": mod_cluster.arrived,
    b"s ": offline.delivered_here,
}

NEWS_CHANNEL = NEWS.encode()
READS_CHANNEL = READS.encode()


def _position(entry: bytes) -> tuple[int, str]:
    """(seq, epoch) of `m <id> <seq> <epoch> <json>` without parsing the JSON ((0, "") if odd)."""
    parts = entry.split(b" ", 4)
    if len(parts) != 5 or not parts[2].isdigit():
        return 0, ""
    return int(parts[2]), parts[3].decode(errors="replace")


class RedisBroker(ClusterPresence):
    stored_seqs = True

    names_by_store = True

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.process = store.process
        self.own = self.process.encode()
        self.own_channel = process_channel(self.process)
        store.writer.resync = self._resync
        self.client = store.client  # publishing: commands with a timeout
        url = store.url
        self.reader = connect(url, timeout=None)  # pub/sub: no socket timeout
        self.members: dict[str, Mapping[int, None]] = {}
        # (command, key or channel, arguments): published and written in order, in pipelines
        self.outbox: asyncio.Queue[tuple[str, str, tuple[Any, ...]]] = asyncio.Queue()
        self.hdel_if = self.client.register_script(HDEL_IF_LUA)
        self.pubsub: PubSub | None = None
        self.connected = False
        # Set by aclose before it cancels the tasks: every loop also ends on it, because a
        # cancellation that meets a redis-py read timeout as it expires can be lost (Python
        # 3.11), and a loop that went on reconnecting kept the process from ever exiting.
        self.closed = False
        self.tasks: set[asyncio.Task] = set()
        self.run: Run = lambda effects: None
        self.hub: Hub | None = None

    def attach(self, run: Run, hub: Hub) -> None:
        """Where effects go (the runtime's `run`) and the hub whose cluster entry points to call."""
        self.run, self.hub = run, hub

    async def start(self) -> None:
        """Subscribe to this process's channel; then read and publish in tasks of their own."""
        await self.client.set(alive_key(self.process), 1, ex=self.store.ttl)
        self.pubsub = await self._subscribe_all()
        self.connected = True
        self._spawn(self._read_loop())
        self._spawn(self._publish_loop())
        self._spawn(self._heartbeat())
        for room in list(self.members):  # followed before the reader existed (general)
            self._spawn(self._catch_up(room))

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
        if room in self.members:
            await self._catch_up(room)

    def _resync(self, rooms: set[str]) -> None:
        """Read rooms again whose messages the store may have stored unanswered (a failed call)."""
        if self.hub is not None:
            now = time.time()
            for room in rooms:
                self.run(self.hub.resync(room, now))

    async def _unfollow(self, room: str) -> None:
        if self.pubsub is None or not self.connected or room in self.members:
            return
        with contextlib.suppress(RedisError, OSError):
            await self.pubsub.unsubscribe(channel(room))

    async def _subscribe_all(self) -> PubSub:
        pubsub = self.reader.pubsub()
        try:
            await pubsub.subscribe(self.own_channel, NEWS, READS, *(channel(r) for r in self.members))
        except BaseException:
            await pubsub.aclose()
            raise
        return pubsub

    # -- reading

    async def _read_loop(self) -> None:
        backoff = 0.1
        while not self.closed:
            try:
                if self.pubsub is None:
                    self.pubsub = await self._subscribe_all()
                    self.connected = True
                    backoff = 0.1
                    log.info("Redis pub/sub reconnected; catching up %d rooms", len(self.members))
                    for room in list(self.members):
                        await self._catch_up(room)
                    await self._refresh_shared()
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
        if chan == NEWS_CHANNEL:
            self._news(hub, data.decode(), now)
        elif chan == READS_CHANNEL:
            process, key, room, seq, private = parse_read(data)
            if process != self.process:  # this process shared its own already
                self.run(live.remote_read(hub, key, room, seq, private))
        elif kind in (b"b ", b"m "):  # (an older version publishes them without the `b` line)
            self._stored(hub, chan, data, now)
        elif kind == b"p ":
            _, process, event, who = data.decode().split(" ", 3)
            if process != self.process:  # this process announced its own already
                room = chan.decode()[len(ROOM_CHANNEL) :]
                self.run(hub.remote_presence(room, who, process, event, now))
        elif kind == b"d ":  # a private message for one of this process's connections
            _, cid, frame = data.split(b" ", 2)
            self.run([Send((int(cid),), frame)])
        elif kind == b"c ":  # call frames for users of this process (wschat.features.call_relay)
            self.run(hub.call_arrived(data[2:], now))
        elif kind == b"t ":  # a session of this process was taken over on another process
            self.run(hub.taken_over(int(data[2:]), now))
        elif kind in FOR_CONNECTION:  # moderation, stored private messages, for a connection here
            self.run(FOR_CONNECTION[kind](hub, data[2:], now))

    async def _refresh_shared(self) -> None:
        """After a reconnect: registrations and read positions published meanwhile were missed
        (pub/sub is at most once); read them from Redis instead."""
        hub = self.hub
        if hub is None:
            return
        names = await self.store.accounts.names()
        positions = await self.store.reads.load()
        for name in names:
            accounts.registered_elsewhere(hub, name)
        for key, room, seq, private in positions:
            self.run(live.remote_read(hub, key, room, seq, private))

    def _news(self, hub: Hub, news: str, now: float) -> None:
        """What another process did to accounts (wschat.redisaccounts): act on it here too."""
        kind, process, rest = news.split(" ", 2)
        if process == self.process:
            return  # done here already
        if kind == "a":
            accounts.registered_elsewhere(hub, rest)
        elif kind in ("x", "X"):
            key, session_id = rest.rsplit(" ", 1)
            self.run(accounts.sessions_ended(hub, key, session_id, all_but=kind == "X"))
        elif kind == "k":  # a moderator lifted a ban (RemoteKick for every process)
            self.run(mod_cluster.arrived(hub, rest.encode(), now))
        elif kind == "P":  # a user's profile changed on another process
            self.run(profile_cluster.arrived(hub, rest.encode(), now))
        elif kind == "m":  # the admin command line changed moderation: read it now
            self.run(mod_hooks.reread(hub, now))

    def _stored(self, hub: Hub, chan: bytes, data: bytes, now: float) -> None:
        """Entries of one room, `m ...` lines in seq order: those not delivered yet to `arrived`."""
        if data[:2] == b"b ":
            head, _, data = data.partition(b"\n")
            if head[2:] == self.own:  # this process delivered them from the script's answer
                return
        room = hub.rooms.get(chan.decode()[len(ROOM_CHANNEL) :])
        seq, epoch = _position(data[data.rfind(b"\n") + 1 :])
        if room is not None and seq <= room.last_seq and epoch == room.epoch:
            return  # delivered already (often this process's own, answered by the store first)
        effects: list[Effect] = []
        for entry in data.split(b"\n"):
            try:
                m = parse_entry(entry)
            except (ValueError, KeyError) as exc:
                log.error("unreadable message on Redis: %s", exc)
                continue
            effects += hub.arrived(m, now)
        self.run(effects)

    # -- publishing

    async def _publish_loop(self) -> None:
        """Write and publish in order, everything queued at once in one pipeline."""
        while not self.closed:
            batch = [await self.outbox.get()]
            while not self.outbox.empty() and len(batch) < 1000:
                batch.append(self.outbox.get_nowait())
            pipe = self.client.pipeline(transaction=False)
            for command, key, args in batch:
                if command == "hdel":  # only if it is still this process's (not taken over)
                    await self.hdel_if(keys=[key], args=list(args), client=pipe)
                else:
                    getattr(pipe, command)(key, *args)
            try:
                await pipe.execute()
            except (RedisError, OSError) as exc:
                # Presence only (messages are published by the store's script): the other
                # processes read who is where again when their pub/sub reconnects.
                log.warning("could not publish %d presence changes to Redis: %s", len(batch), exc)

    async def _drain_outbox(self) -> None:
        for _ in range(300):
            if self.outbox.empty():
                return
            await asyncio.sleep(0.01)

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
        """Stop; this process's users leave (the others see them go at once, not after 30 s)."""
        hub = self.hub
        if hub is not None:  # whoever is still here leaves every room now, not in 30 s
            for room, members in self.members.items():
                for cid in members:
                    s = hub.sessions.get(cid)
                    if s is not None and s.name:
                        self.presence(room, s.name, "disconnect")
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(self._drain_outbox(), 3)
            await self.client.delete(alive_key(self.process))
        self.closed = True
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=3)
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()
        await self.reader.aclose(close_connection_pool=True)
