"""TLS: a self-signed server speaks wss:// and https:// on one port; bad certificates stop start-up."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from support import ROOT, Client, ServerProcess
from websockets.asyncio.client import connect

from wschat.tls import TLSSetupError, server_context


def pem_fingerprint(path: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(path.read_text())
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def https_get(url: str, ctx: ssl.SSLContext) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
        return resp.status, resp.read()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("tls")
    srv = ServerProcess("--self-signed", db=str(data / "chat.db")).wait_ready()
    try:
        yield srv, data
    finally:
        srv.stop()


async def test_self_signed_server_chats_over_wss_with_a_client_that_trusts_its_certificate(
    tls_server,
) -> None:
    srv, data = tls_server
    cert = data / "cert.pem"
    assert oct((data / "key.pem").stat().st_mode & 0o777) == "0o600"
    assert any(line.startswith("Starting WebSocket chat server on wss://") for line in srv.banner)
    assert any("Web client: https://" in line for line in srv.banner)
    assert f"  Certificate SHA-256 fingerprint: {pem_fingerprint(cert)}" in srv.banner
    ws = await connect(f"wss://127.0.0.1:{srv.port}/", ssl=trusting(cert), open_timeout=10)
    alice = Client(ws)
    await alice.login("Alice")
    await alice.chat("over TLS")
    assert (await alice.expect("chat"))["message"] == "over TLS"
    ws2 = await connect(f"wss://localhost:{srv.port}/", ssl=trusting(cert), open_timeout=10)  # by name too
    await ws2.close()
    await alice.close()


async def test_https_serves_the_page_and_the_health_check(tls_server) -> None:
    srv, data = tls_server
    ctx = trusting(data / "cert.pem")
    status, body = await asyncio.to_thread(https_get, f"https://127.0.0.1:{srv.port}/healthz", ctx)
    assert status == 200 and json.loads(body)["status"] == "ok"
    if (ROOT / "chat-web-client.html").exists():
        status, body = await asyncio.to_thread(https_get, f"https://127.0.0.1:{srv.port}/", ctx)
        assert status == 200 and b"<html" in body.lower()


async def test_a_client_that_does_not_trust_the_certificate_is_refused(tls_server) -> None:
    srv, _ = tls_server
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect(f"wss://127.0.0.1:{srv.port}/", ssl=ssl.create_default_context(), open_timeout=10)


async def test_plain_ws_against_the_tls_port_fails_without_hurting_the_server(tls_server) -> None:
    srv, data = tls_server
    with pytest.raises(Exception):  # noqa: B017 - whichever way the handshake breaks
        await connect(f"ws://127.0.0.1:{srv.port}/", open_timeout=5)
    status, _ = await asyncio.to_thread(
        https_get, f"https://127.0.0.1:{srv.port}/healthz", trusting(data / "cert.pem")
    )
    assert status == 200


def test_the_certificate_is_kept_across_restarts(tmp_path: Path) -> None:
    first = ServerProcess("--self-signed", db=str(tmp_path / "chat.db")).wait_ready()
    first.stop()
    printed = [line for line in first.banner if "fingerprint" in line]
    second = ServerProcess("--self-signed", db=str(tmp_path / "chat.db")).wait_ready()
    second.stop()
    assert printed and printed == [line for line in second.banner if "fingerprint" in line]
    assert any("Created a self-signed certificate" in line for line in first.banner)
    assert not any("Created" in line for line in second.banner)


def run_server(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "chat-server.py"), "--host", "127.0.0.1", "--port", "0", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    ("setup", "args", "sentence"),
    [
        (None, ["--certfile", "missing.pem"], "The certificate file missing.pem does not exist."),
        (
            "key",
            ["--certfile", "cert.pem", "--keyfile", "nokey.pem"],
            "The key file nokey.pem does not exist.",
        ),
        ("other-key", ["--certfile", "cert.pem", "--keyfile", "other/key.pem"], "does not belong to"),
        ("garbage", ["--certfile", "garbage.pem", "--keyfile", "key.pem"], "holds no PEM certificate"),
        (None, ["--keyfile", "key.pem"], "--keyfile needs --certfile"),
        ("unreadable", ["--certfile", "cert.pem", "--keyfile", "key.pem"], "The certificate file cert.pem "),
    ],
)
def test_bad_certificate_stops_start_up_with_one_sentence_and_exit_2(
    tmp_path: Path, setup: str | None, args: list[str], sentence: str
) -> None:
    if setup:
        names = (["localhost"], ["127.0.0.1"])
        from wschat.tls import self_signed

        self_signed(str(tmp_path), *names)
        if setup == "other-key":
            self_signed(str(tmp_path / "other"), *names)
        if setup == "garbage":
            (tmp_path / "garbage.pem").write_text("not a certificate\n")
        if setup == "unreadable":
            if os.geteuid() == 0:
                (tmp_path / "cert.pem").unlink()
                (tmp_path / "cert.pem").mkdir()  # root reads any file; a folder it cannot read as one
            else:
                (tmp_path / "cert.pem").chmod(0)
    done = run_server(*args, "--db", ":memory:", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert sentence in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_passphrase_protected_key_is_refused_with_a_sentence(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from wschat.tls import self_signed

    cert, _, _ = self_signed(str(tmp_path), ["localhost"], ["127.0.0.1"])
    key = ec.generate_private_key(ec.SECP256R1())
    locked = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    (tmp_path / "locked.pem").write_bytes(locked)
    with pytest.raises(TLSSetupError, match="protected by a passphrase"):
        server_context(cert, str(tmp_path / "locked.pem"))
