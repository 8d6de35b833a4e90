"""A raw WebSocket client over a plain socket, for tests that must misbehave on purpose.

websockets' own client refuses to send half a handshake, a lone surrogate, invalid UTF-8 or a
frame over the limit, and it always reads; these helpers do whatever they are told, nothing more.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any

from websockets.utils import apply_mask

TIMEOUT = 10.0


def handshake(port: int, path: str = "/", origin: str | None = None, host: str = "127.0.0.1") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """A masked client frame (RFC 6455 5.2)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += struct.pack("!BH", 0x80 | 126, n)
    else:
        head += struct.pack("!BQ", 0x80 | 127, n)
    mask = os.urandom(4)
    return head + mask + apply_mask(payload, mask)


def text(obj: Any) -> bytes:
    return frame(obj.encode() if isinstance(obj, str) else json.dumps(obj).encode())


class RawClient:
    """A WebSocket connection made by hand over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.head = b""

    @classmethod
    async def connect(
        cls,
        port: int,
        path: str = "/",
        origin: str | None = None,
        rcvbuf: int | None = None,
        host: str = "127.0.0.1",
    ) -> RawClient:
        """Connect to 127.0.0.1:port; `host` is only what the Host header claims."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**24)
        c = cls(reader, writer)
        writer.write(handshake(port, path, origin, host))
        c.head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        c.status = int(c.head.split(b" ", 2)[1])
        return c

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def send(self, obj: Any) -> None:
        self.writer.write(text(obj))

    async def read_frame(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame; (-1, b"") at end of stream."""

        async def read() -> tuple[int, bytes]:
            try:
                b0, b1 = await self.reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
                return b0 & 0x0F, await self.reader.readexactly(n)
            except (asyncio.IncompleteReadError, ConnectionError):
                return -1, b""

        return await asyncio.wait_for(read(), timeout)

    async def recv_json(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next text frame as JSON (pings are skipped); raises EOFError at a close or end."""
        while True:
            op, data = await self.read_frame(timeout)
            if op == 1:
                return json.loads(data)
            if op in (-1, 8):
                raise EOFError(self.close_code(data) if op == 8 else None)

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        """Read until the server's close frame (its code) or the end of the stream (None)."""
        while True:
            op, data = await self.read_frame(timeout)
            if op == 8:
                return self.close_code(data)
            if op == -1:
                return None

    @staticmethod
    def close_code(data: bytes) -> int | None:
        return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None

    def close(self) -> None:
        self.writer.transport.abort()
