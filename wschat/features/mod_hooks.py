"""Moderation at the edges: entering a room, log-ins, chat while muted, the tick. NO I/O.

- `admit` (from `hub.rooms.enter`): a room ban or an invite-only room refuses entry;
- `entered`: the first account in a new room becomes its creator; the joiner gets `room_info`
  when the room has a creator, a topic or is invite-only, or the joiner may moderate it;
- `get_users` of an invite-only room answers `no_such_room` to who may not enter it;
- the handlers of `set_username`, `register` and `login` are wrapped: a server ban refuses them
  (a guest by address, so a new guest name from that address is refused too); those of `chat`
  and `private` refuse a muted sender (`muted`, with `retry_after`);
- `tick`: mutes and bans that run out end (a room event "unmute" by the Server), and every
  `Config.admin_poll` seconds (--admin-poll) the hub re-reads moderation from the store, where
  the admin command line writes, then applies what changed (a new server ban closes the
  connections it covers); `reread` does it at once (under `--redis` the admin command line
  says on `wschat:news` that it changed moderation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Close, Effect, Send
from wschat.features import mod_wire, moderation
from wschat.features.mod_book import remaining, subject_of
from wschat.features.mod_records import ModState, ReadModeration, Restriction
from wschat.hub.handlers import HANDLERS
from wschat.hub.state import GENERAL, Room, Session
from wschat.names import InvalidName, check_room, name_key

if TYPE_CHECKING:
    from wschat.hub.core import Hub


def _why(r: Restriction, now: float) -> str:
    return f" by {r.by}{remaining(r, now)}" + (f": {r.reason}" if r.reason else "")


def admit(hub: Hub, s: Session, name: str, now: float) -> None:
    """Raise `ProtocolError` if `s` may not enter room `name` (banned, or not invited)."""
    if name in s.rooms:
        return
    book = hub.moderation
    banned = book.applies("ban", s, name, now)
    if banned is not None:
        where = "this server" if not banned.scope else f"#{name}"
        raise p.ProtocolError(p.BANNED, f"You are banned from {where}{_why(banned, now)}.")
    rules = book.rooms.get(name)
    if rules is None or not rules.invite_only or s.key in rules.invited or book.moderates(hub, s, name):
        return
    text = f"#{name} is invite-only; ask its creator or an operator to invite you."
    raise p.ProtocolError(p.INVITE_ONLY, text)


def entered(hub: Hub, s: Session, room: Room, now: float) -> list[Effect]:
    """After `joined` and `history`: claim a new room for its creator; send `room_info`."""
    book = hub.moderation
    out: list[Effect] = []
    rules = book.rooms.get(room.name)
    # cheapest test first: listing the members was O(members) for every join of a quiet #general
    new = room.name != GENERAL and room.last_seq == 0 and len(room.members) == 1 and s.cid in room.members
    if new and s.account and (rules is None or not rules.creator):
        rules = book.rules_to_change(room.name)
        rules.creator = s.key
        out.append(moderation.record(hub, s, "creator", room.name, s.key, s.name, value=s.key, now=now))
    rules = rules or book.rules(room.name)
    mine = book.moderates(hub, s, room.name)
    if not (mine or rules.creator or rules.topic or rules.invite_only):
        return out  # nothing to say: no topic, no rules, not yours (most rooms, most people)
    creator = hub.accounts.registered.get(rules.creator, "") if rules.creator else ""
    operator = book.is_operator(hub, s)
    info = mod_wire.room_info(room.name, rules.topic, rules.invite_only, creator, mine, operator)
    out.append(Send((s.cid,), info))
    return out


# ------------------------------------------------------------------ wrapped handlers


def _wrap(kind: type, check: Any, *, restrictions_only: bool = False) -> None:
    """`kind`'s handler, after `check` (its refusal, or None). `restrictions_only`: `check`
    refuses only under a ban or mute, so it is skipped while there are none (the usual case; a
    chat message then costs one test, not three calls)."""
    inner, needs_name = HANDLERS[kind]

    def run(hub: Hub, s: Session, req: Any, now: float) -> list[Effect]:
        refusal = check(hub, s, req, now)
        return refusal if refusal is not None else inner(hub, s, req, now)

    def run_if_restricted(hub: Hub, s: Session, req: Any, now: float) -> list[Effect]:
        if hub.moderation.restrictions:
            refusal = check(hub, s, req, now)
            if refusal is not None:
                return refusal
        return inner(hub, s, req, now)

    HANDLERS[kind] = (run_if_restricted if restrictions_only else run, needs_name)


def _server_ban(hub: Hub, s: Session, subject: str, now: float) -> list[Effect] | None:
    r = hub.moderation.find("ban", "", subject, now)
    if r is None or s.name:
        return None
    text = f"You are banned from this server{_why(r, now)}."
    return [Send((s.cid,), outbound.username_error(p.BANNED, text))]


def _guest_check(hub: Hub, s: Session, req: Any, now: float) -> list[Effect] | None:
    return _server_ban(hub, s, f"address:{s.address}", now)


def _login_check(hub: Hub, s: Session, req: p.Login, now: float) -> list[Effect] | None:
    return _server_ban(hub, s, f"account:{name_key(req.username.strip())}", now)


def _muted(
    hub: Hub, s: Session, room: str | None, now: float, cmid: str | None, what: str = "message"
) -> list[Effect] | None:
    r = hub.moderation.applies("mute", s, room, now)
    if r is None:
        return None
    where = "on this server" if not r.scope else f"in #{r.scope}"
    text = f"You are muted {where}{_why(r, now)}; your {what} was not sent."
    retry = max(1.0, round(r.until - now, 1)) if r.until else None
    return [Send((s.cid,), outbound.error(p.MUTED, text, retry_after=retry, client_msg_id=cmid))]


def upload_refusal(
    hub: Hub, s: Session, room: str | None, now: float, cmid: str | None
) -> list[Effect] | None:
    """Called by `files.upload_begin`: a muted user shares no files where it may not talk."""
    return _muted(hub, s, room, now, cmid, "file")


def _chat_check(hub: Hub, s: Session, req: p.Chat, now: float) -> list[Effect] | None:
    return _muted(hub, s, req.room, now, req.client_msg_id)


def _private_check(hub: Hub, s: Session, req: p.Private, now: float) -> list[Effect] | None:
    return _muted(hub, s, None, now, req.client_msg_id)


def _users_check(hub: Hub, s: Session, req: p.GetUsers, now: float) -> list[Effect] | None:
    """An invite-only room's members are not shown to outsiders (as if there were no room)."""
    try:
        name = check_room(req.room)
    except InvalidName:
        return None  # the handler says what is wrong with the name
    if not hub.moderation.hidden(hub, s, name):
        return None
    return [hub.error(s, p.NO_SUCH_ROOM, f"There is no room '{name}'.")]


_wrap(p.GetUsers, _users_check)
_wrap(p.SetUsername, _guest_check, restrictions_only=True)
_wrap(p.Register, _guest_check, restrictions_only=True)
_wrap(p.Login, _login_check, restrictions_only=True)
_wrap(p.Chat, _chat_check, restrictions_only=True)
_wrap(p.Private, _private_check, restrictions_only=True)


# ------------------------------------------------------------------ the tick


def tick(hub: Hub, now: float) -> list[Effect]:
    book = hub.moderation
    out: list[Effect] = []
    for r in book.expired(now):
        book.generation += 1
        undo = "unmute" if r.what == "mute" else "unban"
        room = hub.rooms.get(r.scope) if r.scope else None
        if room is not None:
            out.append(moderation.room_event(hub, None, room, undo, now, username=r.name))
        elif not r.scope:
            for o in hub.sessions.values():
                if o.name and subject_of(o) == r.subject:
                    frame = moderation.notice(undo, moderation.SERVER, now, username=o.name)
                    out.append(Send((o.cid,), frame))
    if now >= book.next_reread:
        out += reread(hub, now)
    return out


def reread(hub: Hub, now: float) -> list[Effect]:
    """Read moderation from the store now; if a read or a change is under way (it may have read
    before what the admin command line wrote), at the next tick."""
    book = hub.moderation
    if book.rereading or book.pending:
        book.next_reread = now
        return []
    book.next_reread = now + hub.config.admin_poll
    book.rereading = True
    return [hub.ask(ReadModeration(now), _reread, book.generation)]


def _reread(hub: Hub, generation: int, result: Any, now: float) -> list[Effect]:
    """What the store holds now (the admin command line writes it): hold it, and apply it."""
    book = hub.moderation
    book.rereading = False
    if not isinstance(result, ModState) or generation != book.generation or book.pending:
        return []  # failed, or changed here meanwhile: the next re-read brings both
    book.load(result)
    out: list[Effect] = []
    for o in list(hub.sessions.values()):
        if not o.name:
            continue
        banned = book.find("ban", "", subject_of(o), now)
        if banned is not None:
            text = f"You are banned from this server{_why(banned, now)}."
            out += [Send((o.cid,), outbound.system(text, now)), Close(o.cid, p.CLOSE_BANNED, "banned")]
            continue
        for name in list(o.rooms):
            if book.find("ban", name, subject_of(o), now) is not None:
                frame = moderation.notice("ban", moderation.SERVER, now, room=name, username=o.name)
                moderation._out_of_room(hub, o, hub.rooms[name], frame, now, out)
    return out
