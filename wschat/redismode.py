"""Cluster mode's start-up and shut-down, for the runtime: store, broker, import, health. I/O.

`await open_history(opts, notify)` opens what `--db` and `--redis` ask for: the SQLite or
memory store alone, or (with `--redis`) the cluster below.

`await open_cluster(url, notify, db=..., history_cap=...)` reaches Redis (a `StoreError`
with one sentence if it cannot), imports the SQLite history once (`wschat.redisimport`),
and returns the `Cluster`: its `store` (for `Store.execute`), its `broker` (for the hub) and
the start-up `snapshot`. After the hub exists, `await cluster.start(run, hub)` connects the
broker's pub/sub and heartbeats; `cluster.reachable()` answers /healthz; `await
cluster.close()` stops it all.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wschat.cli import DEFAULT_DB, redis_shown
from wschat.hub import Hub
from wschat.records import Snapshot
from wschat.store import Notify, Store, StoreError, open_store

if TYPE_CHECKING:  # redis is imported with --redis only: it cost every other start 60 ms of CPU
    from wschat.redisbroker import RedisBroker, Run
    from wschat.redisstore import RedisStore

log = logging.getLogger("wschat.redismode")


@dataclass
class Cluster:
    store: RedisStore
    broker: RedisBroker
    snapshot: Snapshot

    async def start(self, run: Run, hub: Hub) -> None:
        from redis.exceptions import RedisError

        self.broker.attach(run, hub)
        try:
            await self.broker.start()
        except (RedisError, OSError) as exc:
            raise StoreError(f"Cannot reach Redis at {self.store.url}: {exc}") from None

    def reachable(self) -> bool:
        """For /healthz: the pub/sub connection is up and the last command succeeded."""
        return self.broker.connected and not self.store.failing

    async def close(self) -> None:
        await self.broker.aclose()
        await self.store.aclose()


async def open_history(opts: argparse.Namespace, notify: Notify) -> tuple[Store, Snapshot, Cluster | None]:
    """The store, the start-up snapshot, and the cluster when `--redis` is given (StoreError)."""
    cap = opts.max_messages_per_room
    if opts.db == DEFAULT_DB:
        os.makedirs(os.path.dirname(DEFAULT_DB), exist_ok=True)
    if opts.redis:
        cluster = await open_cluster(opts.redis, notify, db=opts.db, history_cap=cap, ttl=opts.redis_ttl)
        return cluster.store, cluster.snapshot, cluster
    store = open_store(opts.db, notify, synchronous=opts.synchronous, history_cap=cap)
    return store, await asyncio.to_thread(store.load), None


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def open_cluster(
    url: str, notify: Notify, *, db: str, history_cap: int, window: int = 1000, ttl: int | None = None
) -> Cluster:
    """Reach Redis, import `db` (history and accounts) once, read the start-up snapshot
    (StoreError: one sentence). `ttl`: the names' (`wschat.redisnames.NAME_TTL` by default)."""
    from wschat.redisaccountimport import import_accounts
    from wschat.redisbroker import RedisBroker
    from wschat.redisimport import import_sqlite
    from wschat.redisnames import NAME_TTL
    from wschat.redisstore import RedisStore

    ttl = NAME_TTL if ttl is None else ttl
    try:
        store = RedisStore(url, notify, history_cap=history_cap, window=window, ttl=ttl)
    except ValueError as exc:  # redis-py's word for a malformed URL
        why = f"--redis {redis_shown(url)} is not a Redis URL ({exc}); use redis://HOST:6379/0."
        raise StoreError(why) from None
    try:
        if not await store.ping():
            raise StoreError(f"Cannot reach Redis at {redis_shown(url)}: is redis-server running there?")
        try:
            copied = await asyncio.to_thread(import_sqlite, db, url, history_cap, _progress)
            await asyncio.to_thread(import_accounts, db, url, _progress)
        except Exception as exc:  # redis or sqlite, a full disk...: say which and stop
            raise StoreError(f"Cannot import {db} into Redis at {redis_shown(url)}: {exc}") from None
        if copied:
            log.info("imported %d messages from %s into Redis", copied, db)
        snapshot = await store.aload()
    except BaseException:
        await store.aclose()
        raise
    return Cluster(store, RedisBroker(store), snapshot)
