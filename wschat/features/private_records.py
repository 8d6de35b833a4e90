"""Stored private messages between accounts: the record and its store commands. NO I/O.

A conversation between two accounts is named by their two name keys (`conversation_key`); its
messages have a per-conversation `seq` (1, 2, 3...) and a global `id`, both given by the store
when it stores them (`StorePrivate` fills them in on the record it was given, before it answers).
Each device (account session) has a cursor, the last id it was given, so a device that logs
in gets what it has not seen yet, in order, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from wschat.records import Command


def conversation_key(a: str, b: str) -> str:
    """The one name of the conversation between name keys `a` and `b`, whichever writes."""
    return "\n".join(sorted((a, b)))


@dataclass(slots=True, eq=False)
class StoredPrivate:
    conversation: str
    sender: str
    sender_key: str
    recipient: str
    recipient_key: str
    text: str
    ts: float
    client_msg_id: str | None = None
    id: int = 0  # given by the store
    seq: int = 0  # given by the store, per conversation
    delivered: float | None = None  # when the recipient's device first got it
    file: dict[str, Any] | None = None  # a shared file's `file` object (wschat.features.files)
    call: dict[str, Any] | None = None  # a call's outcome (wschat.features.calls)
    e2ee: dict[str, Any] | None = None  # an encrypted message's envelope (text is then "")
    duplicate: bool = False  # the store found its client_msg_id stored before (Redis): not stored again


@dataclass(slots=True)
class StorePrivate(Command):
    """Store these messages, giving each its id and seq. Result: None once committed."""

    messages: list[StoredPrivate]
    batched: ClassVar[bool] = True

    @classmethod
    def merge(cls, commands: Sequence[Command]) -> StorePrivate:
        return StorePrivate([m for c in commands if isinstance(c, StorePrivate) for m in c.messages])


@dataclass(slots=True)
class MarkDelivered(Command):
    """These message ids reached their recipient at `ts`; and these devices' cursors move on.

    `cursors` maps a session id to the last message id that device was given. Result: None.
    """

    ids: list[int] = field(default_factory=list)
    ts: float = 0.0
    cursors: dict[str, int] = field(default_factory=dict)
    batched: ClassVar[bool] = True

    @classmethod
    def merge(cls, commands: Sequence[Command]) -> MarkDelivered:
        merged = MarkDelivered()
        for c in commands:
            if isinstance(c, MarkDelivered):
                merged.ids.extend(c.ids)
                merged.ts = max(merged.ts, c.ts)
                for sid, last in c.cursors.items():
                    merged.cursors[sid] = max(last, merged.cursors.get(sid, 0))
        return merged


@dataclass(frozen=True, slots=True)
class ReadMissed(Command):
    """What device `session_id` of account `key` has not been given yet (sent or received),
    oldest first, at most `limit`. Result: a list of StoredPrivate."""

    key: str
    session_id: str
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class ReadConversation(Command):
    """Up to `limit` messages of `conversation` with seq < `before_seq`. Result: a list, oldest first."""

    conversation: str
    before_seq: int
    limit: int


@dataclass(frozen=True, slots=True)
class DeliverStored(Command):
    """Cluster mode: give stored private message `last_id` (`frame`) to connection `cid` of another
    `process`, device `session_id`; that process moves the device's cursor when the connection
    is still there (`wschat.features.offline.delivered_here`). Result: whether that process
    listens (not whether the connection is still there)."""

    process: str
    cid: int
    session_id: str
    last_id: int
    frame: bytes

    def payload(self) -> bytes:
        """What crosses Redis: `<cid> <id> <session id> <frame>` (session ids are hex)."""
        return b" ".join(
            (str(self.cid).encode(), str(self.last_id).encode(), self.session_id.encode(), self.frame)
        )

    @classmethod
    def parse(cls, process: str, data: bytes) -> DeliverStored:
        """The command `payload` made (ValueError if it is not one)."""
        cid, last_id, session_id, frame = data.split(b" ", 3)
        return cls(process, int(cid), session_id.decode(), int(last_id), frame)
