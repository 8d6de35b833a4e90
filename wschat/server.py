"""The server's I/O: sockets, the WebSocket handshake, HTTP routes, timers, signals, main().

Everything that decides *what* to send lives in `wschat.hub`; this module only moves bytes and
events. It feeds each text frame to `Hub.receive()` and carries out the actions it gets back:

- `Send`: the frame is built once (server frames are unmasked, so the bytes are the same for
  every recipient) and queued per connection; once per event-loop iteration each connection
  gets everything queued for it in a single `write()`. One write per delivery would cap a core
  near 100,000 deliveries a second; merging lifts that by the batch size.
- `Execute`: a store command; those of one iteration that can be merged (appends) go to the
  store as one batch; the hub hears back through `store_result()` on the loop thread.
- `Close` as it says.

Frames bypass websockets' receive queue: `ChatConnection.data_received` parses complete text
frames itself and hands them straight to the hub (`process_event` does the same for those
websockets parsed), so no task wakes up per message; everything else (control frames,
fragments, bad frames) is left to websockets. Sending also bypasses websockets (data frames go
to the transport directly; websockets still handles the handshake, pings, pongs and closing),
which is why a connection's pending output is capped here: a client that stops reading is cut
off (see `ChatServer._write`) instead of growing without bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import gc
import http
import ipaddress
import json
import logging
import os
import signal
import socket
import ssl
import struct
import sys
import time
from collections.abc import Iterable
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode, apply_mask
from websockets.http11 import Request, Response
from websockets.protocol import Protocol, State

from wschat import __version__, protocol
from wschat.hub import Close, Config, Execute, Hub, Send
from wschat.store import Store, StoreError, open_store
from wschat.tls import TLSSetupError, fingerprint, self_signed, server_context

log = logging.getLogger("wschat.server")

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"/": "chat-web-client.html", "/demo": "websocket-demo.html"}
DEFAULT_DB = "chat-data/chat.db"
PING_FRAME = b"\x89\x00"
MAX_FRAGMENTS = 1000  # pieces of one fragmented message
CLOSE_TIMEOUT = 3.0  # seconds a peer has to answer our close frame before it is cut off
# Replaces a connection's handshake request once it is no longer needed: its headers cost
# about 3 KB a connection, which matters at 10,000 idle connections.
_HANDSHAKE_DONE = Request("/", Headers())


class StartupError(Exception):
    """Start-up cannot go on; str(self) is one plain sentence for the person running the server."""


def ws_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class ChatConnection(ServerConnection):
    """A websockets connection whose complete text frames go straight to the chat."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chat: ChatServer | None = None  # set once registered with the hub
        self.cid = 0
        self.kind = ""  # "chat" or "echo", chosen at the handshake
        self.ip = ""
        self.counted = False
        self.alive = True  # data arrived since the last keepalive sweep
        self.closing = False
        self.deadline_armed = False
        self.behind_since = 0.0  # loop time since which output has waited beyond the cap
        self.chat_server: ChatServer | None = None  # set at the handshake, for connection counts
        self.fast = False  # websockets' parser is between frames: see data_received
        self.partial = b""  # the start of a frame data_received has not got all of yet
        self.parser_replaced = False  # see between_frames

    def data_received(self, data: bytes) -> None:
        self.alive = True
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
        super().data_received(data)
        if self.close_deadline is not None and not self.deadline_armed:
            # websockets sets this deadline when a frame from the client fails the connection
            # (1009, 1002, 1007...) but enforces it only inside its own send(); with nothing
            # sending, a client that never closes its socket would hold the connection (and
            # server shutdown) forever.
            self.deadline_armed = True
            self.loop.call_at(self.close_deadline, self._enforce_close_deadline)
        # websockets answers pings by itself: a client that sends pings and never reads must
        # not make those answers pile up without bound either.
        chat = self.chat_server
        if chat is None or self.closing:
            return
        if self.transport.get_write_buffer_size() > 16 * chat.opts.max_pending_bytes:
            chat._drop_slow(self)

    def _enforce_close_deadline(self) -> None:
        if self.protocol.state is not State.CLOSED:
            self.transport.abort()

    def _text_frames(self, chat: ChatServer, data: bytes) -> bytes:
        """Hand complete text frames straight to the chat; return what websockets must parse.

        websockets' frame parser costs about 3 us a frame, more than the chat's own work on a
        message. The common frame (final, text, masked, no extension bits, within the size
        limit) is parsed here; from the first frame that is anything else (control frames,
        fragments, oversized or malformed ones), the rest goes to websockets, which enforces
        the protocol and closes with the right code. Only called while websockets' parser is
        between frames, so the two never disagree about where a frame starts.
        """
        self.fast = True
        if self.partial:
            data = self.partial + data
            self.partial = b""
        limit = chat.opts.max_frame_bytes
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
            protocol.parser = Protocol.parse(protocol)
            next(protocol.parser)
        return True

    # A fragmented message being put together: its opcode and pieces. Class-level defaults, so
    # the (rare) attributes cost an idle connection nothing.
    frag_opcode: Opcode | None = None
    frag_parts: bytearray | None = None
    frag_count = 0

    def process_event(self, event: Any) -> None:
        """Data frames go to the chat here, in arrival order, fragmented messages included.

        websockets has already checked the frame sequence and the message size limit. Frames
        before registration and control frames go to websockets as usual.
        """
        chat = self.chat
        if chat is not None and type(event) is Frame:
            opcode = event.opcode
            if self.closing and opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                return  # being closed by the chat: what else it sent no longer matters
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if event.fin:
                    self._deliver(chat, opcode, event.data)
                else:
                    self.frag_opcode, self.frag_parts, self.frag_count = opcode, bytearray(event.data), 1
                return
            if opcode is Opcode.CONT and self.frag_parts is not None:
                # websockets limits the message's bytes; the number of pieces is limited here,
                # since empty fragments cost nothing against that limit but memory all the same
                self.frag_parts += event.data
                self.frag_count += 1
                if self.frag_count > MAX_FRAGMENTS:
                    self.frag_opcode = self.frag_parts = None
                    chat._close(self.cid, 1009, f"a message in more than {MAX_FRAGMENTS} pieces")
                elif event.fin:
                    data, opcode = bytes(self.frag_parts), self.frag_opcode
                    self.frag_opcode = self.frag_parts = None
                    assert opcode is not None
                    self._deliver(chat, opcode, data)
                return
        super().process_event(event)  # handshake, control frames, a message begun before registration

    def _deliver(self, chat: ChatServer, opcode: Opcode, data: bytes) -> None:
        if opcode is Opcode.TEXT:
            chat.on_frame(self, data)
        else:
            chat.on_binary(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.counted and self.chat_server is not None:
            self.chat_server.release(self)


# ------------------------------------------------------------------ options


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"{name}={value!r} is not a port number.") from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="chat-server.py",
        description="A real-time chat server: WebSocket chat, web client and health check on one port.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    net = ap.add_argument_group("network")
    net.add_argument(
        "--host",
        default=os.environ.get("CHAT_HOST", "0.0.0.0"),
        help="address to listen on (env CHAT_HOST); 0.0.0.0 means every IPv4 interface",
    )
    net.add_argument(
        "--port",
        type=int,
        default=_env_int("CHAT_PORT", 8765),
        help="TCP port for WebSocket and HTTP (env CHAT_PORT); 0 picks a free one",
    )
    hist = ap.add_argument_group("history")
    hist.add_argument(
        "--db",
        default=DEFAULT_DB,
        help="SQLite database file, created on first start; ':memory:' keeps history in memory only",
    )
    hist.add_argument(
        "--synchronous",
        choices=("full", "normal"),
        default="full",
        help="full: an acknowledged message survives a power cut; "
        "normal: faster, survives a crash of the server but maybe not a power cut",
    )
    hist.add_argument(
        "--history-size", type=int, default=50, help="messages a newcomer sees when joining a room"
    )
    hist.add_argument(
        "--max-messages-per-room",
        type=int,
        default=10_000,
        help="older messages are deleted beyond this many per room",
    )
    lim = ap.add_argument_group("limits")
    lim.add_argument("--max-message-chars", type=int, default=4000, help="longest chat message")
    lim.add_argument(
        "--max-frame-bytes",
        type=int,
        default=64 * 1024,
        help="largest WebSocket frame; bigger closes the connection with 1009",
    )
    lim.add_argument("--rate", type=float, default=5.0, help="chat messages per second per connection")
    lim.add_argument("--burst", type=float, default=20.0, help="chat messages a connection may send at once")
    lim.add_argument(
        "--control-rate",
        type=float,
        default=2.0,
        help="name attempts, joins, leaves and other requests per second per connection",
    )
    lim.add_argument("--control-burst", type=float, default=30.0, help="burst allowance for those requests")
    lim.add_argument(
        "--flood-strikes",
        type=int,
        default=50,
        help="frames refused for going too fast before the connection is closed with 1008; "
        "forgiven once the client waits as told",
    )
    lim.add_argument(
        "--name-timeout",
        type=float,
        default=10.0,
        help="seconds a connection may stay without choosing a name",
    )
    lim.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        help="seconds to finish the opening handshake, TLS included",
    )
    lim.add_argument(
        "--max-pending-bytes",
        type=int,
        default=1 << 20,
        help="output waiting for a client beyond this means it is not keeping up (16 times this "
        "drops it at once)",
    )
    lim.add_argument(
        "--slow-client-grace",
        type=float,
        default=2.0,
        help="seconds a client may stay beyond --max-pending-bytes before it is dropped",
    )
    lim.add_argument("--max-connections", type=int, default=20_000, help="WebSocket connections in total")
    lim.add_argument(
        "--max-connections-per-ip", type=int, default=50, help="WebSocket connections from one IP address"
    )
    lim.add_argument(
        "--limit-loopback",
        action="store_true",
        help="apply the per-IP limit to loopback addresses too (exempt by default)",
    )
    lim.add_argument(
        "--max-rooms",
        type=int,
        default=1000,
        help="rooms with people in them at once (rooms nobody is in only take disk space)",
    )
    lim.add_argument(
        "--history-memory",
        type=int,
        default=64,
        metavar="MIB",
        help="MiB of recent history kept in memory for all rooms together (the rest is read "
        "from the database when asked for)",
    )
    lim.add_argument(
        "--large-room",
        type=int,
        default=100,
        help="rooms above this many members get batched presence notices without member lists",
    )
    lim.add_argument(
        "--ping-interval",
        type=float,
        default=20.0,
        help="seconds between keepalive pings; a connection silent for two intervals is dropped",
    )
    tls = ap.add_argument_group("TLS (wss:// and https:// on the same port)")
    tls.add_argument("--certfile", help="PEM certificate (chain) to serve TLS with")
    tls.add_argument("--keyfile", help="PEM private key of --certfile, if not in the same file")
    tls.add_argument(
        "--self-signed",
        action="store_true",
        help="serve TLS with a self-signed certificate for this host, made on first start and kept "
        "next to the database (cert.pem, key.pem); the banner shows its SHA-256 fingerprint",
    )
    who = ap.add_argument_group("who may connect")
    who.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        type=_origin_arg,
        metavar="ORIGIN",
        help="also accept WebSocket connections from pages at ORIGIN, e.g. https://chat.example.org "
        "(repeatable); the pages this server serves itself are always accepted, pages opened from "
        "disk unless --strict-origin",
    )
    who.add_argument(
        "--strict-origin",
        action="store_true",
        help="refuse pages whose origin is 'null' (opened from disk, or sandboxed by another site)",
    )
    ap.add_argument("--debug", action="store_true", help="log at DEBUG level")
    return ap


def _origin_arg(value: str) -> str:
    origin = value.strip().rstrip("/").lower()
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an origin; write it as scheme://host[:port], e.g. https://chat.example.org"
        )
    return origin


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def hub_config(opts: argparse.Namespace) -> Config:
    return Config(
        history_size=opts.history_size,
        large_room=opts.large_room,
        max_rooms=opts.max_rooms,
        window_budget=opts.history_memory * 1024 * 1024,
        max_messages_per_room=opts.max_messages_per_room,
        max_message_chars=opts.max_message_chars,
        name_timeout=opts.name_timeout,
        chat_rate=opts.rate,
        chat_burst=opts.burst,
        control_rate=opts.control_rate,
        control_burst=opts.control_burst,
        flood_strikes=opts.flood_strikes,
    )


# ------------------------------------------------------------------ the server


class ChatServer:
    """One chat server: `await start()`, then `await stop()`."""

    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.hub: Hub
        self.store: Store
        self.ws_server: Server | None = None
        self.port = 0
        self.started = time.monotonic()
        self.conns: dict[int, ChatConnection] = {}
        self.echoes: set[ChatConnection] = set()  # /echo connections (no chat, no name)
        self.pending: dict[int, list[bytes]] = {}
        self.to_store: list[Execute] = []  # batched store commands of this loop iteration
        self.flush_scheduled = False
        self.next_cid = 1
        self.per_ip: dict[str, int] = {}
        self.total = 0
        self.tasks: set[asyncio.Task] = set()
        self.pages: dict[str, bytes | None] = {}
        self.behind: set[ChatConnection] = set()  # clients with output beyond --max-pending-bytes
        self.origins: frozenset[str] = frozenset()  # accepted Origin headers besides none and null
        self.ssl: ssl.SSLContext | None = None
        self.fingerprint = ""  # of the certificate, when serving TLS
        self.tls_notes: list[str] = []

    # -- lifecycle

    async def start(self) -> None:
        opts = self.opts
        self.loop = asyncio.get_running_loop()
        self._setup_tls()
        if opts.db == DEFAULT_DB:
            os.makedirs(os.path.dirname(DEFAULT_DB), exist_ok=True)
        self.store = open_store(
            opts.db,
            self.loop.call_soon_threadsafe,
            synchronous=opts.synchronous,
            history_cap=opts.max_messages_per_room,
        )
        try:
            snapshot = await asyncio.to_thread(self.store.load)
        except StoreError as exc:
            raise StartupError(str(exc)) from None
        self.hub = Hub(hub_config(opts), snapshot)
        for path, name in PAGES.items():
            try:
                self.pages[path] = (ROOT / name).read_bytes()
            except OSError:
                self.pages[path] = None
        try:
            self.ws_server = await serve(
                self._handler,
                opts.host,
                opts.port,
                process_request=self._process_request,
                create_connection=ChatConnection,
                compression=None,
                max_size=opts.max_frame_bytes,
                open_timeout=opts.handshake_timeout,
                close_timeout=CLOSE_TIMEOUT,
                ping_interval=None,  # one sweep for all connections instead of a task each
                server_header=f"wschat/{__version__}",
                backlog=4096,
                ssl=self.ssl,
                **({"ssl_handshake_timeout": opts.handshake_timeout} if self.ssl else {}),
            )
        except OSError as exc:
            self.store.close()
            raise StartupError(_bind_error(exc, opts.host, opts.port)) from None
        self.port = self.ws_server.sockets[0].getsockname()[1]
        tls = self.ssl is not None
        self.origins = own_origins(opts.host, self.port, tls=tls) | frozenset(opts.allow_origin)
        self._spawn(self._ticker())

    def _setup_tls(self) -> None:
        opts = self.opts
        if opts.keyfile and not opts.certfile:
            raise StartupError("--keyfile needs --certfile (the certificate that goes with the key).")
        if opts.self_signed and opts.certfile:
            raise StartupError("Choose either --self-signed or --certfile, not both.")
        try:
            if opts.self_signed:
                folder = "chat-data" if opts.db == ":memory:" else (os.path.dirname(opts.db) or ".")
                names, addresses = certificate_names(opts.host)
                certfile, keyfile, self.tls_notes = self_signed(folder, names, addresses)
            elif opts.certfile:
                certfile, keyfile = opts.certfile, opts.keyfile
            else:
                return
            self.ssl = server_context(certfile, keyfile)
            self.fingerprint = fingerprint(certfile)
        except TLSSetupError as exc:
            raise StartupError(str(exc)) from None

    async def stop(self) -> None:
        """Tell everyone, store what is pending, close every connection with 1001."""
        if self.ws_server is None:
            return
        self.run(self.hub.shutdown_notice(time.time()))
        self._flush()
        await asyncio.to_thread(self.store.close)  # commits what is queued
        await asyncio.sleep(0)  # deliver the acknowledgements that commit produced
        self._flush()
        for task in self.tasks:
            task.cancel()
        self.ws_server.close()
        try:
            await asyncio.wait_for(self.ws_server.wait_closed(), CLOSE_TIMEOUT + 1)
        except TimeoutError:
            # websockets closes only OPEN connections; one already CLOSING (we sent a close
            # whose task was just cancelled, the client never answered) would hold this forever.
            for ws in list(self.ws_server.all_connections):
                ws.transport.abort()
            await self.ws_server.wait_closed()
        self.ws_server = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- the handshake and HTTP

    def _process_request(self, ws: ChatConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            return self._http(request, path)
        if path not in ("/", "/echo"):
            return _text_response(404, f"No WebSocket endpoint at {path}; the chat is at /.")
        refused = self._check_origin(request.headers.get_all("Origin"), request.headers.get("Host", ""))
        if refused:
            return refused
        ws.kind = "chat" if path == "/" else "echo"
        peer = ws.transport.get_extra_info("peername") or ("", 0)
        ws.ip = str(peer[0])
        if self.total >= self.opts.max_connections:
            return _text_response(503, "The server is full; try again later.")
        if self._ip_limited(ws.ip) and self.per_ip.get(ws.ip, 0) >= self.opts.max_connections_per_ip:
            return _text_response(429, f"Too many connections from {ws.ip}; close some and try again.")
        self.total += 1
        self.per_ip[ws.ip] = self.per_ip.get(ws.ip, 0) + 1
        ws.counted = True
        ws.chat_server = self
        return None

    def _check_origin(self, values: list[str], host: str) -> Response | None:
        """Refuse the handshake of a page from another website (cross-site WebSocket hijacking).

        Browsers always send Origin; terminal clients send none. 'null' is a page opened from
        disk (accepted unless --strict-origin). Anything else must be one of the origins this
        server serves as (see own_origins), an --allow-origin, or the page's own address when
        that is an IP address: the server's page opened through a forwarded port at a public
        IP. A host *name* in the Host header is not trusted, since after DNS rebinding a
        hostile page's Host matches its own Origin; DNS rebinding cannot produce an IP-literal
        Host, because the hostile page's origin is always a name.
        """
        if not values:
            return None
        if len(values) == 1:
            origin = values[0].strip().rstrip("/").lower()
            if origin == "null":
                if not self.opts.strict_origin:
                    return None
                return _text_response(
                    403,
                    "This server refuses pages opened from disk or sandboxed (Origin: null) because it "
                    "runs with --strict-origin; open the web client from the server's own address.",
                )
            if origin in self.origins or _same_ip_origin(origin, host, tls=self.ssl is not None):
                return None
        shown = ", ".join(v[:100] for v in values)
        return _text_response(
            403,
            f"Refused: this chat server does not serve pages from {shown}, so a page there may not "
            "connect to it (protection against cross-site WebSocket hijacking). If that really is an "
            f"address of this server, start it with --allow-origin {values[0][:100]}",
        )

    def _ip_limited(self, ip: str) -> bool:
        if self.opts.limit_loopback:
            return True
        try:
            return not ipaddress.ip_address(ip).is_loopback
        except ValueError:
            return True

    def release(self, ws: ChatConnection) -> None:
        ws.counted = False
        self.total -= 1
        left = self.per_ip.get(ws.ip, 1) - 1
        if left:
            self.per_ip[ws.ip] = left
        else:
            self.per_ip.pop(ws.ip, None)

    def _http(self, request: Request, path: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            resp = _text_response(405, "Only GET and HEAD are supported here.")
            resp.headers["Allow"] = "GET, HEAD"
            return resp
        if path == "/healthz":
            stats = {
                "status": "ok",
                "version": __version__,
                "uptime_s": round(time.monotonic() - self.started, 1),
                **self.hub.stats(),
            }
            resp = _response(200, "application/json", json.dumps(stats).encode())
        elif path in self.pages:
            page = self.pages[path]
            if page is None:
                return _text_response(404, f"{PAGES[path]} is missing from the server's folder.")
            resp = _response(200, "text/html; charset=utf-8", page)
            resp.headers["Cache-Control"] = "no-cache"
            resp.headers["X-Frame-Options"] = "DENY"
            resp.headers["Referrer-Policy"] = "no-referrer"
        else:
            return _text_response(404, f"Nothing at {path}. The web client is at /.")
        if request.method == "HEAD":
            resp.body = b""
        return resp

    # -- connections

    async def _handler(self, ws: ChatConnection) -> None:
        ws.request = _HANDSHAKE_DONE
        ws.response = None
        if ws.kind == "echo":
            await self._echo(ws)
            return
        cid = ws.cid = self.next_cid
        self.next_cid += 1
        self.conns[cid] = ws
        self.run(self.hub.connect(cid, time.time(), ws.ip))
        ws.chat = self
        ws.between_frames()  # lets go of the handshake request now if it can (idle clients)
        try:
            # Frames reach this queue only if they arrived before registration: every later data
            # frame goes to the chat from ChatConnection.process_event, in arrival order.
            async for message in ws:
                if isinstance(message, str):
                    self.on_text(ws, message)
                else:
                    self.on_binary(ws)
        except ConnectionClosed:
            pass
        finally:
            ws.chat = None
            del self.conns[cid]
            self.pending.pop(cid, None)
            self.run(self.hub.disconnect(cid, time.time()))

    async def _echo(self, ws: ChatConnection) -> None:
        self.echoes.add(ws)  # kept alive by the same keepalive sweep as the chat
        try:
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    await ws.send(message)
        finally:
            self.echoes.discard(ws)

    def on_frame(self, ws: ChatConnection, data: bytes) -> None:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self._close(ws.cid, 1007, "text frame is not valid UTF-8")
            return
        self.on_text(ws, text)

    def on_text(self, ws: ChatConnection, text: str) -> None:
        if ws.closing:
            return
        try:
            actions = self.hub.receive(ws.cid, text, time.time())
        except Exception:
            # A bug, not the client's fault: log it, refuse this frame, keep the connection.
            log.exception("internal error handling a frame from client %d (%s)", ws.cid, ws.ip)
            reply = "The server failed to handle that frame (a bug, logged); nothing was changed."
            actions = [Send((ws.cid,), protocol.error("internal_error", reply))]
        self.run(actions)

    def on_binary(self, ws: ChatConnection) -> None:
        if not ws.closing:
            self.run(self.hub.binary(ws.cid, time.time()))

    # -- carrying out the hub's actions

    def run(self, actions: Iterable[Any]) -> None:
        """Carry out the hub's effects (wschat.effects), whichever feature made them."""
        for action in actions:
            kind = type(action)
            if kind is Send:
                self._send(action.targets, action.data)
            elif kind is Execute:
                if action.command.batched:  # merged with this loop iteration's others: _flush_store
                    self.to_store.append(action)
                    self._schedule()
                else:
                    self.store.execute(action.command, functools.partial(self._stored, action.token))
            elif kind is Close:
                self._close(action.conn, action.code, action.reason)

    def _send(self, targets: tuple[int, ...], data: bytes) -> None:
        frame = ws_frame(data)
        pending = self.pending
        for cid in targets:
            queued = pending.get(cid)
            if queued is None:
                pending[cid] = [frame]
            else:
                queued.append(frame)
        self._schedule()

    def _schedule(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Once per loop iteration: one store batch, and one write per connection."""
        self.flush_scheduled = False
        if self.to_store:
            self._flush_store()
        pending, self.pending = self.pending, {}
        conns = self.conns
        for cid, frames in pending.items():
            ws = conns.get(cid)
            if ws is not None:
                self._write(ws, frames)

    def _write(self, ws: ChatConnection, frames: list[bytes]) -> None:
        """Write to one connection, dropping it if it has stopped reading.

        A client is behind when more than --max-pending-bytes still wait for it as new output
        arrives. It is dropped when it stays behind for --slow-client-grace seconds, or at once
        when 16 times that much waits. The check looks at the backlog *before* this write, so a
        single large frame (a long history after a reconnect) never counts against a client
        that was keeping up, even when it does not fit in the socket buffer at once.
        """
        if ws.closing or ws.protocol.state is not State.OPEN:
            return
        transport = ws.transport
        before = transport.get_write_buffer_size()
        transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        cap = self.opts.max_pending_bytes
        if before <= cap:
            ws.behind_since = 0.0
            return
        now = self.loop.time()
        if not ws.behind_since:
            ws.behind_since = now
            self.behind.add(ws)  # checked again every second, even if nothing more is sent
        if now - ws.behind_since > self.opts.slow_client_grace or before > 16 * cap:
            self._drop_slow(ws)

    def _check_behind(self) -> None:
        """Drop clients still behind after the grace period; forget those that caught up."""
        now = self.loop.time()
        cap, grace = self.opts.max_pending_bytes, self.opts.slow_client_grace
        for ws in list(self.behind):
            if ws.closing or ws.transport.is_closing():
                self.behind.discard(ws)
            elif ws.transport.get_write_buffer_size() <= cap:
                ws.behind_since = 0.0
                self.behind.discard(ws)
            elif now - ws.behind_since > grace:
                self.behind.discard(ws)
                self._drop_slow(ws)

    def _drop_slow(self, ws: ChatConnection) -> None:
        size = ws.transport.get_write_buffer_size()
        log.warning("dropping %s (client %d): it stopped reading, %d bytes wait for it", ws.ip, ws.cid, size)
        ws.closing = True
        self.behind.discard(ws)
        ws.transport.abort()

    def _close(self, cid: int, code: int, reason: str) -> None:
        ws = self.conns.get(cid)
        if ws is None or ws.closing:
            return
        frames = self.pending.pop(cid, None)
        if frames:
            self._write(ws, frames)
        ws.closing = True
        log.info("closing client %d (%s): %d %s", cid, ws.ip, code, reason)
        self._spawn(ws.close(code, reason))

    def _flush_store(self) -> None:
        """This loop iteration's batched store commands, merged: one store batch per kind."""
        batch, self.to_store = self.to_store, []
        kinds: dict[type, list[Execute]] = {}
        for action in batch:
            kinds.setdefault(type(action.command), []).append(action)
        for kind, actions in kinds.items():
            command = kind.merge([a.command for a in actions])
            self.store.execute(command, functools.partial(self._stored_all, [a.token for a in actions]))

    def _stored(self, token: int, result: Any) -> None:
        self.run(self.hub.store_result(token, result, time.time()))

    def _stored_all(self, tokens: list[int], result: Any) -> None:
        now = time.time()
        store_result = self.hub.store_result
        for token in tokens:
            self.run(store_result(token, result, now))

    # -- timers

    async def _ticker(self) -> None:
        interval = self.opts.ping_interval
        next_sweep = time.monotonic() + interval
        while True:
            await asyncio.sleep(1.0)
            self.run(self.hub.tick(time.time()))
            if self.behind:
                self._check_behind()
            if interval and time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + interval
                self._keepalive()

    def _keepalive(self) -> None:
        """Ping everyone; drop whoever sent nothing (not even a pong) since the last sweep."""
        for ws in [*self.conns.values(), *self.echoes]:
            if not ws.alive:
                log.info("dropping client %d (%s): no answer to keepalive ping", ws.cid, ws.ip)
                ws.closing = True
                ws.transport.abort()
                continue
            ws.alive = False
            self._write(ws, [PING_FRAME])


def _response(status: int, content_type: str, body: bytes) -> Response:
    st = http.HTTPStatus(status)
    headers = Headers(
        [
            ("Date", formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(st.value, st.phrase, headers, body)


def _text_response(status: int, text: str) -> Response:
    return _response(status, "text/plain; charset=utf-8", (text + "\n").encode())


def _bind_error(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"Port {port} is already in use (is another chat server running?); "
            "stop it or choose another port with --port."
        )
    if exc.errno == errno.EACCES:
        return f"Not allowed to listen on port {port}; choose a port above 1023 with --port."
    if exc.errno in (errno.EADDRNOTAVAIL, socket.EAI_NONAME) or isinstance(exc, socket.gaierror):
        return f"Cannot listen on {host}: this machine has no such address; try --host 0.0.0.0."
    return f"Cannot listen on {host}:{port}: {exc.strerror or exc}."


# ------------------------------------------------------------------ start-up banner


def network_addresses() -> list[str]:
    """This host's non-loopback IPv4 addresses, one per interface."""
    found: list[str] = []
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family == socket.AF_INET and not a.address.startswith("127."):
                    found.append(a.address)
    except Exception:  # no psutil or no permission: fall back to the default route's address
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            found.append(s.getsockname()[0])
    return list(dict.fromkeys(found))


def _same_ip_origin(origin: str, host: str, *, tls: bool) -> bool:
    """Origin is this request's own scheme://Host and Host is an IP address with a port."""
    name, _, port = host.strip().lower().rpartition(":")
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return port.isdigit() and origin == f"{'https' if tls else 'http'}://{name}:{port}"


def own_origins(host: str, port: int, *, tls: bool) -> frozenset[str]:
    """Origins of the pages this server serves: scheme://name:port for each name it answers as.

    The names are loopback, this host's addresses and host names (hostname, hostname.local, the
    fully qualified name) and the --host it listens on; browsers send them in lower case.
    """
    scheme = "https" if tls else "http"
    names = {"localhost", "127.0.0.1", "[::1]", *network_addresses()}
    names |= {f"[{ip}]" for ip in _ipv6_addresses()}
    hostname = socket.gethostname().lower()
    if hostname:
        names |= {hostname, f"{hostname.split('.')[0]}.local"}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn().lower())
    if host not in ("0.0.0.0", "", "::"):
        names.add(f"[{host}]" if ":" in host else host.lower())
    origins = {f"{scheme}://{name}:{port}" for name in names if name}
    if port == (443 if tls else 80):  # browsers leave the default port out
        origins |= {f"{scheme}://{name}" for name in names if name}
    return frozenset(origins)


def _ipv6_addresses() -> list[str]:
    """This host's global IPv6 addresses (link-local ones cannot appear in a browser's URL)."""
    found: list[str] = []
    with contextlib.suppress(Exception):
        import psutil

        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family == socket.AF_INET6:
                    ip = ipaddress.ip_address(a.address.split("%")[0])
                    if not (ip.is_loopback or ip.is_link_local):
                        found.append(str(ip))
    return found


def certificate_names(host: str) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) a self-signed certificate for this host should cover."""
    names = ["localhost"]
    hostname = socket.gethostname().lower()
    if hostname and hostname != "localhost":
        names += [hostname, f"{hostname.split('.')[0]}.local"]
    with contextlib.suppress(OSError):
        fqdn = socket.getfqdn().lower()
        if "." in fqdn and fqdn not in names:
            names.append(fqdn)
    addresses = ["127.0.0.1", "::1", *network_addresses(), *_ipv6_addresses()]
    if host not in ("0.0.0.0", "", "::"):
        try:
            addresses.append(str(ipaddress.ip_address(host)))
        except ValueError:
            names.append(host.lower())
    return list(dict.fromkeys(names)), list(dict.fromkeys(addresses))


def banner(
    host: str, port: int, *, tls: bool = False, fingerprint: str = "", notes: Iterable[str] = ()
) -> str:
    ws, http_ = ("wss", "https") if tls else ("ws", "http")
    rule = "=" * 50
    lines = [f"Starting WebSocket chat server on {ws}://{host}:{port}", rule, "Server is accessible at:"]
    if host in ("0.0.0.0", "", "::"):
        network = network_addresses()
        lines.append(f"  {ws}://localhost:{port} (local only)")
        lines += [f"  {ws}://{ip}:{port} (network)" for ip in network]
        lines.append(f"  Web client: {http_}://{network[0] if network else 'localhost'}:{port}/")
    else:
        lines.append(f"  {ws}://{host}:{port}")
        lines.append(f"  Web client: {http_}://{host}:{port}/")
    if fingerprint:
        lines.append(f"  Certificate SHA-256 fingerprint: {fingerprint}")
    lines += [f"  {note}" for note in notes]
    lines += [rule, "Share the network address with other users to connect!"]
    return "\n".join(lines)


# ------------------------------------------------------------------ main


async def _serve(opts: argparse.Namespace) -> None:
    # Handlers first: a signal that arrives while starting must still end in a clean exit 0.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C raises instead
            loop.add_signal_handler(sig, stop.set)
    server = ChatServer(opts)
    await server.start()
    # With the garbage collector's default thresholds (a young collection every 700 net
    # allocations), collections took about a tenth of the CPU under load here and a full one paused
    # the loop for up to 100 ms. Frames and messages are freed by reference counting; the
    # collector is only there for cycles, which are rare, so it can run far less often.
    gc.set_threshold(50_000, 20, 10)
    try:
        print(
            banner(
                opts.host,
                server.port,
                tls=server.ssl is not None,
                fingerprint=server.fingerprint,
                notes=server.tls_notes,
            ),
            flush=True,
        )
        log.info(
            "history in %s; limits: %d chars, %g msg/s (burst %g), %d KiB frames",
            "memory only" if opts.db == ":memory:" else opts.db,
            opts.max_message_chars,
            opts.rate,
            opts.burst,
            opts.max_frame_bytes // 1024,
        )
        await stop.wait()
        log.info("shutting down")
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if opts.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not opts.debug:
        # websockets logs each connection at INFO; refused handshakes only at DEBUG. What it
        # logs at ERROR ("connection handler failed", "process_request failed") is a bug here
        # and must stay visible.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        asyncio.run(_serve(opts))
    except StartupError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # platforms without signal handlers in the loop
        pass
