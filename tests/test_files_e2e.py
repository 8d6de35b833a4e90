"""File sharing end to end: uploads over the chat WebSocket, downloads over HTTP, on a real server."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support import Client, ServerProcess, logged_in, start_server
from test_server_e2e import get

from wschat.server import ChatServer


def chunk_frame(upload_id: str, data: bytes) -> bytes:
    uid = upload_id.encode()
    return bytes([len(uid)]) + uid + data


async def begin(c: Client, name: str, data: bytes, **target: Any) -> dict[str, Any]:
    """upload_begin; returns the answer (upload_ready, or an error)."""
    target = target or {"room": "general"}
    sha = hashlib.sha256(data).hexdigest()
    await c.send({"type": "upload_begin", "name": name, "size": len(data), "sha256": sha, **target})
    while True:
        frame = await c.recv()
        if frame["type"] in ("upload_ready", "error", "upload_done"):
            return frame


async def upload(c: Client, name: str, data: bytes, **target: Any) -> dict[str, Any]:
    """A whole upload: returns upload_done (or the error that ended it)."""
    ready = await begin(c, name, data, **target)
    if ready["type"] != "upload_ready":
        return ready
    step = ready["chunk_size"]
    for at in range(ready["offset"], len(data), step):
        await c.send(chunk_frame(ready["upload_id"], data[at : at + step]))
    while True:
        frame = await c.recv()
        if frame["type"] in ("upload_done", "error"):
            return frame


def png(width: int = 64, height: int = 48, exif: Image.Exif | None = None, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format=fmt, **({"exif": exif} if exif else {}))
    return out.getvalue()


@pytest.fixture
async def media_server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    server = await start_server("--media-dir", str(tmp_path / "files"), "--max-file-mb", "2")
    try:
        yield server
    finally:
        await server.stop()


async def test_a_file_round_trip_posts_a_message_and_serves_the_same_bytes(media_server: ChatServer) -> None:
    alice = await logged_in(media_server.port, "Alice")
    bob = await logged_in(media_server.port, "Bob")
    data = os.urandom(300_000)
    done = await upload(alice, "notes.bin", data, room="general", client_msg_id="f1")
    assert done["type"] == "upload_done", done
    file = done["file"]
    assert file["size"] == len(data) and file["name"] == "notes.bin" and file["url"] == f"/media/{file['id']}"
    assert hashlib.sha256(data).hexdigest() not in file["url"]  # the capability is not the hash
    seen = await bob.expect("chat", username="Alice")
    assert seen["file"] == file and "notes.bin" in seen["message"]  # a seed client reads the message
    await alice.expect("ack", client_msg_id="f1")
    status, headers, body = await get(media_server.port, file["url"])
    assert status == 200 and body == data
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "sandbox; default-src 'none'"


async def test_a_file_sent_twice_is_stored_once_and_its_second_upload_sends_no_bytes(
    media_server: ChatServer, tmp_path: Path
) -> None:
    alice = await logged_in(media_server.port, "Alice")
    data = os.urandom(5000)
    first = await upload(alice, "a.bin", data)
    again = await begin(alice, "b.bin", data)
    assert again["type"] == "upload_done" and again["file"]["id"] != first["file"]["id"]
    blobs = [p for p in (tmp_path / "files" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1


async def test_an_image_is_inline_with_a_thumbnail_without_exif_and_oriented(
    media_server: ChatServer,
) -> None:
    alice = await logged_in(media_server.port, "Alice")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° to show
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 0.0)}  # GPS latitude
    data = png(64, 48, exif, fmt="JPEG")
    done = await upload(alice, "photo.jpg", data)
    file = done["file"]
    assert file["mime"] == "image/jpeg" and (file["width"], file["height"]) == (48, 64)
    status, headers, body = await get(media_server.port, file["url"])
    assert status == 200 and body == data and headers["Content-Type"] == "image/jpeg"
    assert headers["Content-Disposition"].startswith("inline;")
    status, headers, thumb = await get(media_server.port, file["thumb_url"])
    assert status == 200 and headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    im = Image.open(io.BytesIO(thumb))
    assert im.size == (48, 64) and not im.getexif()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        ("page.png", b"<!doctype html><html><script>alert(1)</script></html>" * 3),
        ("fake.gif", b"GIF89a<html><script>alert(1)</script></html>" * 3),
    ],
)
async def test_svg_html_and_polyglots_are_never_served_inline(
    media_server: ChatServer, name: str, data: bytes
) -> None:
    alice = await logged_in(media_server.port, "Alice")
    file = (await upload(alice, name, data))["file"]
    assert file["mime"] not in ("image/png", "image/gif", "image/svg+xml") and "thumb_url" not in file
    status, headers, body = await get(media_server.port, file["url"])
    assert status == 200 and body == data
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_the_name_is_encoded_per_rfc_8187(media_server: ChatServer) -> None:
    alice = await logged_in(media_server.port, "Alice")
    file = (await upload(alice, 'résumé "final".pdf', b"%PDF-1.4 hello"))["file"]
    _, headers, _ = await get(media_server.port, file["url"])
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"resume _final_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
    )


async def test_a_wrong_sha256_is_refused_and_nothing_is_posted(media_server: ChatServer) -> None:
    alice = await logged_in(media_server.port, "Alice")
    data = os.urandom(1000)
    await alice.send(
        {"type": "upload_begin", "name": "x.bin", "size": 1000, "sha256": "0" * 64, "room": "general"}
    )
    ready = await alice.expect("upload_ready")
    await alice.send(chunk_frame(ready["upload_id"], data))
    err = await alice.expect("error")
    assert err["code"] == "hash_mismatch" and err["upload_id"] == ready["upload_id"]
    assert not [f for f in alice.drain() if f.get("type") == "chat"]


async def test_a_file_over_the_limit_is_refused_before_its_bytes(media_server: ChatServer) -> None:
    alice = await logged_in(media_server.port, "Alice")
    await alice.send(
        {
            "type": "upload_begin",
            "name": "big.iso",
            "size": 3 * 1024 * 1024,
            "sha256": "a" * 64,
            "room": "general",
        }
    )
    err = await alice.expect("error")
    assert err["code"] == "file_too_large" and "big.iso" in err["message"]


async def test_the_daily_quota_refuses_with_a_sentence(tmp_path: Path) -> None:
    server = await start_server("--media-dir", str(tmp_path / "f"), "--daily-upload-mb", "0.01")
    try:
        alice = await logged_in(server.port, "Alice")
        assert (await upload(alice, "a.bin", os.urandom(8000)))["type"] == "upload_done"
        err = await begin(alice, "b.bin", os.urandom(8000))
        assert err["code"] == "upload_quota" and "tomorrow" in err["message"]
    finally:
        await server.stop()


async def test_the_media_quota_evicts_the_oldest_file_then_refuses(tmp_path: Path) -> None:
    server = await start_server("--media-dir", str(tmp_path / "f"), "--media-quota", "0.02")  # ~20 KB
    try:
        alice = await logged_in(server.port, "Alice")
        # private files: no room history keeps them
        first = (await upload(alice, "1.bin", os.urandom(12_000), to="Alice"))["file"]
        second = (await upload(alice, "2.bin", os.urandom(12_000), to="Alice"))["file"]
        assert (await get(server.port, first["url"]))[0] == 410
        assert (await get(server.port, second["url"]))[0] == 200
        err = await begin(alice, "3.bin", os.urandom(30_000), to="Alice")
        assert err["code"] == "media_full"  # refused before its bytes
    finally:
        await server.stop()


async def test_an_interrupted_upload_resumes_from_the_offset(media_server: ChatServer) -> None:
    data = os.urandom(200_000)
    alice = await logged_in(media_server.port, "Alice")
    ready = await begin(alice, "movie.bin", data)
    half = ready["chunk_size"]
    await alice.send(chunk_frame(ready["upload_id"], data[:half]))
    await alice.send({"type": "list_rooms"})  # answered after the piece before it is written
    await alice.expect("rooms")
    await alice.close()
    alice = await logged_in(media_server.port, "Alice")
    again = await begin(alice, "movie.bin", data)
    assert again["type"] == "upload_ready" and again["offset"] == half
    for at in range(half, len(data), again["chunk_size"]):
        await alice.send(chunk_frame(again["upload_id"], data[at : at + again["chunk_size"]]))
    done = await alice.expect("upload_done")
    assert (await get(media_server.port, done["file"]["url"]))[2] == data


async def test_a_private_file_reaches_only_the_two_ends(media_server: ChatServer) -> None:
    alice = await logged_in(media_server.port, "Alice")
    bob = await logged_in(media_server.port, "Bob")
    carol = await logged_in(media_server.port, "Carol")
    await upload(alice, "secret.txt", b"for bob only\n", to="Bob")
    frame = await bob.expect("private", username="Alice")
    assert frame["file"]["name"] == "secret.txt"
    await carol.send({"type": "list_rooms"})
    await carol.expect("rooms")
    assert not [f for f in carol.drain() if "file" in f]


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says width × height (its pixel data is a small image's): a bomb's header."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, format="PNG")
    data = bytearray(out.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")  # IHDR width, height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # its CRC
    return bytes(data)


async def test_a_decompression_bomb_is_refused(media_server: ChatServer) -> None:
    alice = await logged_in(media_server.port, "Alice")
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, format="PNG")  # 400 Mpixels in a few KB
    err = await upload(alice, "bomb.png", out.getvalue())
    assert err["type"] == "error" and err["code"] == "file_too_large" and "pixels" in err["message"]


async def test_a_bomb_under_pillows_own_limit_is_refused_without_the_servers_memory_jumping(
    tmp_path: Path,
) -> None:
    server = await asyncio.to_thread(ServerProcess("--media-dir", str(tmp_path / "f")).wait_ready)
    try:
        alice = await logged_in(server.port, "Alice")
        before = _rss_kb(server.proc.pid)
        # 12,000 × 12,000 RGB: 144 Mpixels (under Pillow's 179 M bomb error), 430 MB decoded
        err = await upload(alice, "bomb.png", png_claiming(12_000, 12_000))
        assert err["code"] == "file_too_large" and "12000×12000" in err["message"]
        assert (_rss_kb(server.proc.pid) - before) / 1024 < 50
        assert (await upload(alice, "fine.png", png(300, 200)))["type"] == "upload_done"  # still serving
    finally:
        await server.astop()


async def test_unknown_media_ids_are_404_with_safe_headers(media_server: ChatServer) -> None:
    status, headers, _ = await get(media_server.port, "/media/nope")
    assert status == 404 and headers["X-Content-Type-Options"] == "nosniff"
    assert (await get(media_server.port, "/media/../../etc/passwd"))[0] == 404


async def test_binary_frames_that_are_no_upload_are_refused_and_the_connection_stays(
    media_server: ChatServer,
) -> None:
    alice = await logged_in(media_server.port, "Alice")
    await alice.send(chunk_frame("nosuchupload", b"xx"))
    assert (await alice.expect("error"))["code"] == "binary_unsupported"
    await alice.chat("still here")
    await alice.expect("chat", message="still here")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _slow_download(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4096)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def test_twenty_parallel_downloads_of_a_25_mb_file_keep_memory_bounded(tmp_path: Path) -> None:
    server = await asyncio.to_thread(ServerProcess("--media-dir", str(tmp_path / "f")).wait_ready)
    try:
        data = os.urandom(25 * 1024 * 1024)
        alice = await logged_in(server.port, "Alice")
        url = (await upload(alice, "big.bin", data, to="Alice"))["file"]["url"]
        before = _rss_kb(server.proc.pid)
        # twenty readers that do not read: everything the server would buffer for them stays there
        conns = [await _slow_download(server.port, url) for _ in range(20)]
        await alice.send({"type": "list_rooms"})
        await alice.expect("rooms")
        grown_mb = (_rss_kb(server.proc.pid) - before) / 1024
        assert grown_mb < 50, f"memory grew {grown_mb:.0f} MB for 20 downloads of 25 MB"
        for reader, writer in conns[:2]:  # and they do get the whole file
            got = bytearray()
            while chunk := await reader.read(1 << 20):
                got += chunk
            assert bytes(got) == data
            writer.close()
        for _, writer in conns[2:]:
            writer.close()
    finally:
        await server.astop()


async def test_a_file_message_keeps_its_file_in_the_history_after_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    server = await start_server(db=db)  # media under tmp_path/files, next to the database
    try:
        alice = await logged_in(server.port, "Alice")
        file = (await upload(alice, "plan.txt", b"the plan\n"))["file"]
        posted = await alice.expect("chat", username="Alice")
        await alice.send({"type": "react", "room": "general", "target": posted["seq"], "key": "👍"})
        await alice.expect("reaction")  # stored: SQLite keeps the file next to rich messaging's columns
    finally:
        await server.stop()
    assert (tmp_path / "files" / "ids" / f"{file['id']}.json").exists()
    server = await start_server(db=db)
    try:
        bob = await Client.open(server.port)
        await bob.send({"type": "set_username", "username": "Bob"})
        history = await bob.expect("history", room="general")
        assert [m["file"] for m in history["messages"] if "file" in m] == [file]
        assert history["messages"][-1]["reactions"] == {"👍": ["Alice"]}
        await bob.send({"type": "search", "query": "plan"})
        (found,) = (await bob.expect("search_results"))["results"]
        assert found["file"] == file  # read through wschat.store_rich's own queries
        assert (await get(server.port, file["url"]))[2] == b"the plan\n"
    finally:
        await server.stop()


async def test_two_server_processes_sharing_one_media_dir_serve_each_others_files(tmp_path: Path) -> None:
    shared = str(tmp_path / "shared-files")
    one = await asyncio.to_thread(ServerProcess("--media-dir", shared).wait_ready)
    two = await asyncio.to_thread(ServerProcess("--media-dir", shared).wait_ready)
    try:
        alice = await logged_in(one.port, "Alice")
        bob = await logged_in(two.port, "Bob")
        data = os.urandom(50_000)
        file = (await upload(alice, "a.bin", data, to="Alice"))["file"]
        assert (await get(two.port, file["url"]))[2] == data  # served by the other process
        again = await begin(bob, "same.bin", data, to="Bob")  # stored once for both
        assert again["type"] == "upload_done"
        assert (await get(one.port, again["file"]["url"]))[2] == data
    finally:
        await one.astop()
        await two.astop()


async def test_a_private_file_between_accounts_is_stored_and_reaches_the_recipient_offline(
    media_server: ChatServer,
) -> None:
    async def account(kind: str, name: str) -> Client:
        c = await Client.open(media_server.port)
        await c.send({"type": kind, "username": name, "password": "correct horse battery"})
        await c.expect("username_accepted")
        return c

    bob = await account("register", "Bob")
    await bob.close()  # Bob is offline: a guest could not send him a file, an account can
    alice = await account("register", "Alice")
    data = os.urandom(5000)
    done = await upload(alice, "plan.bin", data, to="Bob", client_msg_id="pf1")
    assert done["type"] == "upload_done", done
    ack = await alice.expect("ack", client_msg_id="pf1")
    assert ack["stored"] is True and ack["to"] == "Bob"
    bob = await account("login", "Bob")
    got = await bob.expect("private", username="Alice")
    assert got["file"] == done["file"] and got["offline"] is True and got["stored"] is True
    await bob.send({"type": "fetch_private", "with": "Alice"})
    page = await bob.expect("private_history")
    assert [m["file"]["name"] for m in page["messages"]] == ["plan.bin"]
    status, _, body = await get(media_server.port, got["file"]["url"])
    assert status == 200 and body == data
