"""What the server tells its operator: one INFO line per connection, name and disconnect, with the
address, the name and the reason; never what anyone wrote."""

from __future__ import annotations

import asyncio
import re

from rawws import RawClient
from support import ServerProcess, logged_in

TIMEOUT = 10.0


async def _log_line(srv: ServerProcess, pattern: str) -> str:
    for _ in range(int(TIMEOUT / 0.05)):
        for line in srv.stderr_text().splitlines():
            if re.search(pattern, line):
                return line
        await asyncio.sleep(0.05)
    raise AssertionError(f"no line matching {pattern!r} in: {srv.stderr_text()[-3000:]}")


async def test_connections_names_and_disconnects_are_logged_without_message_contents() -> None:
    srv = ServerProcess().wait_ready()
    try:
        ann = await logged_in(srv.port, "Ann")
        await ann.chat("a secret plan")
        await ann.expect("chat")
        await ann.close()
        connected = await _log_line(srv, r"INFO wschat.server: client \d+ connected from 127\.0\.0\.1$")
        cid = re.search(r"client (\d+)", connected).group(1)
        await _log_line(srv, rf"INFO wschat.server: client {cid} \(127\.0\.0\.1\) is 'Ann'$")
        ended = rf"client {cid} \(127\.0\.0\.1\) 'Ann' disconnected: closed by the client \(1000\)$"
        await _log_line(srv, "INFO wschat.server: " + ended)
        mute = await RawClient.connect(srv.port)
        mute.close()  # no name, no close frame
        await _log_line(srv, r"client \d+ \(127\.0\.0\.1\) without a name disconnected: connection lost$")
        log = srv.stderr_text()
        assert "a secret plan" not in log
        assert len([line for line in log.splitlines() if f"client {cid} " in line]) == 3
    finally:
        srv.stop()


async def test_a_client_closed_by_the_server_is_logged_with_the_code_and_reason() -> None:
    srv = ServerProcess("--name-timeout", "0.5").wait_ready()
    try:
        nameless = await RawClient.connect(srv.port)
        assert await nameless.wait_closed() == 1008
        nameless.close()
        await _log_line(srv, r"without a name disconnected: closed by the server \(1008 .+\)$")
    finally:
        srv.stop()
