"""Accounts in Redis (cluster mode): every process sees the same accounts, sessions and bans. I/O.

The Redis counterpart of `wschat.accountstore`, executing the same store commands with the same
promises: argon2id hashes made on one hashing thread of this process (a flood of log-ins
queues there, never on the event loop), a dummy verification for an unknown name, session
tokens of which only the SHA-256 is kept, compared in constant time. Stored private messages
are in `wschat.redisprivate`, moderation in `wschat.redismod`, published device keys (end-to-end
encryption) in `wschat.rediskeys`. Keys (prefix `wschat:`):

- `acct:<key>`: a hash {name, hash, created}; `accounts`: a sorted set of the registered
  names by creation time (the start-up snapshot, the admin's list);
- `sess:<key>`: a hash, session id -> JSON `[token SHA-256 in hex, device, created, last used]`;
- `profile:<key>`: a hash {status, last_seen} (`wschat.features.profiles`).

What other processes must act on is published on `wschat:news` (`wschat.redisbroker` reads
it): `a <process> <name>` (an account was registered: its name is no longer a guest's),
`x <process> <key> <session id>` (that session ended: its connections close) and
`X <process> <key> <kept session id>` (a password change ended every other session).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import redis.asyncio as aioredis

from wschat.accountstore import PasswordCheck, hasher, token_hash
from wschat.features.account_records import (
    AccountSession,
    CheckPassword,
    CheckToken,
    CreateAccount,
    DeviceSession,
    EndSession,
    ReadSessions,
    SetPassword,
)
from wschat.features.mod_records import ModState
from wschat.features.profile_records import ReadProfile, SaveProfile, StoredProfile
from wschat.names import name_key
from wschat.rediskeys import RedisKeys
from wschat.redismod import RedisModeration
from wschat.redisprivate import RedisPrivate

log = logging.getLogger("wschat.redisaccounts")

A = "wschat:"
NEWS = A + "news"

# KEYS: acct:<key>, accounts   ARGV: name, hash, created.   1 if made, 0 if the name is taken.
CREATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'hash', ARGV[2], 'created', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

# KEYS: acct:<key>, sess:<key>   ARGV: new hash, session kept.   The sessions ended (their ids).
SET_PASSWORD_LUA = """
redis.call('HSET', KEYS[1], 'hash', ARGV[1])
local ended = {}
for _, sid in ipairs(redis.call('HKEYS', KEYS[2])) do
  if sid ~= ARGV[2] then
    redis.call('HDEL', KEYS[2], sid)
    ended[#ended + 1] = sid
  end
end
return ended
"""


def acct_key(key: str) -> str:
    return f"{A}acct:{key}"


def sess_key(key: str) -> str:
    return f"{A}sess:{key}"


class RedisAccounts(PasswordCheck):
    """`execute(command, done)` for the accounts, private-message and moderation commands."""

    def __init__(self, client: aioredis.Redis, notify: Callable[..., Any], process: str) -> None:
        self.client = client
        self.notify = notify
        self.process = process
        self.hasher = hasher()
        self._dummy = ""
        self.hashing = ThreadPoolExecutor(1, thread_name_prefix="chat-hash")
        self.private = RedisPrivate(client)
        self.mod = RedisModeration(client)
        self.keys = RedisKeys(client)
        self.create_script = client.register_script(CREATE_LUA)
        self.password_script = client.register_script(SET_PASSWORD_LUA)
        self.methods: dict[str, Callable[[Any], Coroutine[Any, Any, Any]]] = {
            "CreateAccount": self._create,
            "CheckPassword": self._check_password,
            "CheckToken": self._check_token,
            "EndSession": self._end_session,
            "ReadSessions": self._read_sessions,
            "SetPassword": self._set_password,
            "StorePrivate": self.private.store,
            "MarkDelivered": self.private.mark_delivered,
            "ReadMissed": self.private.read_missed,
            "ReadConversation": self.private.read_conversation,
            "Moderate": self.mod.moderate,
            "ReadModeration": lambda c: self.mod.read(c.now),
            "ReadProfile": self._read_profile,
            "SaveProfile": self._save_profile,
            "ReadSessionEnds": self._session_ends,
            "SaveDeviceKey": self.keys.save,
            "ReadDeviceKeys": self.keys.read,
        }

    async def names(self) -> list[str]:
        """Every registered name, oldest first (for the start-up snapshot)."""
        return [n.decode() for n in await self.client.zrange(A + "accounts", 0, -1)]

    async def moderation(self, now: float) -> ModState:
        return await self.mod.read(now)

    def work(self, command: Any) -> Coroutine[Any, Any, Any] | None:
        """The coroutine that carries out `command` (the store runs it and reports Redis errors);
        None for a command this store does not know."""
        method = self.methods.get(type(command).__name__)
        return None if method is None else method(command)

    def close(self) -> None:
        self.hashing.shutdown(wait=True)

    # -- hashing, on this process's hashing thread

    async def _hashed(self, run: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.hashing, run)

    # -- accounts and sessions

    async def _news(self, *words: str) -> None:
        await self.client.publish(NEWS, " ".join((words[0], self.process, *words[1:])))

    async def _new_session(self, key: str, name: str, device: str, now: float) -> AccountSession:
        token, session_id = secrets.token_urlsafe(32), secrets.token_hex(8)
        row = orjson.dumps([token_hash(token).hex(), device, now, now])
        await self.client.hset(sess_key(key), session_id, row)
        await self.private.start_cursor(session_id, key)
        return AccountSession(name, key, session_id, token)

    async def _create(self, c: CreateAccount) -> AccountSession | None:
        if await self.client.exists(acct_key(c.key)):
            return None
        hashed = await self._hashed(lambda: self.hasher.hash(c.password))
        if not await self.create_script(keys=[acct_key(c.key), A + "accounts"], args=[c.name, hashed, c.now]):
            return None  # registered meanwhile (another process)
        await self._news("a", c.name)
        return await self._new_session(c.key, c.name, c.device, c.now)

    async def _check_password(self, c: CheckPassword) -> AccountSession | None:
        name, stored = await self.client.hmget(acct_key(c.key), ["name", "hash"])
        hashed = stored.decode() if stored is not None else None
        if not await self._hashed(lambda: self._verify(hashed, c.password)) or hashed is None:
            return None
        if self.hasher.check_needs_rehash(hashed):
            await self.client.hset(
                acct_key(c.key), "hash", await self._hashed(lambda: self.hasher.hash(c.password))
            )
        return await self._new_session(c.key, name.decode(), c.device, c.now)

    async def _check_token(self, c: CheckToken) -> AccountSession | None:
        offered = token_hash(c.token)
        rows = await self.client.hgetall(sess_key(c.key))
        found = None
        for sid, raw in rows.items():  # every row compared: the time says nothing
            if hmac.compare_digest(offered, bytes.fromhex(orjson.loads(raw)[0])):
                found = (sid.decode(), raw)
        name = await self.client.hget(acct_key(c.key), "name")
        if found is None or name is None:
            return None
        digest, device, created, _ = orjson.loads(found[1])
        await self.client.hset(sess_key(c.key), found[0], orjson.dumps([digest, device, created, c.now]))
        return AccountSession(name.decode(), c.key, found[0])

    async def _end_session(self, c: EndSession) -> bool:
        ended = bool(await self.client.hdel(sess_key(c.key), c.session_id))
        if ended:
            await self.private.forget_sessions([c.session_id])
            await self.keys.forget_sessions(c.key, [c.session_id])
            await self._news("x", c.key, c.session_id)
        return ended

    async def _read_sessions(self, c: ReadSessions) -> list[DeviceSession]:
        rows = await self.client.hgetall(sess_key(c.key))
        out = []
        for sid, raw in rows.items():
            _, device, created, last_used = orjson.loads(raw)
            out.append(DeviceSession(sid.decode(), device, created, last_used))
        return sorted(out, key=lambda d: d.last_used, reverse=True)

    async def _set_password(self, c: SetPassword) -> int | None:
        stored = await self.client.hget(acct_key(c.key), "hash")
        hashed = stored.decode() if stored is not None else None
        if hashed is None or not await self._hashed(lambda: self._verify(hashed, c.old)):
            return None
        new = await self._hashed(lambda: self.hasher.hash(c.new))
        ended = await self.password_script(keys=[acct_key(c.key), sess_key(c.key)], args=[new, c.keep])
        await self.private.forget_sessions([s.decode() for s in ended])
        await self.keys.forget_sessions(c.key, [s.decode() for s in ended])
        await self._news("X", c.key, c.keep or "-")
        return len(ended)

    async def _session_ends(self, c: Any) -> tuple[int, list[str]]:
        # The host admin's password resets reach every process at once on wschat:news (`X`):
        # there is no change counter to watch under --redis (wschat.features.session_watch).
        return (0, [])

    # -- profiles (wschat.features.profiles): `profile:<key>`, a hash {status, last_seen}

    async def _read_profile(self, c: ReadProfile) -> StoredProfile:
        fields = ["status", "last_seen", "avatar"]
        status, seen, avatar = await self.client.hmget(f"{A}profile:{c.key}", fields)
        last_seen = float(seen) if seen is not None else None
        return StoredProfile((status or b"").decode(), last_seen, (avatar or b"").decode())

    async def _save_profile(self, c: SaveProfile) -> None:
        fields: dict[str, Any] = {}
        if c.status is not None:
            fields["status"] = c.status
        if c.last_seen is not None:
            fields["last_seen"] = c.last_seen
        if c.avatar is not None:  # an uploaded avatar's media id ("" removes it)
            fields["avatar"] = c.avatar
        if fields:
            await self.client.hset(f"{A}profile:{c.key}", mapping=fields)

    # -- for the admin command line

    async def reset_password(self, key: str, password: str) -> int:
        """A new password (no old one asked) and every session ended; how many."""
        new = await self._hashed(lambda: self.hasher.hash(password))
        ended = await self.password_script(keys=[acct_key(key), sess_key(key)], args=[new, ""])
        await self.private.forget_sessions([s.decode() for s in ended])
        await self.keys.forget_sessions(key, [s.decode() for s in ended])
        await self._news("X", key, "-")
        return len(ended)

    async def accounts(self) -> list[tuple[str, str, float, int]]:
        """(name, key, created, devices) of every account, oldest first."""
        out = []
        for name, created in await self.client.zrange(A + "accounts", 0, -1, withscores=True):
            key = name_key(name.decode())
            out.append((name.decode(), key, created, await self.client.hlen(sess_key(key))))
        return out
