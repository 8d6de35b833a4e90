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

An account's name is shared by all of its devices, cluster-wide (PROTOCOL.md, "Several
devices"): `name:<key>` then holds `{"n": name, "acc": 1}` and no single owner, and
`devs:<key>` (a hash, same TTL) lists every connection of the user: field `<process>:<connection>`,
value JSON `{"s": session id, "a": address, "n": name, "pr": presence, "st": status}` (a guest
has one field, its connection). A device's claim (`DEVICE_LUA`) adds its field and takes over
only the fields of the same session id (an older connection of the same device: `t
<connection>` to its process); fields of processes whose `alive:<process>` key expired are
dropped on the way. The last device's release frees the name and records the account's "last
seen" time (`profile:<key>`, `wschat.redisaccounts`). `FindDevices` reads the hash
(the live places of a user on the other processes: private messages, kicks and moderation reach
every device; `whois` tells its live presence, kept by `SaveLive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from wschat.records import ClaimName, FindDevices, FindUser, NameClaim, SaveLive, UserPlace

log = logging.getLogger("wschat.redisnames")

PREFIX = "wschat:"
NAME_TTL = 30  # seconds, unless --redis-ttl says otherwise


def _confusable_lua(first: int, own: int) -> str:
    """A claim's first step: refuse it when a look-alike key (KEYS[first] on) is held by another
    name than ARGV[own], the claimed name's own key, and say which."""
    return f"""
for i = {first}, #KEYS do
  local other = redis.call('GET', KEYS[i])
  if other and other ~= ARGV[{own}] then
    local holder = redis.call('GET', '{PREFIX}name:' .. other)
    local shown = other
    if holder then shown = cjson.decode(holder)['n'] end
    return {{'confusable', shown}}
  end
end"""


# KEYS: name key, look keys...
# ARGV: value (JSON), offered token, ttl, own process, name key, connection, force (1/0),
#       devs key, device (JSON), device field
CLAIM_LUA = (
    _confusable_lua(2, 5)
    + """
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
redis.call('DEL', ARGV[8])  -- a guest's name is one connection
redis.call('HSET', ARGV[8], ARGV[10], ARGV[9])
redis.call('EXPIRE', ARGV[8], ARGV[3])
return {'ok', local_cid}
""".replace("@P@", PREFIX)
)

# An account's device. KEYS: name key, devs key, look keys...
# ARGV: value ({"n", "acc"}), ttl, own process, name key, own field, device (JSON), session id
DEVICE_LUA = (
    _confusable_lua(3, 4)
    + """
local local_cid = '0'
local old = redis.call('GET', KEYS[1])
if old then
  local o = cjson.decode(old)
  if not o['acc'] then  -- a guest held the name before it was registered: it goes
    if o['p'] == ARGV[3] then local_cid = tostring(o['c'])
    else redis.call('PUBLISH', '@P@proc:' .. o['p'], 't ' .. o['c']) end
    redis.call('DEL', KEYS[2])
  end
end
local devs = redis.call('HGETALL', KEYS[2])
for i = 1, #devs, 2 do
  local f = devs[i]
  if f ~= ARGV[5] then
    local proc, cid = string.match(f, '^(.*):(%d+)$')
    if proc ~= ARGV[3] and redis.call('EXISTS', '@P@alive:' .. proc) == 0 then
      redis.call('HDEL', KEYS[2], f)  -- a dead process's device
    elseif cjson.decode(devs[i + 1])['s'] == ARGV[7] then
      redis.call('HDEL', KEYS[2], f)  -- this device's older connection (here: the hub closes it)
      if proc ~= ARGV[3] then redis.call('PUBLISH', '@P@proc:' .. proc, 't ' .. cid) end
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[5], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[2])
for i = 3, #KEYS do redis.call('SET', KEYS[i], ARGV[4], 'EX', ARGV[2]) end
return {'ok', local_cid}
""".replace("@P@", PREFIX)
)

# KEYS: name key, devs key, look keys...   ARGV: the field that goes, now, the name key
# The account's last device on any process going records its "last seen" time, here in the
# same step (a process whose last device of the user goes cannot know it is the last).
DEVICE_GONE_LUA = """
redis.call('HDEL', KEYS[2], ARGV[1])
for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
  local proc = string.match(f, '^(.*):%d+$')
  if redis.call('EXISTS', '@P@alive:' .. proc) == 0 then redis.call('HDEL', KEYS[2], f) end
end
if redis.call('HLEN', KEYS[2]) > 0 then return 0 end
local old = redis.call('GET', KEYS[1])
if old and cjson.decode(old)['acc'] then
  for i = 1, #KEYS do redis.call('DEL', KEYS[i]) end
  redis.call('HSET', '@P@profile:' .. ARGV[3], 'last_seen', ARGV[2])
end
return 1
""".replace("@P@", PREFIX)

# KEYS: name key, devs key, look keys...   ARGV: ttl, this process's fields...
DEVICE_KEEP_LUA = """
for i = 2, #ARGV do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then
    for k = 1, #KEYS do redis.call('EXPIRE', KEYS[k], ARGV[1]) end
    return 1
  end
end
return 0
"""

# KEYS: devs key   ARGV: field, device (JSON)
LIVE_LUA = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

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


def devs_key(key: str) -> str:
    return f"{PREFIX}devs:{key}"


def alive_key(process: str) -> str:
    return f"{PREFIX}alive:{process}"


class RedisNames:
    """The names this process holds in Redis, kept alive by a heartbeat."""

    def __init__(self, client: aioredis.Redis, process: str, ttl: int = NAME_TTL) -> None:
        self.client = client
        self.process = process
        self.ttl = ttl
        self.claim_script = self.client.register_script(CLAIM_LUA)
        self.keep_script = self.client.register_script(KEEP_LUA)
        self.device_script = self.client.register_script(DEVICE_LUA)
        self.gone_script = self.client.register_script(DEVICE_GONE_LUA)
        self.device_keep_script = self.client.register_script(DEVICE_KEEP_LUA)
        self.live_script = self.client.register_script(LIVE_LUA)
        # a guest's name key -> (value, its other keys (looks, devs), connection)
        self.held: dict[str, tuple[bytes, tuple[str, ...], int]] = {}
        # an account's name key -> its look keys, and its connections here
        self.devices: dict[str, tuple[tuple[str, ...], dict[int, None]]] = {}
        self.entries: dict[int, dict[str, Any]] = {}  # connection -> its `devs:` entry
        self.tasks: set[asyncio.Task] = set()
        self.beat: asyncio.Task | None = None
        self.closed = False

    def _field(self, cid: int) -> str:
        return f"{self.process}:{cid}"

    async def claim(self, c: ClaimName) -> NameClaim:
        entry = {"s": c.session_id, "a": c.address, "n": c.name, "pr": "online", "st": ""}
        looks = tuple(look_key(look) for look in c.looks)
        if c.session_id:
            status, detail = await self._claim_device(c, entry, looks)
        else:
            value = orjson.dumps({"p": self.process, "c": c.cid, "t": c.token, "n": c.name, "a": c.address})
            args = [value, c.offered, self.ttl, self.process, c.key, c.cid, int(c.force)]
            args += [devs_key(c.key), orjson.dumps(entry), self._field(c.cid)]
            status, detail = await self.claim_script(keys=[name_key(c.key), *looks], args=args)
            status, detail = status.decode(), detail.decode()
            if status == "ok":
                self.held[c.key] = (value, (*looks, devs_key(c.key)), c.cid)
        if status != "ok":
            return NameClaim(status, holder=detail)
        self.entries[c.cid] = entry
        if self.beat is None:
            self.beat = asyncio.ensure_future(self._heartbeat())
        return NameClaim("ok", local_cid=int(detail))

    async def _claim_device(
        self, c: ClaimName, entry: dict[str, Any], looks: tuple[str, ...]
    ) -> tuple[str, str]:
        value = orjson.dumps({"n": c.name, "acc": 1})
        keys = [name_key(c.key), devs_key(c.key), *looks]
        args = [value, self.ttl, self.process, c.key, self._field(c.cid), orjson.dumps(entry), c.session_id]
        status, detail = await self.device_script(keys=keys, args=args)
        status, detail = status.decode(), detail.decode()
        if status == "ok":
            self.devices.setdefault(c.key, (looks, {}))[1][c.cid] = None
        return status, detail

    def release(self, key: str, cid: int) -> None:
        """Free a name this process's connection `cid` held (no-op if it was taken over)."""
        self.entries.pop(cid, None)
        held = self.devices.get(key)
        if held is not None and cid in held[1]:
            del held[1][cid]
            if not held[1]:
                del self.devices[key]
            keys = [name_key(key), devs_key(key), *held[0]]
            self._spawn(self._script(self.gone_script, keys, self._gone(key, cid), "release"))
            return
        entry = self.held.get(key)
        if entry is None or entry[2] != cid:
            return
        del self.held[key]
        value, looks, _ = entry
        self._spawn(self._keep(key, value, looks, 0))

    def _gone(self, key: str, cid: int) -> list[Any]:
        """`DEVICE_GONE_LUA`'s arguments: the device's field, and its last seen time."""
        return [self._field(cid), time.time(), key]

    def save_live(self, c: SaveLive) -> Any:
        """The device's presence and the user's status, for `whois` on the other processes."""
        entry = self.entries.get(c.cid)
        if entry is None:
            return self._nothing()
        entry["pr"], entry["st"] = c.presence, c.status
        return self.live_script(keys=[devs_key(c.key)], args=[self._field(c.cid), orjson.dumps(entry)])

    async def _nothing(self) -> None:
        return None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _script(self, script: Any, keys: list[str], args: list[Any], what: str) -> None:
        try:
            await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:  # the TTL frees it anyway
            log.warning("could not %s the name %s: %s", what, keys[0], exc)

    async def _keep(self, key: str, value: bytes, looks: tuple[str, ...], ttl: int) -> None:
        try:
            await self.keep_script(keys=[name_key(key), *looks], args=[value, key, ttl])
        except (RedisError, OSError) as exc:  # the TTL frees it anyway
            log.warning("could not %s the name %s: %s", "refresh" if ttl else "release", key, exc)

    async def _heartbeat(self) -> None:
        while not self.closed:  # as well as cancelled: see RedisBroker.closed
            await asyncio.sleep(self.ttl / 3)
            held = list(self.held.items())
            pipe = self.client.pipeline(transaction=False)
            for key, (value, looks, _) in held:
                await self.keep_script(keys=[name_key(key), *looks], args=[value, key, self.ttl], client=pipe)
            for key, (looks, cids) in list(self.devices.items()):
                fields = [self._field(cid) for cid in cids]
                keys = [name_key(key), devs_key(key), *looks]
                await self.device_keep_script(keys=keys, args=[self.ttl, *fields], client=pipe)
            with contextlib.suppress(RedisError, OSError):
                kept = await pipe.execute()
                lost = [key for (key, _), ok in zip(held, kept, strict=False) if not ok]
                for key in lost:  # expired while Redis was away and taken by someone else
                    log.warning("the name %s is now held elsewhere", key)

    async def _places(self, key: str) -> tuple[bytes | None, list[UserPlace]]:
        """The name's value and every live connection of its user, on any process."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(name_key(key))
        pipe.hgetall(devs_key(key))
        raw, devs = await pipe.execute()
        found = []
        for f, v in devs.items():
            process, _, cid = f.decode().rpartition(":")
            d: dict[str, Any] = orjson.loads(v)
            found.append(UserPlace(process, int(cid), d["n"], d["s"], d["a"], d["pr"], d["st"]))
        processes = sorted({p.process for p in found} - {self.process})
        if processes:  # the devices of processes that died are not there any more
            pipe = self.client.pipeline(transaction=False)
            for process in processes:
                pipe.exists(alive_key(process))
            dead = {p for p, up in zip(processes, await pipe.execute(), strict=True) if not up}
            found = [p for p in found if p.process not in dead]
        return raw, found

    def work(self, c: FindDevices | SaveLive) -> Any:
        """The coroutine that runs `FindDevices` or `SaveLive`."""
        return self.find_devices(c) if isinstance(c, FindDevices) else self.save_live(c)

    async def find(self, c: FindUser) -> UserPlace | None:
        raw, places = await self._places(c.key)
        if raw is None:
            return None
        v: dict[str, Any] = orjson.loads(raw)
        if v.get("acc"):  # an account: one of its devices (another process's first)
            places.sort(key=lambda p: p.process == self.process)
            return places[0] if places else None
        return UserPlace(v["p"], int(v["c"]), v["n"], address=v.get("a", ""))

    async def find_devices(self, c: FindDevices) -> tuple[UserPlace, ...]:
        raw, places = await self._places(c.key)
        if raw is None:
            return ()
        return tuple(p for p in places if p.process != self.process)

    async def aclose(self) -> None:
        """Free every name this process holds now, rather than when their TTL runs out."""
        self.closed = True
        if self.beat is not None:
            self.beat.cancel()
        held, self.held = self.held, {}
        for key, (value, looks, _) in held.items():
            self._spawn(self._keep(key, value, looks, 0))
        devices, self.devices = self.devices, {}
        for key, (looks, cids) in devices.items():
            keys = [name_key(key), devs_key(key), *looks]
            for cid in cids:
                self._spawn(self._script(self.gone_script, keys, self._gone(key, cid), "release"))
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=3)
