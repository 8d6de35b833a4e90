"""What waits for each connection, and what becomes of a connection that does not read.

A connection's output backlog (frames queued this loop iteration plus the socket's write
buffer) is capped by --max-pending-bytes:

- Requests: while the backlog is over the cap, the transport hands the hub none of that
  connection's frames (`backlogged`); they wait unparsed, the socket is not read, and
  `_resume_paused` lets them go on once the backlog drains. A client that never reads makes the
  server hold the answer to one request at a time, never to a packet full of them.
- Broadcasts and everything else: a client with more than the cap waiting as new output arrives
  is *behind*; behind for longer than --slow-client-grace, or with 16 times the cap waiting, its
  TCP connection is aborted (`_write`, `_check_behind`).
- Keepalive: every --ping-interval everyone is pinged; a connection that sent nothing since the
  last sweep, not even a pong, is aborted.

`Backpressure` is a part of `ChatServer` (a mixin): the hot path reaches its attributes directly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from wschat.transport import PING_FRAME, ChatConnection

log = logging.getLogger("wschat.server")


class Backpressure:
    """The output caps of `ChatServer`; see the module docstring."""

    opts: argparse.Namespace
    loop: asyncio.AbstractEventLoop
    conns: dict[int, ChatConnection]
    echoes: set[ChatConnection]
    pending: dict[int, list[bytes]]
    queued_total: int
    hard_cap: int

    def __init__(self) -> None:
        self.flushes = 0  # output queues flushed so far (see backlogged)
        self.behind: set[ChatConnection] = set()  # clients with output beyond --max-pending-bytes
        self.paused: set[ChatConnection] = set()  # clients whose input waits for their output

    def _write(self, ws: ChatConnection, frames: list[bytes]) -> None:
        """Write to one connection, dropping it if it has stopped reading.

        A client is behind when more than --max-pending-bytes still wait for it as new output
        arrives. It is dropped when it stays behind for --slow-client-grace seconds, or at once
        when 16 times that much waits. The check looks at the backlog *before* this write, so a
        single large frame (a long history after a reconnect) never counts against a client
        that was keeping up, even when it does not fit in the socket buffer at once. (What its
        own requests can add is bounded by `backlogged`.)
        """
        if ws.closing or not ws.is_open():
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
        if now - ws.behind_since > self.opts.slow_client_grace or before > self.hard_cap:
            self._drop_slow(ws)

    def backlogged(self, ws: ChatConnection) -> bool:
        """Whether `ws` has more output waiting than --max-pending-bytes (queued or unsent).

        The transport asks before handing each request to the hub: while this holds, the
        connection's input waits (`_resume_paused` lets it go on), so a client that never reads
        makes the server hold the answer to one request at a time, not to a packet full of them.
        """
        if ws.reads_in_flight:  # an answer is still being read for it: it counts as backlog
            self.paused.add(ws)
            return True
        size = ws.transport.get_write_buffer_size()
        if size + self.queued_total <= self.opts.max_pending_bytes:  # the usual case: cheap bound
            return False
        queued = self.pending.get(ws.cid)
        if queued:
            # counted incrementally: a packet of n requests from a sender in a busy room must
            # not cost n^2. The queue is a new list after each flush and only grows until the next.
            if ws.queued_flush != self.flushes or len(queued) < ws.queued_count:
                ws.queued_flush, ws.queued_count, ws.queued_bytes = self.flushes, 0, 0
            if ws.queued_count < len(queued):
                ws.queued_bytes += sum(map(len, queued[ws.queued_count :]))
                ws.queued_count = len(queued)
            size += ws.queued_bytes
        if size <= self.opts.max_pending_bytes:
            return False
        if size > self.hard_cap:
            self._drop_slow(ws)
        else:
            self.paused.add(ws)
        return True

    def _resume_paused(self) -> None:
        for ws in list(self.paused):
            ws.resume_input()
            if not ws.input_held or ws.closing:
                self.paused.discard(ws)

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
        ws.drop_reason = f"dropped, it stopped reading ({size} bytes waited for it)"
        ws.closing = True
        self.behind.discard(ws)
        self.paused.discard(ws)
        ws.transport.abort()

    drop_slow = _drop_slow

    def _keepalive(self) -> None:
        """Ping everyone; drop whoever sent nothing (not even a pong) since the last sweep."""
        for ws in [*self.conns.values(), *self.echoes]:
            if not ws.alive:
                log.info("dropping client %d (%s): no answer to keepalive ping", ws.cid, ws.ip)
                ws.drop_reason = "dropped, no answer to keepalive pings"
                ws.closing = True
                ws.transport.abort()
                continue
            ws.alive = False
            self._write(ws, [PING_FRAME])
