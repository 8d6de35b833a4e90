"""The writer's Lua script (cluster mode), and calling it: packed in C, one layer per reply. I/O.

`APPEND_LUA` stores a batch of room messages: `script_args` makes its keys and arguments
(`wschat.redisstore` gives the key names and the stored form), `answered` reads its answer,
`answer` gives the batch's commands theirs and paces the writer's next call.

redis-py's `Script.__call__` packs every argument in Python and goes through the client's
command dispatch, retry wrapper and pool for each call: with one call per writer batch of up
to 500 messages (3 keys and 5 arguments each) that packing and those layers cost more than
the script itself. `ScriptCall` holds one connection of the client's pool for its single
caller (the writer), packs the whole `EVAL` with `hiredis.pack_command` and reads the reply
with the connection's hiredis parser. Sending and reading are apart, so the writer can have
several batches in Redis while the first one's answer is on its way.

Faults: the connection's socket timeout bounds each write and read (a stopped Redis becomes a
`TimeoutError`, and the connection is dropped and made again by the next send; every send
still waiting on the dropped one fails too). A Redis that lost its script cache (restarted)
needs nothing: `EVAL` carries the source.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError, RedisError, ResponseError

from wschat.records import Message
from wschat.store_base import Done, Notify

log = logging.getLogger("wschat.redisstore")

# One call stores a batch, the same atomic step for each message in turn:
# KEYS: next_id, rooms, then per room: meta, stream; then per message: sent (or "" without a
#       client_msg_id)
# ARGV: retention, sent TTL, a fresh epoch, this process, the number of rooms R, then per room:
#       channel, name, the room's epoch as the process knows it, the last seq it knows; then per
#       message: its room's number (1..R), body
# Ids come from one INCRBY for the whole call (a repeat leaves its id unused). Each room's meta
# hash is read once per call and written once at its end, with one ZADD and one PUBLISH per room:
# a first line `b <process>` (the process that stored them: it has delivered them already from
# this call's answer, and skips the copy unparsed), then its new entries joined by newlines
# (orjson escapes every newline inside the JSON), in seq order; per message only the
# client_msg_id check, XADD and SET remain.
# Returns per message: 1 and the stored copy's "id seq epoch" for a repeat, else 0 and the new.
APPEND_LUA = """
local nrooms = tonumber(ARGV[5])
local first = 6 + 4 * nrooms
local count = #ARGV - first + 1
local base = redis.call('INCRBY', KEYS[1], count / 2) - count / 2
local out = {}
local rooms = {}
for i = 0, count / 2 - 1 do
  local sent = KEYS[3 + 2 * nrooms + i]
  local k = tonumber(ARGV[first + 2 * i])
  local hit = false
  if sent ~= '' then hit = redis.call('GET', sent) end
  if hit then
    out[#out + 1] = 1
    out[#out + 1] = hit
  else
    local r = rooms[k]
    if not r then
      local meta, a = KEYS[1 + 2 * k], 2 + 4 * k
      local m = redis.call('HMGET', meta, 'e', 's')
      r = {e = m[1], s = tonumber(m[2]) or 0, new = {'b ' .. ARGV[4]}}
      if not r.e then
        r.e = ARGV[a + 2]
        -- the room had history (the process knew seqs) and Redis lost it: a new epoch
        if tonumber(ARGV[a + 3]) > 0 and redis.call('EXISTS', KEYS[2 + 2 * k]) == 0 then r.e = ARGV[3] end
        redis.call('HSET', meta, 'e', r.e)
      end
      rooms[k] = r
    end
    r.s = r.s + 1
    local id = base + i + 1
    r.id = id
    local head = id .. ' ' .. r.s .. ' ' .. r.e
    local entry = 'm ' .. head .. ' ' .. ARGV[first + 2 * i + 1]
    redis.call('XADD', KEYS[2 + 2 * k], 'MAXLEN', '~', ARGV[1], r.s .. '-1', 'm', entry)
    if sent ~= '' then redis.call('SET', sent, head, 'EX', ARGV[2]) end
    r.new[#r.new + 1] = entry
    out[#out + 1] = 0
    out[#out + 1] = head
  end
end
for k = 1, nrooms do
  local r = rooms[k]
  if r then
    local a = 2 + 4 * k
    redis.call('HSET', KEYS[1 + 2 * k], 's', r.s)
    redis.call('ZADD', KEYS[2], r.id, ARGV[a + 1])
    redis.call('PUBLISH', ARGV[a], table.concat(r.new, '\\n'))
  end
end
return out
"""


def script_args(
    chunk: list[Message],
    room_keys: Callable[[str], tuple[str, str, str]],
    sent: Callable[[Message], str],
    body: Callable[[Message], bytes],
    head: list[Any],
) -> tuple[list[Any], list[Any]]:
    """`APPEND_LUA`'s keys and arguments for `chunk`, each room's once.

    `room_keys(room)` gives its meta key, stream key and channel, `sent(m)` a message's
    client_msg_id key (or ""), `body(m)` what is stored; `head` is next_id's key, the rooms'
    key, the retention, the sent TTL, a fresh epoch and this process.
    """
    numbers: dict[str, int] = {}
    keys: list[Any] = head[:2]
    args: list[Any] = [*head[2:], 0]
    sent_keys: list[Any] = []
    each: list[Any] = []  # per message: its room's number, its body
    for m in chunk:
        room = m.room
        k = numbers.get(room)
        if k is None:
            meta, stream, chan = room_keys(room)
            k = numbers[room] = len(numbers) + 1
            keys += (meta, stream)
            args += (chan, room, m.epoch, m.seq)  # the epoch and last seq this process knows
        sent_keys.append(sent(m))
        each += (k, body(m))
    args[4] = len(numbers)
    return keys + sent_keys, args + each


def answered(chunk: list[Message], results: list[Any]) -> None:
    """Each message's id, seq, epoch and `duplicate` from `APPEND_LUA`'s answer."""
    epochs: dict[bytes, str] = {}
    for i, m in enumerate(chunk):
        mid, seq, epoch = results[2 * i + 1].split(b" ")
        m.id, m.seq, m.duplicate = int(mid), int(seq), results[2 * i] == 1
        m.epoch = epochs.get(epoch) or epochs.setdefault(epoch, epoch.decode())


def _lost(exc: BaseException) -> BaseException:
    """What a failed send or read raises: redis-py's own error, or a `ConnectionError` for the
    others (a connection closed by a failed read while the other task writes on it makes
    redis-py raise AttributeError), so the writer treats it as Redis lost, never as a crash."""
    if isinstance(exc, RedisError | OSError) or not isinstance(exc, Exception):
        return exc
    return ConnectionError(f"the connection to Redis was closed under this call ({exc!r})")


@dataclass(frozen=True, slots=True)
class Sent:
    """Calls written on `conn` whose answers are still to be read."""

    conn: Connection
    calls: int


LOOP_TURNS = 3  # after a batch's answers, before the next call: them written, the replies read


async def answer(
    notify: Notify, batch: list[tuple[list[Message], Done]], result: BaseException | None
) -> None:
    """Give every command of `batch` its answer in one wake-up of the loop; return once the
    runtime has had the turns of the loop to write them out and read what came back.

    The runtime writes the answers out in its next turn of the loop and reads what the clients
    sent back in the turn after: the writer's next call waits for both (turns, not time), so
    what came back together is stored, and then delivered, together. Sent at once, a straggler
    became a group of its own, and from then on every delivery was split in two, doubling the
    writes per recipient (fan-out to 1,000: 28 sends a message instead of 34 to 38).
    """
    answered = asyncio.Event()

    def run() -> None:
        for _, done in batch:
            try:
                done(result)
            except Exception:  # a bug in one answer must not cost the others theirs
                log.exception("internal error answering a store batch")
        answered.set()

    notify(run)
    await answered.wait()
    for _ in range(LOOP_TURNS):
        await asyncio.sleep(0)


class ScriptCall:
    """Calls of one script on one connection of the client's pool, for one caller (the writer).

    `send(calls)` writes several calls in one pipeline and returns at once; `receive(sent)`
    reads their answers, in order. Several sends may be waiting for their answers at once (Redis
    runs a connection's commands in order, so the answers come in the order of the sends)."""

    def __init__(self, client: aioredis.Redis, source: str) -> None:
        self.client = client
        self.source = source.encode()
        self.conn: Connection | None = None

    async def send(self, calls: list[tuple[list[Any], list[Any]]]) -> Sent:
        """Write `calls` (keys, arguments) in one write: no round trip between them.

        EVAL with the source, not EVALSHA: a Redis that lost its script cache (restarted,
        SCRIPT FLUSH) runs it all the same, so a later call can never overtake an earlier one
        that answered NOSCRIPT; hashing the source costs Redis ~2 µs a call of 500 messages."""
        conn = self.conn
        if conn is None:
            conn = self.conn = await self.client.connection_pool.get_connection()
        packed = [hiredis.pack_command((b"EVAL", self.source, len(k), *k, *a)) for k, a in calls]
        try:
            await conn.send_packed_command(b"".join(packed), check_health=False)
        except BaseException as exc:
            await self._drop(conn)
            raise _lost(exc) from exc
        return Sent(conn, len(packed))

    async def receive(self, sent: Sent) -> list[Any]:
        """The answers of `sent`'s calls, in order. An error answer raises after every answer
        is read (the connection stays in step); a lost connection raises for every send made
        on it (their calls may or may not have run)."""
        if sent.conn is not self.conn:
            raise ConnectionError("the connection to Redis was lost with an earlier call")
        answers: list[Any] = []
        try:
            for _ in range(sent.calls):
                try:
                    answers.append(await sent.conn.read_response())
                except ResponseError as exc:
                    answers.append(exc)
        except BaseException as exc:
            await self._drop(sent.conn)
            raise _lost(exc) from exc
        for a in answers:
            if isinstance(a, ResponseError):
                raise a
        return answers

    async def _drop(self, conn: Connection) -> None:
        """Forget a connection whose answers are out of step: closed, so a read still waiting
        on it fails instead of taking another caller's answer once the pool reuses it."""
        await conn.disconnect(nowait=True)
        if self.conn is conn:
            self.conn = None
            await self.client.connection_pool.release(conn)

    async def aclose(self) -> None:
        """Give the connection back to the pool (it is closed with the pool)."""
        if self.conn is not None:
            await self.client.connection_pool.release(self.conn)
            self.conn = None
