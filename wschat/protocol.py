"""The wire format: one registry of every frame type, inbound and outbound; codes. NO I/O.

This module imports neither asyncio nor websockets. It owns:

- `FRAME_TYPES`: every frame type of PROTOCOL.md, with its direction (a test checks the two
  agree), and for client frames the function that decodes and validates one;
- the error codes, `username_error` codes and close codes, as named constants;
- `decode()`: the text of one inbound frame -> one request dataclass, or `ProtocolError`;
- the outbound builders (`wschat.outbound`, re-exported here): each server frame is built by
  one function and encoded once (`bytes`, orjson), however many people receive it.

PROTOCOL.md is the specification; keep the two in step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wschat import outbound
from wschat.outbound import encode, error, timestamp

__all__ = ["encode", "error", "timestamp"]  # re-exported: the one encoder and clock format

MAX_CLIENT_MSG_ID = 64
MAX_ROOMS_PER_LOGIN = 50
MAX_PAGE = 100

# -- error codes (`error` frames), PROTOCOL.md's Errors table
BAD_JSON = "bad_json"
BAD_FRAME = "bad_frame"
UNKNOWN_TYPE = "unknown_type"
BAD_FIELD = "bad_field"
TOO_LONG = "too_long"
BINARY_UNSUPPORTED = "binary_unsupported"
NOT_LOGGED_IN = "not_logged_in"
ALREADY_LOGGED_IN = "already_logged_in"
BAD_ROOM = "bad_room"
NOT_IN_ROOM = "not_in_room"
NO_SUCH_ROOM = "no_such_room"
TOO_MANY_ROOMS = "too_many_rooms"
NO_SUCH_USER = "no_such_user"
RATE_LIMITED = "rate_limited"
INTERNAL_ERROR = "internal_error"
STORE_FAILED = "store_failed"
# -- file uploads (wschat.features.files)
FILE_TOO_LARGE = "file_too_large"
UPLOAD_QUOTA = "upload_quota"
MEDIA_FULL = "media_full"
BAD_UPLOAD = "bad_upload"
HASH_MISMATCH = "hash_mismatch"
NO_SUCH_MESSAGE = "no_such_message"  # rich messaging: a reply, reaction, edit or delete target
NOT_ALLOWED = "not_allowed"  # rich messaging: editing or deleting someone else's message
# accounts (wschat.features.accounts)
NOT_AN_ACCOUNT = "not_an_account"
NO_SUCH_SESSION = "no_such_session"
BAD_CREDENTIALS = "bad_credentials"
WEAK_PASSWORD = "weak_password"
# moderation (wschat.features.moderation)
NOT_MODERATOR = "not_moderator"
BANNED = "banned"
MUTED = "muted"
INVITE_ONLY = "invite_only"
# end-to-end encryption (wschat.features.e2ee_wire)
STALE_KEYS = "stale_keys"
ERROR_CODES = (
    BAD_JSON, BAD_FRAME, UNKNOWN_TYPE, BAD_FIELD, TOO_LONG, BINARY_UNSUPPORTED, NOT_LOGGED_IN,
    ALREADY_LOGGED_IN, BAD_ROOM, NOT_IN_ROOM, NO_SUCH_ROOM, TOO_MANY_ROOMS, NO_SUCH_USER,
    RATE_LIMITED, INTERNAL_ERROR, STORE_FAILED, NO_SUCH_MESSAGE, NOT_ALLOWED,
    NOT_AN_ACCOUNT, NO_SUCH_SESSION, BAD_CREDENTIALS, WEAK_PASSWORD,
    NOT_MODERATOR, BANNED, MUTED, INVITE_ONLY,
    FILE_TOO_LARGE, UPLOAD_QUOTA, MEDIA_FULL, BAD_UPLOAD, HASH_MISMATCH,
    STALE_KEYS,
)  # fmt: skip

# -- `username_error` codes (the name rules live in wschat.names)
NAME_EMPTY = "name_empty"
NAME_TOO_LONG = "name_too_long"
NAME_INVALID_CHARS = "name_invalid_chars"
NAME_RESERVED = "name_reserved"
NAME_TAKEN = "name_taken"
NAME_CONFUSABLE = "name_confusable"
NAME_REGISTERED = "name_registered"  # a guest asked for a registered name, or one like it
ACCOUNTS_REQUIRED = "accounts_required"  # the server runs with --accounts required
BAD_TOKEN = "bad_token"  # a session token log-in whose session has ended
NAME_ERROR_CODES = (
    NAME_EMPTY, NAME_TOO_LONG, NAME_INVALID_CHARS, NAME_RESERVED, NAME_TAKEN, NAME_CONFUSABLE,
    RATE_LIMITED, NAME_REGISTERED, ACCOUNTS_REQUIRED, BAD_CREDENTIALS, BAD_TOKEN, WEAK_PASSWORD,
    STORE_FAILED, BANNED,
)  # fmt: skip

# -- close codes
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_BAD_DATA = 1007  # a text frame that is not UTF-8
CLOSE_POLICY = 1008  # flooding, or no name chosen in time
CLOSE_TOO_BIG = 1009
CLOSE_TAKEOVER = 4000  # the same user logged in again from another connection
CLOSE_SESSION_ENDED = 4001  # this device's account session was revoked or its password changed
CLOSE_KICKED = 4002  # a moderator kicked the connection off the server (it may come back)
CLOSE_BANNED = 4003  # a moderator banned the user from the server (do not reconnect)
CLOSE_CODES = (
    CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_BAD_DATA, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_TAKEOVER,
    CLOSE_SESSION_ENDED, CLOSE_KICKED, CLOSE_BANNED,
)  # fmt: skip


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
    reply_to: int = 0  # the seq this message answers (wschat.features.wire), 0 for none
    mentions: tuple[str, ...] = ()  # names the sender mentioned (wschat.features.wire)


@dataclass(frozen=True, slots=True)
class Private:
    to: str
    message: str
    client_msg_id: str | None = None
    e2ee: dict[str, Any] | None = None  # an encrypted message's envelope (wschat.features.e2ee_wire)


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


# -- file uploads: the frames of wschat.features.files
MAX_FILE_NAME = 255


@dataclass(frozen=True, slots=True)
class UploadBegin:
    """Announce a file: its bytes follow in binary frames once `upload_ready` says where from."""

    name: str
    size: int
    sha256: str
    mime: str = ""  # the client's guess, for nothing but the log: the server sniffs the bytes
    room: str | None = None
    to: str | None = None
    client_msg_id: str | None = None


@dataclass(frozen=True, slots=True)
class UploadCancel:
    upload_id: str


# -- accounts (handled by wschat.features.accounts)
MAX_PASSWORD_CHARS = 256  # bounds the work of one hash
MAX_DEVICE_CHARS = 64


@dataclass(frozen=True, slots=True)
class Register:
    username: str
    password: str
    rooms: tuple[str, ...] = ()
    resume: dict[str, Position] = field(default_factory=dict)
    device: str = ""


@dataclass(frozen=True, slots=True)
class Login:
    """`login` with `password`, or with the `session_token` a previous log-in gave this device."""

    username: str
    password: str | None = None
    session_token: str | None = None
    rooms: tuple[str, ...] = ()
    resume: dict[str, Position] = field(default_factory=dict)
    device: str = ""


@dataclass(frozen=True, slots=True)
class Logout:
    pass


@dataclass(frozen=True, slots=True)
class ListSessions:
    pass


@dataclass(frozen=True, slots=True)
class RevokeSession:
    id: str


@dataclass(frozen=True, slots=True)
class ChangePassword:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class FetchPrivate:
    """A page of the stored conversation with `with_` (accounts; wschat.features.offline)."""

    with_: str
    before_seq: int
    limit: int = 50


Request = (
    SetUsername | Chat | Private | GetUsers | ListRooms | Join | Leave | FetchHistory
    | Register | Login | Logout | ListSessions | RevokeSession | ChangePassword | FetchPrivate
    | UploadBegin | UploadCancel
)  # fmt: skip


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for every frame: json.loads() with options builds a new one on each call, which
# costs more than decoding a small frame.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    try:
        obj = _DECODER.decode(text)
    except RecursionError:
        raise ProtocolError(BAD_JSON, "The JSON nests too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, or an int beyond Python's digit limit
        raise ProtocolError(BAD_JSON, f"The frame is not valid JSON ({exc}).") from None
    # A \ud800 escape decodes to a lone surrogate, which no UTF-8 frame can carry: refuse it
    # here, once for the whole frame, before any of its text is stored or echoed back.
    if "\\u" in text:
        try:
            json.dumps(obj, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ProtocolError(
                BAD_JSON, "The frame holds an invalid \\u escape (a lone surrogate)."
            ) from None
    return obj


def _text(obj: dict, key: str, *, required: bool = True, default: str | None = None) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise ProtocolError(BAD_FIELD, f"The field '{key}' is missing.")
        return default
    if not isinstance(value, str):
        raise ProtocolError(BAD_FIELD, f"The field '{key}' must be a string.")
    return value


def _int(obj: dict, key: str, *, default: int | None = None) -> int:
    value = obj.get(key, default)
    if value is None:
        raise ProtocolError(BAD_FIELD, f"The field '{key}' is missing.")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise ProtocolError(BAD_FIELD, f"The field '{key}' must be a whole number from 0.")
    return value


def _client_msg_id(obj: dict) -> str | None:
    cmid = _text(obj, "client_msg_id", required=False)
    if cmid is not None and not 1 <= len(cmid) <= MAX_CLIENT_MSG_ID:
        raise ProtocolError(BAD_FIELD, f"'client_msg_id' must be 1-{MAX_CLIENT_MSG_ID} characters.")
    return cmid


def _message(obj: dict, limits: Limits, cmid: str | None) -> str:
    text = _text(obj, "message")
    if not text.strip():
        raise ProtocolError(BAD_FIELD, "The message is empty.", cmid)
    if len(text) > limits.max_message_chars:
        raise ProtocolError(
            TOO_LONG,
            f"The message has {len(text)} characters; the limit is {limits.max_message_chars}. "
            "Split it into several messages.",
            cmid,
        )
    return text


def _position(value: Any, where: str) -> Position:
    if not isinstance(value, dict):
        raise ProtocolError(BAD_FIELD, f"'{where}' must be an object with 'epoch' and 'seq'.")
    return Position(_text(value, "epoch"), _int(value, "seq"))


def _set_username(obj: dict, limits: Limits) -> SetUsername:
    rooms = obj.get("rooms", [])
    resume = obj.get("resume", {})
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise ProtocolError(BAD_FIELD, "'rooms' must be a list of room names.")
    if not isinstance(resume, dict):
        raise ProtocolError(BAD_FIELD, "'resume' must be an object of room -> {epoch, seq}.")
    if len(rooms) + len(resume) > MAX_ROOMS_PER_LOGIN:
        raise ProtocolError(BAD_FIELD, f"At most {MAX_ROOMS_PER_LOGIN} rooms at login.")
    positions = {str(room): _position(pos, f"resume.{room}") for room, pos in resume.items()}
    return SetUsername(
        username=_text(obj, "username"),
        rooms=tuple(rooms),
        resume=positions,
        session_token=_text(obj, "session_token", required=False),
    )


def _secret(obj: dict, key: str, *, required: bool = True) -> Any:
    value = _text(obj, key, required=required)
    if value is not None and len(value) > MAX_PASSWORD_CHARS:
        raise ProtocolError(BAD_FIELD, f"'{key}' is longer than {MAX_PASSWORD_CHARS} characters.")
    return value


def _account_login(obj: dict, limits: Limits) -> tuple[SetUsername, str]:
    """What `register` and `login` share with `set_username`: name, rooms, resume; and `device`."""
    named = _set_username({**obj, "session_token": None}, limits)
    device = _text(obj, "device", required=False, default="")[:MAX_DEVICE_CHARS]
    return named, device


def _register(obj: dict, limits: Limits) -> Register:
    named, device = _account_login(obj, limits)
    return Register(named.username, _secret(obj, "password"), named.rooms, named.resume, device)


def _login(obj: dict, limits: Limits) -> Login:
    named, device = _account_login(obj, limits)
    password = _secret(obj, "password", required=False)
    token = _secret(obj, "session_token", required=False)
    if (password is None) == (token is None):
        raise ProtocolError(BAD_FIELD, "Send 'password' or 'session_token' (one of them).")
    return Login(named.username, password, token, named.rooms, named.resume, device)


def _fetch_private(obj: dict, limits: Limits) -> FetchPrivate:
    limit = _int(obj, "limit", default=50)
    if not 1 <= limit <= MAX_PAGE:
        raise ProtocolError(BAD_FIELD, f"'limit' must be 1-{MAX_PAGE}.")
    return FetchPrivate(_text(obj, "with"), _int(obj, "before_seq", default=2**53 - 1), limit)


def _chat(obj: dict, limits: Limits) -> Chat:
    cmid = _client_msg_id(obj)
    room = _text(obj, "room", required=False, default="general")
    return Chat(_message(obj, limits, cmid), room, cmid, _rich.reply_to(obj), _rich.mentions(obj))


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
        raise ProtocolError(BAD_FIELD, f"'limit' must be 1-{MAX_PAGE}.")
    return FetchHistory(_text(obj, "room"), _int(obj, "before_seq"), limit)


def _upload_begin(obj: dict, limits: Limits) -> UploadBegin:
    cmid = _client_msg_id(obj)
    name = _text(obj, "name").strip()
    if not name or len(name) > MAX_FILE_NAME or any(ord(c) < 32 or c in "/\\\x7f" for c in name):
        raise ProtocolError(
            BAD_FIELD, f"'name' must be a file name of 1-{MAX_FILE_NAME} characters, without / or \\.", cmid
        )
    sha = _text(obj, "sha256").lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ProtocolError(BAD_FIELD, "'sha256' must be the file's SHA-256 in 64 hex digits.", cmid)
    room, to = _text(obj, "room", required=False), _text(obj, "to", required=False)
    if (room is None) == (to is None):
        raise ProtocolError(BAD_FIELD, "Give either 'room' or 'to' (a private file), not both.", cmid)
    mime = _text(obj, "mime", required=False, default="")[:100]
    return UploadBegin(name, _int(obj, "size"), sha, mime, room, to, cmid)


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


def decode(text: str, limits: Limits = Limits()) -> Request:
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
from wschat.features import e2ee_wire as _e2ee  # noqa: E402, F401
from wschat.features import mod_wire as _moderation  # noqa: E402, F401
from wschat.features import wire as _rich  # noqa: E402
