"""The server's command-line options for calls: `--ice-server` and `--call-timeout`.

By default the web page uses no STUN or TURN server: on one LAN two browsers reach each other
directly. `--ice-server URL` (repeatable) adds one for calls across the internet; a TURN
server's user name and password come from the environment (`WSCHAT_ICE_USERNAME`,
`WSCHAT_ICE_CREDENTIAL`), never from the command line, where `ps` would show them.
"""

from __future__ import annotations

import argparse
import os
import re

ICE_URL = re.compile(r"(stun|stuns|turn|turns):[^\s?#]+(\?transport=(udp|tcp))?")
USER_ENV, CREDENTIAL_ENV = "WSCHAT_ICE_USERNAME", "WSCHAT_ICE_CREDENTIAL"


def _ice_url(value: str) -> str:
    if not ICE_URL.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a STUN or TURN URL, e.g. stun:stun.example.org:3478 or "
            "turn:turn.example.org:3478?transport=udp"
        )
    return value


def _seconds(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = -1.0
    if not 0 < x <= 3600:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds above 0 (at most 3600)")
    return x


def add_arguments(ap: argparse.ArgumentParser) -> None:
    calls = ap.add_argument_group("voice and video calls (web page)")
    calls.add_argument(
        "--ice-server",
        action="append",
        default=[],
        type=_ice_url,
        metavar="URL",
        help="a STUN or TURN server the pages use to reach each other across the internet "
        f"(repeatable; none by default, which is right on one LAN); TURN's user name and password "
        f"come from the environment variables {USER_ENV} and {CREDENTIAL_ENV}",
    )
    calls.add_argument(
        "--call-timeout",
        type=_seconds,
        default=45.0,
        metavar="SECONDS",
        help="how long a call rings before it stops as missed",
    )


def ice_servers(opts: argparse.Namespace) -> tuple[dict, ...]:
    """The RTCIceServer objects the pages get (`username_accepted.calls`)."""
    user, credential = os.environ.get(USER_ENV, ""), os.environ.get(CREDENTIAL_ENV, "")
    servers = []
    for url in opts.ice_server:
        server: dict = {"urls": url}
        if url.startswith("turn") and user:
            server.update(username=user, credential=credential)
        servers.append(server)
    return tuple(servers)
