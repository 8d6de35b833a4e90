"""What crosses between the hub and the store: stored records and store commands. NO I/O.

A store command is a small dataclass; the store executes it (`Store.execute(command, done)`)
and the hub hears the result through `Hub.store_result(token, result, now)`. A command whose
class says `batched = True` may be merged with the others of its kind made in the same
event-loop iteration (`merge`), so that a burst of messages costs one store transaction
(group commit); its result then goes to each of them.

Adding a stored event kind (a reaction, an edit) means a command here, its execution in
`wschat.store`, and the handler that emits it; the runtime does not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(slots=True, eq=False)
class Message:
    """A room message. `payload` is its `chat` frame, encoded once and reused in history."""

    id: int
    room: str
    seq: int
    username: str
    user_key: str
    client_id: str
    text: str
    ts: float
    client_msg_id: str | None = None
    epoch: str = ""  # the room's epoch, so the store can record a new room with its first message
    payload: bytes = b""
    file: dict[str, Any] | None = None  # a shared file's `file` object (wschat.features.files)
    # Set by a cluster store that found this (user, client_msg_id) stored before, by any process:
    # `id`, `seq` and `epoch` are then those of the stored copy, and nothing was stored again.
    duplicate: bool = False
    # Rich messaging (wschat.features.events). A room event (a reaction, an edit, a delete) is a
    # Message too, of another `kind`, so it takes a seq and travels with history and resume.
    kind: str = "chat"  # "chat", "reaction", "edit" or "delete"
    target: int = 0  # an event: the seq of the message it changes
    reply_to: int = 0  # a chat message: the seq it answers
    meta: dict | None = None  # small JSON-able extras: reply_preview; a reaction's key and removed
    edited_at: float = 0.0  # a chat message: when its latest edit was made
    deleted: bool = False  # a chat message deleted by its author: a tombstone without a body
    reactions: dict[str, list[str]] | None = None  # a chat message: key -> names, oldest first


@dataclass(slots=True)
class RoomState:
    """What the store knows about a room when it is loaded."""

    epoch: str
    last_seq: int = 0
    first_seq: int = 1
    recent: list[Message] = field(default_factory=list)


@dataclass(slots=True)
class Snapshot:
    """Everything the hub needs from the store to start: `rooms` need hold only `general`."""

    rooms: dict[str, RoomState] = field(default_factory=dict)
    # The history's epoch: fixed for the life of a database, so a room created later (or an empty
    # room re-created after a restart) keeps the epoch clients already hold. "" = make one up.
    epoch: str = ""
    next_id: int = 1
    # (user_key, client_msg_id, room, id, seq), oldest first
    sent_ids: list[tuple[str, str, str, int | str, int]] = field(default_factory=list)  # str: "pm" ids
    # rooms with history that are not loaded at start, most recently active last (for list_rooms)
    known_rooms: list[str] = field(default_factory=list)
    # read positions (wschat.features.live): (user_key, room, seq, private)
    read_positions: list[tuple[str, str, int, bool]] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)  # every registered name
    moderation: Any = None  # wschat.features.mod_records.ModState (None: nothing yet)


# ---------------------------------------------------------------- store commands


class Command:
    """Base of every store command."""

    __slots__ = ()
    batched: ClassVar[bool] = False

    @classmethod
    def merge(cls, commands: Sequence[Command]) -> Command:
        """For a batched kind: one command doing what all of `commands` (of this kind) do."""
        raise NotImplementedError(f"{cls.__name__} is not batched")


@dataclass(slots=True)
class Append(Command):
    """Store these messages. Result: None once they are committed."""

    messages: list[Message]
    batched: ClassVar[bool] = True

    @classmethod
    def merge(cls, commands: Sequence[Command]) -> Append:
        if len(commands) == 1 and isinstance(commands[0], Append):
            return commands[0]
        return Append([m for c in commands if isinstance(c, Append) for m in c.messages])


@dataclass(frozen=True, slots=True)
class ReadPage(Command):
    """Read up to `limit` messages of `room` with seq < `before_seq`. Result: a list, oldest first."""

    room: str
    before_seq: int
    limit: int


@dataclass(frozen=True, slots=True)
class ReadMessage(Command):
    """Read one message of `room` by seq (a reply or an event's target older than the window).
    Result: the Message with its current state, or None."""

    room: str
    seq: int


@dataclass(slots=True)
class SaveReads(Command):
    """Store read positions: (user_key, room, seq, private); a position only moves forward.
    Result: None once committed."""

    positions: list[tuple[str, str, int, bool]]
    batched: ClassVar[bool] = True

    @classmethod
    def merge(cls, commands: Sequence[Command]) -> SaveReads:
        return SaveReads([pos for c in commands if isinstance(c, SaveReads) for pos in c.positions])


@dataclass(frozen=True, slots=True)
class Search(Command):
    """Find chat messages of `rooms` whose text has every token of `tokens` (case and accents
    ignored), newest first, with id < `before` (0: any); at most `limit`.
    Result: a list of Messages in their current state (never a deleted one)."""

    tokens: tuple[str, ...]
    rooms: tuple[str, ...]
    before: int
    limit: int


@dataclass(frozen=True, slots=True)
class LoadRoom(Command):
    """Read a room when someone joins it. Result: a RoomState, or None for a room with no history."""

    room: str


@dataclass(frozen=True, slots=True)
class ReadRange(Command):
    """Read up to `limit` messages of `room` with seq > `after_seq`, oldest first (catch-up).

    A cluster process that missed messages (a gap in what pub/sub brought, a reconnect, a restart
    of Redis) reads them from the store before delivering anything newer. Result: a list.
    """

    room: str
    after_seq: int
    limit: int


# ---------------------------------------------------------------- cluster mode (names, users)


@dataclass(frozen=True, slots=True)
class ClaimName(Command):
    """Own the name `key` (and its look-alike keys) cluster-wide for connection `cid`.

    `token` is the session token the name will have; `offered` the token the client offered to
    take an existing session over ("" if none); `force` takes it over without one (an account
    whose password was checked). Result: a `NameClaim`.
    """

    key: str
    name: str
    looks: tuple[str, ...]
    cid: int
    token: str
    offered: str
    force: bool = False  # an account that logged in: take the name over wherever it is held
    # An account's device (its session id): the name is shared by all of the account's devices,
    # cluster-wide; only an older connection of this same device is taken over.
    session_id: str = ""
    address: str = ""  # the peer's address (a guest is banned by it, from any process)


@dataclass(frozen=True, slots=True)
class NameClaim:
    status: str  # "ok", "taken" or "confusable"
    holder: str = ""  # taken or confusable: the name as its holder wrote it
    local_cid: int = 0  # ok by taking over a session of this process: its connection


@dataclass(frozen=True, slots=True)
class FindUser(Command):
    """Where the user with name key `key` is connected. Result: a `UserPlace`, or None."""

    key: str


@dataclass(frozen=True, slots=True)
class UserPlace:
    process: str
    cid: int
    name: str
    session_id: str = ""  # an account's device ("" for a guest)
    address: str = ""  # the connection's peer address
    presence: str = "online"  # what the device says (online, away, busy)
    status: str = ""  # the user's status line as that process knows it


@dataclass(frozen=True, slots=True)
class FindDevices(Command):
    """Every connection of the user with name key `key` on the *other* processes (an account's
    devices, or a guest's one connection). Result: a tuple of `UserPlace`s (empty: none)."""

    key: str


@dataclass(frozen=True, slots=True)
class SaveLive(Command):
    """Cluster mode: connection `cid` of user `key` (this process) now says `presence` and the
    user's status is `status`, so that `whois` on another process answers live. Result: None."""

    key: str
    cid: int
    presence: str
    status: str


@dataclass(frozen=True, slots=True)
class Forward(Command):
    """Deliver `data` to connection `cid` of another `process`. Result: whether it is there."""

    process: str
    cid: int
    data: bytes
