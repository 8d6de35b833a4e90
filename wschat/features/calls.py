"""Calls between two people: who is in which call, relaying `call` frames, outcomes. NO I/O.

The server carries a call's set-up (WebRTC offer and answer, ICE candidates, ringing, accept,
decline, hang-up) between its two parties and nobody else; it stores none of it. It keeps a
`Leg` per party of this process (in one process both legs of a call are here), enough to:

- answer "busy" to an invite for someone already in a call, and refuse call frames from
  anyone who is not a party of that call (`not_in_call`);
- resolve two people calling each other at once ("glare"): the call with the lower `call_id`
  goes on, the other ends with reason `glare`, and the pages answer the winner by themselves;
- stop a call nobody answers after `Config.call_timeout` (45 s; `--call-timeout`), end a
  call when a party disconnects, but keep a ringing call ringing while the person called
  reloads the page: the invite and the caller's candidates are given to its next connection;
- post the outcome (missed, declined, or its duration) to the private conversation: a stored
  private message with a `call` object between two accounts (`wschat.features.offline`), an
  unstored `private` notice to each party online otherwise.

Every frame goes through `relay` to the other party's `arrive`, on this process or (cluster
mode) on the process the store finds it on (`wschat.features.call_relay`). Call frames have a
budget of their own (`CALL_RATE`, `CALL_BURST`), apart from the chat and control rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Close, Effect, Send
from wschat.features import call_relay, call_wire
from wschat.features.call_wire import Call
from wschat.hub import devices
from wschat.hub.state import Session
from wschat.names import name_key
from wschat.ratelimit import TokenBucket

if TYPE_CHECKING:
    from wschat.hub.core import Hub

CALL_RATE = 10.0  # call frames a second per connection: an offer, a dozen candidates, an answer
CALL_BURST = 60.0
RING_GRACE = 5.0  # the person called stops ringing this long after the caller would have
MAX_REPLAY = 64  # frames kept for a ringing callee's next connection (the invite, candidates)
KIND_WORDS = {"audio": "voice call", "video": "video call"}


@dataclass(slots=True, eq=False)
class Leg:
    """One party's side of a call, on the process its connection is on."""

    call_id: str
    key: str  # this party's name key
    name: str
    cid: int | None  # its connection; None while a ringing callee's page reconnects
    peer: str  # the other party's name
    peer_key: str
    caller: bool
    kind: str
    deadline: float  # while ringing: when it stops
    stored: bool = False  # both parties are accounts: the outcome is a stored private message
    answered: float = 0.0  # when it was accepted (0: still ringing)
    replay: list[bytes] = field(default_factory=list)  # a ringing callee's frames so far


class CallBook:
    """The hub's call state: one leg per user of this process in a call, budgets per connection."""

    def __init__(self) -> None:
        self.legs: dict[str, Leg] = {}  # name key -> its leg
        self.buckets: dict[int, TokenBucket] = {}  # connection -> its call-frame budget
        self.outboxes: dict[str, call_relay.Outbox] = {}  # cluster mode: frames for other processes


def _frame(fields: dict[str, Any]) -> bytes:
    """The `call` frame a party is sent: the fields a client reads (not the relay's own)."""
    return call_wire.call({k: v for k, v in fields.items() if k not in ("from_key", "stored", "to_key")})


def _refuse(hub: Hub, s: Session, code: str, text: str, call_id: str) -> list[Effect]:
    return [Send((s.cid,), outbound.error(code, text, call_id=call_id))]


def _paced(hub: Hub, s: Session, req: Call, now: float) -> list[Effect] | None:
    """Take one call frame from the connection's budget; a refusal, or None if it may go on."""
    bucket = hub.calls.buckets.get(s.cid)
    if bucket is None:
        bucket = hub.calls.buckets[s.cid] = TokenBucket(CALL_RATE, CALL_BURST, now)
    wait = bucket.take(now)
    if not wait:
        if now >= max(bucket.promised_until, s.chat_bucket.promised_until, s.control_bucket.promised_until):
            s.strikes = 0  # it waited as told
        return None
    s.strikes += 1
    if s.strikes > hub.config.flood_strikes:
        return [Close(s.cid, p.CLOSE_POLICY, "flooding: too many call frames too fast")]
    retry = math.ceil((wait + 0.01) * 10) / 10
    text = (
        f"Too many call frames (at most {CALL_RATE:g} a second, {CALL_BURST:g} at once); wait {retry:g} s. "
        "Keep flooding and you will be disconnected."
    )
    frame = outbound.error(p.RATE_LIMITED, text, retry_after=retry, call_id=req.call_id)
    return [Send((s.cid,), frame)]


def call(hub: Hub, s: Session, req: Call, now: float) -> list[Effect]:
    """A `call` frame from `s`: checked against its leg, then relayed to the other party."""
    refused = _paced(hub, s, req, now)
    if refused is not None:
        return refused
    to_key = name_key(req.to)
    if req.action == "invite":
        return _invite(hub, s, req, to_key, now)
    leg = hub.calls.legs.get(s.key)
    if leg is None or leg.call_id != req.call_id or leg.cid != s.cid or leg.peer_key != to_key:
        text = f"You are not in a call {req.call_id} with {req.to[:40]} (it may have ended)."
        return _refuse(hub, s, p.NOT_IN_CALL, text, req.call_id)
    if req.action in ("ringing", "accept", "decline") and (leg.caller or leg.answered):
        text = f"Only the person called may send '{req.action}', and only while the call rings."
        return _refuse(hub, s, p.BAD_FIELD, text, req.call_id)
    fields: dict[str, Any] = {"call_id": req.call_id, "from": s.name, "from_key": s.key, "action": req.action}
    fields.update(kind=leg.kind, sdp=req.sdp, candidate=req.candidate, reason=req.reason)
    out: list[Effect] = []
    if req.action == "accept":
        leg.answered = now
    elif req.action in ("decline", "hangup"):
        out += end(hub, leg, "declined" if req.action == "decline" else req.reason or "hangup", now)
    return out + relay(hub, leg.peer_key, fields, now)


def _invite(hub: Hub, s: Session, req: Call, to_key: str, now: float) -> list[Effect]:
    if to_key == s.key:
        return _refuse(hub, s, p.BAD_FIELD, "You cannot call yourself.", req.call_id)
    if hub.moderation.applies("mute", s, None, now) is not None:  # as for private messages
        text = "You are muted on this server; you cannot call anyone until the mute ends."
        return _refuse(hub, s, p.MUTED, text, req.call_id)
    out: list[Effect] = []
    leg = hub.calls.legs.get(s.key)
    if leg is not None:
        glare = leg.peer_key == to_key and not leg.caller and not leg.answered
        if not glare:
            text = f"You are already in a call with {leg.peer}; hang up first."
            return _refuse(hub, s, p.IN_CALL, text, req.call_id)
        if leg.call_id < req.call_id:  # both called at once: the lower call_id goes on
            lost = {"call_id": req.call_id, "from": leg.peer, "action": "hangup", "reason": "glare"}
            return [Send((s.cid,), _frame(lost))]
        ended = {"call_id": leg.call_id, "from": s.name, "from_key": s.key, "action": "hangup"}
        ended["reason"] = "glare"
        out += [Send((s.cid,), _frame({**ended, "from": leg.peer}))]
        out += end(hub, leg, "glare", now) + relay(hub, to_key, ended, now)
    stored = s.account and to_key in hub.accounts.registered
    deadline = now + hub.config.call_timeout
    hub.calls.legs[s.key] = Leg(
        req.call_id, s.key, s.name, s.cid, req.to, to_key, True, req.kind, deadline, stored
    )
    fields = {"call_id": req.call_id, "from": s.name, "from_key": s.key, "to": req.to, "action": "invite"}
    fields.update(kind=req.kind, sdp=req.sdp, stored=stored)
    return out + relay(hub, to_key, fields, now)


def relay(hub: Hub, to_key: str, fields: dict[str, Any], now: float) -> list[Effect]:
    """Carry `fields` to the party `to_key`: here if it is on this process, else to the process
    it is on (cluster mode, `wschat.features.call_relay`), else it is offline."""
    if to_key in hub.by_key or to_key in hub.calls.legs or not hub.broker.names_by_store:
        return arrive(hub, to_key, fields, now)
    return call_relay.send(hub, to_key, fields, now)


def arrive(hub: Hub, to_key: str, fields: dict[str, Any], now: float) -> list[Effect]:
    """A frame for the party `to_key` of this process (or for nobody, if it has gone)."""
    action = fields["action"]
    if action == "invite":
        return _invited(hub, to_key, fields, now)
    leg = hub.calls.legs.get(to_key)
    if leg is None or leg.call_id != fields["call_id"]:
        return []  # that call has ended here already (a hang-up crossed this frame)
    leg.peer = fields["from"]  # as its owner spells it
    frame = _frame(fields)
    out: list[Effect] = [Send((leg.cid,), frame)] if leg.cid is not None else []
    if action == "candidate" and not leg.caller and not leg.answered and len(leg.replay) < MAX_REPLAY:
        leg.replay.append(frame)
    elif action == "accept":
        leg.answered = now
    elif action in ("decline", "hangup"):
        out += end(hub, leg, "declined" if action == "decline" else fields.get("reason") or "hangup", now)
    return out


def _invited(hub: Hub, to_key: str, fields: dict[str, Any], now: float) -> list[Effect]:
    cid = hub.by_key.get(to_key)
    s = hub.sessions.get(cid) if cid is not None else None
    caller_key = fields["from_key"]
    if s is None or to_key in hub.calls.legs:
        name = fields["to"] if s is None else s.name
        reason = "offline" if s is None else "busy"
        back = {"call_id": fields["call_id"], "from": name, "from_key": to_key, "action": "hangup"}
        back["reason"] = reason
        out = relay(hub, caller_key, back, now)
        if s is not None and not fields.get("stored"):  # busy: tell them whom they missed
            event = {"call_id": fields["call_id"], "kind": fields["kind"], "outcome": "missed"}
            out.append(_notice(s.cid, fields["from"], s.name, event, now))
        return out
    deadline = now + hub.config.call_timeout + RING_GRACE
    leg = Leg(
        fields["call_id"], to_key, s.name, s.cid, fields["from"], caller_key, False, fields["kind"], deadline
    )
    leg.stored = bool(fields.get("stored"))
    frame = _frame(fields)
    leg.replay.append(frame)
    hub.calls.legs[to_key] = leg
    return [Send((s.cid,), frame)]


def end(hub: Hub, leg: Leg, reason: str, now: float) -> list[Effect]:
    """`leg`'s call is over for its party: forget it; the caller's side posts the outcome."""
    if hub.calls.legs.get(leg.key) is leg:
        del hub.calls.legs[leg.key]
    if reason in ("glare", "offline"):
        return []  # not a call anyone missed: a glare's winner goes on, and offline never rang
    outcome = "ended" if leg.answered else "declined" if reason == "declined" else "missed"
    event: dict[str, Any] = {"call_id": leg.call_id, "kind": leg.kind, "outcome": outcome}
    if leg.answered:
        event["duration"] = round(now - leg.answered)
    caller, callee = (leg.name, leg.peer) if leg.caller else (leg.peer, leg.name)
    text = _sentence(event)
    if leg.stored:
        if not leg.caller:
            return []
        from wschat.features import (
            offline,  # here: offline imports the hub's handlers, which import this module
        )

        return [offline.post_call(hub, caller, leg.key, callee, leg.peer_key, text, event, now)]
    return [] if leg.cid is None else [_notice(leg.cid, caller, callee, event, now)]


def _notice(cid: int, caller: str, callee: str, event: dict[str, Any], now: float) -> Send:
    """An unstored `private` telling one party (a guest's call) how the call went."""
    head = {"id": f"call-{event['call_id']}", "seq": 0, "username": caller, "from": caller, "to": callee}
    notice = outbound._stamped("private", head, _sentence(event), now, {"call": event})
    return Send((cid,), outbound.encode(notice))


def _sentence(event: dict[str, Any]) -> str:
    """What a client that does not know `call` shows: "📞 Missed video call", "📞 Voice call, 1:05"."""
    words = KIND_WORDS.get(event["kind"], "call")
    if event["outcome"] == "ended":
        minutes, seconds = divmod(event["duration"], 60)
        return f"📞 {words.capitalize()}, {minutes}:{seconds:02d}"
    return f"📞 {event['outcome'].capitalize()} {words}"


def tick(hub: Hub, now: float) -> list[Effect]:
    """Stop the calls that rang too long (the caller's side tells the other party)."""
    out: list[Effect] = []
    for leg in [g for g in hub.calls.legs.values() if not g.answered and now >= g.deadline]:
        if hub.calls.legs.get(leg.key) is not leg:
            continue  # ended by its caller's time-out, just before
        gone = {"call_id": leg.call_id, "from": leg.peer, "action": "hangup", "reason": "no_answer"}
        if leg.cid is not None:
            out.append(Send((leg.cid,), _frame(gone)))
        out += end(hub, leg, "no_answer", now)
        if leg.caller:
            ended = {"call_id": leg.call_id, "from": leg.name, "from_key": leg.key, "action": "hangup"}
            ended["reason"] = "no_answer"
            out += relay(hub, leg.peer_key, ended, now)
    return out


def offer(hub: Hub) -> dict[str, Any]:
    """`username_accepted.calls`: the ICE servers the pages use, and how long a call rings."""
    return {"ice_servers": list(hub.config.ice_servers), "ring_timeout": hub.config.call_timeout}


def logged_in(hub: Hub, s: Session, out: list[Effect]) -> None:
    """A user logged in: a call ringing for it with no connection rings on this one."""
    leg = hub.calls.legs.get(s.key)
    ringing = leg is not None and not leg.caller and not leg.answered
    if ringing and leg is not None and (leg.cid is None or leg.cid not in hub.sessions):
        leg.cid = s.cid  # the page reloaded (or took the session over) while it rang
        out.extend(Send((s.cid,), frame) for frame in leg.replay)


def left(hub: Hub, s: Session, now: float) -> list[Effect]:
    """A user's connection is gone: its call ends, unless it is being called (the page may be
    reloading; the call rings on at its next connection until the caller gives up)."""
    hub.calls.buckets.pop(s.cid, None)
    leg = hub.calls.legs.get(s.key)
    if leg is None or leg.cid != s.cid:
        return []
    if not leg.caller and not leg.answered:
        # An account's other device rings instead, if it has one here; else it rings again at
        # the next log-in. (A call rings on one device of an account at a time.)
        others = [cid for cid in devices.connections(hub, s.key) if cid != s.cid]
        leg.cid = others[0] if others else None
        return [Send((leg.cid,), frame) for frame in leg.replay] if others else []
    fields = {"call_id": leg.call_id, "from": s.name, "from_key": s.key, "action": "hangup"}
    fields["reason"] = "disconnected"
    return end(hub, leg, "disconnected", now) + relay(hub, leg.peer_key, fields, now)


HANDLERS: dict[type, tuple[Any, bool]] = {Call: (call, True)}
SELF_PACED = (Call,)  # call frames have a budget of their own (not the chat or control rate)
