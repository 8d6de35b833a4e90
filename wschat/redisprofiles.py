"""Cluster mode's profiles of the users online on other processes, read for a room's joiner. I/O.

Executes `ReadLiveProfiles` (`wschat.features.profile_cluster`): for each name key, its live
devices on the other processes (`devs:<key>`, one entry per connection with the presence and
status that process saved, `wschat.redisnames`) and an account's stored status and avatar
(`profile:<key>`, `wschat.redisaccounts`), in one pipeline; the devices of processes whose
`alive:<process>` key expired are left out (their users are leaving every room).
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from wschat.features.profile_records import LiveProfile, ReadLiveProfiles
from wschat.redisnames import PREFIX, alive_key, devs_key


async def live_profiles(client: aioredis.Redis, process: str, c: ReadLiveProfiles) -> dict[str, LiveProfile]:
    """Name key -> the user's profile as its devices on the other processes make it."""
    pipe = client.pipeline(transaction=False)
    for key in c.keys:
        pipe.hgetall(devs_key(key))
        pipe.hmget(f"{PREFIX}profile:{key}", ["status", "avatar"])
    replies = await pipe.execute()
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    stored: dict[str, tuple[str, str]] = {}
    for key, devs, (status, avatar) in zip(c.keys, replies[::2], replies[1::2], strict=True):
        for f, v in devs.items():
            where = f.decode().rpartition(":")[0]
            if where != process:
                found.setdefault(key, []).append((where, orjson.loads(v)))
        stored[key] = ((status or b"").decode(), (avatar or b"").decode())
    processes = sorted({where for places in found.values() for where, _ in places})
    if processes:
        pipe = client.pipeline(transaction=False)
        for where in processes:
            pipe.exists(alive_key(where))
        dead = {where for where, up in zip(processes, await pipe.execute(), strict=True) if not up}
        found = {k: [d for d in v if d[0] not in dead] for k, v in found.items()}
    return {key: _profile(places, *stored[key]) for key, places in found.items() if places}


def _profile(places: list[tuple[str, dict[str, Any]]], status: str, avatar: str) -> LiveProfile:
    """An account's stored status and avatar; a guest's status as its process saved it."""
    first = places[0][1]
    account = bool(first.get("s"))
    live_status = next((d.get("st", "") for _, d in places if d.get("st")), "")
    presences = tuple(str(d.get("pr", "online")) for _, d in places)
    if not account:
        status, avatar = live_status, ""
    return LiveProfile(str(first.get("n", "")), presences, status or live_status, avatar, account)
