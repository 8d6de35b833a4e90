"""The terminal client's command line: options, --help, and what piped input must give. NO I/O.

`build_parser()` is the argparse table (its epilog is the client's manual in short);
`parse_args()` checks the options; `script_problem()` says what a script (piped input, nobody to
ask) left out that a person would be asked for.
"""

from __future__ import annotations

import argparse

from wschat import __version__, program_name
from wschat.address import DEFAULT_ADDRESS
from wschat.commands import HELP
from wschat.lan import BROWSE_SECONDS
from wschat.names import InvalidName, check_room
from wschat.trust import KNOWN_ENV, KNOWN_FILE

EXIT_USAGE = 2  # bad arguments or address, or the server refuses the address


def build_parser() -> argparse.ArgumentParser:
    width = max(len(u) for u, _ in HELP)
    commands = "\n".join(f"  {usage.ljust(width)}  {text}" for usage, text in HELP)
    ap = argparse.ArgumentParser(
        prog=program_name("chat-client.py"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Terminal client for the wschat server: chat in rooms, private messages, history.",
        epilog=f"""\
address forms:
  host:port          e.g. 192.168.1.100:8765
  host               port 8765
  ws://host:port     as the server prints it
  wss://host[:port]  TLS (port 443 unless given)
  [::1]:8765         IPv6
  Without an address the client first lists the chat servers announced on this
  network (mDNS, about 2 s; --browse), then asks for one: type a number from the
  list, an address, or Enter for the first server found ({DEFAULT_ADDRESS} when
  none was). A server with TLS found this way is trusted by the certificate
  fingerprint it announces. --list prints what it finds and exits. The question
  is asked as for a missing --username; piped input cannot answer (see scripts).

commands while chatting:
{commands}
  Messages from rooms you are in but not talking in are tagged [#room].

connection:
  If the server cannot be reached or the connection drops, the client retries by
  itself: after about 2 s, then 4, 8, 16 and at most 30 s between attempts (with
  random jitter). It logs back in with the same name, rooms and place in each room:
  messages missed meanwhile are shown once, never twice. Messages typed while
  disconnected wait in an outbox and are sent, each exactly once, after reconnecting.
  A private message among them whose recipient is not back yet is kept and sent
  when they are seen online again (/drop forgets it).

scripts:
  With piped input, each line is a message or command, and the end of input acts
  like /quit: e.g.  printf 'hi\\n/quit\\n' | python chat-client.py host:port --username bot
  The address and --username must be given (nobody can be asked). The client
  prints only what happens from then on (no banner, hints or earlier history;
  --quiet: only problems) and waits (up to --flush-timeout) until the server has
  stored every message.

accounts:
  --register NAME creates an account (the server keeps NAME for you) and logs in;
  --login NAME logs in to it. The password is read from the terminal (never from
  the command line or the environment) the first time on each device; the server
  then gives this device a session token, kept in ~/.config/wschat/sessions.json
  (mode 0600; $WSCHAT_SESSIONS overrides), and later runs and reconnects log in
  with it. /logout ends this device's session and forgets the token; /sessions
  lists your devices and /revoke ID ends one. Without these options you are a
  guest, as before; a guest cannot use a registered name.

TLS (wss:// addresses):
  A certificate from an authority this computer trusts is checked as a browser would.
  --cafile FILE trusts the certificate(s) in FILE instead, e.g. the server's cert.pem.
  Otherwise (a self-signed certificate) the client shows the certificate's SHA-256
  fingerprint, to compare with the one the server printed, and asks whether to trust
  it. A yes is remembered in the known servers file (--known-servers, default
  $WSCHAT_KNOWN_SERVERS or ~/.config/wschat/known_servers.json); later connections
  trust that certificate only, and refuse the server if its certificate changes.
  Without a terminal to ask, an unknown certificate is refused (exit status 1).

environment:
  NO_COLOR  set to anything to turn colour off (also off when output is not a terminal);
            with colour, http(s) links in messages are terminal hyperlinks (OSC 8)

exit status:
  0 after /quit, end of input or Ctrl+C; 1 if the name was refused and there is no
  terminal to ask for another, messages could not be sent before quitting, another
  connection took over the name, or the server's certificate is not trusted; 2 for
  a bad address or arguments (--cafile, the known servers file, piped input without
  an address or --username), or an address that can never work: the server
  refuses it (HTTP 4xx, e.g. a wrong path) or it names the wrong one of ws:// and
  wss://. Connection failures that may pass are retried, not exit statuses.""",
    )
    ap.add_argument("address", nargs="?", help="server address (see below); asked for when missing")
    who = ap.add_mutually_exclusive_group()
    who.add_argument("-u", "--username", metavar="NAME", help="your name as a guest; asked for when missing")
    who.add_argument(
        "--login",
        metavar="NAME",
        help="log in to your account NAME (the password is asked for, once per device)",
    )
    who.add_argument(
        "--register",
        metavar="NAME",
        help="create the account NAME and log in (the password is asked for twice)",
    )
    ap.add_argument(
        "--room",
        action="append",
        default=[],
        metavar="ROOM",
        help="room to join at start instead of general (repeat for several; you talk in the first)",
    )
    ap.add_argument("--no-color", action="store_true", help="no colours (same as setting NO_COLOR)")
    ap.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="show only problems (for scripts that only send); errors still go to stderr",
    )
    ap.add_argument(
        "--cafile",
        metavar="FILE",
        help="for wss://: trust the certificate(s) in FILE (PEM or DER), e.g. the server's cert.pem",
    )
    ap.add_argument(
        "--known-servers",
        metavar="FILE",
        help=f"where trusted self-signed certificates are remembered (default ${KNOWN_ENV} or "
        f"~/.config/wschat/{KNOWN_FILE})",
    )
    ap.add_argument(
        "--flush-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="at /quit or end of input, how long to wait for unsent messages to be stored (default 10)",
    )
    ap.add_argument(
        "--list",
        action="store_true",
        help="list the chat servers announced on this network (mDNS) and exit",
    )
    ap.add_argument(
        "--browse",
        type=float,
        default=BROWSE_SECONDS,
        metavar="SECONDS",
        help=f"how long to look for servers on the network when no address is given, or with --list "
        f"(default {BROWSE_SECONDS:g}; 0: do not look)",
    )
    ap.add_argument("--version", action="version", version=f"wschat {__version__}")
    return ap


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = build_parser()
    opts = ap.parse_args(argv)
    rooms = []
    for raw in opts.room:
        try:
            rooms.append(check_room(raw))
        except InvalidName as exc:
            ap.error(f"--room {raw}: {exc}")
    opts.room = list(dict.fromkeys(rooms))
    if opts.flush_timeout < 0:
        ap.error("--flush-timeout must be 0 or more")
    if not 0 <= opts.browse <= 60:
        ap.error("--browse must be 0 to 60 seconds")
    opts.account = "login" if opts.login else "register" if opts.register else None
    if opts.account:
        opts.username = opts.login or opts.register
        if not opts.username.strip():
            ap.error(f"--{opts.account} needs a name")
    return opts


def script_problem(opts: argparse.Namespace) -> str | None:
    """With piped input nobody can answer a question: what the command line must give, or None."""
    if opts.address is None:
        return (
            "No server address given: with piped input, give it on the command line, "
            "e.g. python chat-client.py 192.168.1.100:8765 --username bot"
        )
    if not (opts.username or "").strip():
        return (
            "No name given: with piped input, give it with --username, "
            f"e.g. python chat-client.py {opts.address} --username bot"
        )
    return None
