"""Unit tests of the small pure parts of wschat.client: error sentences and command-line options."""

from __future__ import annotations

import socket
import ssl

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.http11 import Response

from wschat.client import connect_error, parse_args


def test_connection_failures_are_told_in_plain_words() -> None:
    assert connect_error(ConnectionRefusedError(111, "Connect call failed")) == "connection refused"
    assert connect_error(TimeoutError()) == "timed out"
    assert connect_error(socket.gaierror(-2, "Name or service not known")) == "unknown host name"
    assert connect_error(InvalidMessage("did not receive a valid HTTP response")) == (
        "it did not answer as a WebSocket chat server"
    )
    full = InvalidStatus(Response(429, "Too Many Requests", Headers(), b"Too many connections from you.\n"))
    assert connect_error(full) == "the server answered HTTP 429 (Too many connections from you.)"


def test_tls_failures_hint_at_ws_when_wss_was_used() -> None:
    assert connect_error(ConnectionResetError(), secure=True).endswith("use ws:// instead of wss://)")
    cert = ssl.SSLCertVerificationError(1, "verify failed")
    cert.verify_message = "self-signed certificate"
    assert connect_error(cert, secure=True) == "its TLS certificate is not trusted (self-signed certificate)"


def test_options_normalise_rooms_and_refuse_bad_ones(capsys: pytest.CaptureFixture[str]) -> None:
    opts = parse_args(["host:1", "--username", "ann", "--room", "#Dev", "--room", "dev", "--room", "ops"])
    assert (opts.address, opts.username, opts.room) == ("host:1", "ann", ["dev", "ops"])
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--room", "no spaces"])
    assert exit_.value.code == 2
    assert "--room no spaces: Room names are 1-32 characters" in capsys.readouterr().err
