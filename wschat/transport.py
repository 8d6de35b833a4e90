"""The WebSocket transport: the only module that touches websockets' internals.

`ChatConnection` is a websockets `ServerConnection` whose inbound data frames go straight to
its `Owner` (the chat server) instead of through websockets' receive queue, so no task wakes up
per message:

- `data_received` parses the common frame (final, text, masked, within the size limit) itself
  while websockets' parser is between frames (`between_frames`); from the first frame that is
  anything else (control frames, fragments, oversized or malformed ones) websockets parses, and
  `process_event` hands its data frames on, fragmented messages included.
- Backpressure: before each inbound frame goes to the owner, `Owner.backlogged` says whether the
  connection's output backlog is over its cap. If it is, the rest of the input is kept unparsed
  (or, if websockets parsed it already, as frames), the socket stops being read, and
  `resume_input` picks up where it stopped once the owner sees the backlog drain. A client that
  never reads therefore gets the answer to one request at a time, never to a whole packet of them.
- Control frames (pings, pongs) count against a token bucket of their own; a flood of them is
  failed with 1008 (websockets answers each ping, which costs as much as a message).
- Until the opening handshake is done, only the request's head goes to websockets; bytes after
  it (a second pipelined HTTP request, frames sent too early) wait for the handshake to finish
  and are dropped if it ends in an HTTP response (`wschat.handshake`, a part of the class).

Sending bypasses websockets too: `ws_frame` builds an unmasked server frame that the owner writes
to the transport itself (websockets still handles the handshake, pings, pongs and closing).
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode, apply_mask
from websockets.protocol import Protocol as WSProtocol
from websockets.protocol import State

from wschat.handshake import Handshake
from wschat.ratelimit import TokenBucket

PING_FRAME = b"\x89\x00"
MAX_FRAGMENTS = 1000  # pieces of one fragmented message
# Pings and pongs a connection may send: a keepalive needs one every few seconds at most.
CONTROL_RATE, CONTROL_BURST = 2.0, 30.0


class Owner(Protocol):
    """What a `ChatConnection` calls on the server that accepted it."""

    max_frame_bytes: int
    hard_cap: int  # output bytes waiting for one connection that drop it at once

    def on_frame(self, conn: ChatConnection, data: bytes) -> None:
        """A complete text message (still UTF-8 bytes) from a registered connection."""

    def on_binary(self, conn: ChatConnection, data: bytes) -> None:
        """A complete binary message from a registered connection."""

    def backlogged(self, conn: ChatConnection) -> bool:
        """Whether the connection's output backlog is over its cap (no more input for now)."""

    def close_conn(self, conn: ChatConnection, code: int, reason: str) -> None:
        """Close a registered connection politely with `code`."""

    def opened(self, conn: ChatConnection) -> None:
        """A TCP connection was accepted (it may be refused at once: `conn.transport.abort()`)."""

    def released(self, conn: ChatConnection) -> None:
        """The TCP connection is gone."""

    def drop_slow(self, conn: ChatConnection) -> None:
        """The connection stopped reading and its output passed the hard cap: abort it."""

    def take_over(self, conn: ChatConnection, method: str, target: str) -> Any:
        """An asyncio protocol to answer this plain HTTP request in place of websockets, or None.

        For answers too large to hold in memory (websockets holds a whole response): the
        protocol gets the transport, answers, and closes it.
        """


def ws_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class ChatConnection(ServerConnection, Handshake):
    """A websockets connection whose complete data frames go straight to its owner."""

    def __init__(self, owner: Owner, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.chat: Owner | None = None  # set once registered: data frames go to it from then on
        self.cid = 0
        self.kind = ""  # "chat" or "echo", chosen at the handshake
        self.ip = ""
        self.counted = False
        self.alive = True  # data arrived since the last keepalive sweep
        self.closing = False
        self.deadline_armed = False
        self.behind_since = 0.0  # loop time since which output has waited beyond the cap
        self.fast = False  # websockets' parser is between frames: see data_received
        self.partial = b""  # the start of a frame data_received has not got all of yet
        self.parser_replaced = False  # see between_frames

    # Rare states, as class-level defaults so that an idle connection pays nothing for them.
    frag_opcode: Opcode | None = None  # a fragmented message being put together
    frag_parts: bytearray | None = None
    frag_count = 0
    input_held = False  # input held back while the output backlog is over the cap
    held = b""  # input not parsed yet, kept while paused
    held_frames: list[tuple[Opcode, bytes]] | None = None  # parsed by websockets, kept while paused
    control: TokenBucket | None = None  # pings and pongs
    half_open = False  # counted as a connection still in its handshake
    name = ""  # the name the chat accepted, for the log
    drop_reason = ""  # why the server cut the connection off without a close frame
    reads_in_flight = 0  # store reads whose answer is for this connection (it waits for them)
    queued_flush = -1  # the owner's output queue last measured (its flush number), and its size
    queued_count = 0
    queued_bytes = 0

    # -- the asyncio protocol

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        ip = str(peer[0])
        # an IPv4 client of a dual-stack socket (--host ::) is the same address as over IPv4
        self.ip = ip[7:] if ip.startswith("::ffff:") and "." in ip else ip
        self.owner.opened(self)

    def data_received(self, data: bytes) -> None:
        self.alive = True
        if self.input_held:
            self.held += data
            return
        chat = self.chat
        if self.fast or (chat is not None and self.between_frames()):
            if chat is not None and self.protocol.state is State.OPEN:
                data = self._text_frames(chat, data)
                if not data:
                    return
            elif self.partial:  # closing: websockets takes over where the last frame ended
                data = self.partial + data
                self.partial = b""
            self.fast = False  # websockets parses from here on, until it is between frames again
        elif self.protocol.state is State.CONNECTING:
            data = self._request_head(data)
            if not data or (not self.request_line_seen and self._take_over(data)):
                return
        super().data_received(data)
        self._after_websockets()

    def _after_websockets(self) -> None:
        if self.close_deadline is not None and not self.deadline_armed:
            # websockets sets this deadline when a frame from the client fails the connection
            # (1009, 1002, 1007...) but enforces it only inside its own send(); with nothing
            # sending, a client that never closes its socket would hold the connection (and
            # server shutdown) forever.
            self.deadline_armed = True
            self.loop.call_at(self.close_deadline, self._enforce_close_deadline)
        # websockets answers pings by itself: a client that sends pings and never reads must
        # not make those answers pile up without bound either.
        if not self.closing and self.transport.get_write_buffer_size() > self.owner.hard_cap:
            self.owner.drop_slow(self)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.input_held:  # the backlog drained below the low-water mark: read again
            self.loop.call_soon(self.resume_input)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.held, self.held_frames, self.early, self.input_held = b"", None, b"", False
        self.owner.released(self)

    def _enforce_close_deadline(self) -> None:
        if self.protocol.state is not State.CLOSED:
            self.transport.abort()

    # -- the fast frame path

    def _text_frames(self, chat: Owner, data: bytes) -> bytes:
        """Hand complete text frames straight to the chat; return what websockets must parse.

        websockets' frame parser costs about 3 us a frame, more than the chat's own work on a
        message. The common frame (final, text, masked, no extension bits, within the size
        limit) is parsed here; from the first frame that is anything else (control frames,
        fragments, oversized or malformed ones), the rest goes to websockets, which enforces
        the protocol and closes with the right code. Only called while websockets' parser is
        between frames, so the two never disagree about where a frame starts. Each frame waits
        while the output backlog is over the cap (see `_hold`).
        """
        self.fast = True
        if self.partial:
            data = self.partial + data
            self.partial = b""
        limit = chat.max_frame_bytes
        pos, end = 0, len(data)
        while end - pos >= 2:
            size = data[pos + 1]
            if data[pos] != 0x81 or size < 0x80:  # not FIN + TEXT alone, or not masked
                return data[pos:]
            size &= 0x7F
            start = pos + 6
            if size == 126:
                if end - pos < 4:
                    break
                size = data[pos + 2] << 8 | data[pos + 3]
                start = pos + 8
            elif size == 127:
                return data[pos:]
            if size > limit:
                return data[pos:]
            if start + size > end:
                break
            if chat.backlogged(self):
                self._hold(data[pos:])
                return b""
            chat.on_frame(self, apply_mask(data[start : start + size], data[start - 4 : start]))
            pos = start + size
        self.partial = data[pos:]
        return b""

    def between_frames(self) -> bool:
        """Whether websockets' parser holds no data and waits for the first byte of a frame."""
        protocol = self.protocol
        reader = protocol.reader
        # current_size: a fragmented message from the client is under way (its next frame must
        # be a continuation, which only websockets' parser checks)
        if reader.buffer or reader.eof or protocol.current_size is not None:
            return False
        gen: Any = protocol.parser
        while (inner := getattr(gen, "gi_yieldfrom", None)) is not None:
            gen = inner
        if getattr(getattr(gen, "gi_code", None), "co_name", "") != "at_eof":
            return False
        if not self.parser_replaced:
            # The handshake parser keeps the request, every header of it, in a local variable
            # for as long as the connection lives (1.8 KB); between frames, the plain frame
            # parser it would go on with can take over without it.
            self.parser_replaced = True
            protocol.parser = WSProtocol.parse(protocol)
            next(protocol.parser)
        return True

    # -- backpressure

    def _hold(self, data: bytes) -> None:
        """Stop reading: the output backlog is over the cap. `data` waits, unparsed."""
        self.input_held = True
        self.held = data + self.held
        self.transport.pause_reading()

    def drop_held_input(self) -> None:
        """The connection is being closed: what it asked for no longer matters; read its close."""
        if self.input_held:
            self.held, self.held_frames, self.input_held = b"", None, False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def resume_input(self) -> None:
        """Go on with the held input if the backlog is under the cap again (else stay paused)."""
        chat = self.chat
        if not self.input_held or self.closing or chat is None:
            return
        frames = self.held_frames
        while frames:
            if chat.backlogged(self):
                return
            opcode, data = frames.pop(0)
            self._deliver(chat, opcode, data)
        if chat.backlogged(self):
            return
        held, self.held, self.held_frames, self.input_held = self.held, b"", None, False
        if not self.transport.is_closing():
            self.transport.resume_reading()
        if held:
            self.data_received(held)

    # -- frames websockets parsed

    def process_event(self, event: Any) -> None:
        """Data frames go to the chat here, in arrival order, fragmented messages included.

        websockets has already checked the frame sequence and the message size limit. Frames
        before registration go to websockets as usual; pings and pongs too, once counted.
        """
        if type(event) is not Frame:
            super().process_event(event)  # the handshake request
            return
        opcode = event.opcode
        if (opcode is Opcode.PING or opcode is Opcode.PONG) and (self.closing or not self._control_allowed()):
            return
        chat = self.chat
        if chat is None or opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            super().process_event(event)  # control frames, a message begun before registration
            return
        if self.closing:
            return  # being closed by the chat: what else it sent no longer matters
        if opcode is not Opcode.CONT:
            if event.fin:
                self._deliver_or_hold(chat, opcode, event.data)
            else:
                self.frag_opcode, self.frag_parts, self.frag_count = opcode, bytearray(event.data), 1
            return
        if self.frag_parts is None:
            super().process_event(event)
            return
        # websockets limits the message's bytes; the number of pieces is limited here, since
        # empty fragments cost nothing against that limit but memory all the same
        self.frag_parts += event.data
        self.frag_count += 1
        if self.frag_count > MAX_FRAGMENTS:
            self.frag_opcode = self.frag_parts = None
            chat.close_conn(self, 1009, f"a message in more than {MAX_FRAGMENTS} pieces")
        elif event.fin:
            data, first = bytes(self.frag_parts), self.frag_opcode
            self.frag_opcode = self.frag_parts = None
            assert first is not None
            self._deliver_or_hold(chat, first, data)

    def _deliver_or_hold(self, chat: Owner, opcode: Opcode, data: bytes) -> None:
        if self.input_held or chat.backlogged(self):
            if self.held_frames is None:
                self.held_frames = []
            self.held_frames.append((opcode, data))
            if not self.input_held:
                self.input_held = True
                self.transport.pause_reading()
            return
        self._deliver(chat, opcode, data)

    def _deliver(self, chat: Owner, opcode: Opcode, data: bytes) -> None:
        if opcode is Opcode.TEXT:
            chat.on_frame(self, data)
        else:
            chat.on_binary(self, data)

    def _control_allowed(self) -> bool:
        """Count a ping or pong; past the budget, fail the connection with 1008."""
        now = self.loop.time()
        if self.control is None:
            self.control = TokenBucket(CONTROL_RATE, CONTROL_BURST, now)
        if not self.control.take(now):
            return True
        self.fail(1008, "too many pings and pongs")
        return False

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection at once: close frame, end of stream, input ignored from now on."""
        self.closing = True
        self.drop_held_input()
        self.protocol.fail(code, reason)
        self.send_data()
        if self.close_deadline is None and self.close_timeout is not None:
            self.close_deadline = self.loop.time() + self.close_timeout

    def ending(self) -> str:
        """Why the connection ended, for the log (never what the client wrote as its reason)."""
        if self.drop_reason:
            return self.drop_reason
        sent, rcvd = self.protocol.close_sent, self.protocol.close_rcvd
        if rcvd is not None and (sent is None or self.protocol.close_rcvd_then_sent):
            return f"closed by the client ({rcvd.code})"
        if sent is not None:
            return f"closed by the server ({sent.code} {sent.reason})"
        return "connection lost"

    def is_open(self) -> bool:
        return self.protocol.state is State.OPEN

    def is_closed(self) -> bool:
        return self.protocol.state is State.CLOSED
