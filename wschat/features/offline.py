"""Private messages between accounts: stored, sequenced per conversation, delivered once. NO I/O.

A `private` from an account to a registered name is stored first (`StorePrivate`), then
delivered to both ends that are online and acknowledged (`ack` with `stored: true`); if the
recipient is online its delivery is recorded (`MarkDelivered`) and the sender told (`delivered`).
When an account logs in, its device is given what it has not seen yet (`ReadMissed`: what it
received while offline and what its other devices sent), oldest first, marked `offline: true`;
the senders online are told `delivered`. Every device has a cursor in the store (the last id it
was given), moved on with each delivery, so a message reaches each device once. A conversation
pages back with `fetch_private` like a room's history. Private messages that involve a guest
go the old way (`wschat.hub.handlers.private`): not stored, online only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Effect, Send
from wschat.features.private_records import (
    DeliverStored,
    MarkDelivered,
    ReadConversation,
    ReadMissed,
    StoredPrivate,
    StorePrivate,
    conversation_key,
)
from wschat.hub import devices, handlers
from wschat.hub.state import Session
from wschat.names import name_key
from wschat.records import FindDevices

if TYPE_CHECKING:
    from wschat.hub.core import Hub


def _pid(m: StoredPrivate) -> str:
    return f"pm{m.id}"


def _frame(m: StoredPrivate, *, offline: bool = False) -> bytes:
    return outbound.stored_private(
        _pid(m), m.seq, m.sender, m.recipient, m.text, m.ts, m.client_msg_id,
        offline=offline, delivered=m.delivered, file=m.file, call=m.call, e2ee=m.e2ee,
    )  # fmt: skip


def _devices(hub: Hub, key: str) -> list[Session]:
    """The account's devices online here (every one is given each message, once)."""
    sessions = hub.sessions
    found = (sessions.get(cid) for cid in devices.connections(hub, key))
    return [s for s in found if s is not None and s.account]


def private(hub: Hub, s: Session, req: p.Private, now: float) -> list[Effect]:
    """`private`: stored when both ends are accounts, else as before (online only)."""
    to_key = name_key(req.to)
    recipient = hub.accounts.registered.get(to_key)
    if not s.account or recipient is None:
        return handlers.private(hub, s, req, now)
    cmid = req.client_msg_id
    if cmid is not None and (dup := hub.ids.repeat_ack(s.key, cmid)) is not None:
        return [Send((s.cid,), dup)]
    if req.e2ee is not None:  # end-to-end encrypted (wschat.features.e2ee_hub checked it)
        return store(hub, s, recipient, "", cmid, now, e2ee=req.e2ee)
    return store(hub, s, recipient, req.message, cmid, now)


def store(
    hub: Hub,
    s: Session,
    recipient: str,
    text: str,
    cmid: str | None,
    now: float,
    file: dict | None = None,
    e2ee: dict | None = None,
) -> list[Effect]:
    """Store a private message from the account `s` to the account `recipient`, then deliver it;
    `file`: it shares a file (wschat.features.files); `e2ee`: it is encrypted (no text)."""
    if cmid is not None and not hub.ids.storing(s.key, cmid):  # the first copy is being stored: ack both then
        return []
    to_key = name_key(recipient)
    conversation = conversation_key(s.key, to_key)
    m = StoredPrivate(conversation, s.name, s.key, recipient, to_key, text, now, cmid, file=file, e2ee=e2ee)
    return [hub.ask(StorePrivate([m]), _stored, (m, s.cid))]


def post_call(
    hub: Hub, sender: str, sender_key: str, recipient: str, to_key: str, text: str, call: dict, now: float
) -> Effect:
    """Store a call's outcome in the conversation of two accounts, then deliver it like a message
    (`wschat.features.calls`; the caller is its sender)."""
    m = StoredPrivate(conversation_key(sender_key, to_key), sender, sender_key, recipient, to_key, text, now)
    m.call = call
    return hub.ask(StorePrivate([m]), _stored, (m, 0))  # no device of the sender to acknowledge


def _stored(hub: Hub, context: tuple[StoredPrivate, int], result: Any, now: float) -> list[Effect]:
    m, cid = context
    cmid = m.client_msg_id
    repeats = hub.ids.stored(m.sender_key, cmid) if cmid is not None else 0
    senders = _devices(hub, m.sender_key)
    # the device that sent it is acknowledged; another of the account if it went meanwhile
    sender = next((d for d in senders if d.cid == cid), senders[0] if senders else None)
    if isinstance(result, BaseException):
        if sender is None:
            return []
        text = "The server could not save your private message; it was not delivered. Send it again."
        return [hub.store_failed(sender.cid, text, cmid)]
    if m.duplicate:  # stored before (Redis: a resend after a restart): acknowledged, not delivered again
        hub.ids.remember(m.sender_key, cmid or "", "@" + m.recipient, _pid(m), m.seq)
        ack = outbound.ack(cmid or "", _pid(m), m.seq, to=m.recipient, duplicate=True, stored=True)
        return [Send((sender.cid,), ack) for _ in range(1 + repeats)] if sender is not None else []
    recipients = _devices(hub, m.recipient_key)
    if recipients:
        m.delivered = now
    out: list[Effect] = []
    ends = {d.cid: d for d in (*senders, *recipients)}  # a note to oneself: each device once
    cursors = {d.session_id: m.id for d in ends.values() if not _catching_up(hub, d.cid)}
    if ends:
        out.append(Send(tuple(ends), _frame(m)))
    if cmid is not None:
        pid = _pid(m)
        hub.ids.remember(m.sender_key, cmid, "@" + m.recipient, pid, m.seq)
        if sender is not None:
            ack = outbound.ack(cmid, pid, m.seq, to=m.recipient, stored=True)
            out.extend(Send((sender.cid,), ack) for _ in range(1 + repeats))
    if recipients and senders:
        frame = outbound.delivered(_pid(m), m.recipient, m.seq, now)
        out.append(Send(tuple(d.cid for d in senders), frame))
    if cursors:
        ids = [m.id] if recipients else []
        out.append(hub.ask(MarkDelivered(ids, now, cursors), _written, None))
    if hub.broker.names_by_store:  # cluster mode: both accounts' devices on other processes too
        out.append(hub.ask(FindDevices(m.recipient_key), _found, (m, True)))
        if m.sender_key != m.recipient_key:
            out.append(hub.ask(FindDevices(m.sender_key), _found, (m, False)))
    return out


def _found(hub: Hub, context: tuple[StoredPrivate, bool], places: Any, now: float) -> list[Effect]:
    """Cluster mode: devices of the recipient (or the sender's other devices) on other
    processes: deliver it there too, each once."""
    m, to_recipient = context
    if not isinstance(places, tuple) or not places:
        return []  # offline there (or the storage failed): given at their next log-in
    # the sender hears `delivered` once: told already if a device here got it
    told = [not to_recipient or m.delivered is not None]
    if to_recipient and m.delivered is None:
        m.delivered = now
    frame = _frame(m)
    return [
        hub.ask(
            DeliverStored(d.process, d.cid, d.session_id, m.id, frame), _forwarded, (m, d, to_recipient, told)
        )
        for d in places
    ]


def _forwarded(hub: Hub, context: tuple, result: Any, now: float) -> list[Effect]:
    m, _, to_recipient, told = context
    if result is not True:
        return []
    # That device's cursor is moved by its process, when the connection is still there
    # (`delivered_here`): gone meanwhile (a stale place), it is given the message at its next log-in.
    out: list[Effect] = [hub.ask(MarkDelivered([m.id], now, {}), _written, None)] if to_recipient else []
    senders = _devices(hub, m.sender_key)
    if senders and not told[0]:
        told[0] = True  # once, whichever of the recipient's devices got it first
        frame = outbound.delivered(_pid(m), m.recipient, m.seq, now)
        out.append(Send(tuple(d.cid for d in senders), frame))
    return out


def delivered_here(hub: Hub, payload: bytes, now: float) -> list[Effect]:
    """Cluster mode: a stored private message for this process's device (`DeliverStored`): given
    to it if it is still connected, and its cursor moved on as a delivery here moves it, so its
    next log-in does not give it again. A device gone meanwhile keeps its cursor: it gets the
    message at its next log-in (nothing is lost between the two processes)."""
    try:
        c = DeliverStored.parse("", payload)
    except ValueError:
        return []  # not one of ours: nothing crosses Redis but what this code wrote
    s = hub.sessions.get(c.cid)
    if s is None or s.session_id != c.session_id:
        return []
    out: list[Effect] = [Send((c.cid,), c.frame)]
    if c.session_id and not _catching_up(hub, c.cid):
        out.append(hub.ask(MarkDelivered([], now, {c.session_id: c.last_id}), _written, None))
    return out


def _catching_up(hub: Hub, cid: int) -> bool:
    """Cluster mode: whether device `cid` is still being given what it missed (`ReadMissed` asked,
    not answered). Its cursor must not move past those meanwhile: the Redis store runs commands
    at once, not in order, so the read could start after the move and skip them. Such a message
    is then given again at its next log-in (same `id`), never lost. SQLite runs them in order."""
    if not hub.broker.names_by_store:
        return False
    return any(then is _missed and context[0] == cid for then, context in hub.asked.values())


def _written(hub: Hub, context: None, result: Any, now: float) -> list[Effect]:
    # A cursor or delivery time not saved (the storage failed) means at worst that a device is
    # given a message again at its next log-in, which clients recognise by its id.
    return []


def after_login(hub: Hub, s: Session) -> Effect:
    """Ask for what this device has not been given yet (called when an account logs in)."""
    return hub.ask(ReadMissed(s.key, s.session_id), _missed, (s.cid, s.session_id))


def _missed(hub: Hub, context: tuple[int, str], result: Any, now: float) -> list[Effect]:
    cid, session_id = context
    s = hub.sessions.get(cid)
    if s is None or s.session_id != session_id or isinstance(result, BaseException) or not result:
        if isinstance(result, BaseException) and s is not None:
            text = "The server could not read your private messages; log in again to get them."
            return [hub.error(s, p.STORE_FAILED, text)]
        return []
    messages: list[StoredPrivate] = result
    out: list[Effect] = []
    newly = []
    for m in messages:
        if m.recipient_key == s.key and m.delivered is None:
            m.delivered = now
            newly.append(m)
        out.append(Send((cid,), _frame(m, offline=True)))
    for m in newly:
        told = tuple(d.cid for d in _devices(hub, m.sender_key) if d.cid != cid)
        if told:
            out.append(Send(told, outbound.delivered(_pid(m), m.recipient, m.seq, now)))
    ids = [m.id for m in newly]
    out.append(hub.ask(MarkDelivered(ids, now, {session_id: messages[-1].id}), _written, None))
    if len(messages) == ReadMissed(s.key, session_id).limit:  # more waiting: the next batch
        out.append(after_login(hub, s))
    return out


def fetch_private(hub: Hub, s: Session, req: p.FetchPrivate, now: float) -> list[Effect]:
    """A page of the stored conversation with `with`, oldest first (like `fetch_history`)."""
    other = hub.accounts.registered.get(name_key(req.with_))
    if not s.account:
        return [hub.error(s, p.NOT_AN_ACCOUNT, "Only private messages between accounts are stored.")]
    if other is None:
        return [hub.error(s, p.NO_SUCH_USER, f"{req.with_[:40]} is not a registered name.")]
    conversation = conversation_key(s.key, name_key(other))
    asked = ReadConversation(conversation, req.before_seq, req.limit + 1)
    return [hub.ask(asked, _page_read, (s.cid, other, req.limit))]


def _page_read(hub: Hub, context: tuple[int, str, int], result: Any, now: float) -> list[Effect]:
    cid, other, limit = context
    s = hub.sessions.get(cid)
    if s is None:
        return []
    if isinstance(result, BaseException):
        text = "The server could not read that conversation; ask again in a few seconds."
        return [hub.error(s, p.STORE_FAILED, text)]
    messages: list[StoredPrivate] = result
    more = len(messages) > limit
    page = messages[-limit:]
    return [Send((cid,), outbound.private_history(other, [_frame(m) for m in page], more))]


HANDLERS: dict[type, tuple[Any, bool]] = {
    p.Private: (private, True),
    p.FetchPrivate: (fetch_private, True),
}
