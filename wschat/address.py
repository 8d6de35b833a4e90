"""Server addresses for the terminal client: what the user typed -> a WebSocket URL. NO I/O.

This module imports neither asyncio nor websockets and opens no socket. It owns:

- `parse_address()`: `host:port`, `host`, `ws://...`, `wss://...`, `http(s)://...` (copied from
  the web page's address bar), `[::1]:8765` -> an `Address` (URL and `host:port` display), or
  `AddressError` whose text says in plain words what is wrong;
- `os_error_reason()`: why a TCP connection to an address failed, in a few plain words.
"""

from __future__ import annotations

import errno as e
import re
from dataclasses import dataclass

DEFAULT_PORT = 8765
DEFAULT_ADDRESS = f"localhost:{DEFAULT_PORT}"


class AddressError(ValueError):
    """An address that cannot be used; str(self) says why in plain words."""


@dataclass(frozen=True, slots=True)
class Address:
    url: str  # what to connect to: ws://host:port/path
    display: str  # what to call it in messages: host:port


_HOST_RE = re.compile(r"[A-Za-z0-9._-]+")
_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?")


def parse_address(text: str) -> Address:
    """`host:port`, `host` (port 8765), `ws://...`, `wss://...` (port 443), `[::1]:8765`.

    An `http://` or `https://` address (copied from the web client's address bar) is taken to mean
    the same server. Raises AddressError.
    """
    raw = text.strip() or DEFAULT_ADDRESS
    scheme, default_port = "ws", DEFAULT_PORT
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", raw)
    if m:
        given = m.group(1).lower()
        if given not in ("ws", "wss", "http", "https"):
            raise AddressError(f"'{given}://' is not a chat address; use host:port, ws://... or wss://...")
        scheme = "wss" if given in ("wss", "https") else "ws"
        default_port = 443 if scheme == "wss" else DEFAULT_PORT
        raw = raw[m.end() :]
    hostport, slash, path = raw.partition("/")
    path = "/" + path if slash else "/"
    if " " in hostport or not hostport:
        raise AddressError(f"'{text.strip()}' is not a server address; try e.g. 192.168.1.100:8765.")
    port_text = ""
    if hostport.startswith("["):
        close = hostport.find("]")
        host, rest = hostport[1:close], hostport[close + 1 :]
        if close < 0 or (rest and not rest.startswith(":")) or not _IPV6_RE.fullmatch(host):
            raise AddressError(f"'{hostport}' is not a valid IPv6 address; write it as [::1]:8765.")
        port_text = rest[1:]
        ipv6 = True
    elif hostport.count(":") > 1:  # a bare IPv6 address: no port can be told apart from it
        host, ipv6 = hostport, True
        if not _IPV6_RE.fullmatch(host):
            raise AddressError(f"'{hostport}' is not a valid IPv6 address; write it as [::1]:8765.")
    else:
        host, _, port_text = hostport.partition(":")
        ipv6 = False
        if not _HOST_RE.fullmatch(host):
            raise AddressError(f"'{host}' is not a valid host name or IP address.")
    port = default_port
    if port_text or hostport.endswith(":"):
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise AddressError(f"The port must be a number from 1 to 65535, not '{port_text}'.")
        port = int(port_text)
    shown_host = f"[{host}]" if ipv6 else host
    return Address(f"{scheme}://{shown_host}:{port}{path}", f"{shown_host}:{port}")


def os_error_reason(errno_: int | None, text: str) -> str:
    """Why a TCP connection failed, in a few plain words."""
    if errno_ is None:  # asyncio joins per-address failures into one message without an errno
        found = {int(n) for n in re.findall(r"\[Errno (\d+)\]", text)}
        errno_ = found.pop() if len(found) == 1 else None
    words = {
        e.ECONNREFUSED: "connection refused",
        e.ETIMEDOUT: "timed out",
        e.EHOSTUNREACH: "no route to host",
        e.ENETUNREACH: "network unreachable",
        e.ECONNRESET: "connection reset",
        e.EADDRNOTAVAIL: "address not available",
    }
    if errno_ in words:
        return words[errno_]
    if "Errno 111" in text or "Connect call failed" in text:
        return "connection refused"
    return text.lower().rstrip(".") or "connection failed"
