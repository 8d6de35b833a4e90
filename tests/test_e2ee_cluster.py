"""Cluster mode (a real redis-server): an end-to-end encrypted private message's plaintext never
reaches Redis, neither in what the server stores there nor in any command it sends (MONITOR),
while a room message's text does (so the search below can find a text); delivered live, paged
back, and delivered at log-in to a device that was away."""

from __future__ import annotations

import threading
from pathlib import Path

import redis
from e2eedevice import Device
from redisserver import RedisServer
from support import ServerProcess

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
