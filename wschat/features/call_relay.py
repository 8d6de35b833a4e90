"""Calls across processes (cluster mode): a call frame for a party on another process. NO I/O.

When the other party of a call is not on this process and the broker finds users through the
store (`Broker.names_by_store`, Redis), the frames for them wait in an `Outbox` per recipient:
the store is asked where the recipient is (`FindUser`), then the frames go there in one
`RelayCall` at a time, in order (an ICE candidate must not overtake its offer). That process's
broker hands them to `Hub.call_arrived`, which gives each to `calls.arrive` as if it had been
sent there. A recipient nobody can find is offline: an invite for them ends at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from wschat.effects import Effect
from wschat.records import Command, FindUser, UserPlace

if TYPE_CHECKING:
    from wschat.hub.core import Hub


@dataclass(frozen=True, slots=True)
class RelayCall(Command):
    """Publish `payload` (JSON: {to, frames}) to `process`. Result: whether that process
    listened (False: it is gone)."""

    process: str
    payload: bytes


@dataclass(slots=True)
class Outbox:
    """Frames for one recipient on another process: waiting, and whether some are on their way."""

    pending: list[dict[str, Any]] = field(default_factory=list)
    process: str = ""  # where the recipient is, once the store said


def send(hub: Hub, to_key: str, fields: dict[str, Any], now: float) -> list[Effect]:
    """Queue a frame for `to_key` on another process; the first one asks where it is."""
    box = hub.calls.outboxes.get(to_key)
    if box is not None:
        box.pending.append(fields)  # sent after those before it
        return []
    hub.calls.outboxes[to_key] = Outbox([fields])
    return [hub.ask(FindUser(to_key), _found, to_key)]


def _found(hub: Hub, to_key: str, place: Any, now: float) -> list[Effect]:
    box = hub.calls.outboxes.get(to_key)
    if box is None:
        return []
    if not isinstance(place, UserPlace):  # offline (None), or the store failed
        return _undelivered(hub, to_key, now)
    box.process = place.process
    return _flush(hub, to_key)


def _flush(hub: Hub, to_key: str) -> list[Effect]:
    box = hub.calls.outboxes[to_key]
    if not box.pending:
        del hub.calls.outboxes[to_key]  # the next frame asks again: the recipient may have moved
        return []
    batch, box.pending = box.pending, []
    payload = orjson.dumps({"to": to_key, "frames": batch})
    return [hub.ask(RelayCall(box.process, payload), _relayed, (to_key, batch))]


def _relayed(hub: Hub, context: tuple[str, list[dict[str, Any]]], delivered: Any, now: float) -> list[Effect]:
    to_key, batch = context
    if not isinstance(delivered, BaseException) and delivered:
        return _flush(hub, to_key)
    box = hub.calls.outboxes.get(to_key)
    if box is not None:
        box.pending[:0] = batch
    return _undelivered(hub, to_key, now)


def _undelivered(hub: Hub, to_key: str, now: float) -> list[Effect]:
    """Nobody to give them to: an invite among them ends as "offline" for its caller."""
    from wschat.features import calls  # here: calls imports this module

    box = hub.calls.outboxes.pop(to_key, None)
    out: list[Effect] = []
    for fields in box.pending if box is not None else []:
        if fields["action"] == "invite":
            back = {
                "call_id": fields["call_id"],
                "from": fields["to"],
                "from_key": to_key,
                "action": "hangup",
            }
            back["reason"] = "offline"
            out += calls.arrive(hub, fields["from_key"], back, now)
    return out


def arrived(hub: Hub, payload: bytes, now: float) -> list[Effect]:
    """Frames another process relayed for a user of this one (from the broker)."""
    from wschat.features import calls

    try:
        obj = orjson.loads(payload)
        to_key, frames = obj["to"], obj["frames"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return []  # not from a process of this version; nothing to give anyone
    out: list[Effect] = []
    for fields in frames:
        out += calls.arrive(hub, to_key, fields, now)
    return out
