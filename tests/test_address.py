"""Unit tests of wschat.address: address forms, refusals, why a connection failed."""

from __future__ import annotations

import errno

import pytest

from wschat import address as c
from wschat.address import AddressError, parse_address


@pytest.mark.parametrize(
    ("typed", "url", "display"),
    [
        ("", "ws://localhost:8765/", "localhost:8765"),
        ("   ", "ws://localhost:8765/", "localhost:8765"),
        ("192.168.1.100:8765", "ws://192.168.1.100:8765/", "192.168.1.100:8765"),
        ("chat.lan", "ws://chat.lan:8765/", "chat.lan:8765"),
        ("ws://10.0.0.5:9000", "ws://10.0.0.5:9000/", "10.0.0.5:9000"),
        ("WS://Host:9000/", "ws://Host:9000/", "Host:9000"),
        ("wss://chat.example.org", "wss://chat.example.org:443/", "chat.example.org:443"),
        ("wss://chat.example.org:8443/chat", "wss://chat.example.org:8443/chat", "chat.example.org:8443"),
        ("http://192.168.1.100:8765/", "ws://192.168.1.100:8765/", "192.168.1.100:8765"),
        ("https://chat.example.org/", "wss://chat.example.org:443/", "chat.example.org:443"),
        ("[::1]:8765", "ws://[::1]:8765/", "[::1]:8765"),
        ("[::1]", "ws://[::1]:8765/", "[::1]:8765"),
        ("::1", "ws://[::1]:8765/", "[::1]:8765"),
        ("ws://[fe80::1%eth0]:8765", "ws://[fe80::1%eth0]:8765/", "[fe80::1%eth0]:8765"),
    ],
)
def test_address_forms_become_websocket_urls(typed: str, url: str, display: str) -> None:
    address = parse_address(typed)
    assert (address.url, address.display) == (url, display)


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("ftp://host", "not a chat address"),
        ("host:0", "from 1 to 65535"),
        ("host:70000", "from 1 to 65535"),
        ("host:http", "from 1 to 65535"),
        ("host:", "from 1 to 65535"),
        ("bad host", "not a server address"),
        ("hö$t:1", "not a valid host name"),
        ("[::1", "not a valid IPv6 address"),
        ("[zz]:1", "not a valid IPv6 address"),
        ("ws://", "not a server address"),
    ],
)
def test_bad_addresses_are_refused_with_a_reason(typed: str, says: str) -> None:
    with pytest.raises(AddressError, match=says):
        parse_address(typed)


def test_connection_errors_are_plain_words() -> None:
    assert c.os_error_reason(errno.ECONNREFUSED, "[Errno 111] Connect call failed") == "connection refused"
    assert c.os_error_reason(errno.EHOSTUNREACH, "") == "no route to host"
    multi = "Multiple exceptions: [Errno 111] Connect call failed ('::1', 1), [Errno 111] Connect call failed"
    assert c.os_error_reason(None, multi) == "connection refused"
    assert c.os_error_reason(None, "Something Odd.") == "something odd"
