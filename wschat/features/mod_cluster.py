"""Moderation across processes (cluster mode): a kick, mute or ban reaches the user wherever it is. NO I/O.

Under `--redis` the user a moderator names may be connected to other processes: a guest there
(one connection), or an account with devices here and there (PROTOCOL.md, "Several devices").
The `kick`, `mute`, `unmute` and `ban` handlers are wrapped: unless the target is a guest of
this process, the store is asked first where its connections on the other processes are
(`FindDevices`); the handler then runs with those places known (`ModBook.places`: a guest
elsewhere is found, and banned or muted by its address as one here would be), and when it
acted, each place gets a `RemoteKick` carrying the action (the one path for moderation across
processes, on that process's own channel). That process applies it at once (`arrived`): it
adds or lifts the restriction in its book (the store has it too: every process re-reads
moderation every two seconds), tells the connection, closes it (a server ban, a server kick)
or takes it out of the room. An `unban` that lifted a ban sends one `RemoteKick` of action
"unban" to every process (no process named: it goes on `wschat:news`), which lift it at once
too; the user need not be online anywhere. The same message, of action "join", brings an
account's device here into a room the account joined on another process
(`wschat.hub.reach.follow`), and of action "rooms" asks this process's device to tell a device
that logged in elsewhere its rooms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Close, Effect, Send
from wschat.features import mod_wire, moderation
from wschat.features.mod_records import RemoteKick, Restriction
from wschat.hub import reach
from wschat.hub.handlers import HANDLERS
from wschat.hub.state import Session
from wschat.names import InvalidName, check_room, name_key
from wschat.records import FindDevices, UserPlace

if TYPE_CHECKING:
    from wschat.hub.core import Hub

ACTIONS = {mod_wire.Kick: "kick", mod_wire.Mute: "mute", mod_wire.Unmute: "unmute", mod_wire.Ban: "ban"}


def _wrap(kind: type, action: str) -> None:
    inner, needs_name = HANDLERS[kind]

    def run(hub: Hub, s: Session, req: Any, now: float) -> list[Effect]:
        if not hub.broker.names_by_store or getattr(req, "address", None) is not None or not req.username:
            return inner(hub, s, req, now)
        key = name_key(req.username.strip())
        cid = hub.by_key.get(key)
        if key == s.key or (cid is not None and not hub.sessions[cid].account):
            return inner(hub, s, req, now)  # a guest is one connection: this one, here
        return [hub.ask(FindDevices(key), found, (s.cid, req, key))]

    def found(hub: Hub, context: tuple[int, Any, str], places: Any, now: float) -> list[Effect]:
        cid, req, key = context
        s = hub.sessions.get(cid)
        if s is None:
            return []
        if isinstance(places, BaseException):
            text = "The server could not reach its storage to find that user; try again shortly."
            return [hub.error(s, p.STORE_FAILED, text)]
        book = hub.moderation
        book.places = {key: places}
        before = book.generation
        try:
            out = inner(hub, s, req, now)
        finally:
            book.places = {}
        if book.generation != before and places:  # it acted: the other processes act too
            out += _tell(hub, s, req, action, key, places, now)
        return out

    HANDLERS[kind] = (run, needs_name)


def _tell(
    hub: Hub, s: Session, req: Any, action: str, key: str, places: tuple[UserPlace, ...], now: float
) -> list[Effect]:
    """A `RemoteKick` carrying the action to each of the user's connections elsewhere."""
    try:
        room = check_room(req.room) if req.room is not None else ""
    except InvalidName:
        return []
    registered = key in hub.accounts.registered
    subject = f"account:{key}" if registered else f"address:{places[0].address}"
    seconds = getattr(req, "seconds", 0)
    until = now + seconds if seconds else 0.0
    reason = getattr(req, "reason", "")
    name = places[0].name
    return [
        hub.ask(
            RemoteKick(d.process, d.cid, room, s.name, reason, action, subject, name, until),
            moderation._kick_sent,
            None,
        )
        for d in places
    ]


def arrived(hub: Hub, payload: bytes, now: float) -> list[Effect]:
    """A moderator on another process acted on this process's connection (`RemoteKick`)."""
    try:
        c = RemoteKick.parse("", payload)
    except (ValueError, KeyError, TypeError):
        return []  # not one of ours: nothing crosses Redis but what this code wrote
    if c.action == "unban":  # for every process, whoever is online (`unban_everywhere`)
        hub.moderation.lift("ban", c.room, c.subject)
        return []
    s = hub.sessions.get(c.cid)
    if s is None or not s.name:
        return []
    if c.action == "join":  # not moderation: the user joined a room on another device
        return reach.entered_from_elsewhere(hub, c.cid, c.room, now)
    if c.action == "rooms":  # nor this: another device of the user logged in, elsewhere
        return reach.rooms_asked(hub, c.cid)
    room = hub.rooms.get(c.room) if c.room else None
    if c.action == "kick":
        return _kicked(hub, c, s, room is not None and c.cid in room.members, now)
    book = hub.moderation
    if c.action == "unmute":
        book.lift("mute", c.room, c.subject)
        if c.room:
            return []  # the room's event says it
        return [Send((c.cid,), moderation.notice("unmute", c.by, now, username=s.name))]
    book.add(Restriction(c.action, c.room, c.subject, c.name, c.until, c.reason, c.by))
    until = outbound.timestamp(c.until) if c.until else None
    fields = {"username": s.name, "until": until, "reason": c.reason}
    if c.action == "mute":
        return [] if c.room else [Send((c.cid,), moderation.notice("mute", c.by, now, **fields))]
    if not c.room:  # a server ban
        return [
            Send((c.cid,), moderation.notice("ban", c.by, now, **fields)),
            Close(c.cid, p.CLOSE_BANNED, "banned"),
        ]
    out: list[Effect] = []
    if room is not None and c.cid in room.members:
        frame = moderation.notice("ban", c.by, now, room=c.room, **fields)
        moderation._out_of_room(hub, s, room, frame, now, out)
    return out


def _kicked(hub: Hub, c: RemoteKick, s: Session, in_room: bool, now: float) -> list[Effect]:
    if not c.room or in_room:
        return moderation.kicked_here(hub, c.cid, c.room, c.by, c.reason, now)
    # out of the room already (its device elsewhere left it, and this one followed)
    frame = moderation.notice("kick", c.by, now, room=c.room, username=s.name, reason=c.reason)
    return [Send((c.cid,), frame)]


def _wrap_unban() -> None:
    """An unban applies at once on every process: the user it lifts may come back through any
    of them, and need not be online anywhere (a server ban closed its connections)."""
    inner, needs_name = HANDLERS[mod_wire.Unban]

    def run(hub: Hub, s: Session, req: Any, now: float) -> list[Effect]:
        if not hub.broker.names_by_store:
            return inner(hub, s, req, now)
        book = hub.moderation
        bans = [r for (what, _, _), r in book.restrictions.items() if what == "ban"]
        out = inner(hub, s, req, now)
        lifted = [r for r in bans if (r.what, r.scope, r.subject) not in book.restrictions]
        return out + [unban_everywhere(hub, s.name, r) for r in lifted]

    HANDLERS[mod_wire.Unban] = (run, needs_name)


def unban_everywhere(hub: Hub, by: str, r: Restriction) -> Effect:
    """A `RemoteKick` of action "unban" for every process (no process named: `wschat:news`)."""
    lift = RemoteKick("", 0, r.scope, by, "", "unban", r.subject, r.name)
    return hub.ask(lift, moderation._kick_sent, None)


for _kind, _action in ACTIONS.items():
    _wrap(_kind, _action)
_wrap_unban()
