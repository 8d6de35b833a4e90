"""Moderation on the wire: `kick`, `mute`, `unmute`, `ban`, `unban`, `set_topic`,
`set_invite_only`, `invite`, and the frames they make (`moderation`, `room_info`). NO I/O.

It owns the request dataclasses, their decoders and length limits, and the frame builders.
`wschat.protocol` imports this module at its end and it adds its frame types to
`protocol.FRAME_TYPES`, as `wschat.features.wire` does. PROTOCOL.md ("Moderation") is the
specification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wschat import outbound
from wschat import protocol as p

MAX_REASON_CHARS = 200
MAX_TOPIC_CHARS = 300
MAX_MUTE_SECONDS = 30 * 24 * 3600
MAX_BAN_SECONDS = 10 * 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Kick:
    room: str | None  # None: off the server (operators)
    username: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Mute:
    room: str | None
    username: str
    seconds: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unmute:
    room: str | None
    username: str


@dataclass(frozen=True, slots=True)
class Ban:
    room: str | None
    username: str | None  # an account, or a guest online (banned by address)
    address: str | None  # or an address directly (operators)
    seconds: int = 0  # 0: until unbanned
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unban:
    room: str | None
    username: str | None
    address: str | None


@dataclass(frozen=True, slots=True)
class SetTopic:
    room: str
    topic: str


@dataclass(frozen=True, slots=True)
class SetInviteOnly:
    room: str
    invite_only: bool


@dataclass(frozen=True, slots=True)
class Invite:
    room: str
    username: str


def _reason(obj: dict) -> str:
    reason = p._text(obj, "reason", required=False, default="").strip()
    if len(reason) > MAX_REASON_CHARS:
        raise p.ProtocolError(p.TOO_LONG, f"A reason has at most {MAX_REASON_CHARS} characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in reason):
        raise p.ProtocolError(p.BAD_FIELD, "'reason' must not contain control characters.")
    return reason


def _name(obj: dict, required: bool = True) -> Any:
    name = p._text(obj, "username", required=required)
    if name is not None and not 0 < len(name) <= 64:
        raise p.ProtocolError(p.BAD_FIELD, "'username' must be a name of 1-64 characters.")
    return name


def _seconds(obj: dict, default: int | None, most: int) -> int:
    seconds = p._int(obj, "seconds", default=default)
    if seconds > most:
        raise p.ProtocolError(p.BAD_FIELD, f"'seconds' must be at most {most}.")
    return seconds


def _scope(obj: dict) -> str | None:
    return p._text(obj, "room", required=False)


def _kick(obj: dict, limits: p.Limits) -> Kick:
    return Kick(_scope(obj), _name(obj), _reason(obj))


def _mute(obj: dict, limits: p.Limits) -> Mute:
    seconds = _seconds(obj, 600, MAX_MUTE_SECONDS)
    if seconds < 1:
        raise p.ProtocolError(p.BAD_FIELD, "'seconds' must be at least 1.")
    return Mute(_scope(obj), _name(obj), seconds, _reason(obj))


def _unmute(obj: dict, limits: p.Limits) -> Unmute:
    return Unmute(_scope(obj), _name(obj))


def _who(obj: dict) -> tuple[str | None, str | None]:
    name = _name(obj, required=False)
    address = p._text(obj, "address", required=False)
    if (name is None) == (address is None):
        raise p.ProtocolError(p.BAD_FIELD, "Give either 'username' or 'address'.")
    if address is not None and not 0 < len(address) <= 64:
        raise p.ProtocolError(p.BAD_FIELD, "'address' must be an IP address.")
    return name, address


def _ban(obj: dict, limits: p.Limits) -> Ban:
    name, address = _who(obj)
    return Ban(_scope(obj), name, address, _seconds(obj, 0, MAX_BAN_SECONDS), _reason(obj))


def _unban(obj: dict, limits: p.Limits) -> Unban:
    name, address = _who(obj)
    return Unban(_scope(obj), name, address)


def _set_topic(obj: dict, limits: p.Limits) -> SetTopic:
    topic = p._text(obj, "topic").strip()
    if len(topic) > MAX_TOPIC_CHARS:
        raise p.ProtocolError(p.TOO_LONG, f"A topic has at most {MAX_TOPIC_CHARS} characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in topic):
        raise p.ProtocolError(p.BAD_FIELD, "'topic' must not contain control characters.")
    return SetTopic(p._text(obj, "room"), topic)


def _set_invite_only(obj: dict, limits: p.Limits) -> SetInviteOnly:
    value = obj.get("invite_only")
    if not isinstance(value, bool):
        raise p.ProtocolError(p.BAD_FIELD, "'invite_only' must be true or false.")
    return SetInviteOnly(p._text(obj, "room"), value)


def _invite(obj: dict, limits: p.Limits) -> Invite:
    return Invite(p._text(obj, "room"), _name(obj))


def moderation(action: str, by: str, ts: float, **fields: Any) -> bytes:
    """`moderation`: what a moderator did (`action`), who did it (`by`); with `room` and `seq`
    when it is a room event, without them when it is a notice about the server. Fields given
    as None (or "") are left out."""
    frame: dict[str, Any] = {"type": "moderation", "action": action, "by": by}
    frame.update((k, v) for k, v in fields.items() if v is not None and v != "")
    frame["timestamp"] = outbound.timestamp(ts)
    return outbound.encode(frame)


def room_info(
    room: str, topic: str, invite_only: bool, creator: str, moderator: bool, operator: bool = False
) -> bytes:
    """`room_info`: a room's topic and rules, whether you may moderate it, and whether you are
    one of the server's operators (who may act on the whole server)."""
    frame = {"type": "room_info", "room": room, "topic": topic, "invite_only": invite_only}
    frame.update(creator=creator, moderator=moderator, operator=operator)
    return outbound.encode(frame)


REQUESTS = (Kick, Mute, Unmute, Ban, Unban, SetTopic, SetInviteOnly, Invite)

TYPES = (
    p.FrameType("kick", _kick),
    p.FrameType("mute", _mute),
    p.FrameType("unmute", _unmute),
    p.FrameType("ban", _ban),
    p.FrameType("unban", _unban),
    p.FrameType("set_topic", _set_topic),
    p.FrameType("set_invite_only", _set_invite_only),
    p.FrameType("invite", _invite),
    p.FrameType("moderation", build=moderation),
    p.FrameType("room_info", build=room_info),
)
p.FRAME_TYPES.update((t.name, t) for t in TYPES)
p._DECODERS.update((t.name, t.decode) for t in TYPES if t.decode is not None)
