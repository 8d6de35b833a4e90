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

MAX_MENTIONS = 20  # names mentioned in one message
TYPING_SHOWN = 10  # names in a `typing` frame; `count` says how many type
MAX_QUERY_CHARS = 200  # a search query
MAX_QUERY_TOKENS = 16
SEARCH_PAGE = 20  # results per page by default; at most MAX_SEARCH_PAGE
MAX_SEARCH_PAGE = 50
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


@dataclass(frozen=True, slots=True)
class Typing:
    room: str
    active: bool


@dataclass(frozen=True, slots=True)
class Read:
    """A read position: in `room`, or (with `to`) in the private conversation with `to`."""

    room: str | None
    to: str | None
    seq: int
    private: bool = False


@dataclass(frozen=True, slots=True)
class SearchReq:
    query: str
    tokens: tuple[str, ...]
    room: str | None = None
    before: int = 0  # a message id: only older results (the next page); 0 = from the newest
    limit: int = SEARCH_PAGE


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


def _typing(obj: dict, limits: p.Limits) -> Typing:
    active = obj.get("active", True)
    if not isinstance(active, bool):
        raise p.ProtocolError(p.BAD_FIELD, "'active' must be true or false.")
    return Typing(_room(obj), active)


def _read(obj: dict, limits: p.Limits) -> Read:
    private = obj.get("private", False)
    if not isinstance(private, bool):
        raise p.ProtocolError(p.BAD_FIELD, "'private' must be true or false.")
    to = p._text(obj, "to", required=False)
    room = None if to is not None else _room(obj)
    return Read(room, to, p._int(obj, "seq"), private)


def _search(obj: dict, limits: p.Limits) -> SearchReq:
    query = p._text(obj, "query")
    if len(query) > MAX_QUERY_CHARS:
        raise p.ProtocolError(
            p.TOO_LONG, f"A search has at most {MAX_QUERY_CHARS} characters; this one has {len(query)}."
        )
    tokens = tuple(dict.fromkeys(query.split()))
    if not tokens:
        raise p.ProtocolError(p.BAD_FIELD, "The search is empty: give a word to look for.")
    if len(tokens) > MAX_QUERY_TOKENS:
        raise p.ProtocolError(p.BAD_FIELD, f"A search has at most {MAX_QUERY_TOKENS} words.")
    limit = p._int(obj, "limit", default=SEARCH_PAGE)
    if not 1 <= limit <= MAX_SEARCH_PAGE:
        raise p.ProtocolError(p.BAD_FIELD, f"'limit' must be 1-{MAX_SEARCH_PAGE}.")
    room = p._text(obj, "room", required=False)
    return SearchReq(query, tokens, room, p._int(obj, "before", default=0), limit)


def search_results(query: str, payloads: list[bytes], more: bool) -> bytes:
    """`search_results`: the head fields, then the stored `chat` frames spliced in as they are."""
    head = outbound.encode({"type": "search_results", "query": query, "more": more})
    return b"".join((head[:-1], b',"results":[', b",".join(payloads), b"]}"))


def mentions(obj: dict) -> tuple[str, ...]:
    """`chat.mentions`: the names a message mentions (the client fills them from @-completion)."""
    raw = obj.get("mentions")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(n, str) and 0 < len(n) <= 64 for n in raw):
        raise p.ProtocolError(p.BAD_FIELD, "'mentions' must be a list of names.")
    if len(raw) > MAX_MENTIONS:
        raise p.ProtocolError(p.BAD_FIELD, f"A message may mention at most {MAX_MENTIONS} names.")
    return tuple(dict.fromkeys(raw))


def typing(room: str, users: list[str], count: int) -> bytes:
    return outbound.encode({"type": "typing", "room": room, "users": users[:TYPING_SHOWN], "count": count})


def read_position(room: str, seq: int) -> bytes:
    return outbound.encode({"type": "read_position", "room": room, "seq": seq})


def receipt(username: str, seq: int, *, room: str | None = None, to: str | None = None) -> bytes:
    frame: dict[str, Any] = {"type": "receipt", "username": username, "seq": seq}
    frame.update({"room": room} if room is not None else {"to": to})
    return outbound.encode(frame)


def receipts(room: str, positions: dict[str, int]) -> bytes:
    return outbound.encode({"type": "receipts", "room": room, "positions": positions})


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


MESSAGE_RATE = (React, Edit, Delete)  # paced like chat messages (the message rate)

TYPES = (
    p.FrameType("react", _react),
    p.FrameType("reaction", build=reaction),
    p.FrameType("edit", _edit, edit),
    p.FrameType("delete", _delete, delete),
    p.FrameType("typing", _typing, typing),
    p.FrameType("read", _read),
    p.FrameType("read_position", build=read_position),
    p.FrameType("receipt", build=receipt),
    p.FrameType("receipts", build=receipts),
    p.FrameType("search", _search),
    p.FrameType("search_results", build=search_results),
)
p.FRAME_TYPES.update((t.name, t) for t in TYPES)
p._DECODERS.update((t.name, t.decode) for t in TYPES if t.decode is not None)
