"""Joining on a LAN without typing an address: what the server announces by mDNS/DNS-SD and how
the terminal client lists and picks what it found. NO I/O.

This module owns:

- the DNS-SD service type (`_wschat._tcp.local.`), the protocol version announced, the instance
  name (`--name`, default "wschat on HOSTNAME") and the TXT records (`txt_records`);
- which addresses and interfaces a server listening on `--host` announces (`announce_plan`);
- what a browse found (`Found`, read back from a service's records by `found`), the numbered
  list the client shows (`listing`), its prompt, and what an answer to it means (`choose`);
- the server's LAN options (`add_arguments`: `--name`, `--no-mdns`, `--no-qr`, `--version`).

Sending and receiving the multicast packets is `wschat.mdns`'s business.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
from dataclasses import dataclass

from wschat import __version__
from wschat.address import DEFAULT_ADDRESS

SERVICE_TYPE = "_wschat._tcp.local."
PROTOCOL_VERSION = "1"  # announced as protocol=1; a client lists other versions as not understood
MAX_NAME_BYTES = 63  # a DNS label, which a DNS-SD instance name is
BROWSE_SECONDS = 2.0
WILDCARDS = ("0.0.0.0", "", "::")


def default_name(hostname: str) -> str:
    host = hostname.split(".")[0] or "this computer"
    return f"wschat on {host}"


def instance_name(name: str | None, hostname: str) -> str:
    """The readable instance name: `--name` or "wschat on HOSTNAME", cut to one DNS label (63 bytes)
    on a character boundary; dots are allowed in DNS-SD instance names and kept."""
    text = " ".join((name or "").split()) or default_name(hostname)
    while len(text.encode()) > MAX_NAME_BYTES:
        text = text[:-1]
    return text


def txt_records(*, tls: bool, fingerprint: str = "") -> dict[str, str]:
    """The TXT records: protocol version, whether the server speaks TLS, and its certificate."""
    records = {"protocol": PROTOCOL_VERSION, "tls": "1" if tls else "0", "server": f"wschat/{__version__}"}
    if tls and fingerprint:
        records["fp"] = fingerprint  # SHA-256, AB:CD:... as the banner shows it
    return records


@dataclass(frozen=True, slots=True)
class Plan:
    """What a server announces: `ipv4`/`ipv6` addresses, and on which interfaces (None: all)."""

    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    interfaces: tuple[str, ...] | None


def announce_plan(host: str, network: list[str], ipv6: list[str], *, dual_stack: bool) -> Plan | None:
    """What a server listening on `host` announces; None when nobody else could reach it
    (a loopback `--host`: announcing it on the LAN would only mislead).

    `network`/`ipv6` are this host's non-loopback addresses. On a wildcard host with none (no
    network yet, or a test's own namespace) the loopback address is announced, which only this
    machine can reach: that is all there is to reach.
    """
    if host in WILDCARDS:
        v4 = network if host != "::" or dual_stack else []
        v6 = ipv6 if host == "::" else []
        if not v4 and not v6:
            v4 = ["127.0.0.1"]
        return Plan(tuple(v4), tuple(v6), None)
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:  # a host name: announce what it stands for here, on every interface
        return Plan(tuple(network), tuple(ipv6), None) if host.lower() != "localhost" else None
    if ip.is_loopback:
        return None
    if ip.version == 4:
        return Plan((str(ip),), (), (str(ip),))
    return Plan((), (str(ip),), None)


@dataclass(frozen=True, slots=True)
class Found:
    """A chat server found on the LAN."""

    name: str  # the readable instance name
    host: str  # the address to connect to (an IP address; IPv4 preferred)
    port: int
    tls: bool
    fingerprint: str  # announced certificate fingerprint ("" without TLS or when not announced)
    protocol: str

    @property
    def address(self) -> str:
        """What to type to reach it: host:port, wss://host:port with TLS."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss://' if self.tls else ''}{shown}:{self.port}"

    @property
    def compatible(self) -> bool:
        return self.protocol.split(".")[0] == PROTOCOL_VERSION


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def found(
    service: str, addresses: list[str], port: int, properties: dict, local: tuple[str, ...] = ()
) -> Found | None:
    """A `Found` from a resolved service's records; None if it has no usable address or port.

    `service` is the full DNS-SD name ("wschat on box._wschat._tcp.local."); `properties` the
    TXT records as zeroconf gives them (bytes keys and values, a value None for a bare key).
    A server announces all its addresses (a container bridge's too): the one to use is on a
    network this client is on (`local`: networks such as "192.168.1.0/24"), else an IPv4 one.
    """
    props = {_text(k).lower(): _text(v) for k, v in properties.items()}
    name = service[: -len("." + SERVICE_TYPE)] if service.endswith("." + SERVICE_TYPE) else service
    usable = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_link_local]
    networks = [ipaddress.ip_network(n, strict=False) for n in local]

    def near(a: str) -> bool:
        ip = ipaddress.ip_address(a)
        return any(ip.version == n.version and ip in n for n in networks)

    usable.sort(key=lambda a: (not near(a), ":" in a, a))  # then IPv4: every client can use it
    if not usable or not 0 < port < 65536:
        return None
    return Found(
        name=name.replace("\\.", ".").replace("\\\\", "\\"),
        host=usable[0],
        port=port,
        tls=props.get("tls") == "1",
        fingerprint=props.get("fp", "") if props.get("tls") == "1" else "",
        protocol=props.get("protocol", ""),
    )


def ordered(servers: list[Found]) -> list[Found]:
    """One entry per address, by name (a server seen on two interfaces is listed once)."""
    unique = {(f.host, f.port): f for f in servers}
    return sorted(unique.values(), key=lambda f: (not f.compatible, f.name.lower(), f.host, f.port))


def listing(servers: list[Found], seconds: float = BROWSE_SECONDS) -> list[str]:
    """The lines the client shows: a number, the name, the address and TLS for each server."""
    if not servers:
        return [f"No chat servers found on this network (looked for {seconds:g} s)."]
    lines = ["Chat servers on this network:"]
    for i, f in enumerate(servers, 1):
        extra = "  TLS" if f.tls else ""
        if not f.compatible:
            extra += f"  (protocol {f.protocol or '?'}: this client cannot talk to it)"
        lines.append(f"  {i}. {f.name}  {f.address}{extra}")
    return lines


def prompt(servers: list[Found]) -> str:
    """The seed's question, with the first server found as the default."""
    default = servers[0].address if servers else DEFAULT_ADDRESS
    if servers:
        return f"Enter server address (a number, or default: {default}): "
    return f"Enter server address (default: {default}): "


class BadChoice(ValueError):
    """An answer naming no server in the list; str(self) says what to type."""


def choose(answer: str, servers: list[Found]) -> Found | str:
    """What the answer means: a `Found` (a number, or Enter for the first one found), or the
    address text to parse (Enter with nothing found is the seed's default address)."""
    text = answer.strip()
    if not text:
        return servers[0] if servers else DEFAULT_ADDRESS
    if text.isdigit() and len(text) <= 3:  # a port or address is never 1 to 3 digits alone
        n = int(text)
        if 1 <= n <= len(servers):
            return servers[n - 1]
        if servers:
            raise BadChoice(f"There is no server number {n}; type 1 to {len(servers)}, or an address.")
        raise BadChoice(f"No servers were found to pick number {n} from; type an address.")
    return text


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The server's options for joining on a LAN, and --version."""
    lan = ap.add_argument_group("joining on a LAN")
    lan.add_argument(
        "--name",
        metavar="TEXT",
        default=default_name(socket.gethostname()),
        help="the name this server is announced by on the LAN (mDNS/DNS-SD) and listed under by "
        "terminal clients started without an address",
    )
    lan.add_argument(
        "--no-mdns",
        action="store_true",
        help="do not announce the server on the LAN (clients then need its address)",
    )
    lan.add_argument(
        "--no-qr",
        action="store_true",
        help="leave the QR code of the web client's address out of the banner",
    )
    ap.add_argument("--version", action="version", version=f"wschat {__version__}")
