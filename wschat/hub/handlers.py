"""One handler per request kind, and the registry that maps each to its handler. NO I/O.

A handler takes the hub, the sender's session, the decoded request and the time, and returns
the effects. Handlers that need the store ask it with `hub.ask(command, continuation, context)`;
the continuation gets the result through `Hub.store_result`. `HANDLERS` maps every request
class of `wschat.protocol` to its handler; a request class without one is a bug that the hub
reports as `internal_error`, never as some other answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wschat import outbound
from wschat import protocol as p
from wschat.effects import Effect, Send
from wschat.features import accounts, fold, offline, wire
from wschat.hub import cluster, devices, history, reach, rooms, sessions
from wschat.hub.dedup import room_acks
from wschat.hub.state import Loading, Session
from wschat.names import check_room, name_key
from wschat.records import Append, Message, ReadMessage, ReadPage

if TYPE_CHECKING:
    from wschat.hub.core import Hub

Handler = Callable[["Hub", Session, Any, float], list[Effect]]


def chat(hub: Hub, s: Session, req: p.Chat, now: float, quoted: dict | None = None) -> list[Effect]:
    """A room message: stored first (Append); delivered and acknowledged once committed.
    A reply quotes the message it answers (`quoted`), read from the store first if need be."""
    room = rooms.member_room(hub, s, req.room)
    cmid = req.client_msg_id
    # a resend is acknowledged again even if the message it answers has gone since
    if cmid is not None and (dup := hub.ids.repeat_ack(s.key, cmid)) is not None:
        return [Send((s.cid,), dup)]
    if req.reply_to and quoted is None:
        quoted = events.reply_preview(hub, s, room, req.reply_to)
        if quoted is None:
            return [hub.ask(ReadMessage(room.name, req.reply_to), _reply_read, (s.cid, req))]
    if cmid is not None and not hub.ids.storing(s.key, cmid):  # the first copy is being stored
        return []
    # 0 when the store assigns seqs (cluster mode): the message then carries the last seq this
    # process knew until the store answers, which tells the store a lost room from a new one
    seq = hub.broker.next_seq(room.name) or room.last_seq
    if seq > room.last_seq:
        room.last_seq = seq
    room.inflight += 1
    m = Message(hub.next_id, room.name, seq, s.name, s.key, s.client_id, req.message, now, cmid, room.epoch)
    if req.reply_to:
        m.reply_to, m.meta = req.reply_to, {"reply_preview": quoted}
    if req.mentions:
        m.meta = {**(m.meta or {}), "mentions": list(req.mentions)}
    hub.next_id += 1
    return [hub.ask(Append([m]), _committed, m)]


def _reply_read(hub: Hub, ctx: tuple[int, p.Chat], result: Any, now: float) -> list[Effect]:
    """The message a reply answers, read from the store: go on with the reply, or refuse it."""
    cid, req = ctx
    s = hub.sessions.get(cid)
    if s is None:
        return []
    cmid = req.client_msg_id
    if isinstance(result, BaseException):
        text = "The server could not read the message you answer (its storage failed); send it again."
        return [hub.store_failed(cid, text, cmid)]
    try:
        if not isinstance(result, Message) or result.kind != "chat":
            raise p.ProtocolError(p.NO_SUCH_MESSAGE, f"There is no message {req.reply_to} to reply to.")
        quoted = events.quote(rooms.member_room(hub, s, req.room), result)
        return chat(hub, s, req, now, quoted)
    except p.ProtocolError as exc:
        return [hub.error(s, exc.code, str(exc), cmid)]


def _committed(hub: Hub, m: Message, result: Any, now: float) -> list[Effect]:
    """The store answered for `m`: deliver and acknowledge it, or tell its sender to resend."""
    room = hub.rooms[m.room]  # loaded: a room with messages in flight is never unloaded
    room.inflight -= 1
    cmid = m.client_msg_id
    repeats = hub.ids.stored(m.user_key, cmid) if cmid is not None else 0
    holder = devices.sender(hub, m.user_key, m.client_id)  # the device that sent it
    if isinstance(result, BaseException):
        if holder is None:
            return []
        text = (
            "The server could not save your message (its storage failed); "
            "it was not delivered. Send it again in a few seconds."
        )
        frame = outbound.error(
            p.STORE_FAILED, text, retry_after=hub.config.store_retry, room=m.room, client_msg_id=cmid
        )
        return [Send((holder,), frame)]
    if hub.broker.stored_seqs:  # the store assigned the seq: deliver in seq order (cluster mode)
        return cluster.committed(hub, m, repeats, holder, now)
    if m.seq > room.last_seq:  # a seq the store assigned (see wschat.broker)
        room.last_seq = m.seq
    m.payload = fold.payload(m)
    publish = hub.broker.publish(room.name, m.payload)
    # cheap tests first (this runs for every message): mentions and typing are rare
    out: list[Effect] = [publish] if m.meta is None else events.mentioned(hub, room, m, publish)
    history.add(hub, room, m)
    room.first_seq = max(room.first_seq, m.seq - hub.config.max_messages_per_room + 1)
    rooms.touch(hub, room)
    if holder is not None and room.typing:
        out += live.stop_typing(hub, hub.sessions[holder], room, now)
    out += room_acks(hub.ids, m, holder, repeats)
    cfg = hub.config
    if hub.window_bytes > cfg.window_budget or len(hub.rooms) > cfg.loaded_rooms:
        history.evict(hub)  # tested here first: for almost every message it has nothing to do
    return out


def private(hub: Hub, s: Session, req: p.Private, now: float) -> list[Effect]:
    """A private message: delivered at once to both ends, not stored."""
    cmid = req.client_msg_id
    if cmid is not None and (dup := hub.ids.repeat_ack(s.key, cmid)) is not None:
        return [Send((s.cid,), dup)]
    target_cid = hub.by_key.get(name_key(req.to))
    if target_cid is None and hub.broker.names_by_store:  # perhaps on other processes
        return reach.private_elsewhere(hub, s, req, name_key(req.to), now)
    if target_cid is None:
        return [hub.error(s, p.NO_SUCH_USER, f"{req.to} is not online.", cmid)]
    t = hub.sessions[target_cid]
    # One counter for every private message: it grows within each conversation, and keeps
    # no state per pair of names (which anyone could multiply).
    seq = hub.next_private
    pid = f"p{hub.run_id}-{seq}"
    hub.next_private += 1
    frame = outbound.private(pid, seq, s.name, t.name, req.message, now, s.client_id, cmid)
    out: list[Effect] = [Send(devices.both_ends(hub, s, t.key), frame)]
    out += reach.elsewhere(hub, (t.key, s.key), frame)  # their devices on other processes
    if cmid is not None:
        hub.ids.remember(s.key, cmid, "@" + t.name, pid, seq)
        out.append(Send((s.cid,), outbound.ack(cmid, pid, seq, to=t.name)))
    return out


def get_users(hub: Hub, s: Session, req: p.GetUsers, now: float) -> list[Effect]:
    name = check_room(req.room)
    room = hub.rooms.get(name)
    if room is None and name in hub.loading:
        raise Loading(name)
    if room is None:
        return [hub.error(s, p.NO_SUCH_ROOM, f"There is no room '{req.room[:40]}'.")]
    return [Send((s.cid,), outbound.online_users(room.name, rooms.names(hub, room)))]


def list_rooms(hub: Hub, s: Session, req: p.ListRooms, now: float) -> list[Effect]:
    return [Send((s.cid,), rooms.listing(hub, s))]


def join(hub: Hub, s: Session, req: p.Join, now: float) -> list[Effect]:
    out: list[Effect] = []
    rooms.enter(hub, s, check_room(req.room), req.since, req.since is not None, now, out)
    return out


def leave(hub: Hub, s: Session, req: p.Leave, now: float) -> list[Effect]:
    room = rooms.member_room(hub, s, req.room)
    out: list[Effect] = [Send((s.cid,), outbound.left(room.name))]
    rooms.leave(hub, s, room, "leave", now, out)
    return out


def fetch_history(hub: Hub, s: Session, req: p.FetchHistory, now: float) -> list[Effect]:
    """A page of older messages: from the room's window if it holds them all, else the store."""
    room = rooms.member_room(hub, s, req.room)
    frame = history.page_in_window(room, req.before_seq, req.limit)
    if frame is not None:
        return [Send((s.cid,), frame)]
    asked = ReadPage(room.name, req.before_seq, req.limit)
    return [hub.ask(asked, _page_read, (s.cid, room.name, req.before_seq), holds=s.cid)]


def _page_read(hub: Hub, asked: tuple[int, str, int], result: Any, now: float) -> list[Effect]:
    cid, room_name, before_seq = asked
    room = hub.rooms.get(room_name)
    if cid not in hub.sessions or room is None:
        return []
    if isinstance(result, BaseException):
        # Not an empty page: that would say "nothing older" and the client would stop asking.
        text = "The server could not read older messages (its storage failed); it will try again."
        retry = hub.config.store_retry
        frame = outbound.error(p.STORE_FAILED, text, retry_after=retry, room=room_name, before_seq=before_seq)
        return [Send((cid,), frame)]
    return [Send((cid,), history.page(room, before_seq, result))]


# request class -> (handler, whether the connection must have a name first)
HANDLERS: dict[type, tuple[Handler, bool]] = {
    p.SetUsername: (sessions.login, False),
    p.Chat: (chat, True),
    p.Private: (private, True),
    p.GetUsers: (get_users, True),
    p.ListRooms: (list_rooms, True),
    p.Join: (join, True),
    p.Leave: (leave, True),
    p.FetchHistory: (fetch_history, True),
}
HANDLERS.update(accounts.HANDLERS)  # replaces set_username's: guests may not take registered names
HANDLERS.update(offline.HANDLERS)  # replaces private's: stored between accounts (calls `private`)

# requests that count against the message rate (chat_rate), not the control rate
MESSAGE_KINDS = frozenset((p.Chat, p.Private, *wire.MESSAGE_RATE))
# requests with a budget of their own, which their handler takes (neither rate above)
SELF_PACED: set[type] = set()

# Feature modules add their handlers to HANDLERS when they are imported (at their end);
# importing them here, after HANDLERS exists, registers them whichever module comes first.
from wschat.features import calls as _calls  # noqa: E402
from wschat.features import e2ee_hub, events, files, live, mod_hooks, moderation, profiles, search  # noqa: E402, F401

HANDLERS.update(_calls.HANDLERS)
SELF_PACED.update(_calls.SELF_PACED)

# Moderation across processes wraps moderation's handlers (it imports moderation first).
from wschat.features import mod_cluster  # noqa: E402, F401
