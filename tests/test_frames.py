"""The server's own parsing of inbound frames (ChatConnection.data_received): complete text frames
go straight to the chat, anything else to websockets, and the two never lose track of where a
frame starts. A raw WebSocket client crafts the frames; the bytes are also fed to the server's
connection in chosen pieces, as the transport would deliver them."""

from __future__ import annotations

import asyncio
import json
import os
import struct
from typing import Any

from support import TIMEOUT, start_server

from wschat.server import ChatConnection, ChatServer


def frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text(obj: dict[str, Any]) -> bytes:
    return frame(json.dumps(obj).encode())


class Raw:
    """A WebSocket client on a plain TCP connection, reading the server's (unmasked) frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101")
        return cls(reader, writer)

    async def read_frame(self) -> tuple[int, bytes]:
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return b0 & 0x0F, await asyncio.wait_for(self.reader.readexactly(n), TIMEOUT)

    async def expect(self, type_: str) -> dict[str, Any]:
        while True:
            opcode, data = await self.read_frame()
            if opcode == 1 and (obj := json.loads(data))["type"] == type_:
                return obj

    async def close_code(self) -> int:
        while True:
            opcode, data = await self.read_frame()
            if opcode == 8:
                return struct.unpack("!H", data[:2])[0]

    async def login(self, server: ChatServer, name: str) -> ChatConnection:
        self.writer.write(text({"type": "set_username", "username": name}))
        await self.expect("username_accepted")
        await self.expect("user_join")
        (conn,) = server.conns.values()
        return conn


def feed(conn: ChatConnection, data: bytes, sizes: list[int]) -> None:
    """Deliver `data` to the server's connection in pieces of the given sizes, then the rest."""
    pos = 0
    for n in sizes:
        conn.data_received(data[pos : pos + n])
        pos += n
    if pos < len(data):
        conn.data_received(data[pos:])


async def test_text_frames_arriving_one_byte_at_a_time_are_each_delivered_once_in_order() -> None:
    server = await start_server("--rate", "1000", "--burst", "1000")
    raw = await Raw.open(server.port)
    try:
        conn = await raw.login(server, "Ann")
        long_text = "long " * 60  # a 16-bit length field
        stream = b"".join(text({"type": "chat", "message": m}) for m in ("one", long_text, "three"))
        feed(conn, stream, [1] * len(stream))
        got = [(await raw.expect("chat"))["message"] for _ in range(3)]
        assert got == ["one", long_text, "three"]
    finally:
        raw.writer.close()
        await server.stop()


async def test_a_ping_between_text_frames_is_answered_and_both_messages_still_arrive() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        conn = await raw.login(server, "Ann")
        stream = text({"type": "chat", "message": "before"}) + frame(b"hi", opcode=9)
        stream += text({"type": "chat", "message": "after"})
        feed(conn, stream, [len(stream) - 5])  # the last frame arrives in two pieces
        seen: list[tuple[int, bytes]] = [await raw.read_frame() for _ in range(3)]
        assert (10, b"hi") in seen  # the pong
        chats = [json.loads(d)["message"] for op, d in seen if op == 1]
        assert chats == ["before", "after"]
    finally:
        raw.writer.close()
        await server.stop()


async def test_a_fragmented_message_is_assembled_and_later_frames_are_still_parsed() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        await raw.login(server, "Ann")
        body = json.dumps({"type": "chat", "message": "in two parts"}).encode()
        raw.writer.write(frame(body[:10], fin=False) + frame(body[10:], opcode=0))
        assert (await raw.expect("chat"))["message"] == "in two parts"
        raw.writer.write(text({"type": "chat", "message": "whole"}))
        assert (await raw.expect("chat"))["message"] == "whole"
    finally:
        raw.writer.close()
        await server.stop()


async def test_a_fragmented_message_keeps_its_place_before_a_complete_frame_sent_after_it() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        await raw.login(server, "Ann")
        body = json.dumps({"type": "chat", "message": "first, in three parts"}).encode()
        pieces = frame(body[:8], fin=False) + frame(body[8:20], opcode=0, fin=False)
        pieces += frame(body[20:], opcode=0) + text({"type": "chat", "message": "second"})
        raw.writer.write(pieces)  # one write: the server sees all four frames at once
        got = [(await raw.expect("chat"))["message"] for _ in range(2)]
        assert got == ["first, in three parts", "second"]
    finally:
        raw.writer.close()
        await server.stop()


async def test_a_message_in_too_many_pieces_closes_with_1009() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        await raw.login(server, "Ann")
        empty_pieces = frame(b"{", fin=False) + frame(b"", opcode=0, fin=False) * 1200
        raw.writer.write(empty_pieces)
        assert await raw.close_code() == 1009
    finally:
        raw.writer.close()
        await server.stop()


async def test_a_text_frame_inside_a_fragmented_message_is_a_protocol_error() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        conn = await raw.login(server, "Ann")
        body = json.dumps({"type": "chat", "message": "first"}).encode()
        start = frame(body[:5], fin=False)
        rest = text({"type": "chat", "message": "second"}) + frame(body[5:], opcode=0)
        feed(conn, start + rest, [len(start)])  # the first piece arrives on its own
        assert await raw.close_code() == 1002
    finally:
        raw.writer.close()
        await server.stop()


async def test_a_frame_over_the_size_limit_closes_with_1009() -> None:
    server = await start_server("--max-frame-bytes", "1000")
    raw = await Raw.open(server.port)
    try:
        await raw.login(server, "Ann")
        raw.writer.write(text({"type": "chat", "message": "x" * 2000}))
        assert await raw.close_code() == 1009
    finally:
        raw.writer.close()
        await server.stop()


async def test_a_text_frame_that_is_not_utf8_closes_with_1007() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        conn = await raw.login(server, "Ann")
        feed(conn, frame(b'{"type":"chat","message":"\xff"}'), [3])
        assert await raw.close_code() == 1007
    finally:
        raw.writer.close()
        await server.stop()


async def test_an_unmasked_client_frame_closes_with_1002() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        await raw.login(server, "Ann")
        raw.writer.write(frame(b'{"type":"get_users"}', mask=False))
        assert await raw.close_code() == 1002
    finally:
        raw.writer.close()
        await server.stop()


async def test_a_frame_cut_short_when_the_server_starts_closing_is_finished_by_websockets() -> None:
    server = await start_server("--rate", "1", "--burst", "1", "--flood-strikes", "2")
    raw = await Raw.open(server.port)
    try:
        conn = await raw.login(server, "Ann")
        flood = b"".join(text({"type": "chat", "message": f"m{i}"}) for i in range(4))
        last = text({"type": "chat", "message": "late"})
        feed(conn, flood + last[:3], [])  # 1 accepted, 2 refused, the fourth is one too many: 1008
        assert await raw.close_code() == 1008
        feed(conn, last[3:] + frame(struct.pack("!H", 1000), opcode=8), [])
        assert conn.protocol.close_rcvd is not None and conn.protocol.close_rcvd.code == 1000
    finally:
        raw.writer.close()
        await server.stop()


async def test_an_idle_connection_does_not_keep_its_handshake_request() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        for _ in range(10_000):  # registration happens a few loop iterations after the handshake
            if server.conns:
                break
            await asyncio.sleep(0)
        (conn,) = server.conns.values()
        # websockets' handshake parser kept the request (all its headers) as a local variable
        assert "request" not in conn.protocol.parser.gi_frame.f_locals
        assert not conn.request.headers
        conn = await raw.login(server, "Ann")  # and the replacement parser still parses
        raw.writer.write(text({"type": "chat", "message": "still here"}))
        assert (await raw.expect("chat"))["message"] == "still here"
    finally:
        raw.writer.close()
        await server.stop()
