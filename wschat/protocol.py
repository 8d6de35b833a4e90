"""The wire format: decode and validate inbound frames, build outbound frames. NO I/O.

This module imports neither asyncio nor websockets. `decode()` turns the text of one frame into
one of the request dataclasses below or raises `ProtocolError` with a code from PROTOCOL.md;
`encode()` turns an outbound dict into the bytes of one JSON text, built once however many
people receive it. PROTOCOL.md is the specification; keep the two in step.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

MAX_CLIENT_MSG_ID = 64
MAX_ROOMS_PER_LOGIN = 50
MAX_PAGE = 100


class ProtocolError(ValueError):
    """A refused frame. `code` is from PROTOCOL.md's error table; str(self) is for people."""

    def __init__(self, code: str, message: str, client_msg_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.client_msg_id = client_msg_id


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_chars: int = 4000


@dataclass(frozen=True, slots=True)
class Position:
    """Where a client was in a room: the epoch it knew and the last seq it has."""

    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class SetUsername:
    username: str
    rooms: tuple[str, ...] = ()
    resume: dict[str, Position] = field(default_factory=dict)
    session_token: str | None = None


@dataclass(frozen=True, slots=True)
class Chat:
    message: str
    room: str = "general"
    client_msg_id: str | None = None


@dataclass(frozen=True, slots=True)
class Private:
    to: str
    message: str
    client_msg_id: str | None = None


@dataclass(frozen=True, slots=True)
class GetUsers:
    room: str = "general"


@dataclass(frozen=True, slots=True)
class ListRooms:
    pass


@dataclass(frozen=True, slots=True)
class Join:
    room: str
    since: Position | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    room: str


@dataclass(frozen=True, slots=True)
class FetchHistory:
    room: str
    before_seq: int
    limit: int = 50


Request = SetUsername | Chat | Private | GetUsers | ListRooms | Join | Leave | FetchHistory


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for every frame: json.loads() with options builds a new one on each call, which
# costs more than decoding a small frame.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    try:
        obj = _DECODER.decode(text)
    except RecursionError:
        raise ProtocolError("bad_json", "The JSON nests too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, or an int beyond Python's digit limit
        raise ProtocolError("bad_json", f"The frame is not valid JSON ({exc}).") from None
    # A \ud800 escape decodes to a lone surrogate, which no UTF-8 frame can carry: refuse it
    # here, once for the whole frame, before any of its text is stored or echoed back.
    if "\\u" in text:
        try:
            json.dumps(obj, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ProtocolError(
                "bad_json", "The frame holds an invalid \\u escape (a lone surrogate)."
            ) from None
    return obj


def _text(obj: dict, key: str, *, required: bool = True, default: str | None = None) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise ProtocolError("bad_field", f"The field '{key}' is missing.")
        return default
    if not isinstance(value, str):
        raise ProtocolError("bad_field", f"The field '{key}' must be a string.")
    return value


def _int(obj: dict, key: str, *, default: int | None = None) -> int:
    value = obj.get(key, default)
    if value is None:
        raise ProtocolError("bad_field", f"The field '{key}' is missing.")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise ProtocolError("bad_field", f"The field '{key}' must be a whole number from 0.")
    return value


def _client_msg_id(obj: dict) -> str | None:
    cmid = _text(obj, "client_msg_id", required=False)
    if cmid is not None and not 1 <= len(cmid) <= MAX_CLIENT_MSG_ID:
        raise ProtocolError("bad_field", f"'client_msg_id' must be 1-{MAX_CLIENT_MSG_ID} characters.")
    return cmid


def _message(obj: dict, limits: Limits, cmid: str | None) -> str:
    text = _text(obj, "message")
    if not text.strip():
        raise ProtocolError("bad_field", "The message is empty.", cmid)
    if len(text) > limits.max_message_chars:
        raise ProtocolError(
            "too_long",
            f"The message has {len(text)} characters; the limit is {limits.max_message_chars}. "
            "Split it into several messages.",
            cmid,
        )
    return text


def _position(value: Any, where: str) -> Position:
    if not isinstance(value, dict):
        raise ProtocolError("bad_field", f"'{where}' must be an object with 'epoch' and 'seq'.")
    return Position(_text(value, "epoch"), _int(value, "seq"))


def _set_username(obj: dict, limits: Limits) -> SetUsername:
    rooms = obj.get("rooms", [])
    resume = obj.get("resume", {})
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise ProtocolError("bad_field", "'rooms' must be a list of room names.")
    if not isinstance(resume, dict):
        raise ProtocolError("bad_field", "'resume' must be an object of room -> {epoch, seq}.")
    if len(rooms) + len(resume) > MAX_ROOMS_PER_LOGIN:
        raise ProtocolError("bad_field", f"At most {MAX_ROOMS_PER_LOGIN} rooms at login.")
    positions = {str(room): _position(pos, f"resume.{room}") for room, pos in resume.items()}
    return SetUsername(
        username=_text(obj, "username"),
        rooms=tuple(rooms),
        resume=positions,
        session_token=_text(obj, "session_token", required=False),
    )


def _chat(obj: dict, limits: Limits) -> Chat:
    cmid = _client_msg_id(obj)
    return Chat(_message(obj, limits, cmid), _text(obj, "room", required=False, default="general"), cmid)


def _private(obj: dict, limits: Limits) -> Private:
    cmid = _client_msg_id(obj)
    return Private(_text(obj, "to"), _message(obj, limits, cmid), cmid)


def _join(obj: dict, limits: Limits) -> Join:
    since = None
    if obj.get("epoch") is not None or obj.get("seq") is not None:
        since = Position(_text(obj, "epoch"), _int(obj, "seq"))
    return Join(_text(obj, "room"), since)


def _fetch_history(obj: dict, limits: Limits) -> FetchHistory:
    limit = _int(obj, "limit", default=50)
    if not 1 <= limit <= MAX_PAGE:
        raise ProtocolError("bad_field", f"'limit' must be 1-{MAX_PAGE}.")
    return FetchHistory(_text(obj, "room"), _int(obj, "before_seq"), limit)


_DECODERS = {
    "set_username": _set_username,
    "chat": _chat,
    "private": _private,
    "get_users": lambda o, lim: GetUsers(_text(o, "room", required=False, default="general")),
    "list_rooms": lambda o, lim: ListRooms(),
    "join": _join,
    "leave": lambda o, lim: Leave(_text(o, "room")),
    "fetch_history": _fetch_history,
}


def decode(text: str, limits: Limits = Limits()) -> Request:
    """Decode one inbound text frame. Raises ProtocolError; never anything else."""
    obj = _loads(text)
    if not isinstance(obj, dict):
        raise ProtocolError("bad_frame", "Each frame must be one JSON object with a 'type'.")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_frame", "The frame has no string 'type'.")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        shown = kind if len(kind) <= 40 else kind[:40] + "…"
        raise ProtocolError("unknown_type", f"Unknown message type '{shown}'. See PROTOCOL.md.")
    try:
        return decoder(obj, limits)
    except ProtocolError as exc:
        # A refusal carries the frame's client_msg_id whenever it has a usable one, so the
        # sender's outbox knows which message will never be accepted.
        cmid = obj.get("client_msg_id")
        if exc.client_msg_id is None and isinstance(cmid, str) and 1 <= len(cmid) <= MAX_CLIENT_MSG_ID:
            exc.client_msg_id = cmid
        raise


def encode(obj: dict[str, Any]) -> bytes:
    """One outbound frame's payload: compact UTF-8 JSON.

    orjson writes the same text as `json.dumps(obj, ensure_ascii=False, separators=(",", ":"))`
    for the values frames hold, five times faster even with the copy below; a chat message is
    encoded twice (the message and its acknowledgement), which made the standard encoder a
    tenth of the server's time per message.

    The copy matters: the bytes orjson returns keep its whole working buffer, so every frame
    kept alive (queued, or in a room's history) pinned a fresh 4 KiB page and cost a page
    fault. Copied, a kept frame costs its own size.
    """
    return bytes(memoryview(orjson.dumps(obj)))


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def timestamp(now: float) -> str:
    """ISO 8601 UTC with milliseconds, as every frame carries it.

    The same text as `datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")`
    (microseconds rounded half to even, then cut to milliseconds), but the date and time of
    day are formatted once a second instead of for every message.
    """
    frac, whole = math.modf(now)
    micro = round(frac * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    elif micro < 0:
        whole, micro = whole - 1, micro + 1_000_000
    if whole != _second[0]:
        _second[0] = whole
        _second[1] = datetime.fromtimestamp(whole, UTC).isoformat(timespec="seconds")[:-6]
    return f"{_second[1]}.{micro // 1000:03d}+00:00"


def error(code: str, message: str, **extra: Any) -> bytes:
    return encode({"type": "error", "code": code, "message": message, **extra})
