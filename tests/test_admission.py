"""Descriptors and connection counts: a flood of half-open sockets cannot lock everyone out.

The server runs in a subprocess limited to 128 open files, as a small system's default would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import socket
from datetime import datetime

import pytest
from rawws import RawClient
from support import ServerProcess, logged_in, start_server

from wschat.admission import QUIET_SECONDS

TIMEOUT = 10.0
OPEN_FILES = 128


async def _half_open(port: int, n: int) -> list[socket.socket]:
    """n sockets that send the first line of a handshake and nothing more."""
    loop = asyncio.get_running_loop()
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        await loop.sock_connect(s, ("127.0.0.1", port))
        with contextlib.suppress(OSError):  # refused at once: the server may have reset it
            s.send(b"GET / HTTP/1.1\r\n")
        socks.append(s)
    return socks


def _quiet(lines: list[str]) -> bool:
    """At most one line every QUIET_SECONDS: a flood that lasts longer (a loaded machine) may say
    it again, never more often (the log's timestamps have milliseconds)."""
    said = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") for line in lines]
    return all((b - a).total_seconds() >= QUIET_SECONDS - 0.01 for a, b in itertools.pairwise(said))


async def _wait_for_line(srv: ServerProcess, words: str) -> None:
    for _ in range(int(TIMEOUT / 0.05)):
        if words in srv.stderr_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {words!r} in the server's log: {srv.stderr_text()[-2000:]}")


@pytest.mark.slow
async def test_more_half_open_sockets_than_descriptors_cost_one_log_line_and_lock_nobody_out() -> None:
    srv = ServerProcess(open_files=OPEN_FILES).wait_ready()
    try:
        note = [line for line in srv.banner if "At most" in line]
        assert note and f"this process may open {OPEN_FILES} files" in note[0]
        socks = await _half_open(srv.port, 3 * OPEN_FILES)
        await _wait_for_line(srv, "refusing connections")
        for s in socks:
            s.close()
        for _ in range(int(TIMEOUT / 0.05)):  # the server sees them go as their resets arrive
            try:
                normal = await logged_in(srv.port, "Normal")
                break
            except Exception:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("a normal client could not log in after the flood")
        await normal.chat("hello after the flood")
        assert (await normal.expect("chat"))["message"] == "hello after the flood"
        await normal.close()
        log = srv.stderr_text()
        assert "Traceback" not in log
        refusals = [line for line in log.splitlines() if "refusing connections" in line]
        assert refusals and _quiet(refusals), refusals
        assert _quiet([line for line in log.splitlines() if "Too many open files" in line])
    finally:
        srv.stop()


async def test_connections_still_in_their_handshake_count_against_the_per_address_cap() -> None:
    srv = await start_server("--limit-loopback", "--max-connections-per-ip", "5")
    try:
        socks = await _half_open(srv.port, 30)
        for _ in range(int(TIMEOUT / 0.01)):  # those over the cap are closed as soon as accepted
            if srv.admission.sockets <= 5 + 10:
                break
            await asyncio.sleep(0.01)
        assert srv.admission.half_open == {"127.0.0.1": srv.admission.sockets}
        assert srv.admission.sockets <= 15
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await RawClient.connect(srv.port)  # one more is closed as soon as it is accepted
        for s in socks:
            s.close()
        for _ in range(int(TIMEOUT / 0.01)):
            if not srv.admission.sockets:
                break
            await asyncio.sleep(0.01)
        c = await logged_in(srv.port, "Back")
        await c.close()
    finally:
        await srv.stop()


async def test_accept_failing_for_lack_of_descriptors_is_one_log_line_not_a_traceback_each(caplog) -> None:
    srv = await start_server()
    try:
        loop = asyncio.get_running_loop()
        emfile = OSError(errno.EMFILE, "Too many open files")
        context = {"message": "socket.accept() out of system resource", "exception": emfile}
        for _ in range(100):  # what asyncio reports each time accept() fails
            loop.call_exception_handler(context)
        lines = [r for r in caplog.records if "cannot accept connections" in r.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None
        assert "Too many open files" in lines[0].getMessage()
        loop.call_exception_handler({"message": "something else", "exception": ValueError("other")})
        assert any(r.getMessage().startswith("something else") for r in caplog.records)
    finally:
        await srv.stop()
    assert asyncio.get_running_loop().get_exception_handler() is None  # given back on stop
