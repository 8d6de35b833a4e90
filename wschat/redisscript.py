"""One Lua script called in a hot path (cluster mode's writer): packed in C, one layer per reply. I/O.

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
