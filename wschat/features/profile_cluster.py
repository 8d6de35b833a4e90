"""Profiles across processes (cluster mode): a profile change reaches the user's whole audience. NO I/O.

Under `--redis` a user's devices and the members of its rooms may be on several processes. When
its profile changes (presence, status, avatar; `wschat.features.profiles`), the process where
it changed asks the store where the user's other devices are (`FindDevices`, with the presence
each says, kept by `SaveLive`), makes its presence all devices' together (busy on any device is
busy, as on one process), tells its own audience here and publishes the profile to every other
process (`ShareProfile`, on `wschat:news`), whose `arrived` tells the user's devices there and
the members there of its rooms up to `large_room` members (the rooms where it is listed from
another process, `Room.remote`, included). A device going is a change too when the user still
has devices elsewhere (a busy device going may leave it online).

Joining a room is told across processes too (`entered`, rooms up to `large_room` members): a
joiner that is not plain shares its profile for that room alone (`ShareProfile` with `room`),
and gets one `profiles` with the members here and those only elsewhere, whose profiles are read
from Redis (`ReadLiveProfiles`, `wschat.redisprofiles`). Members elsewhere that this process
lists only after the join (it has just followed the room, `Hub.remote_members`) go to the
room's members here the same way (`listed`).

Two devices changing at the same instant on two processes may each read the other's presence
before it was saved: the later of the two profiles then says what one of them says, until
either device changes again (`whois` still answers live).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat.effects import Effect, Send
from wschat.features import profile_wire as wire
from wschat.features.profile_records import LiveProfile, ReadLiveProfiles, ShareProfile
from wschat.hub import devices, rooms
from wschat.hub.state import Room, Session
from wschat.names import name_key
from wschat.records import FindDevices

if TYPE_CHECKING:
    from wschat.hub.core import Hub

# (name key, name, account, force, status, avatar, the presence shown before)
Asked = tuple[str, str, bool, bool, str, str, str]


def announce(hub: Hub, s: Session, force: bool, shown: str | None = None) -> list[Effect]:
    """`s`'s user changed here (or its device `s` went, `shown` what was told before): tell
    everyone, on every process, its profile with every device's presence (if that changed, or
    `force`)."""
    book = hub.profiles
    key = s.key
    before = book.shown.get(key, "online") if shown is None else shown
    asked: Asked = (key, s.name, s.account, force, book.status.get(key, ""), book.avatar.get(key, ""), before)
    if not s.account:  # a guest is one connection, this one: nothing elsewhere to ask about
        return _found(hub, asked, (), 0.0)
    return [hub.ask(FindDevices(key), _found, asked)]


def _found(hub: Hub, asked: Asked, places: Any, now: float) -> list[Effect]:
    # imported here: wschat.features.profiles imports this module (a cycle at import time)
    from wschat.features.profiles import together

    key, name, account, force, status, avatar, before = asked
    book = hub.profiles
    if not isinstance(places, tuple):
        places = ()  # the storage failed: what this process knows (its own devices)
    here = devices.connections(hub, key)
    said = {book.presence.get(c, "online") for c in here} | {d.presence for d in places}
    if not said:
        return []  # gone everywhere meanwhile: `user_leave` says it
    presence = together(said)
    if here:  # what this process's devices show is current (a change meanwhile included)
        status, avatar = book.status.get(key, ""), book.avatar.get(key, "")
        before = book.shown.get(key, "online")
        book.shown[key] = presence
    if not force and before == presence:
        return []
    share = ShareProfile(key, name, account, presence, status, avatar)
    out: list[Effect] = [hub.ask(share, _shared, None)]
    targets = audience_here(hub, key, name)
    if targets:
        out.append(Send(targets, _frame(share)))
    return out


def _shared(hub: Hub, context: None, result: Any, now: float) -> list[Effect]:
    return []  # not published (Redis unreachable): the other processes miss this change only


def arrived(hub: Hub, payload: bytes, now: float) -> list[Effect]:
    """Another process's user changed its profile (`ShareProfile`): tell its audience here."""
    try:
        c = ShareProfile.parse(payload)
    except (ValueError, KeyError, TypeError):
        return []  # not one of ours: nothing crosses Redis but what this code wrote
    if c.room:  # it joined that room (on its process): for the room's members here only
        room = hub.rooms.get(c.room)
        if room is None or rooms.online(room) > hub.config.large_room:
            return []
        mine = devices.connections(hub, c.key)
        targets = tuple(cid for cid in room.members if cid not in mine)
        return [Send(targets, _frame(c))] if targets else []
    book = hub.profiles
    if devices.connections(hub, c.key):  # its devices here show the same from now on
        book.shown[c.key] = c.presence
        for held, value in ((book.status, c.status), (book.avatar, c.avatar)):
            if value:
                held[c.key] = value
            else:
                held.pop(c.key, None)
    targets = audience_here(hub, c.key, c.name)
    return [Send(targets, _frame(c))] if targets else []


def audience_here(hub: Hub, key: str, name: str) -> tuple[int, ...]:
    """The user's connections here and the members here of its rooms up to `large_room`
    members: those it is in here, and those it is listed in from another process."""
    # imported here: wschat.features.profiles imports this module (a cycle at import time)
    from wschat.features.profiles import audience

    targets = dict.fromkeys(audience(hub, key))
    for room in hub.rooms.values():
        if name in room.remote and rooms.online(room) <= hub.config.large_room:
            targets.update(room.members)
    return tuple(targets)


def _frame(c: ShareProfile) -> bytes:
    return wire.profile(c.name, c.presence, c.status, account=c.account, avatar_id=c.avatar)


def entered(hub: Hub, s: Session, room: Room, cards: dict[str, dict[str, Any]]) -> list[Effect]:
    """After `joined` in a room up to `large_room` members: `s`'s profile, if not plain, to the
    room's members on the other processes (`ShareProfile` with the room), and the room's members
    elsewhere read from Redis (`ReadLiveProfiles`) to send in one `profiles` with `cards`, the
    members here; `cards` alone at once when nobody is in the room only elsewhere."""
    out: list[Effect] = []
    book = hub.profiles
    key = s.key
    presence = book.shown.get(key, "online")  # its devices' together, on every process
    status, avatar = book.status.get(key, ""), book.avatar.get(key, "")
    if s.cid not in room.doubles and (presence != "online" or status or avatar):
        share = ShareProfile(key, s.name, s.account, presence, status, avatar, room=room.name)
        out.append(hub.ask(share, _shared, None))
    elsewhere = tuple(name_key(n) for n in room.remote if n not in room.both)
    if elsewhere:
        out.append(hub.ask(ReadLiveProfiles(elsewhere), _read_elsewhere, (s.cid, room.name, cards)))
    elif cards:
        out.append(Send((s.cid,), wire.profiles(room.name, cards)))
    return out


def _read_elsewhere(
    hub: Hub, context: tuple[int | None, str, dict[str, dict[str, Any]]], result: Any, now: float
) -> list[Effect]:
    """The members elsewhere that are not plain join those here in the joiner's `profiles`."""
    # imported here: wschat.features.profiles imports this module (a cycle at import time)
    from wschat.features.profiles import together

    cid, room_name, cards = context
    room = hub.rooms.get(room_name)
    if cid is None:  # for the room's members here (`listed`)
        targets = tuple(room.members) if room is not None else ()
    else:
        s = hub.sessions.get(cid)
        targets = (cid,) if s is not None and room_name in s.rooms else ()
    if not targets:
        return []
    found: dict[str, LiveProfile] = result if isinstance(result, dict) else {}  # failed: those here
    for live in found.values():
        presence = together(set(live.presences))
        if live.name and live.name not in cards and (presence != "online" or live.status or live.avatar):
            cards[live.name] = wire.card(live.name, presence, live.status, live.avatar)
    return [Send(targets, wire.profiles(room_name, cards))] if cards else []


def listed(hub: Hub, room: Room, names: list[str]) -> list[Effect]:
    """Members of the room elsewhere newly listed here (Redis read after a subscription, e.g. a
    room this process has just followed for its first joiner): their profiles, if not plain, to
    the room's members here in one `profiles`."""
    keys = tuple(name_key(n) for n in names if n not in room.both)
    if not keys or not room.members or rooms.online(room) > hub.config.large_room:
        return []
    return [hub.ask(ReadLiveProfiles(keys), _read_elsewhere, (None, room.name, {}))]
