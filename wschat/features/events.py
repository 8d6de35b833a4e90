"""Rich messaging in the hub: reactions, edits, deletes and replies. NO I/O.

Each request names a target message by its seq in a room. The target is looked up in the
room's history window, or read from the store (`ReadMessage`) when it is older than the window.
A reaction, an edit or a delete is then a room event: it takes the room's next seq, is stored
(`Append`, in the same group commit as chat messages), and once committed is folded into the
target in the window (`wschat.features.fold`) and published to the room. So history shows every
message's current state, and a client that resumes gets exactly the events it missed.

Rules: only the author may edit; `may_delete` says who may delete (the author, and the room's
moderators: `wschat.features.mod_book`); a user's reaction with one key counts once; a message
has at most `MAX_KEYS` different reaction keys; a deleted message cannot be changed or answered.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wschat import protocol as p
from wschat.effects import Effect, Send
from wschat.features import fold, wire
from wschat.hub import cluster, devices, history, rooms
from wschat.hub.state import Room, Session
from wschat.names import name_key
from wschat.records import Append, Message, ReadMessage

if TYPE_CHECKING:
    from wschat.hub.core import Hub

MAX_KEYS = 20  # different reaction keys on one message

# what to do with a found target: then(hub, session, room, target, request, now) -> effects
Then = Callable[["Hub", Session, Room, Message, Any, float], list[Effect]]


def may_delete(hub: Hub, s: Session, target: Message) -> bool:
    """Whether `s` may delete `target`: its author, the room's creator, an operator."""
    return target.user_key == s.key or hub.moderation.moderates(hub, s, target.room)


def in_window(room: Room, seq: int) -> Message | None:
    """The chat message `seq` of `room` if its history window holds it."""
    i = bisect_left(room.window, seq, key=lambda m: m.seq)
    if i < len(room.window) and room.window[i].seq == seq and room.window[i].kind == "chat":
        return room.window[i]
    return None


def with_target(hub: Hub, s: Session, room: Room, seq: int, then: Then, req: Any, now: float) -> list[Effect]:
    """Find message `seq` of `room` (window, else the store), check it, and go on with `then`."""
    found = in_window(room, seq)
    if found is not None:
        return _checked(hub, s, room, found, then, req, now)
    oldest = room.window[0].seq if room.window else room.last_seq + 1
    if room.first_seq <= seq < oldest:
        return [hub.ask(ReadMessage(room.name, seq), _target_read, (s.cid, room.name, then, req))]
    return [_missing(hub, s, room, seq)]


def _target_read(hub: Hub, ctx: tuple[int, str, Then, Any], result: Any, now: float) -> list[Effect]:
    cid, room_name, then, req = ctx
    s = hub.sessions.get(cid)
    room = hub.rooms.get(room_name)
    if s is None or room is None or cid not in room.members:
        return []
    if isinstance(result, BaseException):
        text = "The server could not read that message (its storage failed); try again in a few seconds."
        return [hub.error(s, p.STORE_FAILED, text)]
    if not isinstance(result, Message) or result.kind != "chat":
        return [_missing(hub, s, room, req.target)]
    return _checked(hub, s, room, result, then, req, now)


def _checked(
    hub: Hub, s: Session, room: Room, target: Message, then: Then, req: Any, now: float
) -> list[Effect]:
    if target.deleted:
        return [hub.error(s, p.NO_SUCH_MESSAGE, f"Message {target.seq} of #{room.name} was deleted.")]
    return then(hub, s, room, target, req, now)


def _missing(hub: Hub, s: Session, room: Room, seq: int) -> Send:
    return hub.error(s, p.NO_SUCH_MESSAGE, f"There is no message {seq} in #{room.name}.")


# ------------------------------------------------------------------ handlers


def react(hub: Hub, s: Session, req: wire.React, now: float) -> list[Effect]:
    room = rooms.member_room(hub, s, req.room)
    return with_target(hub, s, room, req.target, _react, req, now)


def _react(hub: Hub, s: Session, room: Room, target: Message, req: wire.React, now: float) -> list[Effect]:
    mine = s.name in (target.reactions or {}).get(req.key, ())
    if mine != req.remove:
        return []  # already so: a user's reaction with one key counts once
    if not req.remove and req.key not in (target.reactions or {}) and len(target.reactions or {}) >= MAX_KEYS:
        text = f"Message {target.seq} already has {MAX_KEYS} different reactions; add one of those."
        return [hub.error(s, p.BAD_FIELD, text)]
    return _event(hub, s, room, "reaction", target.seq, "", {"key": req.key, "removed": req.remove}, now)


def edit(hub: Hub, s: Session, req: wire.Edit, now: float) -> list[Effect]:
    room = rooms.member_room(hub, s, req.room)
    return with_target(hub, s, room, req.target, _edit, req, now)


def _edit(hub: Hub, s: Session, room: Room, target: Message, req: wire.Edit, now: float) -> list[Effect]:
    if target.user_key != s.key:
        return [hub.error(s, p.NOT_ALLOWED, "Only the author of a message may edit it.")]
    return _event(hub, s, room, "edit", target.seq, req.message, None, now)


def delete(hub: Hub, s: Session, req: wire.Delete, now: float) -> list[Effect]:
    room = rooms.member_room(hub, s, req.room)
    return with_target(hub, s, room, req.target, _delete, req, now)


def _delete(hub: Hub, s: Session, room: Room, target: Message, req: wire.Delete, now: float) -> list[Effect]:
    if not may_delete(hub, s, target):
        text = "You may delete only your own messages (the room's creator and operators: anyone's)."
        return [hub.error(s, p.NOT_ALLOWED, text)]
    return _event(hub, s, room, "delete", target.seq, "", None, now)


def _event(
    hub: Hub, s: Session, room: Room, kind: str, target: int, text: str, meta: dict | None, now: float
) -> list[Effect]:
    """A room event: sequenced, stored, then folded into its target and published."""
    seq = hub.broker.next_seq(room.name)
    room.last_seq = max(room.last_seq, seq)
    room.inflight += 1
    ev = Message(hub.next_id, room.name, seq, s.name, s.key, s.client_id, text, now, None, room.epoch)
    ev.kind, ev.target, ev.meta = kind, target, meta
    hub.next_id += 1
    return [hub.ask(Append([ev]), _committed, (ev, text))]


def _committed(hub: Hub, ctx: tuple[Message, str], result: Any, now: float) -> list[Effect]:
    ev, text = ctx
    room = hub.rooms[ev.room]  # loaded: a room with messages in flight is never unloaded
    room.inflight -= 1
    if isinstance(result, BaseException):
        holder = devices.sender(hub, ev.user_key, ev.client_id)
        if holder is None:
            return []
        msg = f"The server could not save your {ev.kind} (its storage failed); try again in a few seconds."
        return [hub.error(hub.sessions[holder], p.STORE_FAILED, msg)]
    ev.text = text
    ev.payload = fold.payload(ev)
    if hub.broker.stored_seqs:  # cluster mode: delivered in seq order, folded there (hub.cluster)
        return cluster.arrived(hub, ev, now)
    fold_into_window(hub, room, ev, text)
    history.add(hub, room, ev)
    room.first_seq = max(room.first_seq, ev.seq - hub.config.max_messages_per_room + 1)  # retention
    rooms.touch(hub, room)
    out: list[Effect] = [hub.broker.publish(room.name, ev.payload)]
    history.evict(hub)
    return out


def fold_into_window(hub: Hub, room: Room, ev: Message, text: str) -> None:
    """A committed event changes its target in the room's window (and, deleted, its quotes)."""
    target = in_window(room, ev.target)
    if target is not None:
        _refold(hub, room, target, lambda m: fold.apply(m, ev, text))
    if ev.kind == "delete":
        for m in room.window:
            if m.kind == "chat" and m.reply_to == ev.target:
                _refold(hub, room, m, fold.unquote)


def _refold(hub: Hub, room: Room, m: Message, change: Callable[[Message], None]) -> None:
    """Change a window message, keeping the windows' byte count right."""
    before = len(m.payload)
    change(m)
    delta = len(m.payload) - before
    room.window_bytes += delta
    hub.window_bytes += delta


# ------------------------------------------------------------------ mentions


def mentioned(hub: Hub, room: Room, m: Message, publish: Send) -> list[Effect]:
    """A committed message's delivery: members it mentions get it with `mentions_you: true`.
    (Mentions are explicit, `chat.mentions`; the text is never searched for names.)"""
    names = (m.meta or {}).get("mentions")
    if not names:
        return [publish]
    keys = {name_key(n) for n in names}
    sessions = hub.sessions
    marked = tuple(c for c in publish.targets if c in sessions and sessions[c].key in keys)
    if not marked:
        return [publish]
    rest = tuple(c for c in publish.targets if c not in marked)
    flagged = fold.payload(m, mentions_you=True)
    return [Send(rest, publish.data), Send(marked, flagged)]


# ------------------------------------------------------------------ replies


def reply_preview(hub: Hub, s: Session, room: Room, seq: int) -> dict[str, Any] | None:
    """The quote of message `seq` for a reply, if the window holds it; else None (read it first).
    Raises ProtocolError when there is no such message (or it was deleted)."""
    target = in_window(room, seq)
    if target is None:
        oldest = room.window[0].seq if room.window else room.last_seq + 1
        if room.first_seq <= seq < oldest:
            return None
        raise p.ProtocolError(p.NO_SUCH_MESSAGE, f"There is no message {seq} in #{room.name} to reply to.")
    return quote(room, target)


def quote(room: Room, target: Message) -> dict[str, Any]:
    if target.deleted:
        raise p.ProtocolError(p.NO_SUCH_MESSAGE, f"Message {target.seq} of #{room.name} was deleted.")
    return wire.reply_preview(target.username, fold.text_of(target))


HANDLERS = {wire.React: react, wire.Edit: edit, wire.Delete: delete}

from wschat.hub.handlers import HANDLERS as _REGISTRY  # noqa: E402  (see wschat.hub.handlers)

_REGISTRY.update((kind, (handler, True)) for kind, handler in HANDLERS.items())
