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
class Logout:
    """End this device's account session (wschat.clientaccount)."""


@dataclass(frozen=True, slots=True)
class Sessions:
    """List the account's sessions."""


@dataclass(frozen=True, slots=True)
class Passwd:
    """Change the account's password (both read with getpass, wschat.clientjobs)."""


@dataclass(frozen=True, slots=True)
class Revoke:
    id: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """Page back through the stored private conversation with `name` (accounts)."""

    name: str
    count: int = DEFAULT_HISTORY


@dataclass(frozen=True, slots=True)
class React:
    """React to message `seq` of the current room with `key`; `remove` takes it back."""

    seq: int
    key: str
    remove: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    seq: int
    text: str


@dataclass(frozen=True, slots=True)
class EditMsg:
    """Edit message `seq` (None: your last message in the current room)."""

    seq: int | None
    text: str


@dataclass(frozen=True, slots=True)
class DeleteMsg:
    seq: int


@dataclass(frozen=True, slots=True)
class SearchMsgs:
    """Search the rooms you are in; no words: the next page of the last search."""

    words: str


@dataclass(frozen=True, slots=True)
class Unread:
    """List the rooms with unread messages."""


@dataclass(frozen=True, slots=True)
class Unknown:
    name: str


@dataclass(frozen=True, slots=True)
class Usage:
    """A known command used the wrong way; `message` says the right way."""

    message: str


Command = (
    Nothing | Say | Help | Quit | Users | Rooms | Join | Leave | Msg | History | Drop | Unknown | Usage
    | Logout | Sessions | Revoke | Conversation | Passwd
    | React | Reply | EditMsg | DeleteMsg | Unread | SearchMsgs
    | Upload | Download
)  # fmt: skip
ACCOUNT_COMMANDS = (Logout, Sessions, Revoke, Conversation, Passwd)
RICH = (React, Reply, EditMsg, DeleteMsg, Unread, SearchMsgs)  # answered by wschat.clientrich

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
    ("/conversation USER [N]", "show N older stored private messages with USER (accounts)"),
    ("/sessions", "your account's devices (with --login or --register)"),
    ("/revoke ID", "end one of your account's sessions (its id from /sessions)"),
    ("/logout", "log this device out of your account and quit (forgets its session token)"),
    ("/passwd", "change your account's password (asked for without echo); your other devices log out"),
    ("/react N EMOJI", "react to message N (the [N] before it); again with -EMOJI to take it back"),
    ("/reply N text", "answer message N (the reply quotes it)"),
    ("/edit [N] text", "change your message N, or your last message in this room without N"),
    ("/delete N", "delete your message N"),
    ("/unread", "rooms with messages you have not read yet, and mentions of you"),
    ("/search words", "find messages with these words in your rooms; /search alone: older results"),
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


def _conversation(arg: str) -> Command:
    split = _split_name(arg)
    usage = Usage(f"Usage: /conversation USER [N], N from 1 to {MAX_HISTORY}")
    if split is None or not split[0]:
        return usage
    name, count = split
    if count and (not count.isdigit() or not 1 <= int(count) <= MAX_HISTORY):
        return usage
    return Conversation(name, int(count) if count else DEFAULT_HISTORY)


def _seq_and_rest(arg: str) -> tuple[int, str] | None:
    word, _, rest = arg.partition(" ")
    word = word.lstrip("#[").rstrip("]")
    return (int(word), rest.strip()) if word.isdigit() and int(word) > 0 else None


def _react(arg: str) -> Command:
    found = _seq_and_rest(arg)
    if found is None or not found[1] or " " in found[1]:
        return Usage("Usage: /react N EMOJI (e.g. /react 12 👍); /react N -EMOJI takes it back")
    seq, key = found
    if key.startswith("-") and len(key) > 1:
        return React(seq, key[1:], remove=True)
    return React(seq, key)


def _reply(arg: str) -> Command:
    found = _seq_and_rest(arg)
    if found is None or not found[1]:
        return Usage("Usage: /reply N text (N is the number shown before the message)")
    return Reply(*found)


def _edit(arg: str) -> Command:
    found = _seq_and_rest(arg)
    if found is not None and found[1]:
        return EditMsg(*found)
    if found is None and arg:
        return EditMsg(None, arg)
    return Usage("Usage: /edit N text, or /edit text to change your last message here")


def _delete(arg: str) -> Command:
    found = _seq_and_rest(arg)
    if found is None or found[1]:
        return Usage("Usage: /delete N (N is the number shown before your message)")
    return DeleteMsg(found[0])


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
    **dict.fromkeys(("conversation", "conv"), lambda arg: _conversation(arg)),
    "logout": lambda _: Logout(),
    "passwd": lambda _: Passwd(),
    "sessions": lambda _: Sessions(),
    "revoke": lambda arg: Revoke(arg) if arg else Usage("Usage: /revoke ID (the id from /sessions)"),
    "react": _react,
    "reply": _reply,
    "edit": _edit,
    **dict.fromkeys(("delete", "del"), _delete),
    "unread": lambda _: Unread(),
    **dict.fromkeys(("search", "find"), lambda arg: SearchMsgs(arg)),
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
