"""Rich messaging that is about people, not messages: typing, read positions, receipts. NO I/O.

- Typing: `typing {room, active}` puts the sender in the room's typing list (or takes it out);
  entries expire `TYPING_TTL` seconds after their last renewal, and end when the typist sends a
  message, leaves or disconnects. The room gets the whole list (`typing {room, users, count}`)
  at most once a second (`TYPING_EVERY`), however many type, and only when it changed; a typist
  is not told about itself. Not stored.
- Read positions: `read {room, seq}` moves the user's position in a room forward (never back),
  is stored (`SaveReads`), sent to the user's other connections (`read_position`), and, in a
  room of at most `Config.large_room` members, to the room as `receipt {room, username, seq}`
  unless the user keeps it private (`private: true`, remembered with the position until a
  `read` without it). On entering a room a user gets its own position and, in a small room,
  everyone's shared positions (`receipts`).
- A private message's read receipt: `read {to, seq}` tells `to` (if online and not private)
  that its messages up to that seq were read: `receipt {username, to, seq}`. Not stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat import protocol as p
from wschat.effects import Effect, Send
from wschat.features import wire
from wschat.hub import devices, rooms
from wschat.hub.state import Room, Session
from wschat.names import name_key
from wschat.records import SaveReads

if TYPE_CHECKING:
    from wschat.hub.core import Hub

TYPING_TTL = 6.0
TYPING_EVERY = 1.0


# ------------------------------------------------------------------ typing


def typing(hub: Hub, s: Session, req: wire.Typing, now: float) -> list[Effect]:
    room = rooms.member_room(hub, s, req.room)
    known = s.cid in room.typing
    if req.active:
        room.typing[s.cid] = now + TYPING_TTL
    else:
        room.typing.pop(s.cid, None)
    if known != req.active:
        room.typing_dirty = True
    return _flush_typing(hub, room, now)


def stop_typing(hub: Hub, s: Session, room: Room, now: float) -> list[Effect]:
    """`s` sent a message in `room`, left it or disconnected: it no longer types there."""
    if room.typing.pop(s.cid, None) is None:
        return []
    room.typing_dirty = True
    return _flush_typing(hub, room, now)


def _flush_typing(hub: Hub, room: Room, now: float) -> list[Effect]:
    """The room's typing list, if it changed and the last one went out a second ago or more."""
    if not room.typing_dirty or now < room.typing_next:
        return []
    room.typing_dirty = False
    room.typing_next = now + TYPING_EVERY
    sessions = hub.sessions
    # a user typing on two devices is listed once
    everyone = list(dict.fromkeys(sessions[c].name for c in room.typing if c in sessions))
    # each member is sent the list without itself, and only if that changed for it; members
    # that see the same list share one frame, built once
    groups: dict[tuple, list[int]] = {}
    shown: dict[int, tuple] = {}
    shown_all = (tuple(everyone[: wire.TYPING_SHOWN]), len(everyone))
    head = everyone[: wire.TYPING_SHOWN + 1]
    for cid in room.members:
        own = sessions[cid].name
        if own not in everyone:
            seen = shown_all
        else:  # names are unique: leaving its own out of the first few is enough
            seen = (tuple([n for n in head if n != own][: wire.TYPING_SHOWN]), len(everyone) - 1)
        shown[cid] = seen
        if room.typing_shown.get(cid, ((), 0)) != seen:
            groups.setdefault(seen, []).append(cid)
    room.typing_shown = {c: v for c, v in shown.items() if v != ((), 0)}
    return [Send(tuple(cids), wire.typing(room.name, list(names), n)) for (names, n), cids in groups.items()]


def tick(hub: Hub, now: float) -> list[Effect]:
    """About once a second: expire typists, send the lists that changed."""
    out: list[Effect] = []
    for room in hub.rooms.values():
        if not room.typing and not room.typing_dirty:
            continue
        expired = [c for c, until in room.typing.items() if until <= now]
        for c in expired:
            del room.typing[c]
        room.typing_dirty = room.typing_dirty or bool(expired)
        out += _flush_typing(hub, room, now)
    return out


# ------------------------------------------------------------------ read positions


class Reads:
    """Every user's read positions: user_key -> room -> (seq, private)."""

    def __init__(self, stored: list[tuple[str, str, int, bool]]) -> None:
        self.by_user: dict[str, dict[str, tuple[int, bool]]] = {}
        for key, room, seq, private in stored:
            self.by_user.setdefault(key, {})[room] = (seq, bool(private))

    def get(self, key: str, room: str) -> tuple[int, bool] | None:
        return self.by_user.get(key, {}).get(room)


def read(hub: Hub, s: Session, req: wire.Read, now: float) -> list[Effect]:
    if req.to is not None:
        return _read_private(hub, s, req)
    room = rooms.member_room(hub, s, req.room or "general")
    seq = min(req.seq, room.last_seq)
    before = hub.reads.get(s.key, room.name)
    if before is not None and seq <= before[0] and req.private == before[1]:
        return []  # only forward
    seq = max(seq, before[0] if before else 0)
    hub.reads.by_user.setdefault(s.key, {})[room.name] = (seq, req.private)
    out: list[Effect] = [hub.ask(SaveReads([(s.key, room.name, seq, req.private)]), _saved, None)]
    others = tuple(c for c in _connections(hub, s.key) if c != s.cid)
    if others:
        out.append(Send(others, wire.read_position(room.name, seq)))
    if not req.private and len(room.members) <= hub.config.large_room:
        out.append(hub.broker.publish(room.name, wire.receipt(s.name, seq, room=room.name)))
    return out


def _saved(hub: Hub, context: Any, result: Any, now: float) -> list[Effect]:
    return []  # a position lost to a storage failure is sent again with the next `read`


def remote_read(hub: Hub, key: str, room_name: str, seq: int, private: bool) -> list[Effect]:
    """Cluster mode: a read position saved on another process: keep it, and tell this process's
    connections of that user and, when it is shared, a small room's members here."""
    before = hub.reads.get(key, room_name)
    if before is not None and seq <= before[0] and private == before[1]:
        return []
    hub.reads.by_user.setdefault(key, {})[room_name] = (max(seq, before[0] if before else 0), private)
    out: list[Effect] = []
    if mine := _connections(hub, key):
        out.append(Send(tuple(mine), wire.read_position(room_name, seq)))
    room = hub.rooms.get(room_name)
    if room is None or private or not room.members or len(room.members) > hub.config.large_room:
        return out
    name = next((who for who in room.remote if name_key(who) == key), None)
    if name is not None:
        out.append(Send(tuple(room.members), wire.receipt(name, seq, room=room_name)))
    return out


def _connections(hub: Hub, key: str) -> tuple[int, ...]:
    """The user's connections: all of an account's devices (wschat.hub.devices)."""
    return devices.connections(hub, key)


def _read_private(hub: Hub, s: Session, req: wire.Read) -> list[Effect]:
    target = hub.by_key.get(name_key(req.to or ""))
    if target is None:
        return [hub.error(s, p.NO_SUCH_USER, f"{req.to} is not online.")]
    if req.private:
        return []
    frame = wire.receipt(s.name, req.seq, to=hub.sessions[target].name)
    return [Send(_connections(hub, name_key(req.to or "")), frame)]


def entered(hub: Hub, s: Session, room: Room) -> list[Effect]:
    """After `joined` and `history`: the user's own position, and everyone's in a small room."""
    out: list[Effect] = []
    mine = hub.reads.get(s.key, room.name)
    if mine is not None:
        out.append(Send((s.cid,), wire.read_position(room.name, mine[0])))
    if len(room.members) <= hub.config.large_room:
        shared: dict[str, int] = {}
        for cid in room.members:
            other = hub.sessions.get(cid)
            pos = hub.reads.get(other.key, room.name) if other is not None else None
            if other is not None and pos is not None and not pos[1] and cid != s.cid:
                shared[other.name] = pos[0]
        if shared:
            out.append(Send((s.cid,), wire.receipts(room.name, shared)))
    return out


HANDLERS = {wire.Typing: typing, wire.Read: read}

from wschat.hub.handlers import HANDLERS as _REGISTRY  # noqa: E402  (see wschat.hub.handlers)

_REGISTRY.update((kind, (handler, True)) for kind, handler in HANDLERS.items())
