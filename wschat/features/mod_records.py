"""Moderation's store commands and the state they carry. NO I/O.

The store (`wschat.accountstore`, with the SQL in `wschat.modstore`) keeps moderation in the
accounts' database: operators granted or removed, each room's creator, topic, invite-only flag
and invitations, bans and mutes with their expiry, and an audit table of every action. The
admin command line (`wschat.admin`) writes the same tables; the hub re-reads them on a timer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from wschat.records import Command


@dataclass(frozen=True, slots=True)
class Restriction:
    """A ban or a mute. `scope`: a room, or "" for the whole server. `subject`: "account:KEY",
    "address:IP" or (a guest's mute) "name:KEY". `until`: 0 for no end."""

    what: str  # "ban" or "mute"
    scope: str
    subject: str
    name: str  # the name shown (whom it was aimed at)
    until: float
    reason: str
    by: str


@dataclass(slots=True)
class RoomRules:
    creator: str = ""  # the creator's account key ("" when a guest or the server made it)
    topic: str = ""
    invite_only: bool = False
    invited: set[str] = field(default_factory=set)  # name keys


@dataclass(slots=True)
class ModState:
    """Everything the hub holds about moderation, as the store has it."""

    operators: dict[str, bool] = field(default_factory=dict)  # key -> granted (False: removed)
    rooms: dict[str, RoomRules] = field(default_factory=dict)
    restrictions: list[Restriction] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Moderate(Command):
    """Record one moderation action and its audit row, in one transaction.

    `action`: ban, mute (write `restriction`), unban, unmute (lift what matches `scope` and
    `subject`), topic, invite_only, invite, creator (a room's rules; `value`), grant, revoke
    (operators), kick (the audit row only). Result: None.
    """

    action: str
    actor: str
    scope: str
    subject: str
    target: str  # the name shown in the audit
    value: str
    at: float
    restriction: Restriction | None = None


@dataclass(frozen=True, slots=True)
class RemoteKick(Command):
    """Cluster mode: connection `cid` of another `process` is kicked by `by` out of `room` ("":
    off the server), for `reason`; that process takes it out. Result: whether it is there.

    `action` extends it to the other actions on a user (`wschat.features.mod_cluster`): "mute",
    "unmute" and "ban" of `subject` (`until`: the restriction's end, 0 for none), which that
    process applies at once instead of at its next re-read of moderation. Action "unban" names
    no `process` (and `cid` 0): every process lifts the ban of `subject` in `room` at once.
    """

    process: str
    cid: int
    room: str
    by: str
    reason: str
    action: str = "kick"
    subject: str = ""
    name: str = ""  # the name shown (whom it is aimed at)
    until: float = 0.0

    def payload(self) -> bytes:
        """What crosses Redis to that process (JSON, never pickle)."""
        fields = {"c": self.cid, "r": self.room, "b": self.by, "why": self.reason, "a": self.action}
        return orjson.dumps(fields | {"s": self.subject, "n": self.name, "u": self.until})

    @classmethod
    def parse(cls, process: str, data: bytes) -> RemoteKick:
        """The command `payload` made (ValueError or KeyError if it is not one)."""
        f = orjson.loads(data)
        return cls(process, int(f["c"]), f["r"], f["b"], f["why"], f["a"], f["s"], f["n"], float(f["u"]))


@dataclass(frozen=True, slots=True)
class ReadModeration(Command):
    """Result: the ModState now in the database (restrictions that have run out left out)."""

    now: float
