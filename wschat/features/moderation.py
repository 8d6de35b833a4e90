"""Moderation in the hub: kick, mute, ban (and their undoing), topic, invite-only, invite. NO I/O.

Who may: `ModBook.moderates` (operators everywhere, a room's creator in that room); actions on
the whole server (no `room`) are the operators'. A room moderator cannot act on an operator,
nobody on themselves. Every action is recorded in the store with an audit row (`Moderate`);
an action in a room is also a room event (a `Message` of kind "moderation": sequenced, stored,
in history, published as a `moderation` frame with `room` and `seq`); an action on the whole
server is a `moderation` frame without them, sent to the actor and the target (a notice).
The hooks at the edges (entering a room, the room list, the tick, log-ins, chat while muted)
are in `wschat.features.mod_hooks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Close, Effect, Send
from wschat.features import events, mod_wire
from wschat.features.mod_book import subject_of
from wschat.features.mod_records import Moderate, Restriction
from wschat.hub import devices, rooms
from wschat.hub.state import Room, Session
from wschat.names import check_room, name_key
from wschat.records import Append, Message

if TYPE_CHECKING:
    from wschat.hub.core import Hub

SERVER = "Server"  # who an expiry is by


class Refused(Exception):
    """A moderation request refused: `code` and a sentence for the person who sent it."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code


# ------------------------------------------------------------------ shared steps


def record(
    hub: Hub, s: Session | None, action: str, scope: str, subject: str, target: str, **kw: Any
) -> Effect:
    """The store command for one action and its audit row."""
    book = hub.moderation
    book.pending += 1
    book.generation += 1
    actor = s.name if s is not None else SERVER
    c = Moderate(action, actor, scope, subject, target, kw.get("value", ""), kw["now"], kw.get("restriction"))
    return hub.ask(c, _recorded, s.cid if s is not None else 0)


def _recorded(hub: Hub, cid: int, result: Any, now: float) -> list[Effect]:
    hub.moderation.pending -= 1
    s = hub.sessions.get(cid)
    if isinstance(result, BaseException) and s is not None:
        text = "The server could not save that moderation action (its storage failed); kept until restart."
        return [hub.error(s, p.STORE_FAILED, text)]
    return []


def room_event(
    hub: Hub, by: Session | None, room: Room, action: str, now: float, reason: str = "", **meta: Any
) -> Effect:
    """A room event of kind "moderation": sequenced and stored like a message, then published."""
    seq = hub.broker.next_seq(room.name)
    room.last_seq = max(room.last_seq, seq)
    room.inflight += 1
    name, key, client_id = (by.name, by.key, by.client_id) if by is not None else (SERVER, "", "")
    ev = Message(hub.next_id, room.name, seq, name, key, client_id, reason, now, None, room.epoch)
    ev.kind, ev.target = "moderation", 0
    ev.meta = {"action": action, **{k: v for k, v in meta.items() if v is not None}}
    hub.next_id += 1
    return hub.ask(Append([ev]), events._committed, (ev, reason))


def notice(action: str, by: str, now: float, **fields: Any) -> bytes:
    return mod_wire.moderation(action, by, now, **fields)


def _room_for(hub: Hub, s: Session, raw: str | None) -> Room | None:
    """The room a request acts in (which its sender must be in and moderate); None: the server."""
    if raw is None:
        if not hub.moderation.is_operator(hub, s):
            raise Refused(p.NOT_MODERATOR, "Only the server's operators may do that to the whole server.")
        return None
    room = rooms.member_room(hub, s, raw)
    if not hub.moderation.moderates(hub, s, room.name):
        raise Refused(p.NOT_MODERATOR, f"Only #{room.name}'s creator and the operators may moderate it.")
    return room


def _target(hub: Hub, s: Session, room: Room | None, username: str) -> tuple[str, Session | None, bool]:
    """(name key, the session online or None, registered) of whom a request names; checked."""
    key = name_key(username.strip())
    cid = hub.by_key.get(key)
    other = hub.sessions.get(cid) if cid is not None else None
    registered = key in hub.accounts.registered
    if other is None and not registered and not hub.moderation.places.get(key):
        raise Refused(p.NO_SUCH_USER, f"{username} is not online (and has no account).")
    if key == s.key:
        raise Refused(p.NOT_ALLOWED, "You cannot do that to yourself.")
    book = hub.moderation
    if registered and book.operator_key(hub, key) and not book.is_operator(hub, s):
        raise Refused(p.NOT_MODERATOR, f"{username} is an operator; a room's creator cannot act on them.")
    creator = room is not None and book.rules(room.name).creator == key
    if registered and creator and not book.is_operator(hub, s):
        raise Refused(p.NOT_MODERATOR, f"{username} created #{room.name}.")
    return key, other, registered


def _shown(other: Session | None, username: str) -> str:
    return other.name if other is not None else username.strip()


def _out_of_room(hub: Hub, target: Session, room: Room, frame: bytes, now: float, out: list[Effect]) -> None:
    """Tell `target` (every device of it) why, then take it out of `room` (the others see it leave)."""
    out.append(Send(devices.connections(hub, target.key) or (target.cid,), frame))
    out.append(Send((target.cid,), outbound.left(room.name)))
    rooms.leave(hub, target, room, "leave", now, out)


def _guarded(handler: Any) -> Any:
    """A handler whose `Refused` becomes an `error` to the sender."""

    def run(hub: Hub, s: Session, req: Any, now: float) -> list[Effect]:
        try:
            return handler(hub, s, req, now)
        except Refused as exc:
            return [hub.error(s, exc.code, str(exc))]

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


# ------------------------------------------------------------------ kick, mute


def kick(hub: Hub, s: Session, req: mod_wire.Kick, now: float) -> list[Effect]:
    room = _room_for(hub, s, req.room)
    key, other, registered = _target(hub, s, room, req.username)
    places = hub.moderation.places.get(key, ())
    if other is None and places:  # cluster mode: on other processes only (mod_cluster tells them)
        return _kick_elsewhere(hub, s, room, req, places[0].name, registered, now)
    if other is None:
        raise Refused(p.NO_SUCH_USER, f"{req.username} is not online.")
    if room is not None and other.cid not in room.members:
        raise Refused(p.NOT_IN_ROOM, f"{other.name} is not in #{room.name}.")
    where = room.name if room is not None else ""
    subject = subject_of(other)
    out: list[Effect] = [record(hub, s, "kick", where, subject, other.name, value=req.reason, now=now)]
    if room is None:
        frame = notice("kick", s.name, now, username=other.name, reason=req.reason)
        gone = devices.connections(hub, other.key)
        byes = [Close(cid, p.CLOSE_KICKED, "kicked by an operator") for cid in gone]
        return [*out, Send((s.cid, *gone), frame), *byes]
    frame = notice("kick", s.name, now, room=room.name, username=other.name, reason=req.reason)
    _out_of_room(hub, other, room, frame, now, out)
    out.append(room_event(hub, s, room, "kick", now, req.reason, username=other.name))
    return out


def _kick_elsewhere(
    hub: Hub, s: Session, room: Room | None, req: mod_wire.Kick, name: str, registered: bool, now: float
) -> list[Effect]:
    """Cluster mode: the one to kick is on other processes only: record it here; those processes
    take it out (`RemoteKick`, sent by `wschat.features.mod_cluster`)."""
    where = room.name if room is not None else ""
    key = name_key(name)
    subject = f"account:{key}" if registered else f"name:{key}"
    out = [record(hub, s, "kick", where, subject, name, value=req.reason, now=now)]
    if room is None:
        return [*out, Send((s.cid,), notice("kick", s.name, now, username=name, reason=req.reason))]
    out.append(room_event(hub, s, room, "kick", now, req.reason, username=name))
    return out


def _kick_sent(hub: Hub, context: None, result: Any, now: float) -> list[Effect]:
    return []  # gone meanwhile: nothing to take out


def kicked_here(hub: Hub, cid: int, room_name: str, by: str, reason: str, now: float) -> list[Effect]:
    """Cluster mode: another process kicked this process's connection `cid` (RemoteKick)."""
    s = hub.sessions.get(cid)
    if s is None or not s.name:
        return []
    if not room_name:
        frame = notice("kick", by, now, username=s.name, reason=reason)
        return [Send((cid,), frame), Close(cid, p.CLOSE_KICKED, "kicked by an operator")]
    room = hub.rooms.get(room_name)
    if room is None or cid not in room.members:
        return []
    out: list[Effect] = []
    frame = notice("kick", by, now, room=room_name, username=s.name, reason=reason)
    _out_of_room(hub, s, room, frame, now, out)
    return out


def _subject(hub: Hub, key: str, other: Session | None, registered: bool) -> str:
    if registered or other is not None:
        return f"account:{key}" if registered else subject_of(other)  # type: ignore[arg-type]
    return f"address:{hub.moderation.places[key][0].address}"  # a guest on another process


def mute(hub: Hub, s: Session, req: mod_wire.Mute, now: float) -> list[Effect]:
    room = _room_for(hub, s, req.room)
    key, other, registered = _target(hub, s, room, req.username)
    shown = _shown(other, req.username)
    where = room.name if room is not None else ""
    subject = _subject(hub, key, other, registered)
    r = Restriction("mute", where, subject, shown, now + req.seconds, req.reason, s.name)
    hub.moderation.add(r)
    out = [record(hub, s, "mute", where, r.subject, shown, restriction=r, now=now)]
    until = outbound.timestamp(r.until)
    if room is not None:
        out.append(room_event(hub, s, room, "mute", now, req.reason, username=shown, until=until))
    else:
        targets = (s.cid,) if other is None else (s.cid, *devices.connections(hub, other.key))
        out.append(Send(targets, notice("mute", s.name, now, username=shown, until=until, reason=req.reason)))
    return out


def unmute(hub: Hub, s: Session, req: mod_wire.Unmute, now: float) -> list[Effect]:
    room = _room_for(hub, s, req.room)
    key, other, registered = _target(hub, s, room, req.username)
    shown = _shown(other, req.username)
    where = room.name if room is not None else ""
    subject = _subject(hub, key, other, registered)
    if hub.moderation.lift("mute", where, subject) is None:
        raise Refused(p.BAD_FIELD, f"{shown} is not muted {'in #' + where if where else 'on the server'}.")
    out = [record(hub, s, "unmute", where, subject, shown, now=now)]
    if room is not None:
        out.append(room_event(hub, s, room, "unmute", now, username=shown))
    else:
        targets = (s.cid,) if other is None else (s.cid, *devices.connections(hub, other.key))
        out.append(Send(targets, notice("unmute", s.name, now, username=shown)))
    return out


# ------------------------------------------------------------------ ban, unban


def _ban_subject(hub: Hub, s: Session, room: Room | None, req: Any) -> tuple[str, str, Session | None]:
    """(subject, name shown, the session online) of a ban or unban request."""
    if req.address is not None:
        return f"address:{req.address}", req.address, None
    key, other, registered = _target(hub, s, room, req.username)
    return _subject(hub, key, other, registered), _shown(other, req.username), other


def _hit(hub: Hub, subject: str) -> list[Session]:
    """Everyone online a ban of `subject` applies to (an address: every guest from it)."""
    return [o for o in hub.sessions.values() if o.name and subject_of(o) == subject]


def ban(hub: Hub, s: Session, req: mod_wire.Ban, now: float) -> list[Effect]:
    room = _room_for(hub, s, req.room)
    subject, shown, _ = _ban_subject(hub, s, room, req)
    if subject == subject_of(s):
        raise Refused(p.NOT_ALLOWED, "That ban would cover you too.")
    where = room.name if room is not None else ""
    until = now + req.seconds if req.seconds else 0.0
    r = Restriction("ban", where, subject, shown, until, req.reason, s.name)
    hub.moderation.add(r)
    out = [record(hub, s, "ban", where, subject, shown, restriction=r, now=now)]
    shown_until = outbound.timestamp(until) if until else None
    fields = {"username": shown, "until": shown_until, "reason": req.reason}
    if room is None:
        out.append(Send((s.cid,), notice("ban", s.name, now, **fields)))
        for o in _hit(hub, subject):
            out.append(Send((o.cid,), notice("ban", s.name, now, **fields)))
            out.append(Close(o.cid, p.CLOSE_BANNED, "banned"))
        return out
    for o in _hit(hub, subject):
        if o.cid in room.members:
            _out_of_room(hub, o, room, notice("ban", s.name, now, room=room.name, **fields), now, out)
    out.append(room_event(hub, s, room, "ban", now, req.reason, username=shown, until=shown_until))
    return out


def unban(hub: Hub, s: Session, req: mod_wire.Unban, now: float) -> list[Effect]:
    room = _room_for(hub, s, req.room)
    where = room.name if room is not None else ""
    book = hub.moderation
    if req.address is not None:
        subjects = [f"address:{req.address}"]
    else:  # a guest's ban is by address: found by the name it was aimed at
        key = name_key(req.username.strip())
        wanted = (f"account:{key}", key)
        subjects = [
            r.subject
            for (what, scope, _), r in book.restrictions.items()
            if what == "ban" and scope == where and (r.subject in wanted or name_key(r.name) in wanted)
        ]
    lifted = [r for r in (book.lift("ban", where, subject) for subject in subjects) if r is not None]
    if not lifted:
        who = req.address or req.username
        raise Refused(p.BAD_FIELD, f"{who} is not banned {'from #' + where if where else 'from the server'}.")
    out = [record(hub, s, "unban", where, r.subject, r.name, now=now) for r in lifted]
    if room is not None:
        out.append(room_event(hub, s, room, "unban", now, username=lifted[0].name))
    else:
        out.append(Send((s.cid,), notice("unban", s.name, now, username=lifted[0].name)))
    return out


# ------------------------------------------------------------------ the room's rules


def set_topic(hub: Hub, s: Session, req: mod_wire.SetTopic, now: float) -> list[Effect]:
    room = _room_for(hub, s, check_room(req.room))
    assert room is not None
    hub.moderation.rules_to_change(room.name).topic = req.topic
    out = [record(hub, s, "topic", room.name, "", "", value=req.topic, now=now)]
    return [*out, room_event(hub, s, room, "topic", now, topic=req.topic)]


def set_invite_only(hub: Hub, s: Session, req: mod_wire.SetInviteOnly, now: float) -> list[Effect]:
    room = _room_for(hub, s, check_room(req.room))
    assert room is not None
    rules = hub.moderation.rules_to_change(room.name)
    rules.invite_only = req.invite_only
    value = "on" if req.invite_only else "off"
    out = [record(hub, s, "invite_only", room.name, "", "", value=value, now=now)]
    if req.invite_only:  # who is in it now may come back
        for cid in room.members:
            member = hub.sessions[cid]
            if member.key not in rules.invited:
                rules.invited.add(member.key)
                out.append(record(hub, s, "invite", room.name, member.key, member.name, now=now))
    return [*out, room_event(hub, s, room, "invite_only", now, invite_only=req.invite_only)]


def invite(hub: Hub, s: Session, req: mod_wire.Invite, now: float) -> list[Effect]:
    room = _room_for(hub, s, check_room(req.room))
    assert room is not None
    key, other, _ = _target(hub, s, room, req.username)
    shown = _shown(other, req.username)
    hub.moderation.rules_to_change(room.name).invited.add(key)
    out = [record(hub, s, "invite", room.name, key, shown, now=now)]
    if other is not None and other.cid not in room.members:
        frame = notice("invite", s.name, now, room=room.name, username=shown)
        out.append(Send(devices.connections(hub, other.key), frame))
    return [*out, room_event(hub, s, room, "invite", now, username=shown)]


HANDLERS = {
    mod_wire.Kick: kick,
    mod_wire.Mute: mute,
    mod_wire.Unmute: unmute,
    mod_wire.Ban: ban,
    mod_wire.Unban: unban,
    mod_wire.SetTopic: set_topic,
    mod_wire.SetInviteOnly: set_invite_only,
    mod_wire.Invite: invite,
}

from wschat.hub.handlers import HANDLERS as _REGISTRY  # noqa: E402  (see wschat.hub.handlers)

_REGISTRY.update((kind, (_guarded(handler), True)) for kind, handler in HANDLERS.items())
