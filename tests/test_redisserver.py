"""The redis-server fixture: a real Redis that keeps what it acknowledged across kill -9."""

from __future__ import annotations

import redis
from redisserver import RedisServer


def test_redis_keeps_an_acknowledged_write_across_kill_and_restart(redis_server: RedisServer) -> None:
    r = redis.Redis.from_url(redis_server.url)
    assert r.ping()
    assert r.config_get("appendonly") == {"appendonly": "yes"}
    r.set("k", "v")
    r.close()
    port = redis_server.port
    redis_server.kill()
    redis_server.start()
    assert redis_server.port == port  # same address: clients reconnect to it
    r = redis.Redis.from_url(redis_server.url)
    assert r.get("k") == b"v"
    r.close()
