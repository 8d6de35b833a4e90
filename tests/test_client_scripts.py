"""End to end: the terminal client run by a script (piped input), and addresses that can never work.

The real `chat-client.py` in a subprocess with pipes for stdin and stdout, against a real server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from support import ROOT, logged_in
from terminal import CLIENT
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from wschat.address import parse_address
from wschat.reach import final_failure
from wschat.server import ChatServer


async def run(args: list[str], stdin: str = "hi\n", flush: str = "20") -> tuple[int, str, str]:
    """The client with piped input; a generous --flush-timeout so that giving up early shows."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        CLIENT,
        *args,
        "--flush-timeout",
        flush,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
        env={**os.environ, "PYTHONUNBUFFERED": "1", "WSCHAT_KNOWN_SERVERS": os.devnull},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_piped_mode_prints_what_happens_but_no_banner_hints_or_earlier_history(
    server: ChatServer,
) -> None:
    bob = await logged_in(server.port, "bob")
    for i in range(3):
        await bob.chat(f"earlier {i}")
        await bob.expect("chat", message=f"earlier {i}")
    status, out, err = await run([f"127.0.0.1:{server.port}", "--username", "bot"], "hi\n")
    assert status == 0, err
    assert "bot: hi" in out  # what the script did, confirmed by the server
    for furniture in ("Welcome to WebSocket Chat", "=====", "Type a message", "Connecting to", "earlier 0"):
        assert furniture not in out, furniture
    await bob.close()


async def test_quiet_piped_mode_prints_nothing_when_all_goes_well(server: ChatServer) -> None:
    bob = await logged_in(server.port, "bob")
    status, out, err = await run([f"127.0.0.1:{server.port}", "--username", "bot", "--quiet"], "one\ntwo\n")
    assert status == 0, err
    assert out == "" and err == ""
    assert [(await bob.expect("chat", username="bot"))["message"] for _ in range(2)] == ["one", "two"]
    await bob.close()


async def test_piped_input_without_a_name_is_an_error_not_a_name(server: ChatServer) -> None:
    status, out, err = await run([f"127.0.0.1:{server.port}"], "hi\nsecond line\n")
    assert status == 2
    assert "No name given: with piped input, give it with --username" in err
    assert out == ""


async def test_piped_input_without_an_address_is_an_error_not_an_address() -> None:
    status, out, err = await run(["--username", "bot"], "localhost:1\nhi\n")
    assert status == 2
    assert "No server address given: with piped input, give it on the command line" in err
    assert out == ""


async def test_a_path_the_server_does_not_serve_is_final_not_retried(server: ChatServer) -> None:
    status, out, err = await run([f"127.0.0.1:{server.port}/demo", "--username", "bot"])
    assert status == 2
    assert f"Not connecting to ws://127.0.0.1:{server.port}/demo: the server answered HTTP 404" in err
    assert f"Check the address: the chat is at ws://127.0.0.1:{server.port}/." in err
    assert "reconnecting" not in out


async def test_wss_to_a_server_without_tls_is_final_and_says_use_ws(server: ChatServer) -> None:
    status, out, err = await run([f"wss://127.0.0.1:{server.port}", "--username", "bot"])
    assert status == 2
    assert f"127.0.0.1:{server.port} has no TLS; use ws://127.0.0.1:{server.port} instead of wss://." in err
    assert "reconnecting" not in out


async def test_too_many_requests_is_worth_a_retry_but_other_4xx_are_final() -> None:
    address = parse_address("127.0.0.1:1")

    def status(code: int) -> InvalidStatus:
        return InvalidStatus(Response(code, "", Headers(), b""))

    assert await final_failure(status(429), address, "127.0.0.1", 1) is None
    assert await final_failure(status(503), address, "127.0.0.1", 1) is None
    refused = await final_failure(status(403), address, "127.0.0.1", 1)
    assert refused is not None and refused.status == 2
    assert await final_failure(ConnectionRefusedError(), address, "127.0.0.1", 1) is None


def test_help_documents_the_exit_statuses_and_quiet() -> None:
    text = subprocess.run(
        [sys.executable, CLIENT, "--help"], capture_output=True, text=True, cwd=Path(ROOT), check=True
    ).stdout
    assert "--quiet" in text and "HTTP 4xx" in text and "wrong one of ws:// and" in text
