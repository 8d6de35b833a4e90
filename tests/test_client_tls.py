"""The terminal client over TLS: --cafile, trust on first use, pinning, and refusals.

The first tests check the client's TLS pieces against a bare TLS socket in a thread (so they can
see exactly which bytes arrive); the rest run the real `chat-client.py` in a pseudo-terminal, or
with piped input, against real `--self-signed` servers. Every client gets its own known-servers
file through WSCHAT_KNOWN_SERVERS, never the user's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT, TIMEOUT, Client, ServerProcess
from terminal import CLIENT, ENV, Term
from websockets.asyncio.client import connect

from wschat import tls
from wschat.trust import KNOWN_ENV, QUESTION, KnownServersError
from wschat.trustio import (
    PinMismatch,
    TrustSetupError,
    cafile_context,
    fetch_fingerprint,
    pinned_context,
    read_known,
    remember,
)

FINGERPRINT_RE = r"[0-9A-F]{2}(?::[0-9A-F]{2}){31}"


# ---------------------------------------------------------------- the TLS pieces, in process


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1, as the server makes them."""
    folder = tmp_path_factory.mktemp("certs")
    cert, key, _ = tls.self_signed(str(folder), ["localhost"], ["127.0.0.1"])
    return Path(cert), Path(key)


class OneTLSConnection:
    """Accepts one connection in a thread, does the server's TLS handshake and records every byte
    of application data that arrives until the client goes away."""

    def __init__(self, cert: Path, key: Path, version: ssl.TLSVersion) -> None:
        self.ctx = tls.server_context(str(cert), str(key))
        self.ctx.maximum_version = version
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handshake_done = False
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(TIMEOUT)
        try:
            conn, _ = self.sock.accept()
            conn.settimeout(TIMEOUT)
            with self.ctx.wrap_socket(conn, server_side=True) as tls_conn:
                self.handshake_done = True
                while data := tls_conn.recv(4096):
                    self.received += data
        except (OSError, ssl.SSLError):
            pass  # the client hung up, during or after the handshake
        finally:
            self.sock.close()

    async def finished(self) -> None:
        await asyncio.to_thread(self.thread.join, TIMEOUT)
        assert not self.thread.is_alive()


async def open_pinned(port: int, pin: str) -> None:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=pinned_context(pin), server_hostname="127.0.0.1"
    )
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_a_pinned_connection_to_another_certificate_fails_before_anything_is_sent(
    certs: tuple[Path, Path], version: ssl.TLSVersion
) -> None:
    cert, key = certs
    right = tls.fingerprint(str(cert))
    wrong = ":".join(["00"] * 32)
    server = OneTLSConnection(cert, key, version)
    with pytest.raises(PinMismatch) as err:
        await open_pinned(server.port, wrong)
    assert err.value.presented == right
    await server.finished()
    assert server.received == b""

    server = OneTLSConnection(cert, key, version)  # the same client code with the right pin gets through
    await open_pinned(server.port, right)
    await server.finished()
    assert server.handshake_done and server.received == b"GET / HTTP/1.1\r\n\r\n"


async def test_fetching_the_fingerprint_reads_the_certificate_and_sends_nothing(
    certs: tuple[Path, Path],
) -> None:
    cert, key = certs
    server = OneTLSConnection(cert, key, ssl.TLSVersion.TLSv1_3)
    assert await fetch_fingerprint("127.0.0.1", server.port) == tls.fingerprint(str(cert))
    await server.finished()
    assert server.handshake_done and server.received == b""


def test_cafile_accepts_the_servers_certificate_in_pem_or_der(
    certs: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, _ = certs
    assert cafile_context(str(cert)).verify_mode == ssl.CERT_REQUIRED
    der = tmp_path / "cert.der"
    der.write_bytes(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    assert cafile_context(str(der)).check_hostname


@pytest.mark.parametrize(
    ("name", "sentence"),
    [
        ("missing.pem", "The --cafile file {path} does not exist."),
        ("folder", "The --cafile file {path} is a folder, not a file."),
        ("key.pem", "The --cafile file {path} holds no certificate; give the server's certificate"),
        ("garbage.pem", "The --cafile file {path} holds no certificate"),
    ],
)
def test_an_unusable_cafile_is_one_sentence(
    certs: tuple[Path, Path], tmp_path: Path, name: str, sentence: str
) -> None:
    _, key = certs
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
    elif name == "key.pem":
        path.write_bytes(key.read_bytes())
    elif name == "garbage.pem":
        path.write_text("not a certificate at all\n")
    with pytest.raises(TrustSetupError) as err:
        cafile_context(str(path))
    assert str(err.value).startswith(sentence.format(path=path))


def test_remembering_keeps_other_entries_and_refuses_to_overwrite_an_unreadable_file(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "known.json")  # the folder is made when needed
    assert read_known(path) == {}
    a, b = ":".join(["0A"] * 32), ":".join(["0B"] * 32)
    remember(path, "a.lan:8765", a)
    remember(path, "b.lan:8765", b)
    assert read_known(path) == {"a.lan:8765": a, "b.lan:8765": b}
    assert sorted(os.listdir(tmp_path / "sub")) == ["known.json"]  # no temporary file left behind
    Path(path).write_text("{broken")
    with pytest.raises(KnownServersError):
        remember(path, "c.lan:8765", a)
    assert Path(path).read_text() == "{broken"


# ---------------------------------------------------------------- the real client, end to end


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    data = tmp_path_factory.mktemp("tls-server")
    srv = ServerProcess("--self-signed", db=str(data / "chat.db")).wait_ready()
    try:
        yield srv, data
    finally:
        srv.stop()


def banner_fingerprint(srv: ServerProcess) -> str:
    for line in srv.banner:
        if m := re.match(r"  Certificate SHA-256 fingerprint: (\S+)$", line):
            return m.group(1)
    raise AssertionError(f"no fingerprint in the banner: {srv.banner}")


def term(terms: list[Term], known: Path, *args: str) -> Term:
    t = Term(*args, env={**ENV, KNOWN_ENV: str(known)})
    terms.append(t)
    return t


async def wss_client(port: int, cert: Path, name: str) -> Client:
    ctx = ssl.create_default_context(cafile=str(cert))
    c = Client(await connect(f"wss://127.0.0.1:{port}/", ssl=ctx, open_timeout=TIMEOUT))
    await c.login(name)
    return c


async def test_with_cafile_the_client_chats_over_wss_without_asking(
    tls_server: tuple[ServerProcess, Path], terms: list[Term], tmp_path: Path
) -> None:
    srv, data = tls_server
    bob = await wss_client(srv.port, data / "cert.pem", "bob")
    known = tmp_path / "known.json"
    t = term(terms, known, f"wss://127.0.0.1:{srv.port}", "--cafile", str(data / "cert.pem"), "-u", "alice")
    await t.expect("Welcome, alice!")
    await t.expect("#general> ")
    t.type("hello over TLS")
    got = await bob.expect("chat", username="alice")
    assert got["message"] == "hello over TLS"
    await bob.chat("hi alice, encrypted")
    await t.expect("bob: hi alice, encrypted")
    t.type("/quit")
    assert await t.exit_status() == 0
    assert QUESTION.strip() not in t.output()
    assert not known.exists()  # --cafile decides; nothing to remember
    await bob.close()


async def test_an_unknown_certificate_shows_the_banners_fingerprint_and_a_yes_is_remembered(
    tls_server: tuple[ServerProcess, Path], terms: list[Term], tmp_path: Path
) -> None:
    srv, _ = tls_server
    known = tmp_path / "known.json"
    address = f"wss://127.0.0.1:{srv.port}"
    t = term(terms, known, address, "--username", "alice")
    await t.expect("Its SHA-256 fingerprint is:")
    shown = (await t.expect_re(FINGERPRINT_RE)).group(0)
    assert shown == banner_fingerprint(srv)
    await t.expect(QUESTION)
    assert "Welcome, alice" not in t.output()  # not logged in before the answer
    t.type("y")
    await t.expect(f"Trusting the certificate of 127.0.0.1:{srv.port} from now on (remembered in {known})")
    await t.expect("Welcome, alice!")
    t.type("/quit")
    assert await t.exit_status() == 0
    entries = json.loads(known.read_text())["servers"]
    assert entries[f"127.0.0.1:{srv.port}"]["sha256"] == shown

    again = term(terms, known, address, "--username", "carol")  # the second time: no question
    await again.expect("Welcome, carol!")
    again.type("/quit")
    assert await again.exit_status() == 0
    assert QUESTION.strip() not in again.output()
    assert "fingerprint" not in again.output()


async def test_answering_no_exits_without_connecting(
    tls_server: tuple[ServerProcess, Path], terms: list[Term], tmp_path: Path
) -> None:
    srv, _ = tls_server
    known = tmp_path / "known.json"
    t = term(terms, known, f"wss://127.0.0.1:{srv.port}", "--username", "alice")
    await t.expect(QUESTION)
    t.type("n")
    await t.expect(f"Not connecting: you did not trust the certificate of 127.0.0.1:{srv.port}.")
    assert await t.exit_status() == 1
    assert "Welcome, alice" not in t.output()
    assert not known.exists()


async def test_a_changed_certificate_is_refused_loudly_and_never_asked_about(
    tls_server: tuple[ServerProcess, Path], terms: list[Term], tmp_path: Path
) -> None:
    first, _ = tls_server
    other = ServerProcess("--self-signed", db=str(tmp_path / "other" / "chat.db")).wait_ready()
    try:
        key = f"127.0.0.1:{other.port}"
        known = tmp_path / "known.json"  # this address was trusted with the first server's certificate
        old, new = banner_fingerprint(first), banner_fingerprint(other)
        known.write_text(json.dumps({"servers": {key: {"sha256": old}}}))
        before = known.read_text()
        t = term(terms, known, f"wss://{key}", "--username", "alice")
        await t.expect(f"WARNING: THE CERTIFICATE OF {key} HAS CHANGED!")
        await t.expect(f"Trusted:   {old}")
        await t.expect(f"Presented: {new}")
        await t.expect(f'remove the entry "{key}" from {known}')
        assert await t.exit_status() == 1
        assert QUESTION.strip() not in t.output() and "Welcome, alice" not in t.output()
        assert known.read_text() == before
    finally:
        other.stop()


async def run_piped(args: list[str], known: Path, stdin: str = "hi\n") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        CLIENT,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
        env={**os.environ, "PYTHONUNBUFFERED": "1", KNOWN_ENV: str(known)},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_piped_input_refuses_an_unknown_certificate_and_says_what_to_do(
    tls_server: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    srv, _ = tls_server
    known = tmp_path / "known.json"
    status, out, err = await run_piped([f"wss://127.0.0.1:{srv.port}", "-u", "bot"], known)
    assert status == 1, err
    assert f"Not connecting: the certificate of 127.0.0.1:{srv.port} is not trusted" in err
    assert banner_fingerprint(srv) in err
    assert "use --cafile with the server's certificate" in err and "connect once interactively" in err
    assert "Trust this certificate" not in out and "Traceback" not in err
    assert not known.exists()


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["--cafile", "no-such.pem"], "The --cafile file no-such.pem does not exist."),
        (["--cafile", "README.md"], "The --cafile file README.md holds no certificate"),
        (["--cafile", "{cert}", "--no-tls"], "--cafile is for TLS servers: write the address as wss://"),
    ],
)
async def test_bad_cafile_use_exits_two_with_one_sentence(
    tls_server: tuple[ServerProcess, Path], tmp_path: Path, args: list[str], sentence: str
) -> None:
    srv, data = tls_server
    address = f"wss://127.0.0.1:{srv.port}"
    if "--no-tls" in args:
        args, address = [a for a in args if a != "--no-tls"], f"127.0.0.1:{srv.port}"
    args = [a.format(cert=data / "cert.pem") for a in args]
    status, _, err = await run_piped([address, "-u", "bot", *args], tmp_path / "known.json")
    assert status == 2
    assert err.startswith(sentence) and len(err.strip().splitlines()) == 1, err


async def test_reconnects_keep_the_trust_without_asking_and_a_new_certificate_is_refused(
    terms: list[Term], tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    first_data, second_data = tmp_path / "first" / "chat.db", tmp_path / "second" / "chat.db"
    proc = ServerProcess("--self-signed", db=str(first_data), port=port).wait_ready()
    try:
        known = tmp_path / "known.json"
        t = term(terms, known, f"wss://127.0.0.1:{port}", "--username", "alice")
        await t.expect(QUESTION)
        t.type("yes")
        await t.expect("Welcome, alice!")

        proc.stop()  # the same server again, with the same certificate: back without a question
        await t.expect("Connection lost - reconnecting in")
        proc = ServerProcess("--self-signed", db=str(first_data), port=port).wait_ready()
        await t.expect("Reconnected as alice.", timeout=20)
        assert t.count("Its SHA-256 fingerprint is:") == 1  # asked once, at the start

        proc.stop()  # another certificate at the same address: refused, not asked about
        await t.expect("Connection lost - reconnecting in")
        proc = ServerProcess("--self-signed", db=str(second_data), port=port).wait_ready()
        await t.expect(f"WARNING: THE CERTIFICATE OF 127.0.0.1:{port} HAS CHANGED!", timeout=20)
        assert await t.exit_status() == 1
        assert t.count("Its SHA-256 fingerprint is:") == 1  # asked once, at the start
    finally:
        proc.stop()


async def test_ws_to_a_tls_server_is_final_and_says_use_wss(
    tls_server: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    srv, _ = tls_server
    address = f"127.0.0.1:{srv.port}"
    status, out, err = await run_piped(
        [f"ws://{address}", "-u", "bot", "--flush-timeout", "20"], tmp_path / "k.json"
    )
    assert status == 2
    assert f"{address} only speaks TLS; use wss://{address} instead of ws://." in err
    assert "reconnecting" not in out
