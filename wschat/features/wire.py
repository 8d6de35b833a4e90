"""Rich messaging on the wire: the requests `react`, `edit`, `delete` and the room events they
make (`reaction`, `edit`, `delete`). NO I/O.

It owns the request dataclasses and their decoders, the builders of the event frames, and the
length limits of what they carry. `wschat.protocol` imports this module at its end and this
module adds its frame types to `protocol.FRAME_TYPES`, so `protocol.decode` knows them however
the two modules are first imported. PROTOCOL.md ("Reactions, replies, edits and deletes") is
the specification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wschat import outbound
from wschat import protocol as p

MAX_KEY_CHARS = 32  # a reaction key: one emoji (which may be several code points) or a short word
PREVIEW_CHARS = 100  # reply_preview.message: enough to recognise the message quoted


@dataclass(frozen=True, slots=True)
class React:
    room: str
    target: int
    key: str
    remove: bool = False


@dataclass(frozen=True, slots=True)
class Edit:
    room: str
    target: int
    message: str


@dataclass(frozen=True, slots=True)
class Delete:
    room: str
    target: int


def _room(obj: dict) -> str:
    return p._text(obj, "room", required=False, default="general")


def _react(obj: dict, limits: p.Limits) -> React:
    key = p._text(obj, "key")
    if not key.strip() or key != key.strip():
        raise p.ProtocolError(
            p.BAD_FIELD, "'key' must be an emoji or a short word, without spaces around it."
        )
    if len(key) > MAX_KEY_CHARS:
        raise p.ProtocolError(
            p.TOO_LONG, f"A reaction has at most {MAX_KEY_CHARS} characters; this one has {len(key)}."
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise p.ProtocolError(p.BAD_FIELD, "'key' must not contain control characters.")
    remove = obj.get("remove", False)
    if not isinstance(remove, bool):
        raise p.ProtocolError(p.BAD_FIELD, "'remove' must be true or false.")
    return React(_room(obj), p._int(obj, "target"), key, remove)


def _edit(obj: dict, limits: p.Limits) -> Edit:
    return Edit(_room(obj), p._int(obj, "target"), p._message(obj, limits, None))


def _delete(obj: dict, limits: p.Limits) -> Delete:
    return Delete(_room(obj), p._int(obj, "target"))


def reaction(room: str, seq: int, target: int, key: str, username: str, removed: bool, ts: float) -> bytes:
    frame = {"type": "reaction", "room": room, "seq": seq, "target": target, "key": key}
    frame.update(username=username, removed=removed, timestamp=outbound.timestamp(ts))
    return outbound.encode(frame)


def edit(room: str, seq: int, target: int, message: str, username: str, ts: float) -> bytes:
    head = {"room": room, "seq": seq, "target": target, "username": username}
    return outbound.encode(outbound._stamped("edit", head, message, ts, {}))


def delete(room: str, seq: int, target: int, username: str, ts: float) -> bytes:
    frame = {"type": "delete", "room": room, "seq": seq, "target": target, "username": username}
    frame["timestamp"] = outbound.timestamp(ts)
    return outbound.encode(frame)


def reply_preview(username: str, text: str) -> dict[str, Any]:
    """What a reply quotes of the message it answers: its author and the start of its text."""
    short = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
    return {"username": username, "message": short}


def reply_to(obj: dict) -> int:
    """`chat.reply_to`: a seq, or 0 when the message answers none."""
    return 0 if obj.get("reply_to") is None else p._int(obj, "reply_to")


TYPES = (
    p.FrameType("react", _react),
    p.FrameType("reaction", build=reaction),
    p.FrameType("edit", _edit, edit),
    p.FrameType("delete", _delete, delete),
)
p.FRAME_TYPES.update((t.name, t) for t in TYPES)
p._DECODERS.update((t.name, t.decode) for t in TYPES if t.decode is not None)
