"""HTTP on the chat's port: which requests may become WebSockets, and the plain HTTP routes.

- `/` and `/demo` serve the web client and the demo page, `/healthz` the server's figures as
  JSON (503 when a process of several cannot reach Redis), `/join` the printable join page and
  `/manifest.webmanifest`, `/icons/...`, `/sw.js` what makes the page installable
  (`wschat.webapp`); anything else is 404, any method but GET and HEAD 405.
- A WebSocket handshake is accepted at `/` (the chat) and `/echo`, and only from a page this
  server serves itself, an `--allow-origin`, a page opened from disk (unless
  `--strict-origin`) or a client that sends no Origin at all (see `Routes.check_origin`).

Every refusal is an HTTP response with a plain sentence saying what to do.
"""

from __future__ import annotations

import contextlib
import http
import ipaddress
import json
import socket
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from wschat import __version__
from wschat.banner import WILDCARDS, ipv6_addresses, network_addresses
from wschat.webapp import AppFiles, page_file

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"/": "chat-web-client.html", "/demo": "websocket-demo.html"}
WEBSOCKET_PATHS = {"/": "chat", "/echo": "echo"}


def response(status: int, content_type: str, body: bytes) -> Response:
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


def text_response(status: int, text: str) -> Response:
    return response(status, "text/plain; charset=utf-8", (text + "\n").encode())


def same_ip_origin(origin: str, host: str, *, tls: bool) -> bool:
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
    names |= {f"[{ip}]" for ip in ipv6_addresses()}
    hostname = socket.gethostname().lower()
    if hostname:
        names |= {hostname, f"{hostname.split('.')[0]}.local"}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn().lower())
    if host not in WILDCARDS:
        names.add(f"[{host}]" if ":" in host else host.lower())
    origins = {f"{scheme}://{name}:{port}" for name in names if name}
    if port == (443 if tls else 80):  # browsers leave the default port out
        origins |= {f"{scheme}://{name}" for name in names if name}
    return frozenset(origins)


class Routes:
    """Answers HTTP requests and decides which handshakes may go on."""

    def __init__(
        self,
        origins: frozenset[str],
        *,
        tls: bool,
        strict_origin: bool,
        stats: Callable[[], dict[str, Any]],
    ) -> None:
        self.origins = origins  # accepted Origin headers besides none and null
        self.tls = tls
        self.strict_origin = strict_origin
        self.stats = stats
        self.started = time.monotonic()
        self.app = AppFiles(tls=tls)  # the installable page and /join (wschat.webapp)
        self.pages: dict[str, bytes | None] = {}
        for path, name in PAGES.items():
            try:
                self.pages[path] = page_file(name).read_bytes()  # installed by pip too
            except OSError:
                self.pages[path] = None

    def route(self, request: Request) -> str | Response:
        """The endpoint ("chat" or "echo") a WebSocket handshake may open, else the answer."""
        path = urlsplit(request.path).path
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            return self.http(request, path)
        if path not in WEBSOCKET_PATHS:
            return text_response(404, f"No WebSocket endpoint at {path}; the chat is at /.")
        refused = self.check_origin(request.headers.get_all("Origin"), request.headers.get("Host", ""))
        return refused or WEBSOCKET_PATHS[path]

    def check_origin(self, values: list[str], host: str) -> Response | None:
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
                if not self.strict_origin:
                    return None
                return text_response(
                    403,
                    "This server refuses pages opened from disk or sandboxed (Origin: null) because it "
                    "runs with --strict-origin; open the web client from the server's own address.",
                )
            if origin in self.origins or same_ip_origin(origin, host, tls=self.tls):
                return None
        shown = ", ".join(v[:100] for v in values)
        return text_response(
            403,
            f"Refused: this chat server does not serve pages from {shown}, so a page there may not "
            "connect to it (protection against cross-site WebSocket hijacking). If that really is an "
            f"address of this server, start it with --allow-origin {values[0][:100]}",
        )

    def http(self, request: Request, path: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            resp = text_response(405, "Only GET and HEAD are supported here.")
            resp.headers["Allow"] = "GET, HEAD"
            return resp
        if path == "/healthz":
            stats = {
                "status": "ok",
                "version": __version__,
                "uptime_s": round(time.monotonic() - self.started, 1),
                **self.stats(),
            }
            # Several processes: one that cannot reach Redis says so, and a load balancer's
            # health check sends new users elsewhere until it can.
            down = stats.get("redis", "ok") != "ok"
            if down:
                stats["status"] = "degraded"
            resp = response(503 if down else 200, "application/json", json.dumps(stats).encode())
        elif path in self.pages:
            page = self.pages[path]
            if page is None:
                return text_response(404, f"{PAGES[path]} is missing from the server's folder.")
            resp = response(200, "text/html; charset=utf-8", page)
            resp.headers["Cache-Control"] = "no-cache"
            resp.headers["X-Frame-Options"] = "DENY"
            resp.headers["Referrer-Policy"] = "no-referrer"
        elif self.app.handles(path):
            status, kind, body, extra = self.app.get(path)
            resp = response(status, kind, body)
            for name, value in extra.items():
                resp.headers[name] = value
        else:
            return text_response(404, f"Nothing at {path}. The web client is at /.")
        if request.method == "HEAD":
            resp.body = b""
        return resp
