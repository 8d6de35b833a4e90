"""An account's devices: several connections of one account online at once. NO I/O.

A guest's name is one connection (`hub.by_key`). An account may be logged in on several
devices at once: `hub.by_key` / `hub.by_look` point at the first of them (what the name checks
and the older code paths use), and `hub.devices` maps its name key to every connection it has
here, in log-in order, only while it has two or more (a user with one connection, nearly
everyone, costs no dict there: ~250 bytes each; `_cids` reads both forms). Each device is a
`Session` of its own (its own `session_id`, rate limits, resume token) and its own member of
each of the user's rooms; a room counts and lists the user once: the members that are a second
or later device of a name already counted there are in `Room.doubles`.

Room membership is the user's (as in Matrix and Zulip): a room joined on one device is joined on
all of them, a room left on one is left on all; a device that logs in enters the rooms it asks
for and the rooms its account is in already, and the others follow it into the rooms it brought.
Only when the last device of a room's user goes does the room hear that the user left.

In cluster mode (`--redis`) an account's devices may be on several processes: each process
keeps its own here, the user's connections elsewhere are found in Redis
(`wschat.hub.reach`), and a room counts a user on several processes once (`Room.both`,
`wschat.hub.cluster`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from wschat.hub.state import Room, Session

if TYPE_CHECKING:
    from wschat.hub.core import Hub


def _cids(hub: Hub, key: str) -> Collection[int]:
    """Every connection of name key `key`, in log-in order: `hub.devices` for two or more, else
    the one in `hub.by_key`, else none."""
    cids = hub.devices.get(key)
    if cids is not None:
        return cids
    cid = hub.by_key.get(key)
    return () if cid is None else (cid,)


def connections(hub: Hub, key: str) -> tuple[int, ...]:
    """Every online connection (here) of the user whose name key is `key`: all of an account's
    devices, a guest's one connection, or () when offline."""
    return tuple(_cids(hub, key))


def both_ends(hub: Hub, s: Session, to_key: str) -> tuple[int, ...]:
    """Where a private message from `s` to `to_key` goes: every device of both (the sender's
    other devices show what it sent), each once."""
    return tuple(dict.fromkeys((s.cid, *connections(hub, s.key), *connections(hub, to_key))))


def siblings(hub: Hub, s: Session) -> list[Session]:
    """The other devices of `s`'s account that are online here (none for a guest)."""
    sessions = hub.sessions
    return [sessions[c] for c in _cids(hub, s.key) if c != s.cid and c in sessions]


def sender(hub: Hub, key: str, client_id: str) -> int | None:
    """The connection that sent something (by its `client_id`), else the user's first one."""
    cids = hub.devices.get(key)
    if cids is None:  # one connection at most (nearly everyone): it is the answer either way
        return hub.by_key.get(key)
    for cid in cids:
        s = hub.sessions.get(cid)
        if s is not None and s.client_id == client_id:
            return cid
    return hub.by_key.get(key)


def same_device(hub: Hub, key: str, session_id: str) -> list[int]:
    """The connections of account `key` that are its device `session_id` (at most one, normally)."""
    sessions = hub.sessions
    return [c for c in _cids(hub, key) if c in sessions and sessions[c].session_id == session_id]


def add(hub: Hub, s: Session) -> None:
    """`s` has its name (`hub.by_key` holds its user's first connection): one more connection."""
    first = hub.by_key.get(s.key)
    if first is None or first == s.cid:  # its user's only connection: `hub.by_key` says it all
        return
    cids = hub.devices.get(s.key)
    if cids is None:
        hub.devices[s.key] = {first: None, s.cid: None}
    else:
        cids[s.cid] = None


def remove(hub: Hub, s: Session) -> int | None:
    """`s` is gone: the user's connection that now stands for the name, or None (the last one)."""
    cids = hub.devices.get(s.key)
    if cids is None:  # it was its user's only connection
        return None
    cids.pop(s.cid, None)
    if len(cids) <= 1:  # one left (or none): `hub.by_key` is enough again
        del hub.devices[s.key]
        if not cids:
            return None
    heir = next(iter(cids))
    if hub.by_key.get(s.key) == s.cid:
        hub.by_key[s.key] = heir
        for look in s.looks:
            if hub.by_look.get(look) == s.cid:
                hub.by_look[look] = heir
    return heir


def present_in(hub: Hub, s: Session, room: Room) -> list[int]:
    """The other devices of `s`'s user that are members of `room`."""
    return [c for c in _cids(hub, s.key) if c != s.cid and c in room.members]


def counted_elsewhere(hub: Hub, s: Session, room: Room) -> bool:
    """Whether another device of `s`'s user already stands for it in `room`."""
    return any(c not in room.doubles for c in present_in(hub, s, room))
