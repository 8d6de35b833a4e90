"""Rooms and presence: entering and leaving, join and leave notices, large-room batching. NO I/O.

Only rooms in use are in memory; a room that is not is loaded from the store first (a
`LoadRoom` command) and whoever wants in waits in `hub.loading` until it answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Effect, Send
from wschat.features import live
from wschat.hub import devices, history
from wschat.hub.state import GENERAL, Loading, Room, Session
from wschat.names import check_room
from wschat.records import LoadRoom, RoomState

if TYPE_CHECKING:
    from wschat.hub.core import Hub


def install(hub: Hub, name: str, state: RoomState | None) -> Room:
    """Make room `name` live in memory, from the store's `state` (None: a new room)."""
    if state is None:
        room = Room(name, hub.epoch)
    else:
        room = Room(name, state.epoch, state.last_seq, state.first_seq)
        history.fill(hub, room, state.recent)
    hub.dormant.pop(name, None)
    hub.rooms[name] = room
    hub.broker.follow(name, room.members, room.last_seq)
    return room


def touch(hub: Hub, room: Room) -> None:
    """Mark `room` as the most recently used (the end of `hub.rooms`)."""
    rooms = hub.rooms
    if next(reversed(rooms)) != room.name:
        rooms[room.name] = rooms.pop(room.name)


def member_room(hub: Hub, s: Session, raw: str) -> Room:
    name = check_room(raw)
    if name not in s.rooms and any(cid == s.cid for cid, _, _ in hub.loading.get(name, ())):
        raise Loading(name)
    if name not in s.rooms:
        raise p.ProtocolError(p.NOT_IN_ROOM, f"You are not in #{name}; join it first.")
    return hub.rooms[name]


def names(hub: Hub, room: Room) -> list[str]:
    """Who is in the room: here, then on the other processes (cluster mode); each user once."""
    sessions, doubles = hub.sessions, room.doubles
    here = [sessions[c].name for c in room.members if c not in doubles]
    both = room.both
    return here + ([w for w in room.remote if w not in both] if both else list(room.remote))


def online(room: Room) -> int:
    """How many users are in the room (a user on several devices, or processes, counts once)."""
    return len(room.members) - len(room.doubles) + len(room.remote) - len(room.both)


def enter(
    hub: Hub, s: Session, name: str, since: p.Position | None, resumed: bool, now: float, out: list[Effect]
) -> None:
    """Put `s` in room `name`: `joined`, `history`, and a `user_join` (not news if `resumed`)."""
    mod_hooks.admit(hub, s, name, now)  # banned from it, or not invited: ProtocolError
    room = hub.rooms.get(name)
    if room is None:  # in the store, or new: load it first (_loaded comes back here)
        _load(hub, s, name, since, resumed, out)
        return
    touch(hub, room)
    rejoin = s.cid in room.members
    if not rejoin:
        if len(s.rooms) >= hub.config.max_rooms_per_user:
            raise p.ProtocolError(p.TOO_MANY_ROOMS, "You are in too many rooms; leave one first.")
        room.members[s.cid] = None
        s.rooms[name] = None
        if s.account and devices.counted_elsewhere(hub, s, room):
            room.doubles[s.cid] = None  # the user is here already, on another device
    small = online(room) <= hub.config.large_room
    listed = names(hub, room) if small else None
    out.append(Send((s.cid,), outbound.joined(name, room.epoch, online(room), listed)))
    out.append(Send((s.cid,), history.on_entry(hub, room, since)))
    out += live.entered(hub, s, room)
    out += profiles.entered(hub, s, room)
    out += mod_hooks.entered(hub, s, room, now)
    if rejoin or s.cid in room.doubles:
        return
    hub.broker.presence(name, s.name, "resume" if resumed else "join")
    if s.name in room.remote:  # in the room on another process already (cluster mode): not news
        room.both[s.name] = None
    else:
        announce_join(hub, room, s.name, resumed, now, out, s.cid)
    for other in devices.siblings(hub, s):  # the room is the user's: its other devices enter too
        if name not in other.rooms:
            try:
                enter(hub, other, name, None, True, now, out)
            except p.ProtocolError as exc:
                out.append(hub.error(other, exc.code, f"#{name}: {exc}"))
    if s.account and not resumed:  # and those on the other processes (cluster mode)
        out += reach.follow(hub, s, name)


def announce_join(
    hub: Hub, room: Room, who: str, resumed: bool, now: float, out: list[Effect], own: int | None = None
) -> None:
    """`user_join` to the room's members here: at once in a small room, batched in a large one.

    `own` is the connection that joined, if it is one of this process's (it hears of its own
    join at once in a large room too); without it, someone joined on another process.
    """
    name = room.name
    small = online(room) <= hub.config.large_room
    listed = names(hub, room) if small else None
    where = "the chat" if name == GENERAL else f"#{name}"
    notice = outbound.presence(
        "user_join", name, who, f"{who} joined {where}", now, online(room), listed, resumed=resumed
    )
    if small:
        out.append(hub.broker.publish(name, notice))
        return
    if own is not None:
        out.append(Send((own,), notice))
    room.joined_count += 1
    room.joins_resumed = room.joins_resumed and resumed
    if len(room.joins) < hub.config.presence_names:
        room.joins.append(who)


def _load(
    hub: Hub, s: Session, name: str, since: p.Position | None, resumed: bool, out: list[Effect]
) -> None:
    waiting = hub.loading.get(name)
    if waiting is not None:
        waiting.append((s.cid, since, resumed))
        return
    if sum(1 for r in hub.rooms.values() if r.members) + len(hub.loading) >= hub.config.max_rooms:
        raise p.ProtocolError(p.TOO_MANY_ROOMS, "The server has too many rooms in use; join an existing one.")
    hub.loading[name] = [(s.cid, since, resumed)]
    out.append(hub.ask(LoadRoom(name), _loaded, name))


def _loaded(hub: Hub, name: str, state: RoomState | BaseException | None, now: float) -> list[Effect]:
    """The store has read room `name` (None: it has no history): let in who was waiting."""
    waiting = hub.loading.pop(name, [])
    held = hub.held.pop(name, [])
    out: list[Effect] = []
    if isinstance(state, BaseException):
        text = f"Could not open #{name}: the server's storage failed. Try again in a few seconds."
        for cid, req in [*((cid, None) for cid, _, _ in waiting), *held]:
            if cid in hub.sessions:
                out.append(hub.store_failed(cid, text, getattr(req, "client_msg_id", None), name))
        return out
    if name not in hub.rooms:
        install(hub, name, state)
    for cid, since, resumed in waiting:
        s = hub.sessions.get(cid)
        if s is None or not s.name:
            continue
        try:
            enter(hub, s, name, since, resumed, now, out)
        except p.ProtocolError as exc:
            out.append(hub.error(s, exc.code, str(exc)))
    for cid, req in held:
        s = hub.sessions.get(cid)
        if s is not None:
            out.extend(hub.handle(s, req, now))
    history.evict(hub)
    return out


def leave(hub: Hub, s: Session, room: Room, reason: str, now: float, out: list[Effect]) -> None:
    """Take `s` out of `room`; `reason` is "leave" (it asked) or "disconnect" (it is gone).

    A user on several devices leaves a room on all of them when it asks (each is told `left`);
    a device that disconnects leaves silently while another device of the user stays in the room.
    """
    del room.members[s.cid]
    del s.rooms[room.name]
    double = room.doubles.pop(s.cid, 0) is None
    out += live.stop_typing(hub, s, room, now)
    staying = devices.present_in(hub, s, room)
    if staying and reason == "disconnect":
        if not double:  # another device stands for the user in the room from now on
            room.doubles.pop(staying[0], None)
        return
    for cid in staying:
        other = hub.sessions[cid]
        del room.members[cid]
        del other.rooms[room.name]
        room.doubles.pop(cid, None)
        out += live.stop_typing(hub, other, room, now)
        out.append(Send((cid,), outbound.left(room.name)))
    hub.broker.presence(room.name, s.name, reason)
    elsewhere = room.both.pop(s.name, 0) is None  # in the room on another process too (cluster)
    if elsewhere and reason != "disconnect":
        del room.remote[s.name]  # it left the room on every device: the other processes follow
    if not elsewhere or reason != "disconnect":  # a device going while others stay is not news
        announce_leave(hub, room, s.name, reason, now, out)
    if not room.members and room.last_seq == 0 and room.name != GENERAL:
        history.unload(hub, room)
    elif not room.members and hub.broker.stored_seqs and not room.inflight and room.name != GENERAL:
        # Cluster mode: a process follows only rooms it has people in (Redis has the rest and
        # the room is read again when someone here joins it).
        history.unload(hub, room)
        history.remember_dormant(hub, room.name)


def announce_leave(hub: Hub, room: Room, who: str, reason: str, now: float, out: list[Effect]) -> None:
    """`user_leave` to the room's members here; `reason` is "leave" or "disconnect"."""
    if online(room) <= hub.config.large_room:
        where = f"#{room.name}" if reason == "leave" else "the chat"
        text = f"{who} left {where}"
        notice = outbound.presence(
            "user_leave", room.name, who, text, now, online(room), names(hub, room), reason=reason
        )
        out.append(hub.broker.publish(room.name, notice))
    else:
        room.left_count += 1
        room.leaves_reason = reason if room.leaves_reason in ("", reason) else None
        if len(room.leaves) < hub.config.presence_names:
            room.leaves.append(who)


def flush_presence(hub: Hub, room: Room, now: float, out: list[Effect]) -> None:
    """A large room's batched notices, at most once a second: who joined, who left, how many."""
    where = "the chat" if room.name == GENERAL else f"#{room.name}"
    count = online(room)
    if room.joined_count:
        text = _who(room.joins, room.joined_count) + f" joined {where}"
        frame = outbound.presence_batch(
            "user_join", room.name, room.joins, room.joined_count, text, now, count, room.joins_resumed
        )
        out.append(hub.broker.publish(room.name, frame))
    if room.left_count:
        reason = room.leaves_reason or None  # None: leaves and disconnects mixed
        where = "the chat" if reason == "disconnect" else f"#{room.name}"  # true of both kinds
        text = _who(room.leaves, room.left_count) + f" left {where}"
        frame = outbound.presence_batch(
            "user_leave", room.name, room.leaves, room.left_count, text, now, count, False, reason
        )
        out.append(hub.broker.publish(room.name, frame))
    room.joins, room.leaves, room.joined_count, room.left_count = [], [], 0, 0
    room.joins_resumed, room.leaves_reason = True, ""


def _who(names: list[str], count: int) -> str:
    others = count - len(names)
    return ", ".join(names) + (f" and {others} others" if others else "")


def listing(hub: Hub, s: Session) -> bytes:
    """The `rooms` frame: rooms in use or with history, busiest first, at most 200."""
    listed = [(online(r), r.name) for r in hub.rooms.values() if online(r) or r.last_seq]
    listed += [(0, name) for name in hub.dormant]
    listed = [r for r in listed if not hub.moderation.hidden(hub, s, r[1])]  # invite-only rooms
    listed.sort(key=lambda r: (-r[0], r[1]))
    return outbound.rooms(
        [{"name": name, "members": n, "joined": name in s.rooms} for n, name in listed[:200]]
    )


# Moderation's hooks (see wschat.features.mod_hooks); imported last, as handlers does its features.
from wschat.features import mod_hooks, profiles  # noqa: E402
from wschat.hub import reach  # noqa: E402
