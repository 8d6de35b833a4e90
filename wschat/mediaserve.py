"""`GET /media/<id>` and `/media/<id>/thumb`: shared files streamed with bounded memory. I/O.

`websockets` holds a whole HTTP response in memory, so twenty downloads of a 25 MB file would
hold 500 MB. The transport (`ChatConnection.take_over`) hands a media request's connection to a
`MediaResponse` instead: it reads the file in pieces of `PIECE` bytes on a worker thread and
writes each only while the socket's buffer is under `HIGH_WATER` (asyncio's pause_writing /
resume_writing), so a download holds at most about `HIGH_WATER + PIECE` bytes however large the
file and however slow the reader.

Safety, after Zulip and the Matrix media repository: the type comes from the file's magic bytes
(decided when it was stored); only PNG, JPEG, GIF and WebP are served inline, everything else as
an `application/octet-stream` attachment; every answer carries `X-Content-Type-Options: nosniff`,
`Content-Security-Policy: sandbox; default-src 'none'` and, for files, an RFC 6266/8187
`Content-Disposition`. The URL's id is the capability: unguessable, and not the file's hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wschat import __version__
from wschat.features.media_rules import OCTET, content_disposition, inline
from wschat.media import MediaStore

PIECE = 64 * 1024
HIGH_WATER = 256 * 1024
SAFE_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "sandbox; default-src 'none'"),
    ("Referrer-Policy", "no-referrer"),
)  # no Cross-Origin-Resource-Policy: the page opened from disk shows the images too


def head(status: int, headers: list[tuple[str, str]]) -> bytes:
    st = http.HTTPStatus(status)
    lines = [f"HTTP/1.1 {st.value} {st.phrase}", f"Date: {formatdate(usegmt=True)}"]
    lines += [f"Server: wschat/{__version__}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (*headers, *SAFE_HEADERS)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_path(target: str) -> tuple[str, bool] | None:
    """`/media/<id>` -> (id, False); `/media/<id>/thumb` -> (id, True); else None."""
    parts = urlsplit(target).path.split("/")
    if len(parts) == 3 and parts[1] == "media" and parts[2]:
        return parts[2], False
    if len(parts) == 4 and parts[1] == "media" and parts[2] and parts[3] == "thumb":
        return parts[2], True
    return None


def file_headers(meta: dict[str, Any], size: int, want_thumb: bool) -> list[tuple[str, str]]:
    mime = meta["mime"]
    shown = inline(mime)
    name = meta["name"] if not want_thumb else f"thumbnail of {meta['name']}"
    return [
        ("Content-Type", mime if shown else OCTET),
        ("Content-Length", str(size)),
        ("Content-Disposition", content_disposition(name, inline=shown)),
        ("Cache-Control", "private, max-age=31536000, immutable"),  # an id's bytes never change
    ]


class MediaResponse(asyncio.Protocol):
    """One media request's connection, taken over from websockets: answer, then close."""

    def __init__(self, media: MediaStore, method: str, target: str, release: Callable[[], None]) -> None:
        self.media = media
        self.method = method
        self.target = target
        self.release = release
        self.writable = asyncio.Event()
        self.writable.set()
        self.transport: Any = None
        self.task: asyncio.Task | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)
        self.task = asyncio.ensure_future(self._answer())

    def data_received(self, data: bytes) -> None:
        pass  # the rest of the request's head, or a pipelined request: one answer, then close

    def eof_received(self) -> bool:
        return True  # a client may half-close after its request and still read the answer

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()
        if self.task is not None:
            self.task.cancel()
        self.release()

    async def _answer(self) -> None:
        try:
            await self._send()
        finally:
            self.transport.close()

    def _text(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        self.transport.write(head(status, headers) + (body if self.method == "GET" else b""))

    async def _send(self) -> None:
        parsed = parse_path(self.target)
        if parsed is None:
            self._text(404, "Nothing here. Shared files are at /media/<id> (the url of a file message).")
            return
        media_id, want_thumb = parsed
        found = await asyncio.to_thread(self.media.lookup, media_id, want_thumb)
        if found is None:
            self._text(404, "There is no shared file at this address.")
            return
        meta, path = found
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except OSError:
            gone = "This file was removed to make room for newer ones (the server's --media-quota)."
            self._text(410, gone if not want_thumb else "This file has no thumbnail.")
            return
        with f:
            size = await asyncio.to_thread(lambda: Path(path).stat().st_size)
            self.transport.write(head(200, file_headers(meta, size, want_thumb)))
            if self.method == "HEAD":
                return
            await self._stream(f)

    async def _stream(self, f: Any) -> None:
        while piece := await asyncio.to_thread(f.read, PIECE):
            await self.writable.wait()
            if self.transport.is_closing():
                return
            self.transport.write(piece)
        with contextlib.suppress(AttributeError):
            await self.writable.wait()  # all of it handed to the socket before close()
