"""Read positions in Redis (cluster mode): saved once for every process, and shared at once. I/O.

`wschat:reads` is a hash, "<user key><newline><room>" -> "<seq> <private 0/1>"; a position only
moves forward and keeps the privacy last asked for (as `wschat.store_rich.save_reads` does in
SQLite). The script that saves positions publishes each one that changed on `wschat:reads`
(`r<newline>process<newline>seq<newline>private<newline>room<newline>user key`), so every
process keeps every user's positions current (`wschat.features.live.remote_read`): a user's
other connections and a small room's members on other processes get them as they happen, and
a user who comes back through another process finds their position there. Each process reads
the whole hash at start-up, as the SQLite store loads its table.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

READS = "wschat:reads"

# KEYS: the reads hash   ARGV: process, then per position: user key, room, seq, private (0/1)
SAVE_LUA = """
for i = 2, #ARGV, 4 do
  local field = ARGV[i] .. '\\n' .. ARGV[i + 1]
  local seq, private = tonumber(ARGV[i + 2]), ARGV[i + 3]
  local old = redis.call('HGET', KEYS[1], field)
  local old_seq, old_private = 0, ''
  if old then
    local space = string.find(old, ' ')
    old_seq, old_private = tonumber(string.sub(old, 1, space - 1)), string.sub(old, space + 1)
  end
  if seq > old_seq or private ~= old_private then
    if old_seq > seq then seq = old_seq end
    redis.call('HSET', KEYS[1], field, seq .. ' ' .. private)
    local news = table.concat({'r', ARGV[1], seq, private, ARGV[i + 1], ARGV[i]}, '\\n')
    redis.call('PUBLISH', KEYS[1], news)
  end
end
return 1
"""


class RedisReads:
    def __init__(self, client: aioredis.Redis, process: str) -> None:
        self.client = client
        self.process = process
        self.script = client.register_script(SAVE_LUA)

    async def save(self, positions: list[tuple[str, str, int, bool]]) -> None:
        args: list[Any] = [self.process]
        for key, room, seq, private in positions:
            args += [key, room, seq, int(private)]
        await self.script(keys=[READS], args=args)

    async def load(self) -> list[tuple[str, str, int, bool]]:
        """Every stored position: (user key, room, seq, private)."""
        out = []
        for field, value in (await self.client.hgetall(READS)).items():
            key, room = field.decode().split("\n", 1)
            seq, private = value.split(b" ")
            out.append((key, room, int(seq), private == b"1"))
        return out


def parse(news: bytes) -> tuple[str, str, str, int, bool]:
    """A published position: (process, user key, room, seq, private)."""
    _, process, seq, private, room, key = news.decode().split("\n", 5)
    return process, key, room, int(seq), private == "1"
