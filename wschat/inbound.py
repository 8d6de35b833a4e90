"""Client -> server frames: one request dataclass per core frame type, and its decoder. NO I/O.

It owns what a decoded client frame is (`SetUsername`, `Chat`, `Private`, ... the accounts' and
uploads' requests), `ProtocolError` (a refused frame, with its code), `Limits`, and the field
readers every decoder uses (`_text`, `_int`, `_message`, ...: each refuses a bad field with a
`bad_field` or `too_long` error). Which type name maps to which decoder is the registry's
business (`wschat.protocol.FRAME_TYPES`), as `wschat.outbound` holds the builders of the frames
the server sends. `chat`'s decoder is in `wschat.protocol`, as it reads the reply and mention
fields of `wschat.features.wire`, which imports the protocol. Feature modules keep their own
requests (`wschat.features.wire`, `mod_wire`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wschat.codes import BAD_FIELD, TOO_LONG

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


# Not frozen, unlike the other requests: a frozen dataclass sets each field through
# object.__setattr__, which made building this one, for every chat message, ~0.7 us slower
# (0.96 against 0.22 us). Nothing changes a request after decoding.
@dataclass(slots=True)
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
    avatar: bool = False  # `for: "avatar"`: stored for the sender's profile, posted nowhere


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
    purpose = _text(obj, "for", required=False)
    if purpose not in (None, "avatar"):
        raise ProtocolError(BAD_FIELD, "'for' may only be \"avatar\" (an image for your profile).", cmid)
    if purpose == "avatar" and (room is not None or to is not None):
        raise ProtocolError(BAD_FIELD, "An avatar upload goes to no room and no one.", cmid)
    if purpose is None and (room is None) == (to is None):
        raise ProtocolError(BAD_FIELD, "Give either 'room' or 'to' (a private file), not both.", cmid)
    mime = _text(obj, "mime", required=False, default="")[:100]
    return UploadBegin(name, _int(obj, "size"), sha, mime, room, to, cmid, purpose == "avatar")
