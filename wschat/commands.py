"""The terminal client's commands: one typed line -> a command, and the reconnect schedule. NO I/O.

This module imports neither asyncio nor websockets nor aioconsole and touches no terminal. It owns:

- `parse_line()`: one typed line -> a command (`Say`, `Join`, `Msg`, ...) or a usage error;
- `HELP`: the commands as /help and --help list them;
- `backoff()`: the reconnect delays, a small generator with injectable jitter.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from wschat.names import InvalidName, check_room

DEFAULT_HISTORY = 20
MAX_HISTORY = 100  # the server's page limit

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
class Drop:
    """Forget the private messages waiting for their recipients to come online."""


@dataclass(frozen=True, slots=True)
class Upload:
    path: str
    to: str | None = None  # a private file for this person; else the current room


@dataclass(frozen=True, slots=True)
class Download:
    file_id: str
    folder: str = "."


@dataclass(frozen=True, slots=True)
class Unknown:
    name: str


@dataclass(frozen=True, slots=True)
class Usage:
    """A known command used the wrong way; `message` says the right way."""

    message: str


Command = (
    Nothing
    | Say
    | Help
    | Quit
    | Users
    | Rooms
    | Join
    | Leave
    | Msg
    | History
    | Drop
    | Upload
    | Download
    | Unknown
    | Usage
)

HELP: list[tuple[str, str]] = [
    ("text", "send a message to the current room"),
    ("/join ROOM", "join a room (created if new) and talk there"),
    ("/leave", "leave the current room (or /leave ROOM); you then talk in another room you are in"),
    ("/rooms", "list rooms and who is in them"),
    ("/users", "who is online in the current room (or /users ROOM)"),
    ("/msg USER text", 'private message; quote names with spaces: /msg "Ann Lee" hi'),
    ("/upload PATH", "share a file in the current room; /upload @USER PATH privately; resumes after a drop"),
    ("/download ID [DIR]", "save a shared file (its ID is shown with it) into DIR (default: here)"),
    ("/drop", "forget private messages waiting for their recipient to come online"),
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


def _users(arg: str) -> Command:
    if not arg:
        return Users()
    room = _room_arg(arg, "Usage: /users [ROOM]")
    return room if isinstance(room, Usage) else Users(room)


def _join(arg: str) -> Command:
    room = _room_arg(arg, "Usage: /join ROOM (e.g. /join dev)")
    return room if isinstance(room, Usage) else Join(room)


def _leave(arg: str) -> Command:
    if not arg:
        return Leave()
    room = _room_arg(arg, "Usage: /leave [ROOM]")
    return room if isinstance(room, Usage) else Leave(room)


def _msg(arg: str) -> Command:
    split = _split_name(arg)
    if split is None or not split[0] or not split[1]:
        return Usage('Usage: /msg USER text (quote names with spaces: /msg "Ann Lee" hi)')
    return Msg(*split)


def _history(arg: str) -> Command:
    if not arg:
        return History()
    if not arg.isdigit() or not 1 <= int(arg) <= MAX_HISTORY:
        return Usage(f"Usage: /history [N], N from 1 to {MAX_HISTORY}")
    return History(int(arg))


def _upload(arg: str) -> Command:
    usage = Usage(
        'Usage: /upload PATH (to the current room) or /upload @USER PATH (privately; "@Ann Lee" PATH)'
    )
    to = None
    if arg.startswith(("@", '"@')):
        split = _split_name(arg.replace("@", "", 1))
        if split is None or not split[0] or not split[1]:
            return usage
        to, arg = split
    path = arg.strip().strip('"')
    return Upload(path, to) if path else usage


def _download(arg: str) -> Command:
    file_id, _, folder = arg.strip().partition(" ")
    if not file_id:
        return Usage("Usage: /download ID [DIR] (the ID shown with the file)")
    return Download(file_id, folder.strip().strip('"') or ".")


_COMMANDS: dict[str, Callable[[str], Command]] = {
    **dict.fromkeys(("help", "?", "h"), lambda _: Help()),
    **dict.fromkeys(("quit", "exit", "q"), lambda _: Quit()),
    **dict.fromkeys(("users", "who"), _users),
    **dict.fromkeys(("rooms", "list"), lambda _: Rooms()),
    "join": _join,
    **dict.fromkeys(("leave", "part"), _leave),
    **dict.fromkeys(("msg", "m", "w", "whisper"), _msg),
    "drop": lambda _: Drop(),
    "history": _history,
    **dict.fromkeys(("upload", "up", "send"), _upload),
    **dict.fromkeys(("download", "get"), _download),
}


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
    parse = _COMMANDS.get(word)
    if parse is None:
        return Unknown("/" + word if word else "/")
    return parse(arg)


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
