"""The server's command line: every option, its environment default and its checks; the hub's
configuration and the TLS context the options ask for.

Each numeric option is checked by argparse itself with a type of `wschat.argtypes`, so a bad
value (`--port 99999`, `--rate -1`, `CHAT_PORT=abc`) ends in one sentence and exit status 2,
never in a traceback from deep inside the server.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from wschat import callopts, program_name
from wschat.argtypes import amount, count, port_number, seconds
from wschat.banner import certificate_names
from wschat.hub import Config
from wschat.lan import add_arguments as add_lan_arguments
from wschat.names import name_key
from wschat.tls import TLSSetupError, fingerprint, self_signed, server_context

DEFAULT_DB = "chat-data/chat.db"
T = TypeVar("T")


def _from_env(ap: argparse.ArgumentParser, name: str, parse: Callable[[str], T], default: T) -> T:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return parse(value)
    except argparse.ArgumentTypeError as exc:
        ap.error(f"{name}={exc}")


def redis_shown(url: str) -> str:
    """A Redis URL as logs and errors show it: its password replaced by `***`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@" + parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()


def _origin_arg(value: str) -> str:
    origin = value.strip().rstrip("/").lower()
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an origin; write it as scheme://host[:port], e.g. https://chat.example.org"
        )
    return origin


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["admin"]:  # the host's admin command line (wschat.admin), not the server
        from wschat import admin

        raise SystemExit(admin.main(args[1:]))
    ap = build_parser()
    opts = ap.parse_args(argv)
    if opts.workers > 1 and not opts.redis:
        ap.error("--workers needs --redis: separate processes are one chat only through Redis")
    if opts.workers > 1 and opts.port == 0:
        ap.error("--workers needs a fixed --port (with 0 each process would pick its own)")
    if opts.media_dir is None and opts.db != ":memory:":
        opts.media_dir = os.path.join(os.path.dirname(opts.db) or ".", "files")
    # ':memory:' and no --media-dir: a temporary folder, gone with the process (wschat.media)
    opts.media_quota_bytes = int(opts.media_quota * 1024 * 1024)
    return opts


class StartupError(Exception):
    """Start-up cannot go on; str(self) is one plain sentence for the person running the server."""


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
        max_file_bytes=int(opts.max_file_mb * 1024 * 1024),
        daily_upload_bytes=int(opts.daily_upload_mb * 1024 * 1024),
        # a piece of a file and its header (1 + 16 bytes of upload id) fit one frame
        upload_chunk=min(256 * 1024, opts.max_frame_bytes - 32),
        accounts_required=opts.accounts == "required",
        login_wait=opts.login_wait,
        admin_poll=opts.admin_poll,
        admins=frozenset(name_key(name) for name in opts.admin),
        call_timeout=opts.call_timeout,
        ice_servers=callopts.ice_servers(opts),
    )


def server_tls(opts: argparse.Namespace) -> tuple[ssl.SSLContext | None, str, list[str]]:
    """The TLS options as (context or None, certificate fingerprint, notes for the banner)."""
    if opts.keyfile and not opts.certfile:
        raise StartupError("--keyfile needs --certfile (the certificate that goes with the key).")
    if opts.self_signed and opts.certfile:
        raise StartupError("Choose either --self-signed or --certfile, not both.")
    notes: list[str] = []
    try:
        if opts.self_signed:
            folder = "chat-data" if opts.db == ":memory:" else (os.path.dirname(opts.db) or ".")
            names, addresses = certificate_names(opts.host)
            certfile, keyfile, notes = self_signed(folder, names, addresses)
        elif opts.certfile:
            certfile, keyfile = opts.certfile, opts.keyfile
        else:
            return None, "", []
        return server_context(certfile, keyfile), fingerprint(certfile), notes
    except TLSSetupError as exc:
        raise StartupError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=program_name("chat-server.py"),
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
        type=port_number,
        default=_from_env(ap, "CHAT_PORT", port_number, 8765),
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
        "--history-size", type=count(0), default=50, help="messages a newcomer sees when joining a room"
    )
    hist.add_argument(
        "--max-messages-per-room",
        type=count(1),
        default=10_000,
        help="older messages are deleted beyond this many per room",
    )
    grow = ap.add_argument_group("several processes (one chat through Redis)")
    grow.add_argument(
        "--redis",
        default=os.environ.get("CHAT_REDIS") or None,
        metavar="URL",
        help="keep history, names and presence in Redis at URL, e.g. redis://HOST:6379/0 (env "
        "CHAT_REDIS): every server process that names the same Redis is one chat; the first start "
        "imports --db if it exists",
    )
    grow.add_argument(
        "--redis-ttl",
        type=count(3),
        default=30,
        metavar="SECONDS",
        help="how long the names and online users of a process that died stay taken in Redis "
        "(each process refreshes its own every third of this)",
    )
    grow.add_argument(
        "--workers",
        type=count(1),
        default=1,
        help="start this many server processes on the same port (needs --redis and a fixed --port; "
        "the kernel spreads connections over them); Ctrl+C stops them all",
    )
    grow.add_argument(
        "--reuse-port",
        action="store_true",
        help="listen with SO_REUSEPORT, so several processes share the port (--workers sets it)",
    )
    lim = ap.add_argument_group("limits")
    lim.add_argument("--max-message-chars", type=count(1), default=4000, help="longest chat message")
    lim.add_argument(
        "--max-frame-bytes",
        type=count(256),
        default=64 * 1024,
        help="largest WebSocket frame; bigger closes the connection with 1009",
    )
    lim.add_argument("--rate", type=amount(), default=5.0, help="chat messages per second per connection")
    lim.add_argument(
        "--burst", type=amount(1), default=20.0, help="chat messages a connection may send at once"
    )
    lim.add_argument(
        "--control-rate",
        type=amount(),
        default=2.0,
        help="name attempts, joins, leaves and other requests per second per connection",
    )
    lim.add_argument(
        "--control-burst", type=amount(1), default=30.0, help="burst allowance for those requests"
    )
    lim.add_argument(
        "--flood-strikes",
        type=count(1),
        default=50,
        help="frames refused for going too fast before the connection is closed with 1008; "
        "forgiven once the client waits as told",
    )
    lim.add_argument(
        "--name-timeout",
        type=seconds(),
        default=10.0,
        help="seconds a connection may stay without choosing a name",
    )
    lim.add_argument(
        "--handshake-timeout",
        type=seconds(),
        default=10.0,
        help="seconds to finish the opening handshake, TLS included",
    )
    lim.add_argument(
        "--max-pending-bytes",
        type=count(4096),
        default=1 << 20,
        help="output waiting for a client beyond this means it is not keeping up (16 times this "
        "drops it at once)",
    )
    lim.add_argument(
        "--slow-client-grace",
        type=seconds(zero=True),
        default=2.0,
        help="seconds a client may stay beyond --max-pending-bytes before it is dropped",
    )
    lim.add_argument(
        "--max-connections", type=count(1), default=20_000, help="WebSocket connections in total"
    )
    lim.add_argument(
        "--max-connections-per-ip",
        type=count(1),
        default=50,
        help="WebSocket connections from one IP address",
    )
    lim.add_argument(
        "--limit-loopback",
        action="store_true",
        help="apply the per-IP limit to loopback addresses too (exempt by default)",
    )
    lim.add_argument(
        "--max-rooms",
        type=count(1),
        default=1000,
        help="rooms with people in them at once (rooms nobody is in only take disk space)",
    )
    lim.add_argument(
        "--history-memory",
        type=count(1),
        default=64,
        metavar="MIB",
        help="MiB of recent history kept in memory for all rooms together (the rest is read "
        "from the database when asked for)",
    )
    lim.add_argument(
        "--large-room",
        type=count(1),
        default=100,
        help="rooms above this many members get batched presence notices without member lists",
    )
    lim.add_argument(
        "--ping-interval",
        type=seconds(zero=True),
        default=20.0,
        help="seconds between keepalive pings; a connection silent for two intervals is dropped",
    )
    files = ap.add_argument_group("shared files")
    files.add_argument(
        "--media-dir",
        help="folder of shared files (default: files/ next to --db, e.g. chat-data/files); "
        "several server processes may share one",
    )
    files.add_argument("--max-file-mb", type=amount(), default=25.0, help="largest file one may share")
    files.add_argument(
        "--daily-upload-mb", type=amount(), default=500.0, help="what one user may share per UTC day"
    )
    files.add_argument(
        "--media-quota",
        type=amount(),
        default=10240.0,
        metavar="MB",
        help="all shared files together; when full, the files shared longest ago and no longer in "
        "a room's recent history are deleted first",
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
    _account_arguments(who)
    callopts.add_arguments(ap)
    add_lan_arguments(ap)  # --name, --no-mdns, --no-qr, --version
    ap.add_argument("--debug", action="store_true", help="log at DEBUG level")
    return ap


def _account_arguments(who: argparse._ArgumentGroup) -> None:
    """Accounts: who may chat, failed log-ins, operators."""
    who.add_argument(
        "--accounts",
        choices=("open", "required"),
        default="open",
        help="'open': guests chat too, registered names are kept for their accounts; 'required': "
        "only registered accounts may chat (anyone who reaches the server can still register)",
    )
    who.add_argument(
        "--login-wait",
        type=seconds(),
        default=1.0,
        metavar="SECONDS",
        help="after 5 failed log-ins to one name (or 20 from one address), the wait before the next "
        "try; each further failure doubles it, up to 15 minutes",
    )
    who.add_argument(
        "--admin",
        action="append",
        default=[],
        metavar="NAME",
        help="the account NAME is an operator: it may kick, mute and ban on the whole server and "
        "moderate every room (repeatable; without it, the first account registered is the operator). "
        "'chat-server.py admin --help' lists what the host can do without a client",
    )
    who.add_argument(
        "--admin-poll",
        type=seconds(),
        default=2.0,
        metavar="SECONDS",
        help="how often the server looks for what 'chat-server.py admin' changed while it runs "
        "(bans, operators, reset passwords)",
    )
