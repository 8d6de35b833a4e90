"""The start-up banner says what is true: where the server is reachable, the web client's address,
the terminal command, and how to open up a server that only this machine can reach."""

from __future__ import annotations

import asyncio

from support import Client, ServerProcess, logged_in
from websockets.asyncio.client import connect

from wschat.banner import RULE, banner, network_addresses


def test_a_loopback_host_says_this_machine_only_and_how_to_open_it_up() -> None:
    lines = banner("127.0.0.1", 8791).splitlines()
    assert lines[:3] == [
        "Starting WebSocket chat server on ws://127.0.0.1:8791",
        RULE,
        "Server is accessible at:",
    ]
    assert "  Web client: http://127.0.0.1:8791/" in lines
    assert "  Terminal client: python chat-client.py 127.0.0.1:8791" in lines
    assert lines[-2] == RULE
    assert "this machine only" in lines[-1] and "--host 0.0.0.0" in lines[-1]
    assert not any("Share the network address" in line for line in lines)


def test_every_interface_lists_the_network_addresses_and_localhost_for_this_machine() -> None:
    lines = banner("0.0.0.0", 8791).splitlines()
    assert lines[3] == "  ws://localhost:8791 (local only)"
    network = network_addresses()
    assert [line for line in lines if line.endswith("(network)")] == [
        f"  ws://{ip}:8791 (network)" for ip in network
    ]
    if network:
        assert f"  Web client: http://{network[0]}:8791/" in lines
        assert "  On this machine: http://localhost:8791/" in lines
        assert f"  Terminal client: python chat-client.py {network[0]}:8791" in lines
        assert lines[-2:] == [RULE, "Share the network address with other users to connect!"]


def test_ipv6_addresses_are_in_brackets() -> None:
    lines = banner("::", 8791, dual_stack=True).splitlines()
    assert lines[0] == "Starting WebSocket chat server on ws://[::]:8791"
    assert not any(":::" in line for line in lines)
    only_v6 = banner("::", 8791, dual_stack=False).splitlines()
    assert not any(f"ws://{ip}:8791" in line for ip in network_addresses() for line in only_v6)
    local = banner("::1", 8791).splitlines()
    assert "  Terminal client: python chat-client.py [::1]:8791" in local


def test_tls_shows_wss_https_and_the_fingerprint() -> None:
    lines = banner("192.0.2.7", 443, tls=True, fingerprint="AB:CD").splitlines()
    assert lines[0] == "Starting WebSocket chat server on wss://192.0.2.7:443"
    assert "  Web client: https://192.0.2.7:443/" in lines
    assert "  Terminal client: python chat-client.py wss://192.0.2.7:443" in lines
    assert "  Certificate SHA-256 fingerprint: AB:CD" in lines


async def test_host_double_colon_listens_on_ipv4_and_ipv6_and_says_so() -> None:
    srv = ServerProcess("--host", "::").wait_ready()
    try:
        assert srv.banner[0] == f"Starting WebSocket chat server on ws://[::]:{srv.port}"
        v4 = await logged_in(srv.port, "Four")
        v6 = Client(await connect(f"ws://[::1]:{srv.port}/", open_timeout=10))
        await v6.login("Six")
        await v6.chat("over IPv6")
        assert (await v4.expect("chat"))["message"] == "over IPv6"
        await asyncio.gather(v4.close(), v6.close())
        srv.stop()
        log = srv.stderr_text()  # complete once the process has ended
        assert "connected from 127.0.0.1" in log and "connected from ::1" in log
    finally:
        srv.stop()
