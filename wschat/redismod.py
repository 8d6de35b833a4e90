"""Moderation in Redis (cluster mode): operators, room rules, bans and mutes, the audit. I/O.

The Redis counterpart of `wschat.modstore`: every process applies the same `Moderate` and
re-reads the same `ModState` (`ReadModeration`, every few seconds), so a ban or an operator
granted on one process holds on all of them. Keys (prefix `wschat:mod:`):

- `ops` (a hash: account key -> 1 granted, 0 removed), `rooms` (a hash: room -> JSON
  `{creator, topic, invite_only}`), `invites` (a set of "room<newline>key");
- `restrictions` (a hash: "what<newline>scope<newline>subject" -> JSON `[name, until, reason,
  by]`); restrictions that have run out are deleted by the next action;
- `audit` (a stream of actions, the newest `AUDIT_KEPT` kept).
"""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from wschat.features.mod_records import Moderate, ModState, Restriction, RoomRules

M = "wschat:mod:"
AUDIT_KEPT = 100_000
_RULES = ("topic", "invite_only", "creator")


def _field(what: str, scope: str, subject: str) -> str:
    return f"{what}\n{scope}\n{subject}"


class RedisModeration:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def moderate(self, c: Moderate) -> None:
        """Apply one action and add its audit entry (one MULTI transaction)."""
        held = await self.client.hgetall(M + "restrictions")
        run_out = [f for f, v in held.items() if 0 < orjson.loads(v)[1] <= c.at]
        rules = await self.client.hget(M + "rooms", c.scope) if c.action in _RULES else None
        pipe = self.client.pipeline(transaction=True)
        if run_out:
            pipe.hdel(M + "restrictions", *run_out)
        if c.action in ("ban", "mute") and c.restriction is not None:
            r = c.restriction
            pipe.hset(
                M + "restrictions",
                _field(r.what, r.scope, r.subject),
                orjson.dumps([r.name, r.until, r.reason, r.by]),
            )
        elif c.action in ("unban", "unmute"):
            pipe.hdel(M + "restrictions", _field(c.action[2:], c.scope, c.subject))
        elif c.action in _RULES:
            room = orjson.loads(rules) if rules else {"creator": "", "topic": "", "invite_only": False}
            room[c.action] = c.value == "on" if c.action == "invite_only" else c.value
            pipe.hset(M + "rooms", c.scope, orjson.dumps(room))
        elif c.action == "invite":
            pipe.sadd(M + "invites", f"{c.scope}\n{c.subject}")
        elif c.action in ("grant", "revoke"):
            pipe.hset(M + "ops", c.subject, int(c.action == "grant"))
        detail = c.value or (c.restriction.reason if c.restriction else "")
        entry = {"at": c.at, "actor": c.actor, "action": c.action, "scope": c.scope, "target": c.target}
        pipe.xadd(M + "audit", entry | {"detail": detail}, maxlen=AUDIT_KEPT, approximate=True)
        await pipe.execute()

    async def read(self, now: float) -> ModState:
        """What the hub holds, restrictions that have run out left out."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(M + "ops")
        pipe.hgetall(M + "rooms")
        pipe.smembers(M + "invites")
        pipe.hgetall(M + "restrictions")
        ops, rooms, invites, held = await pipe.execute()
        state = ModState()
        state.operators = {k.decode(): v == b"1" for k, v in ops.items()}
        for room, raw in rooms.items():
            r = orjson.loads(raw)
            state.rooms[room.decode()] = RoomRules(r["creator"], r["topic"], bool(r["invite_only"]))
        for pair in invites:
            room, key = pair.decode().split("\n", 1)
            state.rooms.setdefault(room, RoomRules()).invited.add(key)
        for f, v in held.items():
            what, scope, subject = f.decode().split("\n", 2)
            name, until, reason, by = orjson.loads(v)
            if until == 0 or until > now:
                state.restrictions.append(Restriction(what, scope, subject, name, until, reason, by))
        return state

    async def audit(self, limit: int = 50) -> list[tuple]:
        """The most recent audit entries, newest first: (at, actor, action, scope, target, detail)."""
        rows = await self.client.xrevrange(M + "audit", count=limit)
        out = []
        for _, f in rows:
            d = {k.decode(): v.decode() for k, v in f.items()}
            out.append((float(d["at"]), d["actor"], d["action"], d["scope"], d["target"], d["detail"]))
        return out
