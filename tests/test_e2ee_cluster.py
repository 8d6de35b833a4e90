"""Cluster mode (a real redis-server): an end-to-end encrypted private message's plaintext never
reaches Redis, neither in what the server stores there nor in any command it sends (MONITOR),
while a room message's text does (so the search below can find a text); delivered live, paged
back, and delivered at log-in to a device that was away. Device keys live in Redis
(`wschat.rediskeys`) and follow the live sessions on every process; a host that grows from SQLite
to Redis brings its device keys, envelopes, call outcomes and profiles along."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import redis
import redis.asyncio as aioredis
from e2eedevice import Device
from redisserver import RedisServer
from support import Client, ServerProcess, logged_in, start_server
from test_calls_e2e import call

from wschat import e2ee
from wschat.features.account_records import CheckPassword, CreateAccount, EndSession
from wschat.features.e2ee_records import ReadDeviceKeys, SaveDeviceKey
from wschat.redisaccounts import RedisAccounts

END = "END-OF-THE-E2EE-TEST"


def monitor(url: str, seen: list[str]) -> threading.Thread:
    """Every command Redis runs, as text, until END is echoed."""
    ready = threading.Event()

    def run() -> None:
        with redis.Redis.from_url(url).monitor() as m:
            ready.set()
            for command in m.listen():
                seen.append(str(command.get("command", "")))
                if END in seen[-1]:
                    return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(10)
    return t


async def test_the_plaintext_never_reaches_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    marker = "MARKER-e2ee-cluster-5d1c plaintext"
    seen: list[str] = []
    watcher = monitor(redis_server.url, seen)
    srv = ServerProcess("--redis", redis_server.url, db=str(tmp_path / "chat.db")).wait_ready()
    try:
        bob = await Device.login(srv.port, "Bob", "register")
        alice = await Device.login(srv.port, "Alice", "register")
        assert (await alice.send("Bob", marker, "c1"))["type"] == "ack"
        got = await bob.client.expect("private", **{"from": "Alice"})
        assert bob.read(got) == marker
        await alice.client.send({"type": "fetch_private", "with": "Bob"})  # stored: paged back
        page = await alice.client.expect("private_history")
        assert [alice.read(m) for m in page["messages"]] == [marker]
        await alice.client.send({"type": "chat", "message": "CONTROL-room-text", "client_msg_id": "r1"})
        await alice.client.expect("ack", client_msg_id="r1")
        await bob.close()
        await alice.client.expect("user_leave", username="Bob")
        assert (await alice.send("Bob", marker + " while away", "c2"))["type"] == "ack"
        token = bob.accepted["session_token"]
        back = await Device.login(srv.port, "Bob", key=bob.key, session_token=token)
        waited = await back.client.expect("private", offline=True)  # delivered at log-in
        assert back.read(waited) == marker + " while away"
        await back.close()
        await alice.close()
    finally:
        await srv.astop()
    r = redis.Redis.from_url(redis_server.url)
    dump = [repr(r.dump(k)) for k in r.scan_iter()]
    r.echo(END)
    watcher.join(10)
    assert any("CONTROL-room-text" in c for c in seen)  # room messages do go through Redis
    assert not any("MARKER" in c for c in seen)
    assert dump and not any("MARKER" in d for d in dump)
    files = [f for f in redis_server.folder.rglob("*") if f.is_file()]
    assert files and not any(b"MARKER" in f.read_bytes() for f in files)


async def test_device_keys_in_redis_follow_the_live_sessions(redis_server: RedisServer) -> None:
    """The commands as `wschat.keystore` runs them on SQLite (tests/test_e2ee.py), on Redis."""
    client = aioredis.Redis.from_url(redis_server.url)
    accounts = RedisAccounts(client, lambda fn, r: fn(r), "p1")
    try:
        one = await accounts.work(CreateAccount("ann", "Ann", "correct horse battery", "one", 1.0))
        two = await accounts.work(CheckPassword("ann", "correct horse battery", "two", 2.0))
        keys = [e2ee.public_text(e2ee.new_key()) for _ in range(2)]
        await accounts.work(SaveDeviceKey("ann", one.session_id, e2ee.key_id(keys[0]), keys[0], 3.0))
        listed = await accounts.work(SaveDeviceKey("ann", two.session_id, e2ee.key_id(keys[1]), keys[1], 4.0))
        assert [(d.key_id, d.public, d.device) for d in listed] == [
            (e2ee.key_id(keys[0]), keys[0], "one"),
            (e2ee.key_id(keys[1]), keys[1], "two"),
        ]
        again = await accounts.work(SaveDeviceKey("ann", two.session_id, e2ee.key_id(keys[1]), keys[1], 9.0))
        assert [d.created for d in again] == [3.0, 4.0]  # published again: the same key, kept
        assert await accounts.work(EndSession("ann", one.session_id)) is True
        after = await accounts.work(ReadDeviceKeys(("ann", "nobody", "ann")))
        assert [d.key_id for d in after["ann"]] == [e2ee.key_id(keys[1])] and after["nobody"] == []
        await client.hdel("wschat:sess:ann", two.session_id)  # a session gone by any way drops off
        assert (await accounts.work(ReadDeviceKeys(("ann",))))["ann"] == []
    finally:
        await client.aclose()
        await asyncio.to_thread(accounts.close)


async def test_a_revoke_on_one_process_takes_the_key_off_the_list_on_the_other(
    redis_server: RedisServer,
) -> None:
    a = ServerProcess("--redis", redis_server.url).wait_ready()
    b = ServerProcess("--redis", redis_server.url).wait_ready()
    try:
        first = await Device.login(a.port, "Carol", "register", device="one")
        dave = await Device.login(a.port, "Dave", "register")
        second = await Device.login(b.port, "Carol", device="two")
        assert {d.id for d in await dave.devices("carol")} == {first.id, second.id}
        await second.client.send({"type": "revoke_session", "id": first.accepted["session_id"]})
        await second.client.expect("session_revoked")
        assert [d.id for d in await dave.devices("carol")] == [second.id]  # asked on the other process
        assert (await dave.send("Carol", "to the device left", "d1"))["type"] == "ack"
        assert second.read(await second.client.expect("private", **{"from": "Dave"})) == "to the device left"
        for d in (dave, second):
            await d.close()
    finally:
        await asyncio.gather(a.astop(), b.astop())


async def test_a_host_that_grows_to_redis_brings_keys_envelopes_calls_and_profiles(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    db = str(tmp_path / "chat.db")
    alone = await start_server(db=db)
    try:
        bob = await Device.login(alone.port, "Bob", "register")
        alice = await Device.login(alone.port, "Alice", "register")
        await alice.client.send(call("call-grow-0001", "Bob", "invite", kind="audio", sdp="v=0"))
        await bob.client.expect("call", action="invite")
        await bob.client.send(call("call-grow-0001", "Alice", "decline"))
        assert (await alice.client.expect("private", stored=True))["call"]["outcome"] == "declined"
        await bob.close()
        await alice.client.expect("user_leave", username="Bob")
        assert (await alice.send("Bob", "sealed while away", "g1"))["type"] == "ack"
        await alice.client.send({"type": "set_profile", "status": "on a train"})
        await alice.client.expect("profile", username="Alice")
        await alice.close()
    finally:
        await alone.stop()
    grown = ServerProcess("--redis", redis_server.url, db=db).wait_ready()
    try:
        guest = await logged_in(grown.port, "Guesty")  # Alice is offline: her stored profile
        await guest.send({"type": "whois", "username": "Alice"})
        assert (await guest.expect("profile", username="Alice"))["status"] == "on a train"
        await guest.close()
        watcher = await Client.open(grown.port)  # a device of Alice's that publishes no key
        await watcher.send(
            {"type": "login", "username": "Alice", "session_token": alice.accepted["session_token"]}
        )
        await watcher.expect("username_accepted")
        await watcher.send({"type": "get_keys", "username": "Bob"})
        assert [d["id"] for d in (await watcher.expect("keys", username="Bob"))["devices"]] == [bob.id]
        await watcher.send({"type": "fetch_private", "with": "Bob"})
        page = (await watcher.expect("private_history"))["messages"]
        assert page[0]["call"]["outcome"] == "declined" and alice.read(page[1]) == "sealed while away"
        await watcher.close()
        back = await Device.login(grown.port, "Bob", key=bob.key, session_token=bob.accepted["session_token"])
        assert back.read(await back.client.expect("private", offline=True)) == "sealed while away"
        await back.close()
    finally:
        await grown.astop()
