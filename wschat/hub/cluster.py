"""Room messages in cluster mode: delivered in seq order, once, whichever process stored them. NO I/O.

When the broker says `stored_seqs` (Redis), the store assigns each message its id and seq in
one atomic step and publishes it to every process that follows the room. Pub/sub is at most
once and its order with the store's answers is not fixed, so every committed message, this
process's own (from the store's answer) and the others' (from the broker), comes through
`arrived`: the room's `last_seq` is then the last seq delivered here, a message after a gap
waits in `room.early` while the missing range is read from the store (`ReadRange`), and a
message already delivered is dropped. A gap the read could not fill is skipped (trimmed by the
retention) only when the message after it was stored before the read ran; one that arrived
while the read ran (this process's own answer can overtake another's copy) gets another read.
No local client sees a gap or a duplicate.

`resync` reads whatever came after `last_seq`: the broker asks for it after its pub/sub
connection was lost (a reconnect, Redis restarted, Redis dropped a slow subscriber) and when
it starts following a room (what was published before the subscription took effect).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Effect, Send
from wschat.hub import devices, history, reach, rooms
from wschat.hub.dedup import room_acks
from wschat.hub.state import Room
from wschat.names import name_key
from wschat.records import Message, ReadRange

if TYPE_CHECKING:
    from wschat.hub.core import Hub

CATCH_UP_PAGE = 500


def arrived(hub: Hub, m: Message, now: float) -> list[Effect]:
    """A message committed by some process: deliver it here, in seq order, exactly once."""
    room = hub.rooms.get(m.room)
    if room is None:  # not followed here (any more): its history is read when it is loaded
        return []
    out: list[Effect] = []
    if m.epoch and m.epoch != room.epoch:
        _new_epoch(hub, room, m.epoch, out)
    if m.seq <= room.last_seq:
        return out
    if m.seq > room.last_seq + 1:
        room.early[m.seq] = m
        _catch_up(hub, room, out)
        return out
    _deliver(hub, room, m, out)
    _drain(hub, room, out)
    return out


def resync(hub: Hub, room_name: str, now: float) -> list[Effect]:
    """Read what `room_name` may have missed after its last delivered seq."""
    room = hub.rooms.get(room_name)
    out: list[Effect] = []
    if room is not None:
        _catch_up(hub, room, out)
    return out


def _deliver(hub: Hub, room: Room, m: Message, out: list[Effect]) -> None:
    m.payload = m.payload or history.chat_payload(m)
    room.last_seq = m.seq
    send = Send(tuple(room.members), m.payload)
    if m.meta is None and m.kind == "chat":  # cheap test first: this runs for every message
        out.append(send)
    else:
        # imported here: wschat.features.events imports this module (a cycle at import time)
        from wschat.features import events

        if m.kind != "chat":  # a reaction, an edit, a delete: its target's state here changes
            events.fold_into_window(hub, room, m, m.text)
        out.extend(events.mentioned(hub, room, m, send) if m.kind == "chat" else [send])
    history.add(hub, room, m)
    room.first_seq = max(room.first_seq, m.seq - hub.config.max_messages_per_room + 1)


def _drain(hub: Hub, room: Room, out: list[Effect]) -> None:
    early = room.early
    if not early:  # almost always: messages come in seq order
        return
    while early:
        m = early.pop(room.last_seq + 1, None)
        if m is None:
            break
        _deliver(hub, room, m, out)
    for seq in [s for s in early if s <= room.last_seq]:
        del early[seq]


def _catch_up(hub: Hub, room: Room, out: list[Effect]) -> None:
    if room.catching_up:
        return
    room.catching_up = True
    room.read_covers = max(room.early, default=room.last_seq)
    out.append(hub.ask(ReadRange(room.name, room.last_seq, CATCH_UP_PAGE), _read, room.name))


def _read(hub: Hub, room_name: str, result: Any, now: float) -> list[Effect]:
    """The store's messages after the room's last delivered seq."""
    room = hub.rooms.get(room_name)
    out: list[Effect] = []
    if room is None:
        return out
    room.catching_up = False
    if isinstance(result, BaseException):
        # Redis is unreachable: the broker asks again (resync) once its connection is back.
        return out
    msgs: list[Message] = result
    if msgs and msgs[0].epoch and msgs[0].epoch != room.epoch:
        _new_epoch(hub, room, msgs[0].epoch, out)
    if msgs and msgs[0].seq > room.last_seq + 1:
        room.last_seq = msgs[0].seq - 1  # older ones were trimmed by the retention: not a gap
    for m in msgs:
        if m.seq == room.last_seq + 1:
            _deliver(hub, room, m, out)
    _drain(hub, room, out)
    if len(msgs) == CATCH_UP_PAGE:
        _catch_up(hub, room, out)
    elif room.early and min(room.early) <= room.read_covers:
        # stored before the read ran, which found nothing before it: trimmed by the retention
        room.last_seq = min(room.early) - 1
        _drain(hub, room, out)
    elif room.early:
        # it arrived while the read ran (this process's own, from the store's answer, can
        # overtake another's copy on pub/sub): what comes before it may still be on its way
        _catch_up(hub, room, out)
    history.evict(hub)
    return out


def committed(hub: Hub, m: Message, repeats: int, holder: int | None, now: float) -> list[Effect]:
    """This process's message was stored (or found stored before): deliver it and acknowledge."""
    room = hub.rooms[m.room]
    out: list[Effect] = [] if m.duplicate else arrived(hub, m, now)
    if m.duplicate and m.epoch == room.epoch and m.seq > room.last_seq:
        # stored by an earlier call whose answer was lost: its copy published to this process
        # is skipped (the broker), so read it from the store
        _catch_up(hub, room, out)
    rooms.touch(hub, room)
    out += room_acks(hub.ids, m, holder, repeats)
    cfg = hub.config
    if hub.window_bytes > cfg.window_budget or len(hub.rooms) > cfg.loaded_rooms:
        history.evict(hub)  # tested here first: for almost every message it has nothing to do
    return out


def _new_epoch(hub: Hub, room: Room, epoch: str, out: list[Effect]) -> None:
    """The store lost the room's history (Redis without its AOF): start it again, newly numbered.

    The members here are told as a resume with an old epoch is (`epoch_changed`), so their
    clients forget their position instead of taking seq 1 for a message they already have.
    """
    history.drop_oldest(hub, room, len(room.window))
    old = room.epoch
    room.epoch = epoch
    room.last_seq = 0
    room.first_seq = 1
    room.early = {s: m for s, m in room.early.items() if m.epoch == epoch}
    if room.members:
        out.append(Send(tuple(room.members), history.on_entry(hub, room, p.Position(old, 0))))


# ---------------------------------------------------------------- presence across processes


def remote_presence(hub: Hub, room_name: str, who: str, process: str, event: str, now: float) -> list[Effect]:
    """Someone on another process joined or left a room this process has in memory.

    A user may be in the room on several processes at once (an account's devices): it is
    listed and counted once, joins when it first appears anywhere and leaves (`disconnect`)
    when its last process lets it go. A room is the user's: when it joins (or leaves, asking
    to) on one device, its devices here follow (PROTOCOL.md, "Several devices").
    """
    room = hub.rooms.get(room_name)
    out: list[Effect] = []
    if room is None:
        return out
    mine = devices.connections(hub, name_key(who))
    here = [c for c in mine if c in room.members]  # the user's connections in the room here
    if event in ("join", "resume"):
        known = who in room.remote or bool(here)
        room.remote.setdefault(who, {})[process] = None
        if here:
            room.both[who] = None
        if not known:
            rooms.announce_join(hub, room, who, event == "resume", now, out)
        for cid in mine:  # an account's devices here follow it into the room
            out += reach.entered_from_elsewhere(hub, cid, room.name, now)
        return out
    processes = room.remote.get(who)
    if processes is None or process not in processes:  # a stale leave of someone who moved on
        return out
    del processes[process]
    if processes and event == "disconnect":
        return out
    del room.remote[who]  # gone from its last process, or it left the room on every device
    room.both.pop(who, None)
    if not here:
        rooms.announce_leave(hub, room, who, event, now, out)
    elif event != "disconnect":  # it asked to leave the room: its devices here follow
        out.append(Send((here[0],), outbound.left(room.name)))  # leave() tells the others
        rooms.leave(hub, hub.sessions[here[0]], room, "leave", now, out)
    return out


def remote_members(
    hub: Hub, room_name: str, members: Mapping[str, str | Collection[str]], now: float
) -> list[Effect]:
    """Who is in the room on the other processes (name -> its processes), as Redis says."""
    room = hub.rooms.get(room_name)
    out: list[Effect] = []
    if room is None:
        return out
    listed = {who: {procs} if isinstance(procs, str) else set(procs) for who, procs in members.items()}
    before = set(room.remote)
    for who, processes in list(room.remote.items()):
        for process in [q for q in processes if q not in listed.get(who, ())]:
            out.extend(remote_presence(hub, room_name, who, process, "disconnect", now))
    for who, processes in listed.items():
        for process in processes:
            out.extend(remote_presence(hub, room_name, who, process, "resume", now))
    from wschat.features import profile_cluster  # (it imports the hub: a cycle at import time)

    return out + profile_cluster.listed(hub, room, [w for w in room.remote if w not in before])


def process_gone(hub: Hub, process: str, now: float) -> list[Effect]:
    """Another process died (its heartbeat expired): everyone it had left every room."""
    out: list[Effect] = []
    for room in list(hub.rooms.values()):
        for who in [w for w, processes in room.remote.items() if process in processes]:
            out.extend(remote_presence(hub, room.name, who, process, "disconnect", now))
    return out


def processes(hub: Hub) -> list[str]:
    """The other processes that have people in this process's rooms."""
    return sorted({q for room in hub.rooms.values() for procs in room.remote.values() for q in procs})


def people_of(hub: Hub, process: str) -> set[tuple[str, str]]:
    """(room, name) of everyone `process` has in this process's rooms."""
    return {(r.name, w) for r in hub.rooms.values() for w, procs in r.remote.items() if process in procs}
