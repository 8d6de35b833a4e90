"""How the terminal client shows things: display events -> lines of text. NO I/O.

This module imports neither asyncio nor websockets nor aioconsole and touches no terminal. It owns:

- `escape()`: text from the network made safe to print (control characters and ANSI escape
  sequences are shown as `\\x1b`-style text, never executed by the terminal);
- `Renderer`: every line the client prints, from a display event (`wschat.display`), with local
  `HH:MM` times, emojis and colour; http(s) URLs in messages become OSC 8 hyperlinks when the
  terminal gets escape sequences at all;
- `color_enabled()` / `links_enabled()`: the colour and hyperlink decisions (NO_COLOR, not a
  terminal, --no-color);
- `seconds()`, `display_width()`: delays and widths as people and terminals count them.

Every piece of text in an event goes through `escape()` here, whatever its origin: nothing the
server sends can reach the terminal as an escape sequence.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from wschat.commands import HELP
from wschat.display import (
    Announcement,
    ChatMessage,
    Display,
    HelpText,
    HistoryPage,
    Notice,
    Presence,
    PrivateMessage,
    Revised,
    RoomEvent,
    RoomJoined,
    RoomList,
    UserList,
)

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


# An http(s) URL made only of printable ASCII (RFC 3986 characters; no backslash, so an escaped
# control character such as `\x1b` ends it): nothing in it can end or extend the OSC 8 sequence.
_URL_RE = re.compile(
    r"\bhttps?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*)?",
    re.IGNORECASE,
)
_URL_TRAILING = ".,;:!?'\")]"  # sentence punctuation after a link is not part of it
OSC8_END = "\x1b]8;;\x1b\\"


def hyperlink(url: str, text: str) -> str:
    """An OSC 8 hyperlink; `url` must already be a `_URL_RE` match (printable ASCII only)."""
    return f"\x1b]8;;{url}\x1b\\{text}{OSC8_END}"


def linkify(escaped: str) -> str:
    """http(s) URLs in already escaped text become OSC 8 hyperlinks showing the same text."""

    def link(m: re.Match[str]) -> str:
        url = m.group(0)
        cut = len(url.rstrip(_URL_TRAILING))
        if url[:cut].count("(") > url[:cut].count(")") and url[cut:].startswith(")"):
            cut += 1  # https://en.wikipedia.org/wiki/Foo_(bar) keeps its closing bracket
        return hyperlink(url[:cut], url[:cut]) + url[cut:]

    return _URL_RE.sub(link, escaped)


# ---------------------------------------------------------------- colour and style


def color_enabled(env: Mapping[str, str], stdout_is_tty: bool, no_color_flag: bool = False) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (https://no-color.org) or --no-color."""
    if no_color_flag or env.get("NO_COLOR", "") != "":
        return False
    if env.get("TERM") == "dumb":
        return False
    return stdout_is_tty


def links_enabled(env: Mapping[str, str], color: bool) -> bool:
    """OSC 8 hyperlinks only where escape sequences are wanted at all; the Linux console shows
    them as garbage, terminals that do not know them ignore them."""
    return color and env.get("TERM") != "linux"


RESET = "\x1b[0m"
BOLD, DIM = "1", "2"
RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN, GREY = "31", "32", "33", "34", "35", "36", "90"
# Names of other people get one of these, the same every time; green is kept for your own.
NAME_COLORS = ("36", "33", "35", "34", "96", "93", "95", "94")
NOTICE_COLORS = {"error": RED, "offline": RED, "ok": GREEN, "queued": YELLOW}

_SYMBOLS = {
    # kind: (emoji, ascii)
    "join": ("👋", "-->"),
    "leave": ("🚪", "<--"),
    "private": ("📨", "[pm]"),
    "e2ee": ("🔒", "[e2ee]"),  # an end-to-end encrypted private message (wschat.cliente2ee)
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
    links: bool = False  # OSC 8 hyperlinks for http(s) URLs (only with colour)


class Renderer:
    """Turns display events into the text the client prints."""

    def __init__(self, style: Style, clock: Callable[[], float]) -> None:
        self.style = style
        self.clock = clock  # wall-clock seconds, for lines that carry no timestamp

    def render(self, event: Display) -> str:
        """The (possibly multi-line) text of one event."""
        return _RENDER[type(event)](self, event)

    # -- pieces

    def paint(self, text: str, *codes: str) -> str:
        if not self.style.color or not codes or not text:
            return text
        return f"\x1b[{';'.join(codes)}m{text}{RESET}"

    def sym(self, kind: str) -> str:
        emoji, ascii_ = _SYMBOLS.get(kind, _SYMBOLS["info"])
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

    def names(self, names: tuple[str, ...], me: str) -> str:
        return ", ".join(self.name(n, n == me) for n in names)

    def room_tag(self, room: str | None) -> str:
        return self.paint(f"[#{escape(room)}]", CYAN) + " " if room else ""

    def _body(self, head: str, text: str, *codes: str) -> str:
        """`head` then the message; continuation lines are indented so they cannot pose as messages."""
        lines = escape_lines(text)
        if self.style.links and self.style.color:
            lines = [linkify(line) for line in lines]
        indent = "\n" + " " * 8
        return head + indent.join(self.paint(line, *codes) for line in lines)

    def _line(self, kind: str, text: str, *codes: str, ts: str | None = None, tag: str | None = None) -> str:
        return f"{self.hhmm(ts)} {self.room_tag(tag)}{self.sym(kind)} {self.paint(text, *codes)}"

    # -- events

    def notice(self, e: Notice) -> str:
        return self._line(e.kind, escape(e.text), NOTICE_COLORS.get(e.kind, CYAN))

    def chat(self, e: ChatMessage, history: bool = False) -> str:
        number = self.paint(f"[{e.seq}]", GREY) + " " if e.seq is not None else ""
        head = f"{self.hhmm(e.timestamp)} {self.room_tag(e.tag)}{number}{self.name(e.sender, e.mine)}: "
        codes = (DIM,) if history else (BOLD, YELLOW) if e.mention else (GREEN,) if e.mine else ()
        line = self._body(head, e.text, *codes)
        line = self._quoted(e) + line + self._marks(e)
        if e.mention and not history and self.style.color:
            line += "\a"  # the terminal bell: someone mentioned you
        if history:
            bar = self.paint(self.sym("bar"), GREY)
            return bar + line.replace("\n", "\n" + bar)
        return line

    def _quoted(self, e: ChatMessage) -> str:
        """A reply's quote, on a line above it: who and what it answers."""
        if e.quote is None:
            return ""
        who, text = e.quote
        arrow = "↱" if self.style.unicode else ">"
        quoted = escape(text if len(text) <= 60 else text[:59] + "…")
        return " " * 6 + self.paint(f"{arrow} {escape(who)}: {quoted}", GREY) + "\n"

    def _marks(self, e: ChatMessage) -> str:
        """After a message: "(edited)" and its reactions with their counts."""
        out = self.paint(" (edited)", GREY) if e.edited else ""
        if e.reactions:
            chips = "  ".join(f"{escape(k)} {n}" for k, n in e.reactions)
            out += "\n" + " " * 8 + self.paint(chips, GREY)
        return out

    def revised(self, e: Revised) -> str:
        """The message as it is now, to redraw in place (no second bell for a mention)."""
        return self.chat(e.message).replace("\a", "")

    def room_event(self, e: RoomEvent) -> str:
        who = self.name(e.who, e.mine)
        return f"{self.hhmm(e.timestamp)} {self.room_tag(e.tag)}{self.sym('info')} {who} {escape(e.text)}"

    def private(self, e: PrivateMessage) -> str:
        arrow = self.sym("arrow")
        # end-to-end encrypted (a lock): a verified contact gets a check mark, changed keys a warning
        badge = {"verified": " ✔", "changed": " ⚠ keys changed"}.get(e.lock, "")
        other = self.name(e.to if e.mine else e.sender, False) + badge
        who = f"you {arrow} {other}" if e.mine else f"{other} {arrow} you"
        mark = self.sym("e2ee" if e.lock else "private")
        head = f"{self.hhmm(e.timestamp)} {mark} {self.paint('private', MAGENTA)} "
        return self._body(f"{head}{who}: ", e.text, MAGENTA)

    def presence(self, e: Presence) -> str:
        text = escape(e.text) + (f" ({e.count} online)" if e.count is not None else "")
        return self._line("join" if e.joined else "leave", text, YELLOW, ts=e.timestamp, tag=e.tag)

    def announcement(self, e: Announcement) -> str:
        return self._line("system", escape(e.text), BOLD, BLUE, ts=e.timestamp, tag=e.tag)

    def history(self, e: HistoryPage) -> str:
        head = self.notice(Notice(e.title, "history"))
        lines = [self.chat(m, history=e.end is not None) for m in e.messages]
        for at, n in reversed(e.notes):  # room events where their seq puts them (stable for equal `at`)
            lines.insert(at, self.notice(n))
        if e.end is None:  # missed while away: ordinary message lines under a heading
            return "\n".join([head, *lines])
        line = "──" if self.style.unicode else "--"
        foot = self.paint(f"{line} {escape(e.end)} {line}", GREY)
        return "\n".join([head, *lines, foot])

    def joined(self, e: RoomJoined) -> str:
        lead = f"Now talking in #{escape(e.room)}" if e.switched else f"#{escape(e.room)}"
        kind = "ok" if e.switched else "users"
        if e.count is None:
            return self.notice(Notice(lead, kind))
        who = ": " + self.names(e.names, e.me) if e.names else ""
        return self._line(kind, f"{lead} - {e.count} online", NOTICE_COLORS.get(kind, CYAN)) + who

    def users(self, e: UserList) -> str:
        lead = self._line("users", f"{e.count} online in #{escape(e.room)}: ", CYAN)
        return lead + self.names(e.names, e.me)

    def rooms(self, e: RoomList) -> str:
        if not e.rooms:
            return self.notice(Notice("No rooms yet; /join ROOM creates one.", "rooms"))
        n = len(e.rooms)
        out = [self.notice(Notice(f"{n} room{'s' if n != 1 else ''}:", "rooms"))]
        for r in e.rooms:
            name = escape(r.name)
            flags = "current" if r.name == e.current else "joined" if r.joined else ""
            extra = f", {flags}" if flags else ""
            mark = "*" if r.name == e.current else " "
            shown = self.paint("#" + name, BOLD if r.joined else "")
            out.append(f"   {mark} {shown} ({r.members} online{extra})")
        return "\n".join(out)

    def help(self, e: HelpText | None = None) -> str:
        width = max(len(u) for u, _ in HELP)
        out = [self.notice(Notice("Commands:"))]
        out += [f"   {self.paint(usage.ljust(width), BOLD)}  {text}" for usage, text in HELP]
        return "\n".join(out)


_RENDER: dict[type, Callable[[Renderer, Any], str]] = {
    Notice: Renderer.notice,
    ChatMessage: Renderer.chat,
    Revised: Renderer.revised,
    PrivateMessage: Renderer.private,
    Presence: Renderer.presence,
    Announcement: Renderer.announcement,
    HistoryPage: Renderer.history,
    RoomJoined: Renderer.joined,
    UserList: Renderer.users,
    RoomList: Renderer.rooms,
    HelpText: Renderer.help,
    RoomEvent: Renderer.room_event,
}


# ---------------------------------------------------------------- numbers and widths


def seconds(delay: float) -> str:
    """A delay as people read it: '2s', '30s'."""
    return f"{max(1, round(delay))}s"


_INVISIBLE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|[\x00-\x1f\x7f]")


def rows(text: str, columns: int) -> int:
    """Terminal rows that printing `text` (rendered: colour and hyperlinks included) and a newline
    takes at `columns` wide: each of its lines wraps on its own."""
    columns = max(columns, 1)
    widths = (display_width(_INVISIBLE.sub("", line)) for line in text.split("\n"))
    return sum(max(1, -(-w // columns)) for w in widths)


def display_width(text: str) -> int:
    """Terminal columns `text` takes: wide East Asian and emoji characters take two, marks none."""
    return sum(char_width(ch) for ch in text)


def char_width(ch: str) -> int:
    if unicodedata.category(ch) in ("Mn", "Me", "Cf") or ch == "\u200b":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
