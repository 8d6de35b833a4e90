"""The Redis store and broker: several hubs on one real redis-server are one chat."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis
from clusternode import Node, until
from redisserver import RedisServer

from wschat.protocol import CLOSE_TAKEOVER
from wschat.records import Append, Message
from wschat.redisentry import parse_entry
from wschat.redisscript import ScriptCall
from wschat.redisstore import RedisStore
from wschat.rediswriter import BATCH_MAX


def seqs(node: Node, cid: int, room: str = "general") -> list[int]:
    return [f["seq"] for f in node.frames(cid, "chat", room=room)]


async def resend_until_acked(node: Node, cid: int, text: str, cmid: str) -> None:
    """What a client's outbox does: send again after each store_failed, until acknowledged."""
    for _ in range(20):
        refused = len(node.frames(cid, "error", code="store_failed", client_msg_id=cmid))
        node.send(cid, {"type": "chat", "message": text, "client_msg_id": cmid})
        while not node.frames(cid, "ack", client_msg_id=cmid):
            if len(node.frames(cid, "error", code="store_failed", client_msg_id=cmid)) > refused:
                break  # refused again: send again
            node.changed.clear()
            await asyncio.wait_for(node.changed.wait(), 10)
        else:
            return
    raise AssertionError(f"{cmid} never acknowledged")


async def alice_and_bob(a: Node, b: Node) -> None:
    """alice logs in on process `a`, bob on `b`; both have had their history."""
    a.login(1, "alice")
    b.login(1, "bob")
    await a.wait(1, "history")
    await b.wait(1, "history")


async def test_messages_from_three_processes_reach_everyone_once_in_one_contiguous_order(
    redis_server: RedisServer,
) -> None:
    nodes = [await Node.start(redis_server.url) for _ in range(3)]
    try:
        for i, node in enumerate(nodes):
            node.login(1, f"user{i}")
            await node.wait(1, "history")
        for round_ in range(10):
            for i, node in enumerate(nodes):
                node.send(1, {"type": "chat", "message": f"{i}-{round_}", "client_msg_id": f"m{i}-{round_}"})
        for node in nodes:
            await node.wait(1, "chat", 30)
            await node.wait(1, "ack", 10)
        orders = [[f["message"] for f in node.frames(1, "chat")] for node in nodes]
        assert orders[0] == orders[1] == orders[2]
        assert sorted(orders[0]) == sorted(f"{i}-{r}" for i in range(3) for r in range(10))
        assert seqs(nodes[0], 1) == list(range(1, 31))
        ids = [f["id"] for f in nodes[0].frames(1, "chat")]
        assert len(set(ids)) == 30  # ids are cluster-wide
        acked = {f["seq"] for node in nodes for f in node.frames(1, "ack")}
        assert acked == set(range(1, 31))
    finally:
        for node in nodes:
            await node.stop()


async def test_a_resend_to_another_process_is_acknowledged_as_a_duplicate_and_stored_once(
    redis_server: RedisServer,
) -> None:
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    try:
        await alice_and_bob(a, b)
        a.send(1, {"type": "chat", "message": "once", "client_msg_id": "x1"})
        await a.wait(1, "ack", client_msg_id="x1")
        # alice's client loses process a, reconnects to b with its session token and resends
        token = a.frames(1, "username_accepted")[0]["session_token"]
        b.login(2, "alice", session_token=token)
        await b.wait(2, "history")
        b.send(2, {"type": "chat", "message": "once", "client_msg_id": "x1"})
        await b.wait(2, "ack")
        [first] = a.frames(1, "ack")
        assert len(b.frames(1, "chat")) == 1
        [again] = b.frames(2, "ack")
        assert again["duplicate"] is True and (again["id"], again["seq"]) == (first["id"], first["seq"])
        await until(lambda: 1 in a.closed, a)  # the session moved: a closed the old connection
        assert a.closed[1] == CLOSE_TAKEOVER and "alice" not in a.hub.by_key
    finally:
        await a.stop()
        await b.stop()


async def test_the_dedup_key_belongs_to_the_user(redis_server: RedisServer) -> None:
    """The same client_msg_id from two users is two messages."""
    a = await Node.start(redis_server.url)
    try:
        a.login(1, "alice")
        a.login(2, "bob")
        await a.wait(1, "history")
        await a.wait(2, "history")
        a.send(1, {"type": "chat", "message": "a", "client_msg_id": "same"})
        a.send(2, {"type": "chat", "message": "b", "client_msg_id": "same"})
        await a.wait(1, "chat", 2)
        assert seqs(a, 1) == [1, 2]
    finally:
        await a.stop()


async def test_a_process_that_starts_later_loads_the_room_and_pages_its_history_from_redis(
    redis_server: RedisServer,
) -> None:
    a = await Node.start(redis_server.url, history_size=5)
    try:
        a.login(1, "alice")
        await a.wait(1, "history")
        for i in range(20):
            a.send(1, {"type": "chat", "message": f"m{i}"})
        await a.wait(1, "chat", 20)
        b = await Node.start(redis_server.url, history_size=5, resume_cap=5)
        try:
            b.login(1, "bob", rooms=["general"])
            await b.wait(1, "history")
            [hist] = b.frames(1, "history")
            assert [m["seq"] for m in hist["messages"]] == [16, 17, 18, 19, 20]
            assert hist["epoch"] == a.frames(1, "history")[0]["epoch"]
            b.send(1, {"type": "fetch_history", "room": "general", "before_seq": 3, "limit": 10})
            await b.wait(1, "history", mode="page")
            [page] = b.frames(1, "history", mode="page")
            assert [m["message"] for m in page["messages"]] == ["m0", "m1"]
        finally:
            await b.stop()
    finally:
        await a.stop()


async def test_messages_published_while_a_process_was_unsubscribed_are_caught_up_from_the_stream(
    redis_server: RedisServer,
) -> None:
    """Redis drops a subscriber (here CLIENT KILL TYPE pubsub, as for a slow one): no gap follows."""
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        a.login(1, "alice")
        b.login(1, "bob")
        await a.wait(1, "history")
        await b.wait(1, "history")
        a.send(1, {"type": "chat", "message": "before"})
        await b.wait(1, "chat", 1)
        admin.client_kill_filter(_type="pubsub")
        for i in range(15):  # within the rate limit's burst
            a.send(1, {"type": "chat", "message": f"m{i}"})
        await a.wait(1, "chat", 16)
        await b.wait(1, "chat", 16)
        assert seqs(b, 1) == list(range(1, 17))
    finally:
        admin.close()
        await a.stop()
        await b.stop()


async def test_a_redis_restart_refuses_sends_meanwhile_and_loses_nothing_acknowledged(
    redis_server: RedisServer,
) -> None:
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    try:
        await alice_and_bob(a, b)
        for i in range(5):
            a.send(1, {"type": "chat", "message": f"m{i}", "client_msg_id": f"c{i}"})
        await a.wait(1, "ack", 5)
        redis_server.kill()
        a.send(1, {"type": "chat", "message": "lost?", "client_msg_id": "c5"})
        await a.wait(1, "error", code="store_failed")
        [refused] = a.frames(1, "error", code="store_failed")
        assert refused["retry_after"] > 0 and refused["client_msg_id"] == "c5"
        redis_server.start()
        # the clients' outboxes resend what was refused; the processes resume by themselves
        await resend_until_acked(a, 1, "lost?", "c5")
        await resend_until_acked(b, 1, "from b", "b1")
        await a.wait(1, "chat", 7)
        await b.wait(1, "chat", 7)
        assert seqs(a, 1) == seqs(b, 1) == list(range(1, 8))
    finally:
        await a.stop()
        await b.stop()


async def test_two_clients_racing_for_one_name_on_two_processes_100_times_one_wins_each_time(
    redis_server: RedisServer,
) -> None:
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    try:
        for i in range(100):
            cid = 10 + i
            a.login(cid, f"racer{i}")  # both claims are in flight before either is answered
            b.login(cid, f"RACER{i}")

            def answered(cid: int = cid) -> bool:
                frames = a.inbox[cid] + b.inbox[cid]
                return sum(f["type"] in ("username_accepted", "username_error") for f in frames) == 2

            await until(answered, a, b)
            got = a.frames(cid, "username_accepted") + b.frames(cid, "username_accepted")
            lost = a.frames(cid, "username_error") + b.frames(cid, "username_error")
            assert len(got) == 1 and [e["code"] for e in lost] == ["name_taken"], (i, got, lost)
    finally:
        await a.stop()
        await b.stop()


async def test_names_look_alikes_and_private_messages_span_the_processes(redis_server: RedisServer) -> None:
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    try:
        a.login(1, "Alice")
        await a.wait(1, "username_accepted")
        b.login(1, "ALICE")
        await b.wait(1, "username_error", code="name_taken")
        b.send(1, {"type": "set_username", "username": "Аlice"})  # Cyrillic А
        await b.wait(1, "username_error", code="name_confusable")
        assert "'Alice'" in b.frames(1, "username_error", code="name_confusable")[0]["message"]
        b.send(1, {"type": "set_username", "username": "bob"})
        await b.wait(1, "username_accepted")
        b.send(1, {"type": "private", "to": "alice", "message": "psst", "client_msg_id": "p1"})
        await a.wait(1, "private")
        await b.wait(1, "ack", client_msg_id="p1")
        [got] = a.frames(1, "private")
        assert (got["from"], got["to"], got["message"]) == ("bob", "Alice", "psst")
        assert b.frames(1, "private")[0]["id"] == got["id"]
        b.send(1, {"type": "private", "to": "nobody", "message": "x"})
        await b.wait(1, "error", code="no_such_user")
        a.run(a.hub.disconnect(1, 0.0))  # Alice leaves: her name is free on every process

        for attempt in range(100):
            cid = 100 + attempt
            b.login(cid, "alice")
            await until(lambda cid=cid: bool(b.inbox[cid]), b)
            if b.frames(cid, "username_accepted"):
                break
        assert b.frames(cid, "username_accepted"), "the name was never freed"
    finally:
        await a.stop()
        await b.stop()


async def test_online_lists_counts_and_notices_span_the_processes(redis_server: RedisServer) -> None:
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    try:
        a.login(1, "alice")
        await a.wait(1, "history")
        await until(lambda: "alice" in b.hub.rooms["general"].remote, b)  # b heard of her
        b.login(1, "bob")
        await b.wait(1, "joined")
        [joined] = b.frames(1, "joined")
        assert joined["online_users"] == 2 and sorted(joined["users_list"]) == ["alice", "bob"]
        await a.wait(1, "user_join", username="bob")
        [notice] = a.frames(1, "user_join", username="bob")
        assert notice["online_users"] == 2 and sorted(notice["users_list"]) == ["alice", "bob"]
        a.send(1, {"type": "get_users", "room": "general"})
        await a.wait(1, "online_users")
        assert sorted(a.frames(1, "online_users")[0]["users"]) == ["alice", "bob"]
        b.run(b.hub.disconnect(1, 0.0))
        await a.wait(1, "user_leave", username="bob")
        [left] = a.frames(1, "user_leave", username="bob")
        assert left["online_users"] == 1 and left["reason"] == "disconnect"
    finally:
        await a.stop()
        await b.stop()


async def test_a_process_follows_only_the_rooms_it_has_people_in(redis_server: RedisServer) -> None:
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    try:
        a.login(1, "alice", rooms=["dev"])
        b.login(1, "bob", rooms=["dev"])
        await a.wait(1, "history", room="dev")
        await b.wait(1, "history", room="dev")
        a.send(1, {"type": "chat", "room": "dev", "message": "one"})
        await b.wait(1, "chat", room="dev")
        b.send(1, {"type": "leave", "room": "dev"})
        await b.wait(1, "left")
        assert "dev" not in b.hub.rooms and "dev" not in b.broker.members  # unsubscribed
        a.send(1, {"type": "chat", "room": "dev", "message": "two"})
        await a.wait(1, "chat", 2, room="dev")
        epoch = b.frames(1, "history", room="dev")[0]["epoch"]
        b.send(1, {"type": "join", "room": "dev", "epoch": epoch, "seq": 1})
        await b.wait(1, "history", 2, room="dev")
        resumed = b.frames(1, "history", room="dev")[-1]
        assert [m["message"] for m in resumed["messages"]] == ["two"]  # read again from Redis
    finally:
        await a.stop()
        await b.stop()


async def test_a_room_redis_lost_gets_a_new_epoch_and_its_members_are_told(redis_server: RedisServer) -> None:
    a = await Node.start(redis_server.url)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        a.login(1, "alice")
        await a.wait(1, "history")
        old = a.frames(1, "history")[0]["epoch"]
        a.send(1, {"type": "chat", "message": "before", "client_msg_id": "b"})
        await a.wait(1, "ack")
        admin.flushall()  # Redis restarted without its AOF: the history is gone
        a.send(1, {"type": "chat", "message": "after", "client_msg_id": "c"})
        await a.wait(1, "history", 2)
        told = a.frames(1, "history")[-1]
        assert told["epoch_changed"] is True and told["epoch"] != old
        await a.wait(1, "chat", 2)
        assert [(f["message"], f["seq"]) for f in a.frames(1, "chat")] == [("before", 1), ("after", 1)]
    finally:
        admin.close()
        await a.stop()


async def test_edits_and_reactions_travel_between_processes_once_and_fold_into_history(
    redis_server: RedisServer,
) -> None:
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    try:
        await alice_and_bob(a, b)
        b.send(1, {"type": "chat", "message": "typo hre", "client_msg_id": "t1"})
        await a.wait(1, "chat", message="typo hre")
        target = a.frames(1, "chat")[0]["seq"]
        b.send(1, {"type": "edit", "room": "general", "target": target, "message": "typo here"})
        a.send(1, {"type": "react", "room": "general", "target": target, "key": "👍"})
        for node in (a, b):
            await node.wait(1, "edit")
            await node.wait(1, "reaction")
        assert len(a.frames(1, "edit")) == len(b.frames(1, "edit")) == 1  # once each
        assert len(a.frames(1, "reaction")) == len(b.frames(1, "reaction")) == 1
        b.login(2, "carol")  # a newcomer on the other process sees the current state
        await b.wait(2, "history")
        [shown] = b.frames(2, "history")[0]["messages"]
        assert shown["message"] == "typo here" and shown["reactions"] == {"👍": ["alice"]}
        c = await Node.start(redis_server.url)  # and so does a process that loads the room later
        try:
            c.login(1, "dave")
            await c.wait(1, "history")
            [loaded] = c.frames(1, "history")[0]["messages"]
            assert loaded["message"] == "typo here" and loaded["reactions"] == {"👍": ["alice"]}
        finally:
            await c.stop()
    finally:
        await a.stop()
        await b.stop()


def lose_the_next_answer(node: Node) -> None:
    """The next script call runs in Redis, but its answer never reaches the process."""
    script = node.store.writer.script
    received = script.receive

    async def answer_lost(sent: object) -> object:
        await received(sent)  # type: ignore[arg-type]
        script.receive = received  # type: ignore[method-assign]
        raise redis.ConnectionError("connection lost after the call")

    script.receive = answer_lost  # type: ignore[method-assign]


async def test_a_message_stored_by_a_call_whose_answer_was_lost_still_reaches_its_process_once(
    redis_server: RedisServer,
) -> None:
    """A process skips its own published copies (it delivers from the script's answer): when
    that answer is lost after the script ran, the room is read again once a call succeeds."""
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    try:
        await alice_and_bob(a, b)
        a.login(2, "carol")
        await a.wait(2, "history")
        a.send(2, {"type": "join", "room": "dev"})
        await a.wait(2, "joined", room="dev")
        lose_the_next_answer(a)
        a.send(1, {"type": "chat", "message": "lost answer", "client_msg_id": "c1"})
        await a.wait(1, "error", code="store_failed", client_msg_id="c1")
        await b.wait(1, "chat", message="lost answer")
        a.send(2, {"type": "chat", "room": "dev", "message": "elsewhere"})  # a call that succeeds
        await a.wait(2, "chat", message="lost answer")
        await a.wait(1, "chat", message="lost answer")
        await resend_until_acked(a, 1, "lost answer", "c1")  # the outbox's resend: a repeat
        [ack] = a.frames(1, "ack", client_msg_id="c1")
        assert ack["duplicate"] is True and ack["seq"] == 1
        assert seqs(a, 1) == seqs(a, 2) == seqs(b, 1) == [1]
    finally:
        await a.stop()
        await b.stop()


async def many(script: ScriptCall, calls: list) -> list:
    """One send and its answers, as the writer makes them."""
    return await script.receive(await script.send(calls))


async def test_script_calls_sent_in_one_pipeline_answer_in_order_and_survive_a_flushed_script_cache(
    redis_server: RedisServer,
) -> None:
    """The writer sends a batch's script calls in one pipeline (`ScriptCall.send`) and may send
    a second batch before reading the first one's answers: answers come in order, a script cache
    emptied meanwhile (SCRIPT FLUSH, a Redis restart) changes nothing, an error answer raises
    without leaving the connection out of step, and a lost connection fails every send made on
    it while the next send gets a new one."""
    client = aioredis.Redis.from_url(redis_server.url)
    echo = ScriptCall(client, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    refuse_bad = "if ARGV[1] == 'bad' then return redis.error_reply('boom') end return ARGV[1]"
    failing = ScriptCall(client, refuse_bad)
    try:
        assert await many(echo, [(["n"], [1]), (["n"], [10]), (["n"], [100])]) == [1, 11, 111]
        first, second = await echo.send([(["n"], [1000])]), await echo.send([(["n"], [1]), (["n"], [2])])
        assert await echo.receive(first) == [1111] and await echo.receive(second) == [1112, 1114]
        await client.script_flush()
        assert await many(echo, [(["n"], [1]), (["n"], [2])]) == [1115, 1117]
        with pytest.raises(redis.ResponseError, match="boom"):
            await many(failing, [([], ["ok"]), ([], ["bad"]), ([], ["after"])])
        assert await many(failing, [([], ["again"])]) == [b"again"]  # every answer was read
        first, second = await echo.send([(["n"], [1])]), await echo.send([(["n"], [1])])
        assert first.conn is second.conn
        await first.conn.disconnect()  # the connection is lost before the answers are read
        with pytest.raises(redis.ConnectionError):
            await echo.receive(first)
        with pytest.raises(redis.ConnectionError, match="earlier call"):
            await echo.receive(second)
        assert await many(echo, [(["n"], [1])]) == [1120]  # both lost calls ran; a new connection
    finally:
        await echo.aclose()
        await failing.aclose()
        await client.aclose()


async def test_the_writer_keeps_a_few_batches_in_redis_under_a_flood_and_one_under_a_light_load(
    redis_server: RedisServer,
) -> None:
    """A flood goes out in batches of at most `BATCH_MAX`, up to `IN_FLIGHT` of them in Redis at
    once, stored in the order queued; a message queued while a batch is in Redis under a light
    load waits for that batch's answer (so what comes back together is stored together)."""
    loop = asyncio.get_running_loop()
    store = RedisStore(redis_server.url, loop.call_soon)
    await store.aload()
    writer = store.writer
    sends: list[tuple[int, int]] = []  # (messages, batches already in Redis) per send
    send, sending = writer.script.send, asyncio.Event()

    async def counted(calls: list) -> object:
        sends.append((sum((len(a) - 5 - 4 * a[4]) // 2 for _, a in calls), len(writer.in_flight)))
        sending.set()
        return await send(calls)

    writer.script.send = counted  # type: ignore[method-assign]
    answered: list[int] = []
    progress = asyncio.Event()

    def append(n: int, room: str, texts: range) -> None:
        def done(result: object) -> None:
            assert result is None
            answered.append(n)
            progress.set()

        store.append(Append([Message(0, room, 0, "u", "u", "c", f"{t}", 1.0) for t in texts]), done)

    async def answers(count: int) -> None:
        while len(answered) < count:
            progress.clear()
            await asyncio.wait_for(progress.wait(), 10)

    try:
        for n in range(40):  # 4,000 messages in 4 rooms, queued at once
            append(n, f"r{n % 4}", range(n * 100, n * 100 + 100))
        await answers(40)
        assert sends == [(BATCH_MAX, 0), (BATCH_MAX, 1), (4000 - 2 * BATCH_MAX, 2)]
        assert answered == list(range(40))  # answered in the order queued
        for r in range(4):
            rows = await store.client.xrange(f"wschat:room:r{r}:stream")
            texts = [int(parse_entry(f[b"m"]).text) for _, f in rows]
            seqs_ = [parse_entry(f[b"m"]).seq for _, f in rows]
            assert seqs_ == list(range(1, 1001)) and texts == sorted(texts)  # in order, no gap
        sends.clear()
        sending.clear()
        append(40, "r0", range(1))
        await asyncio.wait_for(sending.wait(), 10)
        append(41, "r0", range(1, 2))  # queued while the first is in Redis: waits for its answer
        assert answered[-1] == 39  # the first is not answered yet
        await answers(42)
        assert sends == [(1, 0), (1, 0)]
    finally:
        await store.aclose()


async def test_a_connection_lost_with_batches_in_redis_fails_them_all_and_their_resends_store_each_once(
    redis_server: RedisServer,
) -> None:
    """The writer's connection is killed while batches are in Redis: each of them is refused
    (its calls may or may not have run), later ones go on a new connection, and resending the
    refused messages with their client_msg_id stores each message exactly once."""
    loop = asyncio.get_running_loop()
    store = RedisStore(redis_server.url, loop.call_soon)
    await store.aload()
    writer, killer = store.writer, aioredis.Redis.from_url(redis_server.url)
    send, sends = writer.script.send, [0]

    async def kill_after_the_second(calls: list) -> object:
        sent = await send(calls)
        sends[0] += 1
        if sends[0] == 2:  # two batches in Redis: drop the writer's connection under them
            await killer.client_kill_filter(_type="normal", skipme=True)
        return sent

    writer.script.send = kill_after_the_second  # type: ignore[method-assign]
    results: dict[int, object] = {}
    progress = asyncio.Event()

    def append(n: int) -> None:
        def done(result: object) -> None:
            results[n] = result
            progress.set()

        msgs = [
            Message(0, f"r{n % 4}", 0, "u", "u", "c", f"{t}", 1.0, f"m{t}")
            for t in range(n * 100, n * 100 + 100)
        ]
        store.append(Append(msgs), done)

    async def answered(count: int) -> None:
        while len(results) < count:
            progress.clear()
            await asyncio.wait_for(progress.wait(), 10)

    try:
        for n in range(40):
            append(n)
        await answered(40)
        refused = sorted(n for n, r in results.items() if r is not None)
        assert refused and all(isinstance(results[n], redis.RedisError) for n in refused)
        assert len(refused) < 40  # the batches sent after the loss were stored
        for n in refused:  # what a client's outbox does: send again with the same ids
            del results[n]
            append(n)
        await answered(40)
        assert all(r is None for r in results.values())
        for r in range(4):
            rows = await store.client.xrange(f"wschat:room:r{r}:stream")
            entries = [parse_entry(f[b"m"]) for _, f in rows]
            assert [m.seq for m in entries] == list(range(1, 1001))  # no gap
            texts = sorted(int(m.text) for m in entries)
            assert texts == [t for n in range(r, 40, 4) for t in range(n * 100, n * 100 + 100)]  # each once
    finally:
        await killer.aclose()
        await store.aclose()
