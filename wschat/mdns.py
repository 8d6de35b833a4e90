"""mDNS/DNS-SD on the LAN (python `zeroconf`): the server's announcement and the terminal
client's browse. I/O.

What is announced and how a found service reads back is decided in the pure `wschat.lan`; this
module sends and receives the multicast packets. zeroconf runs in a thread and event loop of its
own (it is created outside the chat's event loop), so mDNS traffic never costs the chat's loop
anything, and both the asyncio server and the plain `--workers` supervisor use it the same way.

A LAN where multicast is blocked, no interface to announce on, or port 5353 held by a program
that does not share it, costs one warning line (`Announcement.warning`), never a failed start:
zeroconf's own log records are folded into that one line.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from wschat.banner import ipv6_addresses, network_addresses
from wschat.lan import (
    BROWSE_SECONDS,
    SERVICE_TYPE,
    Found,
    Plan,
    announce_plan,
    found,
    instance_name,
    listing,
    ordered,
    txt_records,
)

if TYPE_CHECKING:  # zeroconf is imported when first used: clients given an address never need it
    from zeroconf import IPVersion, ServiceInfo, ServiceStateChange, Zeroconf

log = logging.getLogger("wschat.mdns")
RESOLVE_MS = 1000  # asking a found service for its address and TXT records, when not already sent
GRACE = 1.0  # seconds after the browse window to resolve services seen in it (a slow one, a crowd)


def _reason(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0] or type(exc).__name__


def _ip_version(plan: Plan) -> IPVersion:
    from zeroconf import IPVersion

    return IPVersion.V4Only if not plan.ipv6 else IPVersion.All if plan.ipv4 else IPVersion.V6Only


class _Folded(logging.Filter):
    """Folds zeroconf's log records into the announcement's one warning (kept with --debug)."""

    def __init__(self, warn: Callable[[str], None], keep: bool) -> None:
        super().__init__()
        self.warn, self.keep = warn, keep

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            self.warn((record.getMessage().splitlines() or [""])[0])
        return self.keep


class Announcement:
    """This server on the LAN: `start()` (blocks while zeroconf probes the name, about 2 s: run it
    off the event loop) and `stop()` (says goodbye). Never raises: a failure is one warning."""

    def __init__(self, name: str | None, port: int, plan: Plan, txt: dict[str, str]) -> None:
        self.hostname = socket.gethostname()
        self.name = instance_name(name, self.hostname)
        self.port, self.plan, self.txt = port, plan, txt
        self.zc: Zeroconf | None = None
        self.info: ServiceInfo | None = None
        self.announced = ""  # the name registered (zeroconf adds "-2" if another server has ours)
        self.warning = ""
        self.lock = threading.Lock()
        self.stopped = False
        self.filter = _Folded(self.warn, keep=log.isEnabledFor(logging.DEBUG))

    def warn(self, reason: str) -> None:
        if self.warning or self.stopped:
            return
        self.warning = (
            f"Not announced on the LAN by mDNS ({reason}); clients can still join with the address above."
        )
        log.warning("%s", self.warning)

    def start(self) -> None:
        from zeroconf import InterfaceChoice, ServiceInfo, Zeroconf

        logging.getLogger("zeroconf").addFilter(self.filter)
        label = self.hostname.split(".")[0] or "wschat"
        addresses = [socket.inet_pton(socket.AF_INET, a) for a in self.plan.ipv4]
        addresses += [socket.inet_pton(socket.AF_INET6, a) for a in self.plan.ipv6]
        try:
            with self.lock:
                if self.stopped:
                    return
                interfaces = list(self.plan.interfaces) if self.plan.interfaces else InterfaceChoice.All
                self.zc = Zeroconf(interfaces=interfaces, ip_version=_ip_version(self.plan))
                zc = self.zc
            self.info = ServiceInfo(
                SERVICE_TYPE,
                f"{self.name}.{SERVICE_TYPE}",
                port=self.port,
                addresses=addresses,
                properties=self.txt,
                server=f"{label}.local.",
            )
            zc.register_service(self.info, allow_name_change=True)
        except Exception as exc:  # blocked multicast, no interface, 5353 taken: a warning only
            self.warn(_reason(exc))
            self._close()
            return
        self.announced = self.info.name[: -len("." + SERVICE_TYPE)]
        log.info("announced on the LAN as %r (%s port %d)", self.announced, SERVICE_TYPE, self.port)

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
        self._close()
        logging.getLogger("zeroconf").removeFilter(self.filter)

    def _close(self) -> None:
        with self.lock:
            zc, self.zc = self.zc, None
        if zc is None:
            return
        try:
            if self.announced:
                zc.unregister_all_services()  # goodbye packets: clients drop it from their lists
            zc.close()
        except Exception as exc:  # a socket gone bad meanwhile; nothing is left to undo
            log.debug("closing mDNS: %s", exc)


def local_networks() -> tuple[str, ...]:
    """The networks this machine is on ("192.168.1.0/24"), to pick a found server's address."""
    networks: list[str] = []
    try:
        import psutil

        entries = [a for addrs in psutil.net_if_addrs().values() for a in addrs]
    except Exception:  # no psutil, or no permission: no preference then
        return ()
    for a in entries:
        if a.family not in (socket.AF_INET, socket.AF_INET6) or not a.netmask:
            continue
        try:  # an IPv6 netmask comes as an address (ffff:...): count its bits
            bits = bin(int(ipaddress.ip_address(a.netmask))).count("1")
            networks.append(str(ipaddress.ip_interface(f"{a.address.split('%')[0]}/{bits}").network))
        except ValueError:
            continue
    return tuple(networks)


def browse(seconds: float = BROWSE_SECONDS) -> tuple[list[Found], str]:
    """The chat servers announced on the LAN within `seconds`, and a problem sentence ("" if none).

    Blocking (run it in a thread): zeroconf answers on its own thread; each service found is
    resolved here as soon as it is seen (its records usually arrive with it).
    """
    from zeroconf import (
        DNSQuestionType,
        InterfaceChoice,
        IPVersion,
        ServiceBrowser,
        ServiceInfo,
        ServiceStateChange,
        Zeroconf,
    )

    problem = ""
    folded = _Folded(lambda reason: log.debug("zeroconf: %s", reason), keep=False)
    logging.getLogger("zeroconf").addFilter(folded)
    try:
        zc = Zeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.V4Only)
    except Exception as exc:
        logging.getLogger("zeroconf").removeFilter(folded)
        return [], f"Could not look for servers on the LAN (mDNS: {_reason(exc)})."
    names: queue.Queue[str] = queue.Queue()

    def seen(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.put(name)

    results: list[Found] = []
    done: set[str] = set()
    local = local_networks()
    deadline = time.monotonic() + seconds
    browser = None
    try:
        # QM: answers by multicast. A unicast answer (zeroconf's first query asks for one) goes
        # to one socket of those sharing port 5353 on this machine, often not ours (a chat server
        # or avahi here too), and the list would miss servers until the next query, a second on.
        browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[seen], question_type=DNSQuestionType.QM)
        while (left := deadline - time.monotonic()) > -GRACE:
            try:  # after the window, only the services already seen
                name = names.get(timeout=left) if left > 0 else names.get_nowait()
            except queue.Empty:
                break
            if name not in done:
                done.add(name)
                wait_ms = min(RESOLVE_MS, max(100, (left + GRACE) * 1000))
                entry = _resolve(zc, ServiceInfo(SERVICE_TYPE, name), local, wait_ms)
                results += [entry] if entry is not None else []
    except Exception as exc:
        problem = f"Looking for servers on the LAN failed (mDNS: {_reason(exc)})."
    finally:
        if browser is not None:
            browser.cancel()
        zc.close()
        logging.getLogger("zeroconf").removeFilter(folded)
    return ordered(results), problem


def _resolve(zc: Zeroconf, info: ServiceInfo, local: tuple[str, ...], wait_ms: float) -> Found | None:
    """One service's address, port and TXT records; None if it does not answer or makes no sense
    (anyone may announce anything: a broken announcement costs only its own entry)."""
    from zeroconf import DNSQuestionType

    try:
        if not info.request(zc, wait_ms, question_type=DNSQuestionType.QM) or not info.port:
            return None
        return found(info.name, info.parsed_addresses(), info.port, info.properties, local)
    except Exception as exc:
        log.debug("ignoring the announcement %r: %s", info.name, exc)
        return None


def announce(
    opts: argparse.Namespace, port: int, *, tls: bool, fingerprint: str, dual_stack: bool
) -> Announcement | None:
    """Start announcing the server (on a thread of its own: zeroconf probes the name for about
    2 s); None with --no-mdns or when only this machine could reach it (a loopback --host)."""
    plan = announce_plan(opts.host, network_addresses(), ipv6_addresses(), dual_stack=dual_stack)
    if opts.no_mdns or plan is None:
        return None
    announcement = Announcement(opts.name, port, plan, txt_records(tls=tls, fingerprint=fingerprint))
    threading.Thread(target=announcement.start, name="mdns", daemon=True).start()
    return announcement


def print_servers(seconds: float) -> int:
    """`chat-client.py --list`: the servers found, one a line (names escaped), and exit status 0."""
    from wschat.render import escape

    servers, problem = browse(seconds)
    for line in [*([problem] if problem else []), *listing(servers, seconds)]:
        print(escape(line), flush=True)
    return 0
