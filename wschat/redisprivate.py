"""Stored private messages between accounts in Redis (cluster mode), for every process. I/O.

The Redis counterpart of `wschat.privatestore`, with the same promises: a message gets a global
id and a seq within its conversation in one atomic step; each device (account session) has a
cursor, the last id it was given; a new device's cursor starts just before the account's oldest
message still waiting for delivery. Keys (prefix `wschat:pm:`):

- `next` (ids), `seq` (a hash: conversation -> its last seq);
- `msg` (a hash: id -> "<seq> <json>", the JSON holding the record's other fields: `call` and
  `e2ee` only when set, so older records read as None), `delivered`
  (a hash: id -> when the recipient first got it);
- `by:<account>` (a sorted set of the ids an account sent or received, by id),
  `conv:<conversation>` (its ids by seq), `waiting:<account>` (ids not delivered yet);
- `cursor` (a hash: session id -> last id given to that device);
- `sent:<len>:<sender>:<client_msg_id>` ("<id> <seq>" of a stored message, for a day): a resend
  is recognised atomically by the storing script, after a restart and on any process.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from wschat.features.private_records import (
    MarkDelivered,
    ReadConversation,
    ReadMissed,
    StoredPrivate,
    StorePrivate,
)

P = "wschat:pm:"
SENT_TTL = 86_400  # how long a client_msg_id is recognised (as a room message's, wschat.redisstore)

# KEYS: next, seq, msg, then per message: by:sender, by:recipient, conv, waiting:recipient,
#       sent:<sender>:<client_msg_id> (or "" without one)
# ARGV: sent TTL, then per message: conversation, JSON.   Returns per message: id, seq, repeat (0/1).
# A client_msg_id stored before (a resend, to any process, after a restart too) answers the
# stored copy's id and seq and stores nothing, in the same atomic step (as the room script).
STORE_LUA = """
local out = {}
for i = 0, (#KEYS - 3) / 5 - 1 do
  local k = 4 + 5 * i
  local conv, json = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local sent = KEYS[k + 4]
  local before = false
  if sent ~= '' then before = redis.call('GET', sent) end
  if before then
    local id, seq = string.match(before, '^(%d+) (%d+)$')
    out[#out + 1] = id
    out[#out + 1] = seq
    out[#out + 1] = 1
  else
    local id = redis.call('INCR', KEYS[1])
    local seq = redis.call('HINCRBY', KEYS[2], conv, 1)
    redis.call('HSET', KEYS[3], id, seq .. ' ' .. json)
    redis.call('ZADD', KEYS[k], id, id)
    redis.call('ZADD', KEYS[k + 1], id, id)
    redis.call('ZADD', KEYS[k + 2], seq, id)
    redis.call('ZADD', KEYS[k + 3], id, id)
    if sent ~= '' then redis.call('SET', sent, id .. ' ' .. seq, 'EX', ARGV[1]) end
    out[#out + 1] = id
    out[#out + 1] = seq
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS: delivered, cursor, msg   ARGV: ts, n ids, ids..., then session id / last id pairs
MARK_LUA = """
local n = tonumber(ARGV[2])
for i = 1, n do
  local id = ARGV[2 + i]
  if redis.call('HSETNX', KEYS[1], id, ARGV[1]) == 1 then
    local raw = redis.call('HGET', KEYS[3], id)
    if raw then
      local m = cjson.decode(string.sub(raw, string.find(raw, ' ') + 1))
      redis.call('ZREM', '@P@waiting:' .. m['rk'], id)
    end
  end
end
for i = 3 + n, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
end
return 1
""".replace("@P@", P)


def _json(m: StoredPrivate) -> bytes:
    f = {"c": m.conversation, "s": m.sender, "sk": m.sender_key, "r": m.recipient, "rk": m.recipient_key}
    f |= {"t": m.text, "ts": m.ts, "cm": m.client_msg_id, "f": m.file}
    if m.call is not None:  # a call's outcome (wschat.features.calls)
        f["call"] = m.call
    if m.e2ee is not None:  # an encrypted message's envelope: its text is ""
        f["e2ee"] = m.e2ee
    return orjson.dumps(f)


def _record(mid: int, raw: bytes, delivered: bytes | None) -> StoredPrivate:
    seq, data = raw.split(b" ", 1)
    f = orjson.loads(data)
    m = StoredPrivate(f["c"], f["s"], f["sk"], f["r"], f["rk"], f["t"], f["ts"], f["cm"], mid, int(seq))
    m.delivered = float(delivered) if delivered is not None else None
    m.file = f["f"]
    m.call, m.e2ee = f.get("call"), f.get("e2ee")  # absent in records stored before calls/e2ee
    return m


def sent_key(sender_key: str, cmid: str) -> str:
    """Where the id and seq of `sender_key`'s stored message with this client_msg_id are kept."""
    return P + f"sent:{len(sender_key)}:{sender_key}:{cmid}"


class RedisPrivate:
    """`StorePrivate`, `MarkDelivered`, `ReadMissed`, `ReadConversation` and device cursors."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.store_script = client.register_script(STORE_LUA)
        self.mark_script = client.register_script(MARK_LUA)

    async def store(self, c: StorePrivate) -> None:
        keys: list[str] = [P + "next", P + "seq", P + "msg"]
        args: list[Any] = [SENT_TTL]
        for m in c.messages:
            keys += [P + f"by:{m.sender_key}", P + f"by:{m.recipient_key}"]
            keys += [P + f"conv:{m.conversation}", P + f"waiting:{m.recipient_key}"]
            cmid = m.client_msg_id
            keys.append(sent_key(m.sender_key, cmid) if cmid is not None else "")
            args += [m.conversation, _json(m)]
        out = await self.store_script(keys=keys, args=args)
        for i, m in enumerate(c.messages):
            m.id, m.seq, m.duplicate = int(out[3 * i]), int(out[3 * i + 1]), bool(out[3 * i + 2])

    async def mark_delivered(self, c: MarkDelivered) -> None:
        args: list[Any] = [c.ts, len(c.ids), *c.ids]
        for sid, last in c.cursors.items():
            args += [sid, last]
        await self.mark_script(keys=[P + "delivered", P + "cursor", P + "msg"], args=args)

    async def start_cursor(self, session_id: str, key: str) -> int:
        """A new device's cursor: just before the oldest message waiting for the account."""
        oldest = await self.client.zrange(P + f"waiting:{key}", 0, 0, withscores=True)
        last = int(oldest[0][1]) - 1 if oldest else int(await self.client.get(P + "next") or 0)
        await self.client.hset(P + "cursor", session_id, last)
        return last

    async def _records(self, ids: list[bytes]) -> list[StoredPrivate]:
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(P + "msg", ids)
        pipe.hmget(P + "delivered", ids)
        raws, delivered = await pipe.execute()
        return [_record(int(i), r, d) for i, r, d in zip(ids, raws, delivered, strict=True) if r is not None]

    async def read_missed(self, c: ReadMissed) -> list[StoredPrivate]:
        cursor = await self.client.hget(P + "cursor", c.session_id)
        last = int(cursor) if cursor is not None else await self.start_cursor(c.session_id, c.key)
        ids = await self.client.zrangebyscore(P + f"by:{c.key}", f"({last}", "+inf", start=0, num=c.limit)
        return await self._records(ids)

    async def read_conversation(self, c: ReadConversation) -> list[StoredPrivate]:
        key = P + f"conv:{c.conversation}"
        ids = await self.client.zrevrangebyscore(key, f"({c.before_seq}", "-inf", start=0, num=c.limit)
        return await self._records(list(reversed(ids)))

    async def forget_sessions(self, session_ids: list[str]) -> None:
        """Cursors of sessions that ended."""
        if session_ids:
            await self.client.hdel(P + "cursor", *session_ids)
