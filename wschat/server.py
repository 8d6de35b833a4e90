"""The server's I/O runtime: connections, the hub's actions, timers, signals, main().

Everything that decides *what* to send lives in `wschat.hub`; this module only moves bytes and
events, and wires the other I/O modules together: `wschat.transport` (frames in),
`wschat.routes` (HTTP), `wschat.admission` (connection counts), `wschat.cli` (options),
`wschat.banner`.
It feeds each text frame to `Hub.receive()` and carries out the actions it gets back:

- `Send`: the frame is built once (server frames are unmasked, so the bytes are the same for
  every recipient) and queued per connection; once per event-loop iteration each connection
  gets everything queued for it in a single `write()`. One write per delivery would cap a core
  near 100,000 deliveries a second; merging lifts that by the batch size.
- `Execute`: a store command; those of one iteration that can be merged (appends) go to the
  store as one batch; the hub hears back through `store_result()` (`store_results()` for a
  merged batch: one call for all its tokens) on the loop thread.
- `Close` as it says.

What waits for each connection is capped by `wschat.output.Backpressure`, and what the server
opens at start and closes at stop is `wschat.lifecycle.Lifecycle`: both parts of this class.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Iterable
from typing import Any

from websockets.asyncio.server import Server
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from wschat import mdns, protocol
from wschat.admission import Admission
from wschat.banner import banner, qr_notes, web_urls
from wschat.cli import StartupError, parse_args, redis_shown
from wschat.hub import Close, Execute, Hub, Send
from wschat.lifecycle import Lifecycle
from wschat.mediaserve import MediaResponse
from wschat.output import Backpressure
from wschat.redismode import Cluster
from wschat.routes import Routes
from wschat.store import Store
from wschat.transport import ChatConnection, ws_frame
from wschat.workers import supervise

log = logging.getLogger("wschat.server")


class ChatServer(Lifecycle, Backpressure):
    """One chat server: `await start()`, then `await stop()`."""

    def __init__(self, opts: argparse.Namespace) -> None:
        super().__init__()
        self.opts = opts
        self.hub: Hub
        self.store: Store
        self.routes: Routes
        self.ws_server: Server | None = None
        self.port = 0
        self.conns: dict[int, ChatConnection] = {}
        self.echoes: set[ChatConnection] = set()  # /echo connections (no chat, no name)
        self.pending: dict[int, list[bytes]] = {}
        # bytes queued in `pending` this iteration, all connections together: a bound on each one's
        # share, so `backlogged` is one comparison while the whole iteration's output is small
        self.queued_total = 0
        # batched store commands of this loop iteration, by kind (in the order kinds came)
        self.to_store: dict[type, list[Execute]] = {}
        self.flush_scheduled = False
        self.next_cid = 1
        self.admission = Admission(opts)
        self.max_frame_bytes = opts.max_frame_bytes
        self.hard_cap = 16 * opts.max_pending_bytes
        self.tasks: set[asyncio.Task] = set()
        self.ssl: ssl.SSLContext | None = None
        self.fingerprint = ""  # of the certificate, when serving TLS
        self.tls_notes: list[str] = []
        self.notes: list[str] = []  # for the banner
        self.dual_stack = False  # --host :: takes IPv4 too
        self.cluster: Cluster | None = None  # --redis

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- connections: counting and the handshake

    @property
    def total(self) -> int:
        """WebSocket connections open."""
        return self.admission.total

    def opened(self, ws: ChatConnection) -> None:
        self.admission.opened(ws)

    def released(self, ws: ChatConnection) -> None:
        self.admission.released(ws)
        self.paused.discard(ws)
        self.behind.discard(ws)

    def take_over(self, ws: ChatConnection, method: str, target: str) -> MediaResponse | None:
        """Shared files are streamed by wschat.mediaserve, not answered whole by websockets."""
        if not target.startswith("/media/"):
            return None
        return MediaResponse(self.media, method, target, functools.partial(self.released, ws))

    def _process_request(self, ws: ChatConnection, request: Request) -> Response | None:
        kind = self.routes.route(request)
        if isinstance(kind, Response):
            return kind
        ws.kind = kind
        return self.admission.admit(ws)

    # -- connections

    async def _handler(self, ws: ChatConnection) -> None:
        if ws.kind == "echo":
            ws.handshake_done()
            await self._echo(ws)
            return
        cid = ws.cid = self.next_cid
        self.next_cid += 1
        self.conns[cid] = ws
        self.run(self.hub.connect(cid, time.time(), ws.ip))
        ws.chat = self
        log.info("client %d connected from %s", cid, ws.ip)
        ws.between_frames()  # lets go of the handshake request now if it can (idle clients)
        ws.handshake_done()
        try:
            # Frames reach this queue only if they arrived before registration: every later data
            # frame goes to the chat from ChatConnection.process_event, in arrival order.
            async for message in ws:
                if isinstance(message, str):
                    self.on_text(ws, message)
                else:
                    self.on_binary(ws, message)
        except ConnectionClosed:
            pass
        finally:
            ws.chat = None
            del self.conns[cid]
            self.pending.pop(cid, None)
            self.paused.discard(ws)
            who = f" {ws.name!r}" if ws.name else " without a name"
            log.info("client %d (%s)%s disconnected: %s", cid, ws.ip, who, ws.ending())
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
        if not ws.name:
            self._named(ws)

    def _named(self, ws: ChatConnection) -> None:
        session = self.hub.sessions.get(ws.cid)
        if session is not None and session.name:
            ws.name = session.name
            log.info("client %d (%s) is %r", ws.cid, ws.ip, ws.name)

    def on_binary(self, ws: ChatConnection, data: bytes) -> None:
        if not ws.closing:
            self.run(self.hub.binary(ws.cid, data, time.time()))

    # -- carrying out the hub's actions

    def run(self, actions: Iterable[Any]) -> None:
        """Carry out the hub's effects (wschat.effects), whichever feature made them."""
        for action in actions:
            kind = type(action)
            if kind is Send:
                self._send(action.targets, action.data)
            elif kind is Execute:
                command = action.command
                if command.batched:  # merged with this loop iteration's others: _flush_store
                    queued = self.to_store.get(type(command))
                    if queued is None:
                        self.to_store[type(command)] = [action]
                        self._schedule()
                    else:
                        queued.append(action)
                else:
                    self._execute(action)
            elif kind is Close:
                self._close(action.conn, action.code, action.reason)

    def _send(self, targets: tuple[int, ...], data: bytes) -> None:
        frame = ws_frame(data)
        self.queued_total += len(frame) * len(targets)
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
        pending, self.pending, self.queued_total = self.pending, {}, 0
        self.flushes += 1
        conns = self.conns
        for cid, frames in pending.items():
            ws = conns.get(cid)
            if ws is not None:
                self._write(ws, frames)
        if self.paused:
            self._resume_paused()

    def close_conn(self, ws: ChatConnection, code: int, reason: str) -> None:
        self._close(ws.cid, code, reason)

    def _close(self, cid: int, code: int, reason: str) -> None:
        ws = self.conns.get(cid)
        if ws is None or ws.closing:
            return
        frames = self.pending.pop(cid, None)
        if frames:
            self._write(ws, frames)
        ws.closing = True
        ws.drop_held_input()
        log.info("closing client %d (%s): %d %s", cid, ws.ip, code, reason)
        self._spawn(ws.close(code, reason))

    def _flush_store(self) -> None:
        """This loop iteration's batched store commands, merged: one store batch per kind."""
        kinds, self.to_store = self.to_store, {}
        for kind, actions in kinds.items():
            command = kind.merge([a.command for a in actions])
            self.store.execute(command, functools.partial(self._stored_all, [a.token for a in actions]))

    def _execute(self, action: Execute) -> None:
        ws = self.conns.get(action.holds) if action.holds else None
        if ws is not None:
            ws.reads_in_flight += 1  # its input waits (see `backlogged`) until the answer is queued
        self.store.execute(action.command, functools.partial(self._stored, action.token, ws))

    def _stored(self, token: int, ws: ChatConnection | None, result: Any) -> None:
        self.run(self.hub.store_result(token, result, time.time()))
        if ws is not None:
            ws.reads_in_flight -= 1
            if not ws.reads_in_flight and ws.input_held:
                ws.resume_input()  # stays held if the answer itself put it over the cap

    def _stored_all(self, tokens: list[int], result: Any) -> None:
        # one entry point and one run for the whole batch: a run per message cost ~15 % of acks/s
        self.run(self.hub.store_results(tokens, result, time.time()))

    # -- timers

    async def _ticker(self) -> None:
        interval = self.opts.ping_interval
        next_sweep = time.monotonic() + interval
        while True:
            await asyncio.sleep(1.0)
            self.run(self.hub.tick(time.time()))
            if self.behind:
                self._check_behind()
            if self.paused:
                self._resume_paused()
            if interval and time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + interval
                self._keepalive()


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
    announcement: mdns.Announcement | None = None
    # With the garbage collector's default thresholds (a young collection every 700 net
    # allocations), collections took about a tenth of the CPU under load here and a full one paused
    # the loop for up to 100 ms. Frames and messages are freed by reference counting; the
    # collector is only there for cycles, which are rare, so it can run far less often.
    gc.set_threshold(50_000, 20, 10)
    try:
        notes = [*server.tls_notes, *server.notes]
        tls = server.ssl is not None
        if not opts.no_qr:  # a phone's camera opens the web client (wschat.qr)
            url = web_urls(opts.host, server.port, tls=tls, dual_stack=server.dual_stack)[0]
            notes += qr_notes(url, color=sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
        shown = banner(
            opts.host,
            server.port,
            tls=tls,
            fingerprint=server.fingerprint,
            notes=notes,
            dual_stack=server.dual_stack,
        )
        print(shown, flush=True)
        announcement = mdns.announce(
            opts, server.port, tls=tls, fingerprint=server.fingerprint, dual_stack=server.dual_stack
        )
        log.info(
            "history in %s; limits: %d chars, %g msg/s (burst %g), %d KiB frames",
            f"Redis at {redis_shown(opts.redis)}"
            if opts.redis
            else ("memory only" if opts.db == ":memory:" else opts.db),
            opts.max_message_chars,
            opts.rate,
            opts.burst,
            opts.max_frame_bytes // 1024,
        )
        await stop.wait()
        log.info("shutting down")
    finally:
        if announcement is not None:  # goodbye packets: clients drop it from their lists
            await asyncio.to_thread(announcement.stop)
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if opts.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Gather per record only what the format shows (the logging HOWTO's "Optimization"): with a
    # line per connection, name and disconnect, finding the caller was a third of their cost.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if opts.workers > 1:  # this process only supervises the workers (wschat.workers)
        sys.exit(supervise(sys.argv[1:] if argv is None else argv, opts.workers))
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
