"""The writer's Lua script (cluster mode), and calling it: packed in C, one layer per reply. I/O.

`APPEND_LUA` stores a batch of room messages (`wschat.redisstore` builds its keys and
arguments and reads its answer).

redis-py's `Script.__call__` packs every argument in Python and goes through the client's
command dispatch, retry wrapper and pool for each call: with one call per writer batch of up
to 500 messages (3 keys and 5 arguments each) that packing and those layers cost more than
the script itself. `ScriptCall` holds one connection of the client's pool for its single
caller (the writer task: calls never overlap), packs the whole `EVALSHA` with
`hiredis.pack_command` and reads the reply with the connection's hiredis parser.

Faults: the connection's socket timeout bounds each write and read (a stopped Redis becomes a
`TimeoutError`, and the connection is dropped and made again by the next call); a Redis that
lost its script cache (restarted) answers NOSCRIPT, and the script is loaded again and the
call repeated once (the script is atomic: a call that answered NOSCRIPT did nothing).
"""

from __future__ import annotations

import hashlib
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import NoScriptError

# One call stores a batch, the same atomic step for each message in turn:
# KEYS: next_id, rooms, then per message: meta, stream, sent (or "" without a client_msg_id)
# ARGV: retention, sent TTL, a fresh epoch, then per message: body, the room's epoch as the
#       process knows it, the last seq it knows, channel, room name
# Each room's meta hash is read once per call and written once at its end, with one ZADD and
# one PUBLISH per room (its new entries joined by newlines: orjson escapes every newline inside
# the JSON), in seq order; per message only the client_msg_id check, INCR, XADD and SET remain.
# Returns per message: 1 and the stored copy's "id seq epoch" for a repeat, else 0 and the new.
APPEND_LUA = """
local out = {}
local rooms, order = {}, {}
for i = 0, (#KEYS - 2) / 3 - 1 do
  local meta, stream, sent = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  local a = 4 + 5 * i
  local hit = false
  if sent ~= '' then hit = redis.call('GET', sent) end
  if hit then
    out[#out + 1] = 1
    out[#out + 1] = hit
  else
    local r = rooms[meta]
    if not r then
      local m = redis.call('HMGET', meta, 'e', 's')
      r = {e = m[1], s = tonumber(m[2]) or 0, new = {}, chan = ARGV[a + 3], name = ARGV[a + 4]}
      if not r.e then
        r.e = ARGV[a + 1]
        -- the room had history (the process knew seqs) and Redis lost it: a new epoch
        if tonumber(ARGV[a + 2]) > 0 and redis.call('EXISTS', stream) == 0 then r.e = ARGV[3] end
        redis.call('HSET', meta, 'e', r.e)
      end
      rooms[meta] = r
      order[#order + 1] = meta
    end
    r.s = r.s + 1
    local id = redis.call('INCR', KEYS[1])
    r.id = id
    local head = id .. ' ' .. r.s .. ' ' .. r.e
    local entry = 'm ' .. head .. ' ' .. ARGV[a]
    redis.call('XADD', stream, 'MAXLEN', '~', ARGV[1], r.s .. '-1', 'm', entry)
    if sent ~= '' then redis.call('SET', sent, head, 'EX', ARGV[2]) end
    r.new[#r.new + 1] = entry
    out[#out + 1] = 0
    out[#out + 1] = head
  end
end
for _, meta in ipairs(order) do
  local r = rooms[meta]
  if r.id then
    redis.call('HSET', meta, 's', r.s)
    redis.call('ZADD', KEYS[2], r.id, r.name)
    redis.call('PUBLISH', r.chan, table.concat(r.new, '\\n'))
  end
end
return out
"""


class ScriptCall:
    """`await call(keys, args)`: EVALSHA of `source` with those keys and arguments (one caller)."""

    def __init__(self, client: aioredis.Redis, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest().encode()  # Redis names a script by its SHA-1
        self.conn: Connection | None = None

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        conn = self.conn
        if conn is None:
            conn = self.conn = await self.client.connection_pool.get_connection()
        packed = hiredis.pack_command((b"EVALSHA", self.sha, len(keys), *keys, *args))
        try:
            return await self._ask(conn, packed)
        except NoScriptError:
            await self._ask(conn, hiredis.pack_command((b"SCRIPT", b"LOAD", self.source)))
            return await self._ask(conn, packed)

    @staticmethod
    async def _ask(conn: Connection, packed: bytes) -> Any:
        await conn.send_packed_command(packed, check_health=False)
        return await conn.read_response()

    async def aclose(self) -> None:
        """Give the connection back to the pool (it is closed with the pool)."""
        if self.conn is not None:
            await self.client.connection_pool.release(self.conn)
            self.conn = None
