"""The opening handshake of a `ChatConnection`: what reaches websockets before it answers.

websockets parses whatever follows the request as frames even before it has answered it, and a
second pipelined HTTP request there ends in an AssertionError inside websockets. So until the
handshake is done only the request's head goes to websockets (`_request_head`); bytes after it
(frames sent too early) wait, at most `MAX_EARLY_BYTES`, and are parsed once the connection is
open (`handshake_done`), or dropped if it ends in an HTTP response. A plain `GET`/`HEAD` that
the owner wants to answer itself (a shared file, streamed: `Owner.take_over`) gets the socket
instead of websockets (`_take_over`; websockets keeps a `_Detached` stand-in).

`Handshake` is a part of `wschat.transport.ChatConnection` (a mixin); it touches no websockets
internals (the frame path in `wschat.transport` does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.datastructures import Headers
from websockets.http11 import Request

if TYPE_CHECKING:
    import asyncio

    from wschat.transport import Owner

MAX_EARLY_BYTES = 65536  # bytes kept that arrive after the handshake request, before the answer
# Replaces a connection's handshake request once it is no longer needed: its headers cost
# about 3 KB a connection, which matters at 10,000 idle connections.
_HANDSHAKE_DONE = Request("/", Headers())
_HEAD_END = b"\r\n\r\n"


class Handshake:
    """The handshake part of `ChatConnection`; see the module docstring."""

    # the connection's own (websockets' ServerConnection, wschat.transport.ChatConnection)
    owner: Owner
    transport: Any
    closing: bool
    request: Request | None
    response: Any
    request_rcvd: asyncio.Future[None]

    # Rare states, as class-level defaults so that an idle connection pays nothing for them.
    head_done = False  # the handshake request's head has gone to websockets
    request_line_seen = False  # the request line was looked at for a take-over
    head_tail = b""  # the last bytes of the request head so far, to find its end across reads
    early = b""  # bytes after the request head, before the handshake is answered

    is_open: Callable[[], bool]
    data_received: Callable[[bytes], None]

    def _request_head(self, data: bytes) -> bytes:
        """The part of `data` that belongs to the handshake request's head; keep the rest.

        websockets parses whatever follows the request as frames even before it has answered
        it, and a second pipelined HTTP request there ends in an AssertionError inside
        websockets. A client must wait for the answer before it sends more (RFC 6455 4.1).
        """
        if self.head_done:
            if len(self.early) + len(data) <= MAX_EARLY_BYTES:
                self.early += data
            return b""
        seen = self.head_tail + data
        end = seen.find(_HEAD_END)
        if end < 0:
            self.head_tail = seen[-3:]
            return data
        cut = end + len(_HEAD_END) - len(self.head_tail)
        self.head_done, self.head_tail = True, b""
        self.early = data[cut : cut + MAX_EARLY_BYTES]
        return data[:cut]

    def _take_over(self, data: bytes) -> bool:
        """Give the connection to the owner's protocol for this request (see `Owner.take_over`)."""
        self.request_line_seen = True
        line, sep, _ = data.partition(b"\r\n")
        parts = line.split(b" ")
        if not sep or len(parts) != 3 or parts[0] not in (b"GET", b"HEAD"):
            return False
        proto = self.owner.take_over(self, parts[0].decode(), parts[1].decode("latin-1"))
        if proto is None:
            return False
        transport, self.transport = self.transport, _Detached(self.transport)
        self.closing = True
        transport.set_protocol(proto)
        proto.connection_made(transport)
        # websockets' handshake waits for a request it will never see: end it now (it then
        # aborts `self.transport`, the detached stand-in, and forgets the connection)
        if not self.request_rcvd.done():
            self.request_rcvd.set_result(None)
        return True

    def handshake_done(self) -> None:
        """The connection is open: forget the request, parse what the client sent meanwhile."""
        self.request = _HANDSHAKE_DONE
        self.response = None
        early, self.early = self.early, b""
        if early and self.is_open():
            self.data_received(early)


class _Detached:
    """What websockets holds as the transport of a connection taken over: it does nothing."""

    def __init__(self, real: Any) -> None:
        self.get_extra_info = real.get_extra_info

    def abort(self) -> None:
        pass

    close = abort
    pause_reading = abort
    resume_reading = abort

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0
