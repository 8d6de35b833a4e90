"""User names owned cluster-wide in Redis, and finding the process a user is on. I/O.

- `name:<key>`: who holds the name: JSON `{"p": process, "c": connection, "t": session token,
  "n": the name as written}`, with a TTL of `ttl` seconds (`--redis-ttl`, `NAME_TTL` by
  default) that this process refreshes every third of it for the names it holds, so a dead
  process's names free by themselves within about 30 s;
- `look:<look-alike key>`: the name key that holds it, same TTL: the confusable-name check
  sees every online name of the cluster.

One Lua script claims a name and its look-alike keys atomically, so two clients racing for one
name on two processes never both get it. A claim with the holder's session token takes the
session over: the script rewrites the owner and, when the old connection is on another
process, publishes `t <connection>` on that process's channel (its broker closes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from wschat.records import ClaimName, FindUser, NameClaim, UserPlace

log = logging.getLogger("wschat.redisnames")

PREFIX = "wschat:"
NAME_TTL = 30  # seconds, unless --redis-ttl says otherwise

# KEYS: name key, look keys...
# ARGV: value (JSON), offered token, ttl, own process, name key, connection, force (1/0)
CLAIM_LUA = """
for i = 2, #KEYS do
  local other = redis.call('GET', KEYS[i])
  if other and other ~= ARGV[5] then
    local holder = redis.call('GET', '@P@name:' .. other)
    local shown = other
    if holder then shown = cjson.decode(holder)['n'] end
    return {'confusable', shown}
  end
end
local old = redis.call('GET', KEYS[1])
local local_cid = '0'
if old then
  local o = cjson.decode(old)
  -- this connection's own earlier claim, answered too late (Redis was stopped): not a rival
  local again = o['p'] == ARGV[4] and tostring(o['c']) == ARGV[6]
  local allowed = ARGV[7] == '1' or (ARGV[2] ~= '' and o['t'] == ARGV[2])
  if not again and not allowed then return {'taken', o['n']} end
  if again then
    local_cid = '0'
  elseif o['p'] == ARGV[4] then
    local_cid = tostring(o['c'])
  else
    redis.call('PUBLISH', '@P@proc:' .. o['p'], 't ' .. o['c'])
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[5], 'EX', ARGV[3]) end
return {'ok', local_cid}
""".replace("@P@", PREFIX)

# KEYS: name key, look keys...   ARGV: value, name key, ttl (0: release)
KEEP_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 1, #KEYS do
  if ARGV[3] == '0' then redis.call('DEL', KEYS[i]) else redis.call('EXPIRE', KEYS[i], ARGV[3]) end
end
return 1
"""


def name_key(key: str) -> str:
    return f"{PREFIX}name:{key}"


def look_key(look: str) -> str:
    return f"{PREFIX}look:{look}"


class RedisNames:
    """The names this process holds in Redis, kept alive by a heartbeat."""

    def __init__(self, client: aioredis.Redis, process: str, ttl: int = NAME_TTL) -> None:
        self.client = client
        self.process = process
        self.ttl = ttl
        self.claim_script = self.client.register_script(CLAIM_LUA)
        self.keep_script = self.client.register_script(KEEP_LUA)
        # name key -> (value, look keys, connection)
        self.held: dict[str, tuple[bytes, tuple[str, ...], int]] = {}
        self.tasks: set[asyncio.Task] = set()
        self.beat: asyncio.Task | None = None

    async def claim(self, c: ClaimName) -> NameClaim:
        value = orjson.dumps({"p": self.process, "c": c.cid, "t": c.token, "n": c.name})
        keys = [name_key(c.key), *(look_key(look) for look in c.looks)]
        status, detail = await self.claim_script(
            keys=keys, args=[value, c.offered, self.ttl, self.process, c.key, c.cid, int(c.force)]
        )
        status, detail = status.decode(), detail.decode()
        if status != "ok":
            return NameClaim(status, holder=detail)
        self.held[c.key] = (value, tuple(keys[1:]), c.cid)
        if self.beat is None:
            self.beat = asyncio.ensure_future(self._heartbeat())
        return NameClaim("ok", local_cid=int(detail))

    def release(self, key: str, cid: int) -> None:
        """Free a name this process's connection `cid` held (no-op if it was taken over)."""
        entry = self.held.get(key)
        if entry is None or entry[2] != cid:
            return
        del self.held[key]
        value, looks, _ = entry
        self._spawn(self._keep(key, value, looks, 0))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _keep(self, key: str, value: bytes, looks: tuple[str, ...], ttl: int) -> None:
        try:
            await self.keep_script(keys=[name_key(key), *looks], args=[value, key, ttl])
        except (RedisError, OSError) as exc:  # the TTL frees it anyway
            log.warning("could not %s the name %s: %s", "refresh" if ttl else "release", key, exc)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            held = list(self.held.items())
            pipe = self.client.pipeline(transaction=False)
            for key, (value, looks, _) in held:
                await self.keep_script(keys=[name_key(key), *looks], args=[value, key, self.ttl], client=pipe)
            with contextlib.suppress(RedisError, OSError):
                lost = [key for (key, _), kept in zip(held, await pipe.execute(), strict=True) if not kept]
                for key in lost:  # expired while Redis was away and taken by someone else
                    log.warning("the name %s is now held elsewhere", key)

    async def find(self, c: FindUser) -> UserPlace | None:
        raw = await self.client.get(name_key(c.key))
        if raw is None:
            return None
        v: dict[str, Any] = orjson.loads(raw)
        return UserPlace(v["p"], int(v["c"]), v["n"])

    async def aclose(self) -> None:
        """Free every name this process holds now, rather than when their TTL runs out."""
        if self.beat is not None:
            self.beat.cancel()
        held, self.held = self.held, {}
        for key, (value, looks, _) in held.items():
            self._spawn(self._keep(key, value, looks, 0))
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=3)
