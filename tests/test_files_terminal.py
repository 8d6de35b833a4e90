"""File sharing from the terminal client in a pty: /upload with progress, file lines, /download."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from support import logged_in
from terminal import Term
from test_client_e2e import login_term
from test_files_e2e import upload
from test_server_e2e import get

from wschat.server import ChatServer


async def test_upload_from_the_terminal_reaches_a_websocket_client_byte_for_byte(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    bob = await logged_in(server.port, "bob")
    data = os.urandom(700_000)
    src = tmp_path / "report final.bin"
    src.write_bytes(data)
    t = await login_term(terms, server.port, "alice")
    t.type(f"/upload {src}")
    await t.expect("Uploading report final.bin (683.6 KB) to #general")
    await t.expect("Uploaded report final.bin to #general.")
    got = await bob.expect("chat", username="alice")
    assert (
        got["file"]["name"] == "report final.bin"
        and got["file"]["sha256"] == hashlib.sha256(data).hexdigest()
    )
    assert (await get(server.port, got["file"]["url"]))[2] == data
    await t.expect(f"ID {got['file']['id'][:8]}")  # its own message, as a file line
    assert "↑ report final.bin" in t.log.getvalue()  # the progress bar on the prompt line


async def test_a_shared_file_shows_as_a_line_and_downloads_into_a_folder(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    bob = await logged_in(server.port, "bob")
    t = await login_term(terms, server.port, "alice")
    data = b"%PDF-1.4 " + os.urandom(150_000)
    file = (await upload(bob, "minutes.pdf", data))["file"]
    short = file["id"][:8]
    await t.expect(f"📎 minutes.pdf (146.5 KB, application/pdf) · ID {short} · /download {short}")
    t.type(f"/download {short} {tmp_path}")
    await t.expect(f"Saved minutes.pdf to {tmp_path / 'minutes.pdf'}")
    assert (tmp_path / "minutes.pdf").read_bytes() == data
    t.type(f"/download {short} {tmp_path}")  # again: a new name, the first is kept
    await t.expect(f"Saved minutes.pdf to {tmp_path / 'minutes (1).pdf'}")
    t.type("/download zzzz")
    await t.expect("There is no file with the ID zzzz in this chat.")


async def test_uploading_a_missing_file_says_so(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    t = await login_term(terms, server.port, "alice")
    t.type(f"/upload {tmp_path / 'nope.txt'}")
    await t.expect("Cannot share")
    await t.expect("nope.txt")


async def test_upload_to_a_person_is_a_private_file(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    bob = await logged_in(server.port, "Ann Lee")
    src = tmp_path / "for-ann.txt"
    src.write_bytes(b"just for you\n")
    t = await login_term(terms, server.port, "alice")
    t.type(f'/upload "@Ann Lee" {src}')
    await t.expect("Uploaded for-ann.txt to Ann Lee.")
    got = await bob.expect("private", username="alice")
    assert got["file"]["name"] == "for-ann.txt" and got["to"] == "Ann Lee"
    await t.expect("📎 for-ann.txt (13 B, text/plain")  # shown on the sender's side too
