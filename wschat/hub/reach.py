"""Cluster mode: reaching a user's connections on the other processes. NO I/O.

An account may be online on several devices, on several processes at once (PROTOCOL.md,
"Several devices"); a guest is one connection, here or elsewhere. What must reach every
device of a user (a private message that is not stored, its copy on the sender's other
devices) asks the store where they are (`FindDevices`: the places on the *other* processes)
and forwards the frame to each (`Forward`, the process's own channel). This process's
connections are reached directly (`devices.connections`).

`follow` makes an account's devices on the other processes enter a room it joined here (a room
is the user's); they get a `RemoteKick` of action "join" (the one path that acts on another
process's connection, `wschat.features.mod_cluster.arrived`), and `entered_from_elsewhere` lets
them in there. A device logging in asks its devices elsewhere for their rooms the same way
(action "rooms": `rooms_from_elsewhere`, answered by `rooms_asked`). Leaving needs no message:
the other processes hear it as presence, and `wschat.hub.cluster.remote_presence` takes the
devices there out.

`private_elsewhere` is a guest's private message (not stored) to a user that is not online
here: forwarded to each of its places, acknowledged once the first of them has it, and shown
on the sender's other devices wherever they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Effect, Send
from wschat.hub import devices, rooms
from wschat.hub.state import Session
from wschat.records import FindDevices, Forward

if TYPE_CHECKING:
    from wschat.hub.core import Hub


def elsewhere(hub: Hub, keys: tuple[str, ...], frame: bytes) -> list[Effect]:
    """Send `frame` to every connection, on the other processes, of the users `keys`."""
    if not hub.broker.names_by_store:
        return []
    return [hub.ask(FindDevices(key), _found, frame) for key in dict.fromkeys(keys)]


def _found(hub: Hub, frame: bytes, places: Any, now: float) -> list[Effect]:
    if not isinstance(places, tuple):
        return []  # the storage failed: the other processes' devices miss this one
    return [hub.ask(Forward(d.process, d.cid, frame), _sent, None) for d in places]


def _sent(hub: Hub, context: None, result: Any, now: float) -> list[Effect]:
    return []  # a process gone meanwhile: its connections are gone too


def follow(hub: Hub, s: Session, *names: str) -> list[Effect]:
    """Account `s` is in rooms `names`: its devices on the other processes enter them too."""
    if not hub.broker.names_by_store or not names:
        return []
    return [hub.ask(FindDevices(s.key), _act_there, (s.name, names, "join"))]


def rooms_from_elsewhere(hub: Hub, s: Session) -> list[Effect]:
    """Account `s`'s device logged in here: its devices on the other processes are asked to
    bring it into their rooms (action "rooms"; each answers with `follow`)."""
    if not hub.broker.names_by_store:
        return []
    return [hub.ask(FindDevices(s.key), _act_there, (s.name, ("",), "rooms"))]


def _act_there(hub: Hub, context: tuple[str, tuple[str, ...], str], places: Any, now: float) -> list[Effect]:
    # imported here: wschat.features imports the hub (a cycle at import time)
    from wschat.features.mod_records import RemoteKick

    name, names, action = context
    if not isinstance(places, tuple):
        return []
    if action == "rooms":  # the devices of one process share their rooms: ask one of them
        places = tuple({d.process: d for d in places}.values())
    return [
        hub.ask(RemoteKick(d.process, d.cid, room, name, "", action), _sent, None)
        for d in places
        for room in names
    ]


def rooms_asked(hub: Hub, cid: int) -> list[Effect]:
    """Another process's device of this connection's account logged in: bring it into our rooms."""
    s = hub.sessions.get(cid)
    return follow(hub, s, *s.rooms) if s is not None and s.account else []


def entered_from_elsewhere(hub: Hub, cid: int, room: str, now: float) -> list[Effect]:
    """This process's connection `cid` follows its user into `room`, joined on another process."""
    s = hub.sessions.get(cid)
    out: list[Effect] = []
    if (
        s is None
        or not s.account
        or room in s.rooms
        or any(c == cid for c, _, _ in hub.loading.get(room, ()))
    ):
        return out
    try:
        rooms.enter(hub, s, room, None, True, now, out)
    except p.ProtocolError as exc:
        out.append(hub.error(s, exc.code, f"#{room}: {exc}"))
    return out


def private_elsewhere(hub: Hub, s: Session, req: p.Private, key: str, sent: float) -> list[Effect]:
    """A private message (not stored) to `key`, not online here: where is it?"""
    return [hub.ask(FindDevices(key), _places, (s.cid, req, sent))]


def _places(hub: Hub, asked: tuple[int, p.Private, float], places: Any, now: float) -> list[Effect]:
    cid, req, sent = asked
    s = hub.sessions.get(cid)
    if s is None:
        return []
    cmid = req.client_msg_id
    if isinstance(places, BaseException):
        text = "The server could not reach its storage to find the recipient; send it again shortly."
        return [hub.store_failed(cid, text, cmid)]
    if not places:
        return [hub.error(s, p.NO_SUCH_USER, f"{req.to} is not online.", cmid)]
    seq = hub.next_private
    pid = f"p{hub.run_id}-{seq}"
    hub.next_private += 1
    name = places[0].name
    frame = outbound.private(pid, seq, s.name, name, req.message, sent, s.client_id, cmid)
    state = [len(places), False]  # forwards unanswered, acknowledged yet
    context = (cid, req.to, name, frame, pid, seq, cmid, state)
    return [hub.ask(Forward(d.process, d.cid, frame), _forwarded, context) for d in places]


def _forwarded(hub: Hub, asked: tuple, delivered: Any, now: float) -> list[Effect]:
    cid, to, name, frame, pid, seq, cmid, state = asked
    state[0] -= 1
    s = hub.sessions.get(cid)
    if s is None or state[1]:
        return []
    if delivered is not True:
        if state[0]:
            return []  # another of its places may still have it
        if isinstance(delivered, BaseException):
            text = "The server could not reach its storage to deliver that; send it again shortly."
            return [hub.store_failed(cid, text, cmid)]
        return [hub.error(s, p.NO_SUCH_USER, f"{to} is not online.", cmid)]  # its process is gone
    state[1] = True
    out: list[Effect] = [Send(devices.connections(hub, s.key) or (cid,), frame)]
    out += elsewhere(hub, (s.key,), frame)  # the sender's other devices on other processes
    if cmid is not None:
        hub.ids.remember(s.key, cmid, "@" + name, pid, seq)
        out.append(Send((cid,), outbound.ack(cmid, pid, seq, to=name)))
    return out
