"""A process that dies without a word (kill -9): its names free and its users leave by themselves.

Real processes on a real redis-server; `--redis-ttl 3` (a real option) shortens the 30 s the
names and presence of a dead process outlive it, so the test waits seconds, not half a minute.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from redisserver import RedisServer
from support import Client, ServerProcess, logged_in

TTL = 3
# Seconds the test waits at most: the TTL plus a loaded machine's slack, below the 30 s default.
EXPIRY_BOUND = 20.0


async def claim(port: int, name: str) -> tuple[Client, dict]:
    """A new connection asking for `name`: the client and the server's answer to it."""
    c = await Client.open(port)
    await c.send({"type": "set_username", "username": name})
    while True:
        frame = await c.recv()
        if frame["type"] in ("username_accepted", "username_error"):
            return c, frame


@pytest.mark.slow
async def test_a_killed_process_frees_its_names_and_its_users_leave_within_the_ttl(
    redis_server: RedisServer,
) -> None:
    args = ("--redis", redis_server.url, "--redis-ttl", str(TTL))
    a, b = [p.wait_ready() for p in [ServerProcess(*args), ServerProcess(*args)]]  # started at once
    clients: list[Client] = []
    try:
        bob = await logged_in(b.port, "bob")
        clients.append(bob)
        clients.append(await logged_in(a.port, "alice"))
        await bob.expect("user_join", username="alice")  # bob's process knows where alice is
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        loop = asyncio.get_running_loop()
        killed_at = loop.time()

        # At once, the name is still alice's (her process may only be slow): refused.
        c, answer = await claim(b.port, "alice")
        clients.append(c)
        assert answer["type"] == "username_error" and answer["code"] == "name_taken", answer

        # Within the TTL (plus a heartbeat), bob's process sees alice's process gone...
        gone = await bob.expect("user_leave", timeout=EXPIRY_BOUND, username="alice")
        assert "alice" not in (gone.get("users_list") or [])

        # ...and the name is free: asked again each time the server refuses it (bounded).
        while True:
            c, answer = await claim(b.port, "alice")
            clients.append(c)
            if answer["type"] == "username_accepted":
                break
            assert answer["code"] == "name_taken", answer
            assert loop.time() - killed_at < EXPIRY_BOUND, "alice's name was not freed"
            await asyncio.sleep(0.2)  # a retry's pace, like a client's backoff (not a wait for an event)
        assert loop.time() - killed_at >= TTL - 1  # not freed before the TTL ran out
    finally:
        for c in clients:
            await c.close()
        await asyncio.gather(a.astop(), b.astop())
