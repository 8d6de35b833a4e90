"""Who gets a socket: descriptor limits, connection counts and caps, listening sockets.

A server limited to N open files must never run out of them, whatever clients do: the soft
limit is raised to the hard one at start-up, `--max-connections` is cut to what fits, and a TCP
connection beyond what the descriptors allow is closed the moment it is accepted. Connections
still in their handshake count against their address's cap (`--max-connections-per-ip`), so a
flood of half-open sockets from one address cannot hold the descriptors everyone else needs.
Refusals and accept failures are logged as one line now and then, never one per attempt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import logging
import resource
import socket
import time
from typing import Any

from websockets.http11 import Response

from wschat.routes import text_response
from wschat.transport import ChatConnection

log = logging.getLogger("wschat.server")

RESERVED_FDS = 32  # descriptors kept for the database, listening sockets, pages, logging
HANDSHAKE_ALLOWANCE = 10  # connections from one address over its cap that still get a 429 sentence
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
QUIET_SECONDS = 10.0  # at most one log line a while about refused connections


def descriptor_limit() -> int:
    """Raise the soft limit on open files to the hard one; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 30


def dual_stack_socket(port: int) -> tuple[socket.socket, bool]:
    """A listening socket on :: that takes IPv4 too where the system allows (dual stack).

    asyncio makes every IPv6 listening socket IPv6-only, so `--host ::` would not be reachable
    at this host's IPv4 addresses. Returns the socket and whether it takes IPv4.
    """
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        both = True
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        except (OSError, AttributeError):
            both = False
        sock.bind(("::", port))
        sock.listen(4096)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock, both


def bind_error(exc: OSError, host: str, port: int) -> str:
    """What to tell the person starting the server when it cannot listen."""
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


class QuietLog:
    """A warning said at most once every QUIET_SECONDS per kind: a flood is one line, not one each."""

    def __init__(self) -> None:
        self.until: dict[str, float] = {}

    def warning(self, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now >= self.until.get(key, 0.0):
            self.until[key] = now + QUIET_SECONDS
            log.warning(message + " (said at most once every %d s)", *args, QUIET_SECONDS)


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


class Admission:
    """Connection counts: every TCP connection, handshakes per address, WebSockets per address."""

    def __init__(self, opts: argparse.Namespace) -> None:
        self.per_ip_cap: int = opts.max_connections_per_ip
        self.limit_loopback: bool = opts.limit_loopback
        self.max_connections: int = opts.max_connections
        self.total = 0  # WebSocket connections
        self.per_ip: dict[str, int] = {}  # WebSocket connections per address
        self.half_open: dict[str, int] = {}  # connections per address still in their handshake
        self.sockets = 0  # every TCP connection: handshakes and HTTP requests too
        self.socket_cap = 1 << 30  # sockets beyond this are closed as soon as accepted
        self.quiet = QuietLog()

    def fit_descriptors(self) -> str:
        """Size the caps to the descriptor limit; a sentence for the banner if that lowers them."""
        limit = descriptor_limit()
        self.socket_cap = max(limit - RESERVED_FDS, 8)
        most = max(self.socket_cap * 7 // 8, 1)  # the rest: handshakes, HTTP requests
        if self.max_connections <= most:
            return ""
        asked, self.max_connections = self.max_connections, most
        return (
            f"At most {most:,} connections (not {asked:,}): this process may open {limit:,} "
            "files (raise that with ulimit -n)"
        )

    def opened(self, ws: ChatConnection) -> None:
        """Count a new TCP connection; close it at once if it would take the last descriptors."""
        self.sockets += 1
        ip = ws.ip
        ws.half_open = True
        self.half_open[ip] = half = self.half_open.get(ip, 0) + 1
        if self.sockets > self.socket_cap:
            self._refuse(ws, "%d connections open, the most the descriptor limit allows", self.sockets)
        elif self.limited(ip) and self.per_ip.get(ip, 0) + half > self.per_ip_cap + HANDSHAKE_ALLOWANCE:
            self._refuse(ws, "%s is over --max-connections-per-ip (%d)", ip, self.per_ip_cap)

    def _refuse(self, ws: ChatConnection, why: str, *args: Any) -> None:
        ws.closing = True
        ws.drop_reason = "refused at once"
        ws.transport.abort()
        self.quiet.warning("refuse", "refusing connections: " + why, *args)

    def admit(self, ws: ChatConnection) -> Response | None:
        """Count a WebSocket handshake in, or the HTTP answer that refuses it."""
        if self.total >= self.max_connections:
            return text_response(503, "The server is full; try again later.")
        if self.limited(ws.ip) and self.per_ip.get(ws.ip, 0) >= self.per_ip_cap:
            return text_response(429, f"Too many connections from {ws.ip}; close some and try again.")
        ws.half_open = False
        _decrement(self.half_open, ws.ip)
        self.total += 1
        self.per_ip[ws.ip] = self.per_ip.get(ws.ip, 0) + 1
        ws.counted = True
        return None

    def released(self, ws: ChatConnection) -> None:
        self.sockets -= 1
        if ws.half_open:
            ws.half_open = False
            _decrement(self.half_open, ws.ip)
        if ws.counted:
            ws.counted = False
            self.total -= 1
            _decrement(self.per_ip, ws.ip)

    def limited(self, ip: str) -> bool:
        if self.limit_loopback:
            return True
        try:
            return not ipaddress.ip_address(ip).is_loopback
        except ValueError:
            return True

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The event loop's exception handler: accept() out of descriptors is one line a while."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (
            errno.EMFILE,
            errno.ENFILE,
            errno.ENOBUFS,
            errno.ENOMEM,
        ):
            # asyncio has already stopped accepting for a second; a traceback per attempt would
            # fill the disk while the flood lasts
            self.quiet.warning("accept", "cannot accept connections: %s; pausing", exc.strerror)
            return
        loop.default_exception_handler(context)
