"""What this host is called and where it can be reached, and the start-up banner that says so.

The banner keeps the seed's shape (a first line naming the address it listens on, the
addresses between two rules, one closing sentence) and adds what a newcomer needs: the web
client's address, the terminal command, and whether others can reach the server at all.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable

RULE = "=" * 50
WILDCARDS = ("0.0.0.0", "", "::")


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


def ipv6_addresses() -> list[str]:
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
    addresses = ["127.0.0.1", "::1", *network_addresses(), *ipv6_addresses()]
    if host not in WILDCARDS:
        try:
            addresses.append(str(ipaddress.ip_address(host)))
        except ValueError:
            names.append(host.lower())
    return list(dict.fromkeys(names)), list(dict.fromkeys(addresses))


def hostport(host: str, port: int) -> str:
    """host:port as it appears in a URL: an IPv6 address goes in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def banner(
    host: str,
    port: int,
    *,
    tls: bool = False,
    fingerprint: str = "",
    notes: Iterable[str] = (),
    dual_stack: bool = False,
) -> str:
    """The start-up banner. `host` is --host; `dual_stack`: `--host ::` takes IPv4 too."""
    ws, http = ("wss", "https") if tls else ("ws", "http")
    lines = [f"Starting WebSocket chat server on {ws}://{hostport(host, port)}", RULE]
    lines.append("Server is accessible at:")
    if host in WILDCARDS:
        network = network_addresses() if host != "::" or dual_stack else []
        if host == "::":
            network += [f"[{ip}]" for ip in ipv6_addresses()]
        lines.append(f"  {ws}://localhost:{port} (local only)")
        lines += [f"  {ws}://{ip}:{port} (network)" for ip in network]
        shown = network[0] if network else "localhost"
        closing = "Share the network address with other users to connect!"
        if not network:
            closing = "This machine has no network address yet: only this machine can connect."
    else:
        shown = hostport(host, port).rsplit(":", 1)[0]
        local = _is_loopback(host)
        lines.append(f"  {ws}://{shown}:{port}" + (" (this machine only)" if local else ""))
        closing = "Share the network address with other users to connect!"
        if local:
            closing = (
                "Reachable from this machine only; to let others connect, "
                "start the server with --host 0.0.0.0"
            )
    lines.append(f"  Web client: {http}://{shown}:{port}/")
    if host in WILDCARDS and shown != "localhost":
        lines.append(f"  On this machine: {http}://localhost:{port}/")
    lines.append(f"  Terminal client: python chat-client.py {ws + '://' if tls else ''}{shown}:{port}")
    if fingerprint:
        lines.append(f"  Certificate SHA-256 fingerprint: {fingerprint}")
    lines += [f"  {note}" for note in notes]
    lines += [RULE, closing]
    return "\n".join(lines)


def web_urls(host: str, port: int, *, tls: bool = False, dual_stack: bool = False) -> list[str]:
    """The web client's addresses for others, the banner's "Web client" first (the one its QR
    code and the /join page show): every network address, or the one address listened on."""
    http = "https" if tls else "http"
    if host in WILDCARDS:
        network = network_addresses() if host != "::" or dual_stack else []
        if host == "::":
            network += [f"[{ip}]" for ip in ipv6_addresses()]
        return [f"{http}://{ip}:{port}/" for ip in network] or [f"{http}://localhost:{port}/"]
    return [f"{http}://{hostport(host, port)}/"]


def qr_notes(url: str, *, color: bool) -> list[str]:
    """The banner's lines for the QR code of `url`: a heading and the code (wschat.qr), or a
    sentence when the address is too long for a code that fits 40 columns."""
    from wschat import qr  # segno only when the banner shows a code

    code = qr.terminal(url, color=color)
    if not code:
        return [f"(The address is too long for a QR code here; {url}join shows one.)"]
    return [f"Scan to open {url} on a phone:", *code]
