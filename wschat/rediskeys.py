"""Published device keys in Redis (cluster mode), for every process. I/O.

The Redis counterpart of `wschat.keystore`, executing `SaveDeviceKey` and `ReadDeviceKeys`
(`wschat.features.e2ee_records`) with the same promises: one public key per account session;
reads join the account's live sessions (`sess:<key>`, `wschat.redisaccounts`), so a session that
ended on any process (revoked, logged out, password changed) no longer lists its key; its entry is
dropped at the account's next `publish_key`. Key (prefix `wschat:`): `dkeys:<key>`, a hash,
session id -> JSON `[key_id, public key, created]`.
"""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from wschat.features.e2ee_records import DeviceKey, ReadDeviceKeys, SaveDeviceKey

A = "wschat:"

# KEYS: dkeys:<key>, sess:<key>   ARGV: session id, key id, public key, now.
# Entries of ended sessions go; the session's entry is set, keeping its `created` when the same
# key is published again (a reconnect), as keystore.save does.
SAVE_LUA = """
for _, sid in ipairs(redis.call('HKEYS', KEYS[1])) do
  if redis.call('HEXISTS', KEYS[2], sid) == 0 then redis.call('HDEL', KEYS[1], sid) end
end
local created = ARGV[4]
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local row = cjson.decode(old)
  if row[1] == ARGV[2] then created = row[3] end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({ARGV[2], ARGV[3], tonumber(created)}))
return 1
"""


def keys_key(key: str) -> str:
    return f"{A}dkeys:{key}"


def _sess_key(key: str) -> str:
    return f"{A}sess:{key}"  # wschat.redisaccounts.sess_key (which imports this module)


class RedisKeys:
    """`SaveDeviceKey` and `ReadDeviceKeys` against Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.save_script = client.register_script(SAVE_LUA)

    async def save(self, c: SaveDeviceKey) -> list[DeviceKey]:
        await self.save_script(
            keys=[keys_key(c.key), _sess_key(c.key)], args=[c.session_id, c.key_id, c.public, c.now]
        )
        return (await self.read(ReadDeviceKeys((c.key,))))[c.key]

    async def read(self, c: ReadDeviceKeys) -> dict[str, list[DeviceKey]]:
        accounts = list(dict.fromkeys(c.keys))
        pipe = self.client.pipeline(transaction=False)
        for key in accounts:
            pipe.hgetall(keys_key(key))
            pipe.hgetall(_sess_key(key))
        rows = await pipe.execute()
        out: dict[str, list[DeviceKey]] = {}
        for i, key in enumerate(accounts):
            published, sessions = rows[2 * i], rows[2 * i + 1]
            found = []
            for sid, raw in published.items():
                session = sessions.get(sid)
                if session is None:  # that session ended: its key is no longer the account's
                    continue
                key_id, public, created = orjson.loads(raw)
                device = orjson.loads(session)[1]
                found.append(DeviceKey(sid.decode(), key_id, public, device, created))
            out[key] = sorted(found, key=lambda d: d.created)
        return out

    async def forget_sessions(self, key: str, session_ids: list[str]) -> None:
        """Keys of sessions that ended (reads skip them anyway; this keeps the hash small)."""
        if session_ids:
            await self.client.hdel(keys_key(key), *session_ids)
