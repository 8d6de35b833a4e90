"""The store in cluster mode: history in Redis, one atomic Lua step per room message. I/O.

Every process that names the same Redis shares this history. Keys (prefix `wschat:`):
`room:<room>:meta` (a hash: `e` the room's epoch, `s` its last seq), `room:<room>:stream` (its
messages, entry id `<seq>-1`, trimmed to the retention), `sent:<len>:<user key>:<client_msg_id>`
("id seq epoch" of a stored message, for a day: a resend to any process is recognised),
`next_id`, `epoch` (the history's) and `rooms` (rooms by their latest message id).

`Append` runs one Lua step per message, atomically: check the client_msg_id (a repeat gets the
stored copy's id, seq and epoch, `Message.duplicate`), take the next seq (a lost room, meta and
stream gone while the process knew seqs, gets a new epoch), XADD, remember the id. The writer
(`wschat.rediswriter`) sends what queued up meanwhile, in order, up to `SCRIPT_BATCH` messages
to a script call (`wschat.redisscript`: one INCRBY for the ids, each room's keys once, one
PUBLISH per room headed by this process's name). The id, seq and epoch are written into each
`Message` before `done(None)`; this process delivers its own from there (its broker skips their
published copy). `done(exc)` if Redis failed (the senders get `store_failed` and resend: a
script that did run is then a repeat, and the failed call's rooms are read again, `resync`,
once a call succeeds). What crosses Redis is text made here and by `orjson`, never pickle:
`m <id> <seq> <epoch> <json>`.

The other commands go to their own modules: accounts, private messages and moderation
(`wschat.redisaccounts`), names (`wschat.redisnames`), read positions (`wschat.redisreads`),
search (`wschat.redissearch`), what reaches other processes (`wschat.redisrelay`).
Commands run on the event loop (redis-py's asyncio client) with a socket timeout, so a Redis
that stopped answering turns them into `store_failed` instead of hanging them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import Any, ClassVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from wschat.accountstore import COMMANDS as ACCOUNT_COMMANDS
from wschat.cli import redis_shown
from wschat.features.call_relay import RelayCall
from wschat.features.mod_records import RemoteKick
from wschat.features.private_records import DeliverStored
from wschat.features.profile_records import ReadLiveProfiles, ShareProfile
from wschat.records import (
    Append,
    ClaimName,
    Command,
    FindDevices,
    FindUser,
    Forward,
    LoadRoom,
    Message,
    ReadMessage,
    ReadPage,
    ReadRange,
    RoomState,
    SaveLive,
    SaveReads,
    Search,
    Snapshot,
)
from wschat.redisaccounts import RedisAccounts
from wschat.redisentry import body, folded, parse_entry
from wschat.redisnames import NAME_TTL, RedisNames
from wschat.redisprofiles import live_profiles
from wschat.redisreads import RedisReads
from wschat.redisrelay import Relay
from wschat.redisscript import APPEND_LUA, ScriptCall, script_args
from wschat.redissearch import RedisSearch
from wschat.rediswriter import Writer
from wschat.store import Done, Notify, Store, StoreError

log = logging.getLogger("wschat.redisstore")

PREFIX = "wschat:"
ROOM_KEYS_KEPT = 10_000  # rooms whose key names the writer keeps made
EVENTS_SEEN = 500  # entries after a message read alone whose events are folded into it
SENT_TTL = 86_400  # how long a client_msg_id is recognised (a client resends within minutes)
COMMAND_TIMEOUT = 3.0  # a Redis that does not answer within this is treated as unreachable
MAX_CONNECTIONS = 64  # per client (commands; the pub/sub reader has its own)
POOL_WAIT = 10.0  # seconds a command may wait for a free connection


def meta_key(room: str) -> str:
    return f"{PREFIX}room:{room}:meta"


def stream_key(room: str) -> str:
    return f"{PREFIX}room:{room}:stream"


ROOM_CHANNEL = PREFIX + "chan:"


def channel(room: str) -> str:
    return ROOM_CHANNEL + room


def sent_key(user_key: str, cmid: str) -> str:
    return f"{PREFIX}sent:{len(user_key)}:{user_key}:{cmid}"


@functools.lru_cache(maxsize=ROOM_KEYS_KEPT)
def room_keys(room: str) -> tuple[str, str, str]:
    """A room's meta and stream keys and its channel, made once for the writer."""
    return meta_key(room), stream_key(room), channel(room)


def _sent(m: Message) -> str:
    return sent_key(m.user_key, m.client_msg_id) if m.client_msg_id else ""


def connect(url: str, *, timeout: float | None = COMMAND_TIMEOUT) -> aioredis.Redis:
    """A client for `url`; `timeout=None` for the pub/sub reader (a timeout there causes storms).

    Its pool holds at most `MAX_CONNECTIONS`: a crowd logging in at once (one name claim each)
    waits for a connection instead of failing with "Too many connections".
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT,
        socket_timeout=timeout,
        socket_connect_timeout=COMMAND_TIMEOUT,
        socket_keepalive=True,
        health_check_interval=10,
        retry_on_timeout=False,
    )
    return aioredis.Redis(connection_pool=pool)


class RedisStore(Relay, Store):
    """The shared history of every process that names the same Redis."""

    executors: ClassVar[dict[type[Command], str]] = {
        Append: "append",
        ReadPage: "read_page",
        ReadRange: "read_range",
        LoadRoom: "load_room",
        ReadMessage: "read_message",
        ClaimName: "claim_name",
        FindUser: "find_user",
        **dict.fromkeys((FindDevices, SaveLive), "user_work"),  # wschat.redisnames
        Forward: "forward",
        RelayCall: "relay_call",
        SaveReads: "save_reads",
        Search: "search",
        RemoteKick: "remote_kick",
        ShareProfile: "share_profile",  # wschat.features.profile_cluster
        ReadLiveProfiles: "live_profiles",  # wschat.redisprofiles
        DeliverStored: "deliver_stored",  # wschat.features.offline
        # accounts, their private messages and moderation: in Redis too (wschat.redisaccounts)
        **dict.fromkeys(ACCOUNT_COMMANDS, "account"),
    }

    def __init__(
        self,
        url: str,
        notify: Notify,
        *,
        process: str = "",
        history_cap: int = 10_000,
        window: int = 1000,
        ttl: int = NAME_TTL,
    ) -> None:
        self.url = url
        self.process = process or secrets.token_hex(6)  # this process, for names and private messages
        self.notify = notify
        self.cap = history_cap
        self.window = window
        self.client = connect(url)
        self.ttl = ttl  # seconds a dead process's names and presence outlive it (--redis-ttl)
        self.names = RedisNames(self.client, self.process, ttl)
        self.reads = RedisReads(self.client, self.process)
        self.searcher = RedisSearch(self._after, self._epoch, history_cap)
        self.accounts = RedisAccounts(self.client, notify, self.process)
        self.tasks: set[asyncio.Task] = set()
        self.writer = Writer(ScriptCall(self.client, APPEND_LUA), notify, self._call, self._health)
        self.closed = False
        self.failing = False  # the last command failed: Redis is unreachable (for /healthz)

    # -- start-up

    async def aload(self) -> Snapshot:
        """The start-up snapshot; StoreError (one sentence) when Redis cannot be reached."""
        try:
            epoch = secrets.token_urlsafe(9)
            await self.client.set(PREFIX + "epoch", epoch, nx=True)
            snap = Snapshot(epoch=(await self.client.get(PREFIX + "epoch") or b"").decode())
            general = await self._room_state("general")
            if general is not None:
                snap.rooms["general"] = general
            recent = await self.client.zrevrange(PREFIX + "rooms", 0, 199)
            snap.known_rooms = [r.decode() for r in reversed(recent) if r != b"general"]
            snap.read_positions = await self.reads.load()
            snap.accounts = await self.accounts.names()
            # moderation too: each process re-reads it every 2 s (wschat.features.mod_hooks)
            snap.moderation = await self.accounts.moderation(time.time())
        except (RedisError, OSError) as exc:
            raise StoreError(f"Cannot reach Redis at {redis_shown(self.url)}: {exc}") from None
        return snap

    # -- commands

    def _run(self, done: Done, work: Coroutine[Any, Any, Any], what: str) -> None:
        async def run() -> None:
            try:
                result: Any = await work
                self.failing = False
            except (RedisError, OSError) as exc:
                log.error("Redis failed (%s): %s", what, exc)
                result = exc
                self.failing = True
            self.notify(done, result)

        if self.closed:
            work.close()
            self.notify(done, StoreError("the server is shutting down"))
            return
        task = asyncio.ensure_future(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def append(self, command: Append, done: Done) -> None:
        """Queued for the one writer, so messages are stored in the order they were sent."""
        if self.closed:
            self.notify(done, StoreError("the server is shutting down"))
            return
        self.writer.append(command.messages, done)

    def _call(self, chunk: list[Message]) -> tuple[list[Any], list[Any]]:
        head = [PREFIX + "next_id", PREFIX + "rooms", self.cap, SENT_TTL, secrets.token_urlsafe(9)]
        return script_args(chunk, room_keys, _sent, body, [*head, self.process])

    def _health(self, ok: bool) -> None:
        self.failing = not ok

    def account(self, command: Command, done: Done) -> None:
        """An accounts, private-message or moderation command, run against Redis."""
        work = self.accounts.work(command)
        if work is None:
            self.notify(done, TypeError(f"the Redis store cannot execute {type(command).__name__}"))
            return
        self._run(done, work, type(command).__name__)

    def save_reads(self, command: SaveReads, done: Done) -> None:
        self._run(done, self.reads.save(command.positions), "saving read positions")

    def search(self, command: Search, done: Done) -> None:
        self._run(done, self.searcher.search(command), "searching")

    async def _after(self, room: str, after_seq: int, count: int) -> list[Message]:
        return await self._range(ReadRange(room, after_seq, count))

    async def _epoch(self, room: str) -> str:
        return (await self.client.hget(meta_key(room), "e") or b"").decode()

    def load_room(self, command: LoadRoom, done: Done) -> None:
        self._run(done, self._room_state(command.room), f"loading #{command.room}")

    async def _room_state(self, room: str) -> RoomState | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(meta_key(room))
        pipe.xrevrange(stream_key(room), "+", "-", count=self.window)
        pipe.xrange(stream_key(room), "-", "+", count=1)
        meta, newest, oldest = await pipe.execute()
        if not meta:
            return None
        recent = folded([parse_entry(fields[b"m"]) for _, fields in reversed(newest)])
        first = parse_entry(oldest[0][1][b"m"]).seq if oldest else int(meta.get(b"s", 0)) + 1
        return RoomState(meta[b"e"].decode(), int(meta.get(b"s", 0)), first, recent)

    def read_page(self, command: ReadPage, done: Done) -> None:
        self._run(done, self._page(command), f"reading #{command.room}")

    async def _page(self, c: ReadPage) -> list[Message]:
        rows = await self.client.xrevrange(stream_key(c.room), f"({c.before_seq}-0", "-", count=c.limit)
        return folded([parse_entry(fields[b"m"]) for _, fields in reversed(rows)])

    def read_range(self, command: ReadRange, done: Done) -> None:
        self._run(done, self._range(command), f"catching up #{command.room}")

    async def _range(self, c: ReadRange) -> list[Message]:
        rows = await self.client.xrange(stream_key(c.room), f"({c.after_seq}-1", "+", count=c.limit)
        return [parse_entry(fields[b"m"]) for _, fields in rows]

    def read_message(self, command: ReadMessage, done: Done) -> None:
        self._run(done, self._message(command), f"reading #{command.room}")

    async def _message(self, c: ReadMessage) -> Message | None:
        """Message `seq` with the events of the next `EVENTS_SEEN` entries folded in."""
        rows = await self.client.xrange(stream_key(c.room), f"{c.seq}-1", "+", count=EVENTS_SEEN)
        msgs = folded([parse_entry(fields[b"m"]) for _, fields in rows])
        return msgs[0] if msgs and msgs[0].seq == c.seq else None

    def claim_name(self, command: ClaimName, done: Done) -> None:
        self._run(done, self.names.claim(command), f"claiming the name {command.key}")

    def find_user(self, command: FindUser, done: Done) -> None:
        self._run(done, self.names.find(command), f"finding {command.key}")

    def live_profiles(self, command: ReadLiveProfiles, done: Done) -> None:
        self._run(done, live_profiles(self.client, self.process, command), "reading profiles")

    def user_work(self, command: Command, done: Done) -> None:
        self._run(done, self.names.work(command), type(command).__name__)

    async def ping(self) -> bool:
        """Whether Redis answers now (for /healthz)."""
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def aclose(self) -> None:
        """Let what is being stored finish, then close the connections."""
        self.closed = True
        await self.names.aclose()
        await self.writer.aclose(COMMAND_TIMEOUT)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=COMMAND_TIMEOUT + 1)
        await self.searcher.aclose()
        await self.client.aclose(close_connection_pool=True)
        await asyncio.to_thread(self.accounts.close)  # its hashing thread
