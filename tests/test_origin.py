"""Who may open a WebSocket: the Origin matrix, against a real server."""

from __future__ import annotations

import socket

import pytest
from rawws import RawClient
from support import start_server

from wschat.cli import parse_args
from wschat.routes import own_origins


async def status(port: int, origin: str | None, path: str = "/") -> tuple[int, bytes]:
    c = await RawClient.connect(port, path, origin=origin)
    body = await c.reader.read(4096) if c.status != 101 else b""
    c.close()
    return c.status, body


@pytest.fixture
async def port():
    srv = await start_server("--allow-origin", "https://Chat.Example.org/")
    try:
        yield srv.port
    finally:
        await srv.stop()


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        (None, 101),  # terminal clients send no Origin
        ("null", 101),  # the page opened from disk
        ("http://127.0.0.1:{port}", 101),  # the page this server serves, by every name it has
        ("http://localhost:{port}", 101),
        ("http://[::1]:{port}", 101),
        ("http://{hostname}:{port}", 101),
        ("HTTP://LOCALHOST:{port}/", 101),
        ("https://chat.example.org", 101),  # --allow-origin
        ("http://evil.example", 403),  # another website
        ("http://127.0.0.1:{other}", 403),  # another port is another origin
        ("https://127.0.0.1:{port}", 403),  # this server does not serve https here
        ("http://chat.example.org", 403),  # the allowed origin, but not its scheme
    ],
)
async def test_origin_matrix(port: int, origin: str | None, expected: int) -> None:
    if origin is not None:
        origin = origin.format(port=port, other=port + 1, hostname=socket.gethostname().lower())
    got, body = await status(port, origin)
    assert got == expected, body
    if expected == 403:
        assert b"--allow-origin" in body


async def test_echo_endpoint_checks_the_origin_too(port: int) -> None:
    assert (await status(port, "http://evil.example", "/echo"))[0] == 403
    assert (await status(port, "null", "/echo"))[0] == 101


async def test_strict_origin_refuses_null_but_keeps_own_origins() -> None:
    srv = await start_server("--strict-origin")
    try:
        got, body = await status(srv.port, "null")
        assert got == 403 and b"--strict-origin" in body
        assert (await status(srv.port, f"http://127.0.0.1:{srv.port}"))[0] == 101
        assert (await status(srv.port, None))[0] == 101
    finally:
        await srv.stop()


async def test_dns_rebinding_a_hostile_name_is_refused_even_when_host_matches(port: int) -> None:
    # After DNS rebinding, the hostile page's Host header and Origin agree with each other.
    c = await RawClient.connect(port, origin=f"http://evil.example:{port}", host="evil.example")
    assert c.status == 403
    c.close()


async def test_the_page_opened_at_a_public_ip_through_a_forwarded_port_may_connect(port: int) -> None:
    # The router forwards 203.0.113.7 to this host, which does not have that address.
    c = await RawClient.connect(port, origin=f"http://203.0.113.7:{port}", host="203.0.113.7")
    assert c.status == 101
    c.close()
    c = await RawClient.connect(port, origin=f"http://[2001:db8::7]:{port}", host="[2001:db8::7]")
    assert c.status == 101
    c.close()


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://203.0.113.7:{port}", "203.0.113.8"),  # another address
        ("http://203.0.113.7:9999", "203.0.113.7"),  # another port
        ("https://203.0.113.7:{port}", "203.0.113.7"),  # https page, plain server
        ("http://evil.example:{port}", "evil.example"),  # a name: could be DNS rebinding
    ],
)
async def test_a_page_at_another_address_than_its_host_header_is_refused(
    port: int, origin: str, host: str
) -> None:
    c = await RawClient.connect(port, origin=origin.format(port=port), host=host)
    assert c.status == 403
    c.close()


async def test_a_refused_origin_does_not_use_a_connection_slot() -> None:
    srv = await start_server("--limit-loopback", "--max-connections-per-ip", "1")
    try:
        for _ in range(3):
            assert (await status(srv.port, "http://evil.example"))[0] == 403
        assert srv.total == 0
        assert (await status(srv.port, None))[0] == 101
    finally:
        await srv.stop()


def test_allow_origin_must_look_like_an_origin(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(["--allow-origin", "chat.example.org"])
    assert info.value.code == 2
    assert "is not an origin; write it as scheme://host[:port]" in capsys.readouterr().err


def test_own_origins_cover_loopback_and_host_names_with_the_scheme_and_port() -> None:
    origins = own_origins("0.0.0.0", 8765, tls=True)
    assert {"https://localhost:8765", "https://127.0.0.1:8765", "https://[::1]:8765"} <= origins
    assert f"https://{socket.gethostname().lower()}:8765" in origins
    assert not any(o.startswith("http:") for o in origins)
    assert "https://localhost" in own_origins("0.0.0.0", 443, tls=True)
