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

from wschat.server import ChatServer
from wschat.transport import ChatConnection, ws_frame


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


# ---------------------------------------------------------------- more edges of the fast path


def test_ws_frame_uses_the_shortest_length_field() -> None:
    for n, head in ((0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)):
        data = ws_frame(b"x" * n)
        assert len(data) == head + n and data[0] == 0x81
        assert data[1] == (n if n < 126 else 126 if n < 65536 else 127)


async def test_a_frame_split_inside_its_16_bit_length_field_is_delivered_once() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        conn = await raw.login(server, "Ann")
        long_text = "z" * 300
        data = text({"type": "chat", "message": long_text}) + text({"type": "chat", "message": "next"})
        feed(conn, data, [3, 1])  # the first read ends in the middle of the length field
        assert [(await raw.expect("chat"))["message"] for _ in range(2)] == [long_text, "next"]
    finally:
        raw.writer.close()
        await server.stop()


async def test_a_frame_with_a_64_bit_length_goes_through_websockets_and_the_fast_path_resumes() -> None:
    server = await start_server("--max-frame-bytes", "131072", "--max-message-chars", "70000")
    raw = await Raw.open(server.port)
    try:
        conn = await raw.login(server, "Ann")
        big = "b" * 66000  # over 65,535 bytes: the 64-bit length field the fast path leaves alone
        data = text({"type": "chat", "message": big}) + text({"type": "chat", "message": "small"})
        feed(conn, data, [1000])
        assert [(await raw.expect("chat"))["message"] for _ in range(2)] == [big, "small"]
        raw.writer.write(text({"type": "chat", "message": "fast again"}))
        assert (await raw.expect("chat"))["message"] == "fast again"
        assert conn.between_frames()
    finally:
        raw.writer.close()
        await server.stop()


async def test_pings_and_pongs_between_the_pieces_of_a_fragmented_message_are_allowed() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        conn = await raw.login(server, "Ann")
        body = json.dumps({"type": "chat", "message": "around controls"}).encode()
        stream = frame(body[:6], fin=False) + frame(b"p1", opcode=9) + frame(b"", opcode=10)
        stream += frame(body[6:12], opcode=0, fin=False) + frame(b"p2", opcode=9)
        stream += frame(body[12:], opcode=0) + text({"type": "chat", "message": "then whole"})
        feed(conn, stream, [len(stream) // 3, len(stream) // 3])
        seen = [await raw.read_frame() for _ in range(4)]
        assert [d for op, d in seen if op == 10] == [b"p1", b"p2"]
        assert [json.loads(d)["message"] for op, d in seen if op == 1] == ["around controls", "then whole"]
    finally:
        raw.writer.close()
        await server.stop()


async def test_frames_sent_in_the_same_packet_as_the_handshake_request_are_handled_after_it() -> None:
    server = await start_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            + text({"type": "set_username", "username": "Early"})
            + text({"type": "chat", "message": "right away"})
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101")
        raw = Raw(reader, writer)
        assert (await raw.expect("username_accepted"))["username"] == "Early"
        assert (await raw.expect("chat"))["message"] == "right away"
    finally:
        writer.close()
        await server.stop()


async def test_two_pipelined_http_requests_get_one_answer_and_a_clean_close_every_time(caplog) -> None:
    server = await start_server()
    try:
        for _ in range(20):  # the old failure (an AssertionError in websockets) came 13 times in 20
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
            answer = await asyncio.wait_for(reader.read(), TIMEOUT)  # until the server closes
            assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1
            writer.close()
        assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
        assert "Traceback" not in caplog.text and "AssertionError" not in caplog.text
    finally:
        await server.stop()


# ---------------------------------------------------------------- backpressure


async def test_requests_wait_while_the_output_backlog_is_over_the_cap_and_resume_in_order() -> None:
    server = await start_server("--control-rate", "1000", "--control-burst", "1000")
    raw = await Raw.open(server.port)
    try:
        conn = await raw.login(server, "Ann")
        real = server.backlogged
        blocked = True
        server.backlogged = lambda ws: blocked or real(ws)  # as if the socket were full
        asks = b"".join(text({"type": "get_users", "room": "general", "n": i}) for i in range(3))
        feed(conn, asks + text({"type": "chat", "message": "after the asks"}), [])
        assert conn.input_held and conn.held.startswith(asks[:10])
        blocked = False
        server.backlogged = real
        conn.resume_input()
        for _ in range(3):
            assert (await raw.expect("online_users"))["users"] == ["Ann"]
        assert (await raw.expect("chat"))["message"] == "after the asks"
        assert not conn.input_held
    finally:
        raw.writer.close()
        await server.stop()


# ---------------------------------------------------------------- control frames


async def _flood(port: int, opcode: int, name: str | None) -> int | None:
    raw = await Raw.open(port)
    try:
        if name:
            raw.writer.write(text({"type": "set_username", "username": name}))
            await raw.expect("username_accepted")
        raw.writer.write(frame(b"", opcode=opcode) * 2000)
        return await raw.close_code()
    finally:
        raw.writer.close()


async def test_a_flood_of_pongs_or_pings_is_closed_with_1008_named_or_not_and_others_chat_on() -> None:
    server = await start_server()
    bystander = await Raw.open(server.port)
    try:
        await bystander.login(server, "Bystander")
        for opcode, name in ((10, None), (9, None), (10, "Ponger"), (9, "Pinger")):
            assert await _flood(server.port, opcode, name) == 1008
            bystander.writer.write(text({"type": "chat", "message": f"after {opcode} {name}"}))
            assert (await bystander.expect("chat"))["message"] == f"after {opcode} {name}"
    finally:
        bystander.writer.close()
        await server.stop()


async def test_keepalive_pings_and_pongs_stay_free() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        await raw.login(server, "Steady")
        for i in range(40):  # more than the burst, each answered: as often as any keepalive needs
            raw.writer.write(frame(b"k%d" % i, opcode=9))
            while (got := await raw.read_frame())[0] != 10:
                pass
            assert got == (10, b"k%d" % i)
            (conn,) = server.conns.values()
            conn.control.stamp -= 1.0  # a second passes between keepalives
        raw.writer.write(text({"type": "chat", "message": "still here"}))
        assert (await raw.expect("chat"))["message"] == "still here"
    finally:
        raw.writer.close()
        await server.stop()


async def test_a_packet_of_big_history_requests_is_answered_in_full_to_a_client_that_reads_slowly() -> None:
    """Backpressure holds the requests back and lets them go on: nothing is lost or reordered."""
    server = await start_server(
        *("--rate", "1000", "--burst", "1000", "--control-burst", "100", "--max-message-chars", "8000"),
        *("--max-pending-bytes", "65536"),  # one answer (100 x 8 KB) is far over the cap
    )
    filler = await Raw.open(server.port)
    raw = await Raw.open(server.port)
    try:
        filler.writer.write(text({"type": "set_username", "username": "Filler"}))
        await filler.expect("username_accepted")
        filler.writer.write(b"".join(text({"type": "chat", "message": "h" * 8000}) for _ in range(100)))
        for _ in range(100):
            last = (await filler.expect("chat"))["seq"]
        raw.writer.write(text({"type": "set_username", "username": "Reader"}))
        await raw.expect("username_accepted")
        await raw.expect("history")  # what a newcomer is shown
        asks = [
            {"type": "fetch_history", "room": "general", "before_seq": last + 1 - k, "limit": 90}
            for k in range(30)
        ]
        raw.writer.write(b"".join(text(a) for a in asks))  # one packet
        for k in range(30):
            page = await raw.expect("history")
            assert page["before_seq"] == last + 1 - k and len(page["messages"]) == min(90, last - k)
        raw.writer.write(text({"type": "chat", "message": "after the pages"}))
        assert (await raw.expect("chat"))["message"] == "after the pages"
        (conn,) = [c for c in server.conns.values() if c.name == "Reader"]
        assert not conn.input_held and not server.paused
    finally:
        raw.writer.close()
        filler.writer.close()
        await server.stop()


async def test_a_connection_closed_while_its_input_is_held_still_reads_the_clients_close() -> None:
    server = await start_server()
    raw = await Raw.open(server.port)
    try:
        conn = await raw.login(server, "Ann")
        server.backlogged = lambda ws: True  # as if its socket were full: requests wait
        feed(conn, text({"type": "get_users", "room": "general"}), [])
        assert conn.input_held
        server._close(conn.cid, 1000, "bye")
        assert await raw.close_code() == 1000
        raw.writer.write(frame(struct.pack("!H", 1000), opcode=8))  # the client's answer
        for _ in range(int(TIMEOUT / 0.01)):  # read at once, not dropped at the close timeout
            if conn.protocol.close_rcvd is not None:
                break
            await asyncio.sleep(0.01)
        assert conn.protocol.close_rcvd is not None and conn.protocol.close_rcvd.code == 1000
        assert conn.ending() == "closed by the server (1000 bye)"
    finally:
        raw.writer.close()
        await server.stop()
