"""The terminal client's words and looks: addresses, commands, display text, colour, backoff. NO I/O.

This module imports neither asyncio nor websockets nor aioconsole and touches no terminal. It
owns:

- `parse_address()`: what the user typed as a server address -> a WebSocket URL;
- `parse_line()`: one typed line -> a command (`Say`, `Join`, `Msg`, ...) or a usage error;
- `escape()`: text from the network made safe to print (control characters and ANSI escape
  sequences are shown as `\\x1b`-style text, never executed by the terminal);
- `Formatter`: every line the client prints, with local `HH:MM` times, emojis and colour;
- `color_enabled()`: the colour decision (NO_COLOR, not a terminal, --no-color);
- `backoff()`: the reconnect delays, a small generator with injectable jitter.
"""

from __future__ import annotations

import errno as e
import random
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from wschat.names import InvalidName, check_room

DEFAULT_PORT = 8765
DEFAULT_ADDRESS = f"localhost:{DEFAULT_PORT}"
DEFAULT_HISTORY = 20
MAX_HISTORY = 100  # the server's page limit

# ---------------------------------------------------------------- addresses


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


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Nothing:
    """An empty line: nothing is sent."""


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class Users:
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Rooms:
    pass


@dataclass(frozen=True, slots=True)
class Join:
    room: str


@dataclass(frozen=True, slots=True)
class Leave:
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Msg:
    to: str
    text: str


@dataclass(frozen=True, slots=True)
class History:
    count: int = DEFAULT_HISTORY


@dataclass(frozen=True, slots=True)
class Unknown:
    name: str


@dataclass(frozen=True, slots=True)
class Usage:
    """A known command used the wrong way; `message` says the right way."""

    message: str


Command = Nothing | Say | Help | Quit | Users | Rooms | Join | Leave | Msg | History | Unknown | Usage

HELP: list[tuple[str, str]] = [
    ("text", "send a message to the current room"),
    ("/join ROOM", "join a room (created if new) and talk there"),
    ("/leave", "leave the current room (or /leave ROOM)"),
    ("/rooms", "list rooms and who is in them"),
    ("/users", "who is online in the current room (or /users ROOM)"),
    ("/msg USER text", 'private message; quote names with spaces: /msg "Ann Lee" hi'),
    ("/history [N]", f"show N older messages of this room (default {DEFAULT_HISTORY}, max {MAX_HISTORY})"),
    ("/help", "this list"),
    ("/quit", "leave the chat (also Ctrl+C, or Ctrl+D on an empty line)"),
    ("//text", "send a message that starts with '/'"),
]


def _room_arg(arg: str, usage: str) -> str | Usage:
    if not arg:
        return Usage(usage)
    try:
        return check_room(arg)
    except InvalidName as exc:
        return Usage(f"'{arg}' cannot be a room: {exc}")


def _split_name(rest: str) -> tuple[str, str] | None:
    """`"Ann Lee" hello` or `Bob hello` -> (name, text); None if there is no name."""
    rest = rest.strip()
    if rest.startswith('"'):
        end = rest.find('"', 1)
        if end < 0:
            return None
        return rest[1:end].strip(), rest[end + 1 :].strip()
    name, _, text = rest.partition(" ")
    return name, text.strip()


def parse_line(line: str) -> Command:
    """One typed line -> a command. Never raises."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return Nothing()
    if line.startswith("//"):
        return Say(line[1:])
    if not line.startswith("/"):
        return Say(line)
    word, _, arg = line[1:].partition(" ")
    word, arg = word.lower(), arg.strip()
    if word in ("help", "?", "h"):
        return Help()
    if word in ("quit", "exit", "q"):
        return Quit()
    if word in ("users", "who"):
        if not arg:
            return Users()
        room = _room_arg(arg, "Usage: /users [ROOM]")
        return room if isinstance(room, Usage) else Users(room)
    if word in ("rooms", "list"):
        return Rooms()
    if word == "join":
        room = _room_arg(arg, "Usage: /join ROOM (e.g. /join dev)")
        return room if isinstance(room, Usage) else Join(room)
    if word in ("leave", "part"):
        if not arg:
            return Leave()
        room = _room_arg(arg, "Usage: /leave [ROOM]")
        return room if isinstance(room, Usage) else Leave(room)
    if word in ("msg", "m", "w", "whisper"):
        split = _split_name(arg)
        if split is None or not split[0] or not split[1]:
            return Usage('Usage: /msg USER text (quote names with spaces: /msg "Ann Lee" hi)')
        return Msg(*split)
    if word == "history":
        if not arg:
            return History()
        if not arg.isdigit() or not 1 <= int(arg) <= MAX_HISTORY:
            return Usage(f"Usage: /history [N], N from 1 to {MAX_HISTORY}")
        return History(int(arg))
    return Unknown("/" + word if word else "/")


# ---------------------------------------------------------------- escaping

# Characters that change how text around them is shown: bidirectional controls can make a line
# read differently from what it says ("Trojan Source"); line and paragraph separators break lines.
_ESCAPED_FORMAT = frozenset(
    [0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


def _escape_char(ch: str) -> str:
    cp = ord(ch)
    if cp < 0x20 or 0x7F <= cp <= 0x9F:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{cp:02x}")
    if cp in _ESCAPED_FORMAT or 0xD800 <= cp <= 0xDFFF:
        return f"\\u{cp:04x}"
    return ch


def escape(text: Any) -> str:
    """Text from the network as safe, printable, one-line text: `\\x1b[31m` stays those 7 characters."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if text.isprintable():  # the usual case: nothing to do
        return text
    return "".join(_escape_char(ch) for ch in text)


def escape_lines(text: Any) -> list[str]:
    """A message body: one safe line per line of text (tabs become spaces)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    lines = text.replace("\r\n", "\n").split("\n")
    return [escape(line.replace("\t", "    ")) for line in lines]


# ---------------------------------------------------------------- colour and style


def color_enabled(env: Mapping[str, str], stdout_is_tty: bool, no_color_flag: bool = False) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (https://no-color.org) or --no-color."""
    if no_color_flag or env.get("NO_COLOR", "") != "":
        return False
    if env.get("TERM") == "dumb":
        return False
    return stdout_is_tty


RESET = "\x1b[0m"
BOLD, DIM = "1", "2"
RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN, GREY = "31", "32", "33", "34", "35", "36", "90"
# Names of other people get one of these, the same every time; green is kept for your own.
NAME_COLORS = ("36", "33", "35", "34", "96", "93", "95", "94")

_SYMBOLS = {
    # kind: (emoji, ascii)
    "join": ("👋", "-->"),
    "leave": ("🚪", "<--"),
    "private": ("🔒", "[pm]"),
    "system": ("📢", "***"),
    "error": ("⚠️ ", "!!"),
    "info": ("💬", "*"),
    "ok": ("✅", "*"),
    "users": ("👥", "*"),
    "rooms": ("🏠", "*"),
    "history": ("📜", "*"),
    "offline": ("🔌", "!!"),
    "queued": ("⏳", "..."),
    "bar": ("│ ", "| "),
    "arrow": ("→", "->"),
}


@dataclass(frozen=True, slots=True)
class Style:
    color: bool = False
    unicode: bool = True  # the terminal can show emojis and box-drawing characters
    tz: tzinfo | None = None  # for HH:MM; None is this machine's local time


class Formatter:
    """Builds every line the client prints. Network text always goes through `escape()` here."""

    def __init__(self, style: Style, clock: Callable[[], float]) -> None:
        self.style = style
        self.clock = clock  # wall-clock seconds, for notices that carry no timestamp

    # -- pieces

    def paint(self, text: str, *codes: str) -> str:
        if not self.style.color or not codes or not text:
            return text
        return f"\x1b[{';'.join(codes)}m{text}{RESET}"

    def sym(self, kind: str) -> str:
        emoji, ascii_ = _SYMBOLS[kind]
        return emoji if self.style.unicode else ascii_

    def hhmm(self, ts: Any = None) -> str:
        """Local HH:MM of an ISO 8601 timestamp (now if missing or unreadable)."""
        when: datetime | None = None
        if isinstance(ts, str):
            try:
                when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            except ValueError:
                when = None
        if when is None:
            when = datetime.fromtimestamp(self.clock()).astimezone(self.style.tz)
        elif when.tzinfo is not None:  # naive times (a seed server) are already local
            when = when.astimezone(self.style.tz)
        return self.paint(when.strftime("%H:%M"), GREY)

    def name(self, name: Any, mine: bool) -> str:
        shown = escape(name)
        if mine:
            return self.paint(shown, BOLD, GREEN)
        color = NAME_COLORS[zlib.crc32(shown.casefold().encode("utf-8", "replace")) % len(NAME_COLORS)]
        return self.paint(shown, BOLD, color)

    def room_tag(self, room: Any, current: str | None) -> str:
        if not isinstance(room, str) or not room or room == current:
            return ""
        return self.paint(f"[#{escape(room)}]", CYAN) + " "

    def _body(self, head: str, text: Any, *codes: str) -> str:
        """`head` then the message; continuation lines are indented so they cannot pose as messages."""
        lines = escape_lines(text)
        indent = "\n" + " " * 8
        return head + indent.join(self.paint(line, *codes) for line in lines)

    # -- lines

    def chat(
        self, frame: Mapping[str, Any], *, mine: bool, current: str | None, history: bool = False
    ) -> str:
        head = f"{self.hhmm(frame.get('timestamp'))} {self.room_tag(frame.get('room'), current)}"
        head += self.name(frame.get("username"), mine) + ": "
        if history:
            line = self._body(head, frame.get("message"), DIM)
            bar = self.paint(self.sym("bar"), GREY)
            return bar + line.replace("\n", "\n" + bar)
        return self._body(head, frame.get("message"), GREEN if mine else "")

    def private(self, frame: Mapping[str, Any], *, me: str) -> str:
        sender = frame.get("from", frame.get("username"))
        to = frame.get("to")
        mine = isinstance(sender, str) and sender == me
        arrow = self.sym("arrow")
        who = f"you {arrow} {self.name(to, False)}" if mine else f"{self.name(sender, False)} {arrow} you"
        head = f"{self.hhmm(frame.get('timestamp'))} {self.sym('private')} {self.paint('private', MAGENTA)} "
        return self._body(f"{head}{who}: ", frame.get("message"), MAGENTA)

    def presence(self, frame: Mapping[str, Any], current: str | None) -> str:
        kind = "join" if frame.get("type") == "user_join" else "leave"
        text = escape(frame.get("message")) or f"{escape(frame.get('username'))} {kind}"
        count = frame.get("online_users")
        if isinstance(count, int) and not isinstance(count, bool):
            text += f" ({count} online)"
        tag = self.room_tag(frame.get("room"), current)
        return f"{self.hhmm(frame.get('timestamp'))} {tag}{self.sym(kind)} {self.paint(text, YELLOW)}"

    def system(self, frame: Mapping[str, Any], current: str | None) -> str:
        tag = self.room_tag(frame.get("room"), current)
        text = self.paint(escape(frame.get("message")), BOLD, BLUE)
        return f"{self.hhmm(frame.get('timestamp'))} {tag}{self.sym('system')} {text}"

    def notice(self, text: str, kind: str = "info") -> str:
        """A line of the client's own (not from the network, but may quote it already escaped)."""
        color = {"error": RED, "offline": RED, "ok": GREEN, "queued": YELLOW}.get(kind, CYAN)
        return f"{self.hhmm()} {self.sym(kind)} {self.paint(text, color)}"

    def users(self, frame: Mapping[str, Any], me: str) -> str:
        names = frame.get("users")
        names = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
        count = _count(frame.get("count"), len(names))
        shown = ", ".join(self.name(n, n == me) for n in names)
        room = escape(frame.get("room") or "general")
        return self.notice(f"{count} online in #{room}: ", "users") + shown

    def rooms(self, frame: Mapping[str, Any], current: str | None) -> list[str]:
        rooms = frame.get("rooms")
        rooms = [r for r in rooms if isinstance(r, dict)] if isinstance(rooms, list) else []
        if not rooms:
            return [self.notice("No rooms yet; /join ROOM creates one.", "rooms")]
        out = [self.notice(f"{len(rooms)} room{'s' if len(rooms) != 1 else ''}:", "rooms")]
        for r in rooms:
            name = escape(r.get("name"))
            members = _count(r.get("members"), 0)
            flags = []
            if name == current:
                flags.append("current")
            elif r.get("joined"):
                flags.append("joined")
            extra = f", {', '.join(flags)}" if flags else ""
            mark = "*" if name == current else " "
            shown = self.paint("#" + name, BOLD if r.get("joined") else "")
            out.append(f"   {mark} {shown} ({members} online{extra})")
        return out

    def help(self) -> list[str]:
        out = [self.notice("Commands:")]
        width = max(len(u) for u, _ in HELP)
        out += [f"   {self.paint(usage.ljust(width), BOLD)}  {text}" for usage, text in HELP]
        return out

    def history_head(self, text: str) -> str:
        return self.notice(text, "history")

    def history_foot(self, text: str = "end of history") -> str:
        line = "──" if self.style.unicode else "--"
        return self.paint(f"{line} {text} {line}", GREY)


def _count(v: Any, default: int) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else default


# ---------------------------------------------------------------- reconnecting


def backoff(
    base: float = 2.0,
    factor: float = 2.0,
    cap: float = 30.0,
    jitter: float = 0.25,
    rand: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Seconds to wait before each reconnect attempt: 2, 4, 8, 16, 30, 30, ... each times a random
    factor in [1 - jitter, 1 + jitter] (so clients that lost the same server spread out), never
    above `cap`. `rand()` returns a number in [0, 1)."""
    delay = base
    while True:
        yield min(cap, delay * (1 + jitter * (2 * rand() - 1)))
        delay = min(cap, delay * factor)


def seconds(delay: float) -> str:
    """A delay as people read it: '2s', '30s'."""
    return f"{max(1, round(delay))}s"


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


def display_width(text: str) -> int:
    """Terminal columns `text` takes: wide East Asian and emoji characters take two, marks none."""
    return sum(char_width(ch) for ch in text)


def char_width(ch: str) -> int:
    if unicodedata.category(ch) in ("Mn", "Me", "Cf") or ch == "\u200b":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
