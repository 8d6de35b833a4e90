"""What the terminal client shows, as display events: small typed records, not text. NO I/O.

`wschat.clientstate` decides *what* to show and emits these; `wschat.render` decides *how*
(time stamps, colour, emojis, escaping, hyperlinks, layout). Text in an event is as it came:
network text is never escaped here, so the renderer can escape all of it, every time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Notice:
    """A sentence of the client's own (it may quote network text, which the renderer escapes).

    `kind` picks the symbol and colour: info, ok, error, offline, queued, history, users, rooms,
    leave.
    """

    text: str
    kind: str = "info"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A room message. `tag` is its room when that is not the room being talked in, else None."""

    sender: str
    text: str
    timestamp: str | None = None
    tag: str | None = None
    mine: bool = False
    # rich messaging (wschat.clientrich)
    seq: int | None = None  # shown as [N]: what /react, /reply, /edit and /delete refer to
    quote: tuple[str, str] | None = None  # a reply: who and what it answers
    reactions: tuple[tuple[str, int], ...] = ()  # (key, count)
    edited: bool = False
    mention: bool = False  # it mentions you: highlighted (and a bell, live)


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """A reaction, an edit or a delete, as a line: `who` did `text` to message `seq`."""

    who: str
    text: str
    seq: int
    tag: str | None = None
    timestamp: str | None = None
    mine: bool = False


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    sender: str
    to: str
    text: str
    timestamp: str | None = None
    mine: bool = False
    lock: str = ""  # end-to-end encrypted: "e2ee", "verified" (the contact is), "changed" (keys are)


@dataclass(frozen=True, slots=True)
class Presence:
    """Someone joined or left a room; `text` is the server's sentence."""

    joined: bool
    text: str
    count: int | None = None
    tag: str | None = None
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class Announcement:
    """A `system` frame from the server (shutting down, ...)."""

    text: str
    tag: str | None = None
    timestamp: str | None = None


Notes = tuple[tuple[int, Notice], ...]  # lines among messages: (how many messages before, line)


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Messages shown together under `title`.

    With `end` (recent history, /history pages) they are marked as history and closed by
    `── end ──`; without it (missed while away) they are ordinary message lines. `notes` are
    room events among them (kicks, bans, topics): (how many messages come before it, its line),
    so that each is shown where its seq puts it.
    """

    title: str
    messages: tuple[ChatMessage, ...]
    end: str | None = None
    notes: Notes = ()


@dataclass(frozen=True, slots=True)
class RoomJoined:
    """Now in a room: `switched` when the user asked for it (talking there now), else at login."""

    room: str
    count: int | None
    names: tuple[str, ...]
    me: str
    switched: bool


@dataclass(frozen=True, slots=True)
class UserList:
    room: str
    count: int
    names: tuple[str, ...]
    me: str


@dataclass(frozen=True, slots=True)
class RoomInfo:
    name: str
    members: int
    joined: bool


@dataclass(frozen=True, slots=True)
class Revised:
    """A message shown live earlier changed (a reaction, an edit): `message` as it is now, to be
    redrawn where it was printed (`key`: its room and seq) while that is still on screen; where the
    terminal cannot, `instead` is shown as a line of its own (None: nothing to say)."""

    key: tuple[str, int]
    message: ChatMessage
    instead: RoomEvent | None


@dataclass(frozen=True, slots=True)
class RoomList:
    rooms: tuple[RoomInfo, ...]
    current: str | None


@dataclass(frozen=True, slots=True)
class HelpText:
    """The list of commands (`wschat.commands.HELP`)."""


Display = (
    Notice
    | ChatMessage
    | PrivateMessage
    | Presence
    | Announcement
    | HistoryPage
    | RoomJoined
    | UserList
    | RoomList
    | HelpText
    | RoomEvent
    | Revised
)
