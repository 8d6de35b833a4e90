"""Server -> client frames: one builder per frame type, each returning encoded bytes. NO I/O.

Every frame the server sends is built here (the registry in `wschat.protocol` names each type
and its builder), once, however many people receive it: `encode()` turns the fields into the
bytes of one JSON text with orjson. Optional fields are left out rather than sent as null,
as PROTOCOL.md describes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson


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
    """`error`: `code` from protocol.ERROR_CODES and a sentence saying what to do.

    `extra` holds the optional fields (`client_msg_id`, `retry_after`, `room`, `before_seq`);
    those given as None are left out.
    """
    frame = {"type": "error", "code": code, "message": message}
    frame.update((k, v) for k, v in extra.items() if v is not None)
    return encode(frame)


def username_error(code: str, message: str, retry_after: float | None = None) -> bytes:
    frame: dict[str, Any] = {"type": "username_error", "code": code, "message": message}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return encode(frame)


def username_accepted(
    username: str,
    client_id: str,
    session_token: str,
    rooms: list[str],
    limits: dict[str, Any],
    *,
    account: bool = False,
    session_id: str | None = None,
    calls: dict[str, Any] | None = None,
) -> bytes:
    """`account: true` (and the device's `session_id`) when the name is a logged-in account;
    `calls`: what the web page needs to make calls (wschat.features.calls)."""
    frame: dict[str, Any] = {
        "type": "username_accepted",
        "username": username,
        "client_id": client_id,
        "message": f"Welcome, {username}!",
        "session_token": session_token,
        "rooms": rooms,
        "limits": limits,
    }
    if account:
        frame["account"] = True
        frame["session_id"] = session_id
    if calls is not None:
        frame["calls"] = calls
    return encode(frame)


def chat(
    mid: str,
    room: str,
    seq: int,
    username: str,
    message: str,
    ts: float,
    client_id: str,
    client_msg_id: str | None,
    file: dict[str, Any] | None = None,
    rich: dict[str, Any] | None = None,
) -> bytes:
    """A room message: built once when it is stored, then reused for every delivery and history.

    `rich` holds the fields of wschat.features (reply_to, reply_preview, reactions, edited_at,
    deleted); those given as None are left out.
    """
    # one dict, in `_stamped`'s field order: this runs for every chat message stored, and the
    # three dicts `_stamped` merges cost ~1 us a message more (durable benchmark)
    frame = {
        "type": "chat",
        "id": mid,
        "room": room,
        "seq": seq,
        "username": username,
        "message": message,
        "timestamp": timestamp(ts),
        "client_id": client_id,
    }
    if client_msg_id is not None:
        frame["client_msg_id"] = client_msg_id
    if file is not None:
        frame["file"] = file
    if rich:
        for key, value in rich.items():
            if value is not None:
                frame[key] = value
    return encode(frame)


def private(
    pid: str,
    seq: int,
    sender: str,
    to: str,
    message: str,
    ts: float,
    client_id: str,
    client_msg_id: str | None,
    file: dict[str, Any] | None = None,
) -> bytes:
    """A private message: `username` and `from` are both the sender (seed clients read the first)."""
    head = {"id": pid, "seq": seq, "username": sender, "from": sender, "to": to}
    tail = {"client_id": client_id, "client_msg_id": client_msg_id, "file": file}
    return encode(_stamped("private", head, message, ts, tail))


def _stamped(
    kind: str, head: dict[str, Any], message: str, ts: float, tail: dict[str, Any]
) -> dict[str, Any]:
    """A frame that carries a sentence and its time: `head`, them, then the `tail` fields not None."""
    frame = {"type": kind, **head, "message": message, "timestamp": timestamp(ts)}
    for key, value in tail.items():
        if value is not None:
            frame[key] = value
    return frame


def ack(
    client_msg_id: str,
    mid: str,
    seq: int,
    *,
    room: str | None = None,
    to: str | None = None,
    duplicate: bool = False,
    stored: bool = False,
) -> bytes:
    """`ack`: names the `room` of a chat message or the recipient (`to`) of a private one (and
    whether that was stored: between two accounts)."""
    frame: dict[str, Any] = {"type": "ack", "client_msg_id": client_msg_id, "id": mid, "seq": seq}
    if room is not None:
        frame["room"] = room
    else:
        frame["to"] = to
        frame["stored"] = stored
    if duplicate:
        frame["duplicate"] = True
    return encode(frame)


def joined(room: str, epoch: str, online: int, users: list[str] | None) -> bytes:
    frame: dict[str, Any] = {"type": "joined", "room": room, "epoch": epoch, "online_users": online}
    if users is not None:
        frame["users_list"] = users
    return encode(frame)


def left(room: str) -> bytes:
    return encode({"type": "left", "room": room})


def presence(
    kind: str,
    room: str,
    username: str,
    message: str,
    ts: float,
    online: int,
    users: list[str] | None,
    *,
    resumed: bool = False,
    reason: str | None = None,
) -> bytes:
    """`user_join` or `user_leave` about one person; `users_list` only for small rooms."""
    tail = {"online_users": online, "users_list": users, "resumed": resumed or None, "reason": reason}
    return encode(_stamped(kind, {"room": room, "username": username}, message, ts, tail))


def presence_batch(
    kind: str,
    room: str,
    usernames: list[str],
    count: int,
    message: str,
    ts: float,
    online: int,
    resumed: bool,
    reason: str | None = None,
) -> bytes:
    """A large room's batched `user_join` / `user_leave`: up to a few names and the total."""
    counted = "count_joined" if kind == "user_join" else "count_left"
    head = {
        "room": room,
        "username": usernames[0] if usernames else "",
        "usernames": usernames,
        counted: count,
    }
    tail = {"online_users": online, "resumed": resumed or None, "reason": reason}
    return encode(_stamped(kind, head, message, ts, tail))


def online_users(room: str, users: list[str]) -> bytes:
    return encode({"type": "online_users", "room": room, "users": users, "count": len(users)})


def rooms(listing: list[dict[str, Any]]) -> bytes:
    return encode({"type": "rooms", "rooms": listing})


def system(message: str, ts: float) -> bytes:
    return encode(_stamped("system", {}, message, ts, {}))


def history(room: str, epoch: str, mode: str, payloads: Iterable[bytes], **extra: Any) -> bytes:
    """`history`: the head fields, then `messages` spliced from the stored `chat` payloads as they are.

    `extra` holds `skipped`, `epoch_changed` (resume and recent) or `before_seq` and `more`
    (page); those given as None are left out.
    """
    head = {"type": "history", "room": room, "epoch": epoch, "mode": mode}
    head.update((k, v) for k, v in extra.items() if v is not None)
    encoded = encode(head)
    return b"".join((encoded[:-1], b',"messages":[', b",".join(payloads), b"]}"))


# -- file uploads (wschat.features.files)


def upload_ready(upload_id: str, offset: int, size: int, chunk_size: int, client_msg_id: str | None) -> bytes:
    """Send the file's bytes from `offset` on, in binary frames of at most `chunk_size` bytes."""
    frame = {"type": "upload_ready", "upload_id": upload_id, "offset": offset, "size": size}
    frame["chunk_size"] = chunk_size
    if client_msg_id is not None:
        frame["client_msg_id"] = client_msg_id
    return encode(frame)


def upload_done(upload_id: str, file: dict[str, Any], client_msg_id: str | None) -> bytes:
    frame: dict[str, Any] = {"type": "upload_done", "upload_id": upload_id, "file": file}
    if client_msg_id is not None:
        frame["client_msg_id"] = client_msg_id
    return encode(frame)


# -- accounts (wschat.features.accounts)


def account_sessions(sessions: list[dict[str, Any]]) -> bytes:
    """`sessions`: the account's devices, each `{id, device, created, last_used, current}`."""
    return encode({"type": "sessions", "sessions": sessions})


def logged_out(message: str) -> bytes:
    return encode({"type": "logged_out", "message": message})


def session_revoked(session_id: str) -> bytes:
    return encode({"type": "session_revoked", "id": session_id})


def password_changed(message: str, ended: int) -> bytes:
    return encode({"type": "password_changed", "message": message, "sessions_ended": ended})


# -- stored private messages between accounts (wschat.features.offline)


E2EE_PLACEHOLDER = "🔒 An end-to-end encrypted message: open it in a client that supports encryption."


def stored_private(
    pid: str,
    seq: int,
    sender: str,
    to: str,
    message: str,
    ts: float,
    client_msg_id: str | None,
    *,
    offline: bool = False,
    delivered: float | None = None,
    file: dict[str, Any] | None = None,
    call: dict[str, Any] | None = None,
    e2ee: dict[str, Any] | None = None,
) -> bytes:
    """A stored `private`: `stored: true`, its conversation `seq`; `offline: true` when it waited
    for this device; `delivered_at` once its recipient got it; `e2ee` when it is encrypted (its
    `message` is then a fixed sentence for clients that cannot decrypt)."""
    head = {"id": pid, "seq": seq, "username": sender, "from": sender, "to": to}
    tail = {
        "client_msg_id": client_msg_id,
        "stored": True,
        "offline": offline or None,
        "delivered_at": None if delivered is None else timestamp(delivered),
        "file": file,
        "call": call,
        "e2ee": e2ee,
    }
    if e2ee is not None:
        message = E2EE_PLACEHOLDER
    return encode(_stamped("private", head, message, ts, tail))


def delivered(pid: str, to: str, seq: int, ts: float) -> bytes:
    """`delivered`: the stored private message `pid` reached a device of `to`."""
    return encode({"type": "delivered", "id": pid, "to": to, "seq": seq, "delivered_at": timestamp(ts)})


def private_history(with_: str, payloads: list[bytes], more: bool) -> bytes:
    head = encode({"type": "private_history", "with": with_, "more": more})
    return b"".join((head[:-1], b',"messages":[', b",".join(payloads), b"]}"))
