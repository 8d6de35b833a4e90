"""Several real server processes on one real redis-server: one chat, whatever happens to them."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from pathlib import Path

import psutil
import pytest
from clusterclient import ResumingClient, all_until
from redisserver import RedisServer
from support import Client, ServerProcess, logged_in
from test_files_e2e import upload
from test_server_e2e import get

FAST = ("--rate", "1000", "--burst", "1000")


def cluster(redis_server: RedisServer, n: int, *extra: str) -> list[ServerProcess]:
    procs = [ServerProcess("--redis", redis_server.url, *extra) for _ in range(n)]
    return [p.wait_ready() for p in procs]


async def stop_all(procs: list[ServerProcess]) -> None:
    await asyncio.gather(*(p.astop() for p in procs))


def seqs(client: ResumingClient, room: str = "general") -> list[int]:
    return [m["seq"] for m in client.shown[room]]


@pytest.mark.slow
async def test_clients_on_three_processes_see_every_message_once_in_one_contiguous_order(
    redis_server: RedisServer,
) -> None:
    procs = cluster(redis_server, 3, *FAST)
    clients = [ResumingClient(f"user{i}") for i in range(6)]
    try:
        for i, c in enumerate(clients):
            await c.connect(procs[i % 3].port)
        for r in range(10):
            for i, c in enumerate(clients):
                await c.say(f"{i}-{r}", f"message {r} from user{i}")
        await all_until(clients, lambda c: len(c.shown["general"]) == 60 and not c.outbox)
        orders = [[m["id"] for m in c.shown["general"]] for c in clients]
        assert all(order == orders[0] for order in orders)
        first = seqs(clients[0])[0]
        assert seqs(clients[0]) == list(range(first, first + 60))
        assert [p for c in clients for p in c.problems] == []
    finally:
        for c in clients:
            await c.drop()
        await stop_all(procs)


@pytest.mark.slow
async def test_200_sends_each_sent_once_to_each_of_two_processes_are_stored_once(
    redis_server: RedisServer,
) -> None:
    a, b = cluster(redis_server, 2, *FAST)
    alice = ResumingClient("alice")
    try:
        await alice.connect(a.port)
        for i in range(100):
            await alice.say(f"m{i}", f"text {i}")
        await alice.until(lambda: not alice.outbox)
        await alice.connect(b.port)  # takes the session over on the other process
        for i in range(200):  # 100..199 for the first time, 0..99 again
            await alice.say(f"m{(i + 100) % 200}", f"text {(i + 100) % 200}")
        await alice.until(lambda: not alice.outbox)
        await alice.connect(a.port)
        for i in range(100, 200):  # and 100..199 again, on the first process
            await alice.say(f"m{i}", f"text {i}")
        await alice.until(lambda: len(alice.acks) == 400 and not alice.outbox)
        fresh = [x for x in alice.acks if not x.get("duplicate")]
        again = [x for x in alice.acks if x.get("duplicate")]
        assert len(fresh) == 200 and len(again) == 200
        assert {x["client_msg_id"] for x in fresh} == {f"m{i}" for i in range(200)}
        assert {x["client_msg_id"]: x["seq"] for x in again} == {x["client_msg_id"]: x["seq"] for x in fresh}
        texts = [m["message"] for m in alice.shown["general"]]
        assert sorted(texts) == sorted(f"text {i}" for i in range(200))  # stored and shown once
        assert alice.problems == []
    finally:
        await alice.drop()
        await stop_all([a, b])


@pytest.mark.slow
async def test_kill_9_of_a_process_ten_times_loses_nothing_acknowledged_and_shows_no_gap(
    redis_server: RedisServer,
) -> None:
    procs = cluster(redis_server, 3, *FAST)
    clients = [ResumingClient(f"k{i}") for i in range(4)]
    sent = 0
    try:
        for i, c in enumerate(clients):
            await c.connect(procs[i % 2].port)  # the third process is where they flee to first
        for kill in range(10):
            victim = kill % 3
            for c in clients:
                for _ in range(5):
                    await c.say(f"{c.name}-{sent}", f"{c.name} says {sent}")
                    sent += 1
            on_victim = [c for c in clients if c.port == procs[victim].port]
            procs[victim].proc.send_signal(signal.SIGKILL)
            procs[victim].proc.wait()
            replacement = ServerProcess("--redis", redis_server.url, *FAST)  # starts as they flee
            alive = [p.port for j, p in enumerate(procs) if j != victim]
            for c in on_victim:
                await c.until(lambda c=c: not c.connected, timeout=10)
            await asyncio.gather(*(c.reconnect(alive) for c in on_victim))
            procs[victim] = await asyncio.to_thread(replacement.wait_ready)
        await all_until(clients, lambda c: not c.outbox)
        ports = [p.port for p in procs]
        await asyncio.gather(*(c.reconnect(ports) for c in clients))  # everyone resumes once more
        acked = {a["client_msg_id"] for c in clients for a in c.acks}
        assert len(acked) == sent
        await all_until(clients, lambda c: len(c.shown["general"]) >= sent)
        for c in clients:
            texts = [m["message"] for m in c.shown["general"]]
            assert len(texts) == len(set(texts)) == sent
        orders = [[m["id"] for m in c.shown["general"]] for c in clients]
        assert all(order == orders[0] for order in orders)
        assert [p for c in clients for p in c.problems] == []
    finally:
        for c in clients:
            await c.drop()
        await stop_all(procs)


@pytest.mark.slow
async def test_redis_stopped_5_s_then_restarted_on_its_aof_loses_nothing_and_needs_no_server_restart(
    redis_server: RedisServer,
) -> None:
    a, b = cluster(redis_server, 2, *FAST)
    clients = [ResumingClient(f"s{i}") for i in range(4)]
    stop_sending = asyncio.Event()

    async def keep_sending(c: ResumingClient) -> None:
        i = 0
        while not stop_sending.is_set():
            await c.say(f"{c.name}-{i}", f"{c.name} says {i}")
            i += 1
            await asyncio.sleep(0.05)  # 20 messages a second each: load, not a flood

    try:
        for i, c in enumerate(clients):
            await c.connect((a, b)[i % 2].port)
        senders = [asyncio.ensure_future(keep_sending(c)) for c in clients]
        await all_until(clients, lambda c: len(c.acks) >= 10)
        redis_server.pause()
        await asyncio.sleep(5)  # the fault itself lasts 5 s; nothing waits on it
        redis_server.kill()
        redis_server.start()
        await all_until(clients, lambda c: len(c.refused) > 0, timeout=30)
        acked_before = {c.name: len(c.acks) for c in clients}
        await all_until(clients, lambda c: len(c.acks) >= acked_before[c.name] + 20, timeout=60)
        stop_sending.set()
        await asyncio.gather(*senders)
        await all_until(clients, lambda c: not c.outbox, timeout=60)
        assert all(c.connected and c.sessions == 1 for c in clients)  # nobody was disconnected
        total = sum(len(c.acks) for c in clients)
        await all_until(clients, lambda c: len(c.shown["general"]) >= total, timeout=60)
        for c in clients:
            ids = [m["client_msg_id"] for m in c.shown["general"]]
            assert sorted(ids) == sorted({x["client_msg_id"] for d in clients for x in d.acks})
        assert a.proc.poll() is None and b.proc.poll() is None
        assert [p for c in clients for p in c.problems] == []
    finally:
        stop_sending.set()
        for c in clients:
            await c.drop()
        await stop_all([a, b])


async def test_two_clients_racing_for_one_name_on_two_processes_one_wins_each_time(
    redis_server: RedisServer,
) -> None:
    a, b = cluster(redis_server, 2)
    try:
        for i in range(100):
            x, y = await Client.open(a.port), await Client.open(b.port)
            hello = json.dumps({"type": "set_username", "username": f"racer{i}"})
            await asyncio.gather(x.send(hello), y.send(hello))
            answers = []
            for c in (x, y):
                answers.append((await c.recv())["type"])
            assert sorted(answers) == ["username_accepted", "username_error"], (i, answers)
            await x.close()
            await y.close()
    finally:
        await stop_all([a, b])


async def test_a_process_that_cannot_reach_redis_exits_2_with_one_sentence() -> None:
    from redisserver import free_port

    proc = ServerProcess("--redis", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert proc.proc.wait(30) == 2
    err = proc.stderr_text().strip().splitlines()
    assert len(err) == 1 and "Redis at redis://:***@127.0.0.1:" in err[0]  # never its password


async def test_healthz_reports_redis_and_the_first_start_imports_the_sqlite_history(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    db = str(tmp_path / "chat.db")
    alone = ServerProcess(db=db).wait_ready()
    c = await logged_in(alone.port, "alice")
    for i in range(5):
        await c.chat(f"before {i}", client_msg_id=f"b{i}")
    for _ in range(5):
        await c.expect("ack")
    await c.close()
    assert await alone.astop() == 0
    grown = ServerProcess("--redis", redis_server.url, db=db).wait_ready()
    try:
        assert "Importing" in grown.stderr_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{grown.port}/healthz", timeout=10) as resp:
            health = json.loads(resp.read())
        assert health["redis"] == "ok"
        c = await Client.open(grown.port)
        await c.send({"type": "set_username", "username": "bob"})
        await c.expect("username_accepted")
        hist = await c.expect("history")
        assert [m["message"] for m in hist["messages"]] == [f"before {i}" for i in range(5)]
        await c.chat("after", client_msg_id="a1")
        ack = await c.expect("ack")
        assert ack["seq"] == 6
        await c.close()
    finally:
        await grown.astop()
    assert f"history in Redis at {redis_server.url};" in grown.stderr_text()  # not the SQLite file
    again = ServerProcess("--redis", redis_server.url, db=db).wait_ready()
    try:
        assert "Importing" not in again.stderr_text()
    finally:
        await again.astop()


@pytest.mark.slow
async def test_workers_start_processes_sharing_the_port_and_ctrl_c_stops_them_all(
    redis_server: RedisServer,
) -> None:
    from redisserver import free_port

    port = free_port()
    sup = ServerProcess("--redis", redis_server.url, "--workers", "3", port=port).wait_ready()
    try:
        parent = psutil.Process(sup.proc.pid)
        workers: list[psutil.Process] = []
        for _ in range(100):  # until all three listen (each prints its banner when it does)
            workers = parent.children()
            listening = [w for w in workers if any(c.laddr.port == port for c in w.net_connections("tcp"))]
            if len(listening) == 3:
                break
            await asyncio.sleep(0.1)
        assert len(listening) == 3
        clients = [ResumingClient(f"w{i}") for i in range(12)]
        for c in clients:
            await c.connect(port)
        await clients[0].say("hello", "hello everyone")
        await all_until(clients, lambda c: [m["message"] for m in c.shown["general"]] == ["hello everyone"])
        served = {
            w.pid for w in workers if any(c.raddr and c.laddr.port == port for c in w.net_connections("tcp"))
        }
        assert len(served) >= 2  # the kernel spread the connections
        for c in clients:
            await c.drop()
        sup.signal(signal.SIGINT)
        assert await asyncio.to_thread(sup.proc.wait, 30) == 0
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    finally:
        if sup.proc.poll() is None:
            sup.kill()


async def test_a_crowd_logging_in_at_once_gets_its_names(redis_server: RedisServer) -> None:
    """Each login is a name claim in Redis: 150 at once wait for a connection, none fails."""
    [proc] = cluster(redis_server, 1)
    clients: list[Client] = []
    try:
        clients = list(await asyncio.gather(*(Client.open(proc.port) for _ in range(150))))
        await asyncio.gather(
            *(c.send({"type": "set_username", "username": f"crowd{i}"}) for i, c in enumerate(clients))
        )
        answers = await asyncio.gather(*(c.expect("username_accepted") for c in clients))
        assert len(answers) == 150
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        await proc.astop()


async def test_accounts_work_with_redis_and_are_shared_by_one_hosts_processes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    db = str(tmp_path / "chat.db")
    a, b = (ServerProcess("--redis", redis_server.url, db=db).wait_ready() for _ in range(2))
    try:
        c = await Client.open(a.port)
        await c.send({"type": "register", "username": "alice", "password": "correct horse battery"})
        accepted = await c.expect("username_accepted", timeout=30)
        assert accepted["account"] is True
        await c.close()
        d = await Client.open(b.port)  # the other process of the same host knows the account
        await d.send({"type": "login", "username": "alice", "password": "correct horse battery"})
        assert (await d.expect("username_accepted", timeout=30))["account"] is True
        await d.close()
    finally:
        await stop_all([a, b])


async def test_a_file_shared_on_one_process_reaches_the_others_and_their_history_with_its_file(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    media = str(tmp_path / "files")  # one shared --media-dir: any process serves any file
    a, b = cluster(redis_server, 2, "--media-dir", media, *FAST)
    try:
        alice = await logged_in(a.port, "Alice")
        bob = await logged_in(b.port, "Bob")
        done = await upload(alice, "notes.txt", b"shared notes\n", room="general")
        assert done["type"] == "upload_done", done
        seen = await bob.expect("chat", username="Alice")
        assert seen["file"] == done["file"]
        await bob.send({"type": "react", "room": "general", "target": seen["seq"], "key": "👍"})
        await alice.expect("reaction")
        carol = await logged_in(b.port, "Carol")  # login() waits for the history: it is kept
        history = next(f for f in carol.seen if f["type"] == "history")["messages"]
        shared = [m for m in history if m.get("file")]
        assert [m["file"] for m in shared] == [done["file"]] and shared[0]["reactions"] == {"👍": ["Bob"]}
        assert (await get(b.port, done["file"]["url"]))[2] == b"shared notes\n"
    finally:
        await stop_all([a, b])
