"""The wire format: one registry of every frame type, inbound and outbound; `decode()`. NO I/O.

This module imports neither asyncio nor websockets. It owns:

- `FRAME_TYPES`: every frame type of PROTOCOL.md, with its direction (a test checks the two
  agree): for client frames the function that decodes and validates one (the core requests and
  their field readers are in `wschat.inbound`), for server frames its builder (`wschat.outbound`:
  each built by one function and encoded once, `bytes`, orjson, however many receive it);
- `decode()`: the text of one inbound frame -> one request dataclass, or `ProtocolError`.

It is also the wire's one namespace: the codes (`wschat.codes`), the requests and field readers
(`wschat.inbound`) and the encoder are re-exported here, so `protocol.BAD_FIELD`,
`protocol.Chat` and `protocol._text` work wherever the hub and the features use them.
PROTOCOL.md is the specification; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from wschat import outbound
from wschat.codes import *  # noqa: F403  (re-exported: protocol.X is the wire's one namespace)
from wschat.codes import BAD_FRAME, BAD_JSON, UNKNOWN_TYPE
from wschat.inbound import (
    MAX_CLIENT_MSG_ID,
    MAX_DEVICE_CHARS,
    MAX_FILE_NAME,
    MAX_PAGE,
    MAX_PASSWORD_CHARS,
    MAX_ROOMS_PER_LOGIN,
    ChangePassword,
    Chat,
    FetchHistory,
    FetchPrivate,
    GetUsers,
    Join,
    Leave,
    Limits,
    ListRooms,
    ListSessions,
    Login,
    Logout,
    Position,
    Private,
    ProtocolError,
    Register,
    Request,
    RevokeSession,
    SetUsername,
    UploadBegin,
    UploadCancel,
    _client_msg_id,
    _fetch_history,
    _fetch_private,
    _int,
    _join,
    _login,
    _message,
    _position,
    _private,
    _register,
    _secret,
    _set_username,
    _text,
    _upload_begin,
)
from wschat.outbound import encode, error, timestamp

# Re-exported (see the docstring): the requests, limits and field readers of wschat.inbound, the
# one encoder and clock format of wschat.outbound. The codes come with the star import above.
__all__ = [
    "MAX_CLIENT_MSG_ID", "MAX_DEVICE_CHARS", "MAX_FILE_NAME", "MAX_PAGE", "MAX_PASSWORD_CHARS",
    "MAX_ROOMS_PER_LOGIN", "ChangePassword", "Chat", "FetchHistory", "FetchPrivate", "GetUsers",
    "Join", "Leave", "Limits", "ListRooms", "ListSessions", "Login", "Logout", "Position",
    "Private", "ProtocolError", "Register", "Request", "RevokeSession", "SetUsername",
    "UploadBegin", "UploadCancel", "_int", "_message", "_position", "_text", "encode", "error",
    "timestamp",
]  # fmt: skip


def _loads(text: str) -> Any:
    """orjson, ~4x the standard library's speed on a chat frame, and as strict as the protocol
    wants: NaN and Infinity literals, numbers beyond a double, nesting past 1,024 levels and
    lone surrogates (as an escape, or in the text) are all `JSONDecodeError`s."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "surrogate" in str(exc):  # no UTF-8 frame can carry one: nothing is stored or echoed
            why = "The frame holds an invalid \\u escape (a lone surrogate)."
            raise ProtocolError(BAD_JSON, why) from None
        raise ProtocolError(BAD_JSON, f"The frame is not valid JSON ({exc}).") from None


def _chat(obj: dict, limits: Limits) -> Chat:
    cmid = _client_msg_id(obj)
    room = _text(obj, "room", required=False, default="general")
    text = _message(obj, limits, cmid)
    if "reply_to" not in obj and "mentions" not in obj:  # the usual message: two tests, no calls
        return Chat(text, room, cmid)
    return Chat(text, room, cmid, _rich.reply_to(obj), _rich.mentions(obj))


@dataclass(frozen=True, slots=True)
class FrameType:
    """One frame type of PROTOCOL.md: how a client frame is decoded, how a server frame is built."""

    name: str
    decode: Callable[[dict, Limits], Request] | None = None  # client -> server
    build: Callable[..., bytes] | None = None  # server -> client


def _frame_types(*types: FrameType) -> dict[str, FrameType]:
    return {t.name: t for t in types}


FRAME_TYPES = _frame_types(
    # both directions
    FrameType("chat", _chat, outbound.chat),
    FrameType("private", _private, outbound.private),
    # client -> server
    FrameType("set_username", _set_username),
    FrameType("get_users", lambda o, lim: GetUsers(_text(o, "room", required=False, default="general"))),
    FrameType("list_rooms", lambda o, lim: ListRooms()),
    FrameType("join", _join),
    FrameType("leave", lambda o, lim: Leave(_text(o, "room"))),
    FrameType("fetch_history", _fetch_history),
    FrameType("upload_begin", _upload_begin),
    FrameType("upload_cancel", lambda o, lim: UploadCancel(_text(o, "upload_id"))),
    FrameType("register", _register),
    FrameType("login", _login),
    FrameType("logout", lambda o, lim: Logout()),
    FrameType("sessions", lambda o, lim: ListSessions(), outbound.account_sessions),
    FrameType("revoke_session", lambda o, lim: RevokeSession(_text(o, "id"))),
    FrameType("change_password", lambda o, lim: ChangePassword(_secret(o, "old"), _secret(o, "new"))),
    FrameType("fetch_private", _fetch_private),
    # server -> client
    FrameType("username_accepted", build=outbound.username_accepted),
    FrameType("username_error", build=outbound.username_error),
    FrameType("joined", build=outbound.joined),
    FrameType("left", build=outbound.left),
    FrameType("history", build=outbound.history),
    FrameType("ack", build=outbound.ack),
    FrameType("user_join", build=outbound.presence),
    FrameType("user_leave", build=outbound.presence),
    FrameType("online_users", build=outbound.online_users),
    FrameType("rooms", build=outbound.rooms),
    FrameType("system", build=outbound.system),
    FrameType("error", build=outbound.error),
    FrameType("upload_ready", build=outbound.upload_ready),
    FrameType("upload_done", build=outbound.upload_done),
    FrameType("logged_out", build=outbound.logged_out),
    FrameType("session_revoked", build=outbound.session_revoked),
    FrameType("password_changed", build=outbound.password_changed),
    FrameType("delivered", build=outbound.delivered),
    FrameType("private_history", build=outbound.private_history),
)
_DECODERS = {t.name: t.decode for t in FRAME_TYPES.values() if t.decode is not None}


_DEFAULT_LIMITS = Limits()


def decode(text: str, limits: Limits = _DEFAULT_LIMITS) -> Request:
    """Decode one inbound text frame. Raises ProtocolError; never anything else."""
    obj = _loads(text)
    if not isinstance(obj, dict):
        raise ProtocolError(BAD_FRAME, "Each frame must be one JSON object with a 'type'.")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(BAD_FRAME, "The frame has no string 'type'.")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        shown = kind if len(kind) <= 40 else kind[:40] + "…"
        raise ProtocolError(UNKNOWN_TYPE, f"Unknown message type '{shown}'. See PROTOCOL.md.")
    try:
        return decoder(obj, limits)
    except ProtocolError as exc:
        # A refusal carries the frame's client_msg_id whenever it has a usable one, so the
        # sender's outbox knows which message will never be accepted.
        cmid = obj.get("client_msg_id")
        if exc.client_msg_id is None and isinstance(cmid, str) and 1 <= len(cmid) <= MAX_CLIENT_MSG_ID:
            exc.client_msg_id = cmid
        raise


# Feature modules add their frame types to the registry above when they are imported; importing
# them here makes `decode` know every type however the modules are first imported.
from wschat.features import call_wire as _calls  # noqa: E402, F401
from wschat.features import e2ee_wire as _e2ee  # noqa: E402, F401
from wschat.features import mod_wire as _moderation  # noqa: E402, F401
from wschat.features import profile_wire as _profiles  # noqa: E402, F401
from wschat.features import wire as _rich  # noqa: E402
