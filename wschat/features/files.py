"""File sharing over the chat WebSocket: uploads, their checks and quotas, the file message. NO I/O.

The `websockets` server refuses HTTP request bodies, so a file travels over the chat connection:

1. `upload_begin` {name, size, sha256, room | to}: checked against `--max-file-mb`, the sender's
   daily quota and the target (a room the sender is in, or someone online); the media store says
   how much of it is already there (`MediaBegin`: a resumed upload, or a file already stored);
   `upload_ready` {upload_id, offset, chunk_size} answers.
2. Binary frames: one byte n, the n ASCII bytes of the upload id, then at most `chunk_size`
   bytes of the file, in order from `offset`. Each is written (`MediaWrite`, in order, on the
   media thread); while `WRITES_AHEAD` pieces of a connection wait for the disk, its next frame
   is not read (`holds`), so a fast sender waits for the disk instead of filling the memory.
3. With the last byte, `MediaFinish` checks the size and SHA-256, stores the file by content and
   makes the unguessable capability in its `url`; the file is posted as a room message (stored,
   like `chat`) or a private message, with a `file` object; a seed client sees a `chat` whose
   `message` names the file. The sender gets `upload_done`.

The hub keeps the uploads in flight in `Uploads`; a connection that drops loses its uploads but
not the bytes on disk, so the same person sending the same file again resumes where it stopped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Effect, Send
from wschat.features.media_rules import (
    MediaBegin,
    MediaCancel,
    MediaFinish,
    MediaRefused,
    MediaWrite,
    StoredFile,
    human_size,
)
from wschat.hub import devices, rooms
from wschat.hub.state import Session
from wschat.names import name_key
from wschat.records import Append, Message

if TYPE_CHECKING:
    from wschat.hub.core import Hub

MAX_UPLOADS_PER_CONNECTION = 4
# Pieces of one connection being written at once: the next frame is read only when fewer are in
# flight, so a connection holds at most this many pieces in memory; one at a time made every
# piece wait for a round trip through the media thread (a third of the throughput).
WRITES_AHEAD = 4
DAY = 86400.0


@dataclass(slots=True, eq=False)
class Upload:
    upload_id: str
    cid: int
    user_key: str
    name: str
    size: int
    sha256: str
    partial: str
    room: str | None
    to: str | None
    client_msg_id: str | None
    offset: int = 0  # bytes the store holds (or has been asked to write)
    writing: int = 0  # pieces asked to be written, not yet answered
    ready: bool = False  # upload_ready sent: binary frames may come
    finishing: bool = False
    avatar: bool = False  # for the sender's profile (wschat.features.profiles): posted nowhere


@dataclass(slots=True)
class Uploads:
    """The uploads in flight, and what each user sent today (the daily quota)."""

    by_id: dict[str, Upload] = field(default_factory=dict)
    by_cid: dict[int, dict[str, None]] = field(default_factory=dict)
    today: dict[str, tuple[int, int]] = field(default_factory=dict)  # user key -> (day, bytes)
    writing: dict[int, int] = field(default_factory=dict)  # connection -> pieces being written

    def add(self, up: Upload) -> None:
        self.by_id[up.upload_id] = up
        self.by_cid.setdefault(up.cid, {})[up.upload_id] = None

    def drop(self, up: Upload) -> None:
        self.by_id.pop(up.upload_id, None)
        mine = self.by_cid.get(up.cid)
        if mine is not None:
            mine.pop(up.upload_id, None)
            if not mine:
                del self.by_cid[up.cid]

    def used(self, user_key: str, now: float) -> int:
        day, used = self.today.get(user_key, (0, 0))
        return used if day == int(now // DAY) else 0

    def count(self, user_key: str, size: int, now: float) -> None:
        self.today[user_key] = (int(now // DAY), self.used(user_key, now) + size)


def _partial_key(user_key: str, sha256: str, size: int) -> str:
    """Who sends what: the same person sending the same file again finds its bytes (a resume)."""
    return hashlib.sha256(f"{user_key}\0{sha256}\0{size}".encode()).hexdigest()[:40]


def _refuse(s: Session, code: str, text: str, cmid: str | None, upload_id: str | None = None) -> Send:
    return Send((s.cid,), outbound.error(code, text, client_msg_id=cmid, upload_id=upload_id))


def upload_begin(hub: Hub, s: Session, req: p.UploadBegin, now: float) -> list[Effect]:
    cfg, cmid = hub.config, req.client_msg_id
    if cmid is not None and (dup := hub.ids.repeat_ack(s.key, cmid)) is not None:
        return [Send((s.cid,), dup)]  # this file was posted already
    room = rooms.member_room(hub, s, req.room).name if req.room is not None else None
    if (muted := mod_hooks.upload_refusal(hub, s, room, now, cmid)) is not None:
        return muted
    if req.avatar and not s.account:
        return [_refuse(s, p.NOT_AN_ACCOUNT, "Only accounts have avatars; log in or register first.", cmid)]
    if req.to is not None and name_key(req.to) not in hub.by_key and not _stored_for(hub, s, req.to):
        return [_refuse(s, p.NO_SUCH_USER, f"{req.to} is not online.", cmid)]
    if req.size == 0:
        return [_refuse(s, p.BAD_FIELD, "The file is empty; there is nothing to send.", cmid)]
    if req.size > cfg.max_file_bytes:
        text = f"{req.name} is {human_size(req.size)}; files may be at most {human_size(cfg.max_file_bytes)}."
        return [_refuse(s, p.FILE_TOO_LARGE, text, cmid)]
    used = hub.uploads.used(s.key, now)
    if used + req.size > cfg.daily_upload_bytes:
        text = (
            f"You have sent {human_size(used)} of files today; the limit is "
            f"{human_size(cfg.daily_upload_bytes)} a day, so {req.name} does not fit. Try again tomorrow."
        )
        return [_refuse(s, p.UPLOAD_QUOTA, text, cmid)]
    if len(hub.uploads.by_cid.get(s.cid, ())) >= MAX_UPLOADS_PER_CONNECTION:
        text = f"At most {MAX_UPLOADS_PER_CONNECTION} uploads at once; wait for one to finish or cancel it."
        return [_refuse(s, p.BAD_UPLOAD, text, cmid)]
    partial = _partial_key(s.key, req.sha256, req.size)
    if any(u.partial == partial for u in hub.uploads.by_id.values()):
        text = f"{req.name} is already being uploaded; cancel that upload first (upload_cancel)."
        return [_refuse(s, p.BAD_UPLOAD, text, cmid)]
    up = Upload(
        hub.new_token()[:16], s.cid, s.key, req.name, req.size, req.sha256, partial, room, req.to, cmid,
        avatar=req.avatar,
    )  # fmt: skip
    hub.uploads.add(up)
    return [hub.ask(MediaBegin(partial, req.sha256, req.size), _begun, up, holds=s.cid)]


def _begun(hub: Hub, up: Upload, result: Any, now: float) -> list[Effect]:
    if hub.uploads.by_id.get(up.upload_id) is not up:
        return []  # cancelled, or its connection is gone
    s = hub.sessions[up.cid]
    if isinstance(result, BaseException):
        hub.uploads.drop(up)
        text = "The server could not store the file (its storage failed); try again in a moment."
        return [_refuse(s, p.STORE_FAILED, text, up.client_msg_id, up.upload_id)]
    if isinstance(result, MediaRefused):
        hub.uploads.drop(up)
        return [_refuse(s, result.code, result.message, up.client_msg_id, up.upload_id)]
    up.offset = min(int(result), up.size)
    if up.offset == up.size:  # stored already (by anyone), or every byte arrived before a drop
        return _finish(hub, up)
    up.ready = True
    chunk = hub.config.upload_chunk
    return [Send((s.cid,), outbound.upload_ready(up.upload_id, up.offset, up.size, chunk, up.client_msg_id))]


def upload_cancel(hub: Hub, s: Session, req: p.UploadCancel, now: float) -> list[Effect]:
    up = hub.uploads.by_id.get(req.upload_id)
    if up is None or up.cid != s.cid:
        return [_refuse(s, p.BAD_UPLOAD, "There is no such upload on this connection.", None, req.upload_id)]
    hub.uploads.drop(up)
    return [hub.ask(MediaCancel(up.partial), _ignore, None)]


def _ignore(hub: Hub, context: Any, result: Any, now: float) -> list[Effect]:
    return []


def disconnected(hub: Hub, cid: int) -> None:
    """The connection is gone: its uploads end; their bytes stay on disk for a resume."""
    for upload_id in list(hub.uploads.by_cid.get(cid, ())):
        hub.uploads.drop(hub.uploads.by_id[upload_id])


def parse_chunk(data: bytes) -> tuple[str, memoryview] | None:
    """A binary frame: (upload id, the file's bytes), or None if it is not shaped like one."""
    if not data:
        return None
    n = data[0]
    if not 1 <= n <= 64 or len(data) < 1 + n:
        return None
    try:
        upload_id = data[1 : 1 + n].decode("ascii")
    except UnicodeDecodeError:
        return None
    return upload_id, memoryview(data)[1 + n :]


def chunk(hub: Hub, s: Session, data: bytes, now: float) -> list[Effect] | None:
    """A binary frame of an upload; None if it belongs to none of this connection's (refused by the hub)."""
    parsed = parse_chunk(data)
    if parsed is None:
        return None
    upload_id, body = parsed
    up = hub.uploads.by_id.get(upload_id)
    if up is None or up.cid != s.cid or not up.ready:
        return None
    n = len(body)
    problem = ""
    if n > hub.config.upload_chunk:
        problem = f"A piece of {n} bytes; upload_ready allows at most {hub.config.upload_chunk}."
    elif up.offset + n > up.size:
        problem = f"More bytes than the {up.size} announced for {up.name}."
    if problem:
        hub.uploads.drop(up)
        return [_refuse(s, p.BAD_UPLOAD, problem + " The upload is cancelled.", up.client_msg_id, upload_id)]
    if n == 0:
        return []
    offset = up.offset
    up.offset += n
    up.writing += 1
    writing = hub.uploads.writing[s.cid] = hub.uploads.writing.get(s.cid, 0) + 1
    holds = s.cid if writing >= WRITES_AHEAD else 0
    return [hub.ask(MediaWrite(up.partial, offset, bytes(body)), _written, up, holds=holds)]


def _written(hub: Hub, up: Upload, result: Any, now: float) -> list[Effect]:
    up.writing -= 1
    left = hub.uploads.writing.get(up.cid, 1) - 1
    if left > 0:
        hub.uploads.writing[up.cid] = left
    else:
        hub.uploads.writing.pop(up.cid, None)
    if hub.uploads.by_id.get(up.upload_id) is not up:
        return []
    if isinstance(result, BaseException):
        hub.uploads.drop(up)
        text = "The server could not write the file (its storage failed); send it again."
        # pieces after the failed one may be written: start again from nothing rather than a gap
        forget = hub.ask(MediaCancel(up.partial), _ignore, None)
        return [forget, _refuse(hub.sessions[up.cid], p.STORE_FAILED, text, up.client_msg_id, up.upload_id)]
    if up.offset == up.size and not up.writing and not up.finishing:
        return _finish(hub, up)
    return []


def _finish(hub: Hub, up: Upload) -> list[Effect]:
    up.finishing = True
    up.ready = False
    keep = frozenset(
        m.file["sha256"] for room in hub.rooms.values() for m in room.window if m.file and "sha256" in m.file
    )
    media_id = hub.new_token()
    command = MediaFinish(up.partial, up.sha256, up.size, media_id, up.name, keep, hub.config.thumb_pixels)
    return [hub.ask(command, _finished, (up, media_id), holds=up.cid)]


def _stored_for(hub: Hub, s: Session, to: str) -> bool:
    """Whether a private file from `s` to `to` is stored (both accounts): `to` may be offline."""
    return bool(s.account) and name_key(to) in hub.accounts.registered


def file_object(media_id: str, up: Upload, stored: StoredFile) -> dict[str, Any]:
    """The `file` object of PROTOCOL.md: what a client shows and the URLs it fetches."""
    obj: dict[str, Any] = {
        "id": media_id,
        "name": up.name,
        "size": up.size,
        "mime": stored.mime,
        "sha256": up.sha256,
        "url": f"/media/{media_id}",
    }
    if stored.width:
        obj["width"], obj["height"] = stored.width, stored.height
    if stored.thumb:
        obj["thumb_url"] = f"/media/{media_id}/thumb"
    return obj


def _finished(hub: Hub, context: tuple[Upload, str], result: Any, now: float) -> list[Effect]:
    up, media_id = context
    hub.uploads.drop(up)
    s = hub.sessions.get(up.cid)
    if isinstance(result, (BaseException, MediaRefused)):
        if s is None:
            return []
        if isinstance(result, MediaRefused):
            return [_refuse(s, result.code, result.message, up.client_msg_id, up.upload_id)]
        text = "The server could not store the file (its storage failed); send it again to resume."
        return [_refuse(s, p.STORE_FAILED, text, up.client_msg_id, up.upload_id)]
    file = file_object(media_id, up, result)
    hub.uploads.count(up.user_key, up.size, now)
    out: list[Effect] = []
    if s is not None:
        out.append(Send((s.cid,), outbound.upload_done(up.upload_id, file, up.client_msg_id)))
    text = f"📎 {up.name} ({human_size(up.size)})"
    if up.avatar:
        return out  # the sender sets it with set_profile {avatar: file.id}
    if up.room is not None:
        out += _post_room(hub, up, s, text, file, now)
    elif s is not None and up.to is not None:
        out += _post_private(hub, s, up.to, text, file, up.client_msg_id, now)
    return out


def _post_room(
    hub: Hub, up: Upload, s: Session | None, text: str, file: dict[str, Any], now: float
) -> list[Effect]:
    """Stored like a chat message; handlers._committed delivers and acknowledges it."""
    from wschat.hub.handlers import _committed  # the hub's own continuation for a stored message

    room = hub.rooms.get(up.room or "")
    if s is None or room is None or up.room not in s.rooms:
        return []  # gone meanwhile: the file is stored, but posted nowhere
    cmid = up.client_msg_id
    if cmid is not None and not hub.ids.storing(s.key, cmid):
        return []
    seq = hub.broker.next_seq(room.name)
    if seq > room.last_seq:
        room.last_seq = seq
    room.inflight += 1
    m = Message(hub.next_id, room.name, seq, s.name, s.key, s.client_id, text, now, cmid, room.epoch)
    m.file = file
    hub.next_id += 1
    return [hub.ask(Append([m]), _committed, m)]


def _post_private(
    hub: Hub, s: Session, to: str, text: str, file: dict[str, Any], cmid: str | None, now: float
) -> list[Effect]:
    from wschat.features import offline  # imports the hub's handlers, which import this module

    if _stored_for(hub, s, to):  # between accounts: stored, reaches them offline too
        return offline.store(hub, s, hub.accounts.registered[name_key(to)], text, cmid, now, file)
    target_cid = hub.by_key.get(name_key(to))
    if target_cid is None:
        return [_refuse(s, p.NO_SUCH_USER, f"{to} is no longer online; the file was not sent.", cmid)]
    t = hub.sessions[target_cid]
    seq = hub.next_private
    pid = f"p{hub.run_id}-{seq}"
    hub.next_private += 1
    frame = outbound.private(pid, seq, s.name, t.name, text, now, s.client_id, cmid, file)
    out: list[Effect] = [Send(devices.both_ends(hub, s, t.key), frame)]
    if cmid is not None:
        hub.ids.remember(s.key, cmid, "@" + t.name, pid, seq)
        out.append(Send((s.cid,), outbound.ack(cmid, pid, seq, to=t.name)))
    return out


HANDLERS = {p.UploadBegin: upload_begin, p.UploadCancel: upload_cancel}

from wschat.hub.handlers import HANDLERS as _REGISTRY  # noqa: E402  (see wschat.hub.handlers)

_REGISTRY.update((kind, (handler, True)) for kind, handler in HANDLERS.items())

# Moderation's hooks (a muted user's uploads); imported last, as wschat.hub.rooms does.
from wschat.features import mod_hooks  # noqa: E402
