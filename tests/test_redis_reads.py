"""Read positions and search under --redis, on hubs over a real redis-server (tests/clusternode.py).

A position saved on one process reaches the room's members on another as a `receipt` and is
stored; the user who comes back through another process is given it there; a process started
later loads it. A search on one process finds what any process stored, edited or deleted.
"""

from __future__ import annotations

import time

import redis
from clusternode import Node
from redisserver import RedisServer
from test_redis_cluster import alice_and_bob


async def test_a_read_position_is_shared_with_every_process_and_stored(redis_server: RedisServer) -> None:
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    nodes = [a, b]
    try:
        await alice_and_bob(a, b)
        for i in range(3):
            a.send(1, {"type": "chat", "message": f"m{i}", "client_msg_id": f"c{i}"})
        await b.wait(1, "chat", 3)
        b.send(1, {"type": "read", "room": "general", "seq": 3})
        await a.wait(1, "receipt", username="bob", seq=3, room="general")  # alice, on the other process
        client = redis.Redis.from_url(redis_server.url)
        assert client.hget("wschat:reads", "bob\ngeneral") == b"3 0"
        client.close()
        # bob leaves b and comes back through a: his position is given to him there
        b.run(b.hub.disconnect(1, time.time()))
        await a.wait(1, "user_leave", username="bob")
        a.login(2, "bob")
        await a.wait(2, "read_position", room="general", seq=3)
        c = await Node.start(redis_server.url)  # a process started later loads what Redis holds
        nodes.append(c)
        assert c.hub.reads.get("bob", "general") == (3, False)
    finally:
        for node in nodes:
            await node.stop()


async def test_search_under_redis_finds_messages_stored_by_any_process_in_their_current_state(
    redis_server: RedisServer,
) -> None:
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    try:
        await alice_and_bob(a, b)
        for i, text in enumerate(["the quick brown fox", "a quick résumé", "nothing here"]):
            a.send(1, {"type": "chat", "message": text, "client_msg_id": f"s{i}"})
        await a.wait(1, "ack", 3)
        seqs = {f["client_msg_id"]: f["seq"] for f in a.frames(1, "ack")}
        b.send(1, {"type": "search", "query": "QUICK"})  # on the other process; case ignored
        await b.wait(1, "search_results")
        found = b.frames(1, "search_results")[0]["results"]
        assert [m["message"] for m in found] == ["a quick résumé", "the quick brown fox"]  # newest first
        a.send(1, {"type": "delete", "room": "general", "target": seqs["s0"]})
        a.send(1, {"type": "edit", "room": "general", "target": seqs["s2"], "message": "quick after all"})
        await b.wait(1, "edit")
        b.send(1, {"type": "search", "query": "quick"})
        await b.wait(1, "search_results", 2)
        found = b.frames(1, "search_results")[1]["results"]
        assert [m["message"] for m in found] == ["quick after all", "a quick résumé"]  # deleted one gone
        b.send(1, {"type": "search", "query": "resume"})  # accents ignored, as in one process
        await b.wait(1, "search_results", 3)
        assert [m["message"] for m in b.frames(1, "search_results")[2]["results"]] == ["a quick résumé"]
    finally:
        await a.stop()
        await b.stop()


async def test_after_a_pubsub_reconnect_missed_registrations_and_positions_are_read_again(
    redis_server: RedisServer,
) -> None:
    """Pub/sub is at most once: what was published while a process was disconnected (simulated
    here by writing Redis directly) is read from Redis when its subscriber reconnects."""
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    try:
        await alice_and_bob(a, b)
        client.zadd("wschat:accounts", {"Zed": 1.0})  # registered while nobody listened
        client.hset("wschat:reads", "bob\ngeneral", "7 0")  # a position saved likewise
        client.client_kill_filter(_type="pubsub")
        await a.wait(1, "receipt", username="bob", seq=7)  # alice, on a, learns it after the reconnect
        assert a.hub.accounts.registered.get("zed") == "Zed"  # read in the same refresh, before it
    finally:
        client.close()
        await a.stop()
        await b.stop()
