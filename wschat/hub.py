"""The chat state machine: users, rooms, membership, history windows, sequence numbers. NO I/O.

This module imports neither asyncio nor websockets nor sqlite3. It knows connection ids, never
sockets. Every entry point takes the current time and returns a list of actions for the I/O
layer to carry out, in order:

- `Send(targets, data)`: deliver one frame (`data`, built once) to each connection in `targets`;
- `Close(conn, code, reason)`: close one connection (after delivering what was sent to it);
- `Persist(messages)`: store these messages, then call `committed()` (or `commit_failed()`);
  room messages are broadcast and acknowledged only once they are stored;
- `Fetch(conn, room, before_seq, limit)`: read older messages from the store, then call
  `page_loaded()`;
- `LoadRoom(room)`: read a room's state from the store, then call `room_loaded()`.

Memory stays bounded whatever clients send: only rooms in use are kept in memory (others live
in the store and are loaded when someone joins), their history windows share a byte budget,
and the client message ids remembered for de-duplication have a total cap.

Calling rule: call `connect()` when a WebSocket opens, `receive()` for each text frame,
`binary()` for each binary frame, `disconnect()` exactly once when it closes, and `tick()` about
once a second.
"""

from __future__ import annotations

import contextlib
import math
import secrets
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from wschat import protocol as p
from wschat.names import InvalidName, check_room, check_username, lookalike_keys, name_key
from wschat.ratelimit import TokenBucket

GENERAL = "general"


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Send:
    targets: tuple[int, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    conn: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Persist:
    messages: list[Message]


@dataclass(frozen=True, slots=True)
class Fetch:
    conn: int
    room: str
    before_seq: int
    limit: int


@dataclass(frozen=True, slots=True)
class LoadRoom:
    room: str


Action = Send | Close | Persist | Fetch | LoadRoom


# ---------------------------------------------------------------- state


@dataclass(slots=True, eq=False)
class Message:
    """A room message. `payload` is its `chat` frame, encoded once and reused in history."""

    id: int
    room: str
    seq: int
    username: str
    user_key: str
    client_id: str
    text: str
    ts: float
    client_msg_id: str | None = None
    epoch: str = ""  # the room's epoch, so the store can record a new room with its first message
    payload: bytes = b""


def chat_payload(m: Message) -> bytes:
    frame = {
        "type": "chat",
        "id": str(m.id),
        "room": m.room,
        "seq": m.seq,
        "username": m.username,
        "message": m.text,
        "timestamp": p.timestamp(m.ts),
        "client_id": m.client_id,
    }
    if m.client_msg_id is not None:
        frame["client_msg_id"] = m.client_msg_id
    return p.encode(frame)


@dataclass(slots=True)
class RoomState:
    """What the store knows about a room at start-up."""

    epoch: str
    last_seq: int = 0
    first_seq: int = 1
    recent: list[Message] = field(default_factory=list)


@dataclass(slots=True)
class Snapshot:
    """Everything the hub needs from the store to start: `rooms` need hold only `general`."""

    rooms: dict[str, RoomState] = field(default_factory=dict)
    # The history's epoch: fixed for the life of a database, so a room created later (or an empty
    # room re-created after a restart) keeps the epoch clients already hold. "" = make one up.
    epoch: str = ""
    next_id: int = 1
    # (user_key, client_msg_id, room, id, seq), oldest first
    sent_ids: list[tuple[str, str, str, int, int]] = field(default_factory=list)
    # rooms with history that are not loaded at start, most recently active last (for list_rooms)
    known_rooms: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Config:
    history_size: int = 50
    resume_cap: int = 1000
    large_room: int = 100
    max_rooms: int = 1000  # rooms with people in them at once
    loaded_rooms: int = 200  # rooms kept in memory although nobody is in them
    history_bytes: int = 256 * 1024  # what a newcomer's history may weigh, at most
    window_budget: int = 64 * 1024 * 1024  # all rooms' in-memory history together
    max_rooms_per_user: int = 50
    max_messages_per_room: int = 10_000
    max_message_chars: int = 4000
    name_timeout: float = 10.0
    chat_rate: float = 5.0
    chat_burst: float = 20.0
    control_rate: float = 2.0
    control_burst: float = 30.0
    flood_strikes: int = 50
    remembered_ids_per_user: int = 1000
    remembered_ids: int = 200_000  # in all; the users heard from longest ago are forgotten first
    presence_names: int = 10
    page_size: int = p.MAX_PAGE


@dataclass(slots=True, eq=False)
class Session:
    cid: int
    client_id: str
    chat_bucket: TokenBucket
    control_bucket: TokenBucket
    name: str = ""
    key: str = ""
    token: str = ""
    rooms: dict[str, None] = field(default_factory=dict)
    strikes: int = 0
    looks: frozenset[str] = frozenset()  # look-alike keys of the name, held while online


@dataclass(slots=True, eq=False)
class Room:
    name: str
    epoch: str
    last_seq: int = 0  # highest seq assigned (possibly not yet committed)
    first_seq: int = 1  # lowest seq the store still holds
    members: dict[int, None] = field(default_factory=dict)  # join order
    window: list[Message] = field(default_factory=list)  # committed, seq order
    window_bytes: int = 0
    inflight: int = 0  # messages handed to the store and not yet committed
    joins: list[str] = field(default_factory=list)  # batched presence (large rooms)
    leaves: list[str] = field(default_factory=list)
    joined_count: int = 0
    left_count: int = 0


MAX_HELD = 1000  # requests held per room while it loads (each was already rate limited)


class _Loading(Exception):
    """A request about a room that is being loaded: hold it until the room is in memory."""

    def __init__(self, room: str) -> None:
        self.room = room


def _seq(m: Message) -> int:
    return m.seq


# ---------------------------------------------------------------- the hub


class Hub:
    def __init__(
        self,
        config: Config = Config(),
        snapshot: Snapshot | None = None,
        *,
        new_token: Callable[[], str] = lambda: secrets.token_urlsafe(18),
    ) -> None:
        self.config = config
        self.limits = p.Limits(max_message_chars=config.max_message_chars)
        self.new_token = new_token
        snapshot = snapshot or Snapshot()
        self.sessions: dict[int, Session] = {}
        self.by_key: dict[str, int] = {}
        self.by_look: dict[str, int] = {}  # look-alike key -> connection holding such a name
        # cid -> (connect time, deadline to choose a name); the deadline moves on with each refused
        # name, so a person retrying is not cut off, but never past 6 timeouts after connecting
        self.unnamed: dict[int, tuple[float, float]] = {}
        self.rooms: dict[str, Room] = {}  # loaded rooms, least recently used first
        self.loading: dict[str, list[tuple[int, p.Position | None]]] = {}  # room -> who waits
        # requests about a room being loaded, from people waiting to enter it: replayed after
        self.held: dict[str, list[tuple[int, p.Request]]] = {}
        self.dormant: dict[str, None] = {}  # rooms with history, not loaded; most recent last
        self.window_bytes = 0  # all loaded rooms' windows together
        self.last_tick = 0.0
        self.next_id = snapshot.next_id
        self.next_private = 1
        self.run_id = new_token()[:6]
        self.epoch = snapshot.epoch or new_token()[:12]
        # user key -> its recent client_msg_id -> (room or "@name", id, seq); users heard from
        # longest ago first, so the total cap forgets them first
        self.sent: OrderedDict[str, OrderedDict[str, tuple[str, str, int]]] = OrderedDict()
        self.sent_total = 0
        # (user key, client_msg_id) being stored -> how many repeats arrived meanwhile
        self.inflight: dict[tuple[str, str], int] = {}
        for name, state in snapshot.rooms.items():
            self._install(name, state)
        for name in snapshot.known_rooms:
            self._remember_dormant(name)
        for user_key, cmid, room_name, mid, seq in snapshot.sent_ids:
            self._remember(user_key, cmid, room_name, str(mid), seq)
        if GENERAL not in self.rooms:
            self._install(GENERAL, None)

    # ------------------------------------------------------------ entry points

    def connect(self, cid: int, now: float) -> list[Action]:
        cfg = self.config
        self.sessions[cid] = Session(
            cid,
            client_id=f"c{cid:x}{self.new_token()[:6]}",
            chat_bucket=TokenBucket(cfg.chat_rate, cfg.chat_burst, now),
            control_bucket=TokenBucket(cfg.control_rate, cfg.control_burst, now),
        )
        self.unnamed[cid] = (now, now + self.config.name_timeout)
        return []

    def disconnect(self, cid: int, now: float) -> list[Action]:
        s = self.sessions.pop(cid, None)
        self.unnamed.pop(cid, None)
        if s is None or not s.name:
            return []
        if self.by_key.get(s.key) == cid:
            del self.by_key[s.key]
        for look in s.looks:
            if self.by_look.get(look) == cid:
                del self.by_look[look]
        out: list[Action] = []
        for room_name in list(s.rooms):
            self._exit(s, self.rooms[room_name], now, out)
        return out

    def receive(self, cid: int, text: str, now: float) -> list[Action]:
        s = self.sessions.get(cid)
        if s is None:  # closed by the hub (takeover, flood); frames may still trickle in
            return []
        try:
            req = p.decode(text, self.limits)
        except p.ProtocolError as exc:
            wait = s.control_bucket.take(now)
            if wait:
                return self._limited(s, None, wait, exc.client_msg_id)
            return [self._error(s, exc.code, str(exc), exc.client_msg_id)]
        is_message = isinstance(req, (p.Chat, p.Private))
        bucket = s.chat_bucket if is_message else s.control_bucket
        wait = bucket.take(now)
        if wait:
            return self._limited(s, req, wait, getattr(req, "client_msg_id", None))
        if now >= s.chat_bucket.promised_until and now >= s.control_bucket.promised_until:
            s.strikes = 0  # it waited as told: what it sent too fast before was not a flood
        if isinstance(req, p.SetUsername):
            return self._set_username(s, req, now)
        if not s.name:
            text = "Choose a name first: send set_username."
            return [self._error(s, "not_logged_in", text, getattr(req, "client_msg_id", None))]
        return self._handle(s, req, now)

    def _handle(self, s: Session, req: p.Request, now: float) -> list[Action]:
        try:
            return self._dispatch(s, req, now)
        except _Loading as wait:
            held = self.held.setdefault(wait.room, [])
            if len(held) < MAX_HELD:
                held.append((s.cid, req))
                return []
            text = f"#{wait.room} is still opening; send that again in a moment."
            return [self._error(s, "rate_limited", text, getattr(req, "client_msg_id", None))]
        except p.ProtocolError as exc:
            cmid = exc.client_msg_id or getattr(req, "client_msg_id", None)
            return [self._error(s, exc.code, str(exc), cmid)]

    def binary(self, cid: int, now: float) -> list[Action]:
        s = self.sessions.get(cid)
        if s is None:
            return []
        if wait := s.control_bucket.take(now):
            return self._limited(s, None, wait, None)
        msg = "Binary frames are not supported; send JSON text frames (see PROTOCOL.md)."
        return [self._error(s, "binary_unsupported", msg)]

    def committed(self, batch: list[Message], now: float) -> list[Action]:
        """The store has committed `batch`: broadcast each message and acknowledge it."""
        out: list[Action] = []
        cap = self.config.resume_cap
        for m in batch:
            room = self.rooms[m.room]  # loaded: a room with messages in flight is never unloaded
            room.inflight -= 1
            m.text = ""  # the payload holds it: drop the string and the UTF-8 copy it caches
            room.window.append(m)
            room.window_bytes += len(m.payload)
            self.window_bytes += len(m.payload)
            if len(room.window) > 2 * cap:
                self._drop_oldest(room, len(room.window) - cap)
            room.first_seq = max(room.first_seq, m.seq - self.config.max_messages_per_room + 1)
            self._touch(room)
            out.append(Send(tuple(room.members), m.payload))
            if m.client_msg_id is not None:
                repeats = self.inflight.pop((m.user_key, m.client_msg_id), 0)
                self._remember(m.user_key, m.client_msg_id, m.room, str(m.id), m.seq)
                holder = self.by_key.get(m.user_key)
                if holder is not None:
                    ack = {
                        "type": "ack",
                        "client_msg_id": m.client_msg_id,
                        "id": str(m.id),
                        "seq": m.seq,
                        "room": m.room,
                    }
                    out.append(Send((holder,), p.encode(ack)))
                    ack["duplicate"] = True
                    out.extend(Send((holder,), p.encode(ack)) for _ in range(repeats))
        self._evict()
        return out

    def commit_failed(self, batch: list[Message], reason: str, now: float) -> list[Action]:
        """The store could not save `batch`: tell each sender to send it again later."""
        out: list[Action] = []
        for m in batch:
            self.rooms[m.room].inflight -= 1
            holder = self.by_key.get(m.user_key)
            if m.client_msg_id is not None:
                self.inflight.pop((m.user_key, m.client_msg_id), None)
            if holder is not None:
                text = (
                    "The server could not save your message (its storage failed); "
                    "it was not delivered. Send it again in a few seconds."
                )
                extra = {"retry_after": 5.0, "room": m.room}
                if m.client_msg_id is not None:
                    extra["client_msg_id"] = m.client_msg_id
                out.append(Send((holder,), p.error("store_failed", text, **extra)))
        return out

    def room_loaded(self, name: str, state: RoomState | BaseException | None, now: float) -> list[Action]:
        """The store has read room `name` (None: it has no history): let in who was waiting."""
        waiting = self.loading.pop(name, [])
        held = self.held.pop(name, [])
        out: list[Action] = []
        if isinstance(state, BaseException):
            text = f"Could not open #{name}: the server's storage failed. Try again in a few seconds."
            for cid, req in [*waiting, *held]:
                if cid in self.sessions:
                    extra = {"room": name, "retry_after": 5.0}
                    if (cmid := getattr(req, "client_msg_id", None)) is not None:
                        extra["client_msg_id"] = cmid
                    out.append(Send((cid,), p.error("store_failed", text, **extra)))
            return out
        if name not in self.rooms:
            self._install(name, state)
        for cid, since in waiting:
            s = self.sessions.get(cid)
            if s is None or not s.name:
                continue
            try:
                self._enter(s, name, since, now, out)
            except p.ProtocolError as exc:
                out.append(self._error(s, exc.code, str(exc)))
        for cid, req in held:
            s = self.sessions.get(cid)
            if s is not None:
                out.extend(self._handle(s, req, now))
        self._evict()
        return out

    def page_loaded(self, cid: int, room_name: str, before_seq: int, messages: list[Message]) -> list[Action]:
        room = self.rooms.get(room_name)
        if cid not in self.sessions or room is None:
            return []
        for m in messages:
            m.payload = m.payload or chat_payload(m)
        return [Send((cid,), self._page_frame(room, before_seq, messages))]

    def tick(self, now: float) -> list[Action]:
        out: list[Action] = []
        if now < self.last_tick:  # the wall clock stepped back: deadlines move with it
            step = self.last_tick - now
            self.unnamed = {cid: (since - step, end - step) for cid, (since, end) in self.unnamed.items()}
        self.last_tick = now
        expired = [cid for cid, (_, deadline) in self.unnamed.items() if now >= deadline]
        for cid in expired:
            del self.unnamed[cid]
            reason = f"no name chosen within {self.config.name_timeout:g} s"
            out.append(Close(cid, 1008, reason))
        for room in self.rooms.values():
            if room.joined_count or room.left_count:
                self._flush_presence(room, now, out)
        return out

    def shutdown_notice(self, now: float) -> list[Action]:
        text = "The server is shutting down; your client will reconnect when it is back."
        frame = p.encode({"type": "system", "message": text, "timestamp": p.timestamp(now)})
        return [Send(tuple(self.by_key.values()), frame)]

    def stats(self) -> dict[str, int]:
        return {"connections": len(self.sessions), "users": len(self.by_key), "rooms": len(self.rooms)}

    # ------------------------------------------------------------ requests

    def _dispatch(self, s: Session, req: p.Request, now: float) -> list[Action]:
        if isinstance(req, p.Chat):
            return self._chat(s, req, now)
        if isinstance(req, p.Private):
            return self._private(s, req, now)
        if isinstance(req, p.GetUsers):
            return self._get_users(s, req)
        if isinstance(req, p.ListRooms):
            return [Send((s.cid,), self._rooms_frame(s))]
        if isinstance(req, p.Join):
            out: list[Action] = []
            self._enter(s, check_room(req.room), req.since, now, out)
            return out
        if isinstance(req, p.Leave):
            room = self._member_room(s, req.room)
            out = [Send((s.cid,), p.encode({"type": "left", "room": room.name}))]
            self._exit(s, room, now, out)
            return out
        if isinstance(req, p.FetchHistory):
            return self._fetch_history(s, req)
        return [self._error(s, "already_logged_in", "This connection already has a name.")]

    def _set_username(self, s: Session, req: p.SetUsername, now: float) -> list[Action]:
        if s.name:
            return [self._error(s, "already_logged_in", f"You are already logged in as {s.name}.")]
        since, _ = self.unnamed[s.cid]
        timeout = self.config.name_timeout
        self.unnamed[s.cid] = (since, min(now + timeout, since + 6 * timeout))
        try:
            name, key = check_username(req.username)
        except InvalidName as exc:
            return [self._name_error(s, exc.code, str(exc))]
        out: list[Action] = []
        holder = self.by_key.get(key)
        looks = lookalike_keys(name)
        for look in looks:
            other = self.by_look.get(look)
            if other is not None and other not in (s.cid, holder):  # the same name: see below
                who = self.sessions[other].name
                text = f"'{name}' looks too much like '{who}', who is online; choose another name."
                return [self._name_error(s, "name_confusable", text)]
        if holder is not None:
            old = self.sessions[holder]
            offered = (req.session_token or "").encode()  # bytes: compare_digest refuses non-ASCII str
            if not offered or not secrets.compare_digest(offered, old.token.encode()):
                text = f"The name '{old.name}' is taken (names ignore case and width); choose another."
                return [self._name_error(s, "name_taken", text)]
            out.append(Close(holder, 4000, "logged in again from another connection"))
            out.extend(self.disconnect(holder, now))
        self.unnamed.pop(s.cid, None)
        s.name, s.key, s.token, s.looks = name, key, self.new_token(), looks
        self.by_key[key] = s.cid
        for look in looks:
            self.by_look[look] = s.cid
        wanted: dict[str, p.Position | None] = {}
        resume = {}
        for raw, position in req.resume.items():
            with contextlib.suppress(InvalidName):  # a bad name is reported below
                resume[check_room(raw)] = position
        for raw in (*req.rooms, *req.resume):
            try:
                room_name = check_room(raw)
                wanted.setdefault(room_name, resume.get(room_name))
            except InvalidName as exc:
                out.append(self._error(s, exc.code, f"Room '{raw[:40]}': {exc}"))
        if not wanted:
            wanted[GENERAL] = None
        cfg = self.config
        accepted = {
            "type": "username_accepted",
            "username": name,
            "client_id": s.client_id,
            "message": f"Welcome, {name}!",
            "session_token": s.token,
            "rooms": list(wanted),
            "limits": {
                "max_message_chars": cfg.max_message_chars,
                "history_size": cfg.history_size,
                "page_size": cfg.page_size,
                "chat_rate": cfg.chat_rate,
                "chat_burst": cfg.chat_burst,
            },
        }
        out.insert(0, Send((s.cid,), p.encode(accepted)))
        for room_name, since in wanted.items():
            try:
                self._enter(s, room_name, since, now, out)
            except p.ProtocolError as exc:
                out.append(self._error(s, exc.code, str(exc)))
        return out

    def _chat(self, s: Session, req: p.Chat, now: float) -> list[Action]:
        room = self._member_room(s, req.room)
        cmid = req.client_msg_id
        if cmid is not None:
            if (dup := self._duplicate(s, cmid)) is not None:
                return [dup]
            if (s.key, cmid) in self.inflight:  # the first copy is being stored: ack both then
                self.inflight[s.key, cmid] += 1
                return []
            self.inflight[s.key, cmid] = 0
        room.last_seq += 1
        room.inflight += 1
        m = Message(
            self.next_id,
            room.name,
            room.last_seq,
            s.name,
            s.key,
            s.client_id,
            req.message,
            now,
            cmid,
            room.epoch,
        )
        self.next_id += 1
        m.payload = chat_payload(m)
        return [Persist([m])]

    def _private(self, s: Session, req: p.Private, now: float) -> list[Action]:
        cmid = req.client_msg_id
        if cmid is not None and (dup := self._duplicate(s, cmid)) is not None:
            return [dup]
        target_cid = self.by_key.get(name_key(req.to))
        if target_cid is None:
            return [self._error(s, "no_such_user", f"{req.to} is not online.", cmid)]
        t = self.sessions[target_cid]
        # One counter for every private message: it grows within each conversation, and keeps
        # no state per pair of names (which anyone could multiply).
        seq = self.next_private
        pid = f"p{self.run_id}-{seq}"
        self.next_private += 1
        frame = {
            "type": "private",
            "id": pid,
            "seq": seq,
            "username": s.name,
            "from": s.name,
            "to": t.name,
            "message": req.message,
            "timestamp": p.timestamp(now),
            "client_id": s.client_id,
        }
        if cmid is not None:
            frame["client_msg_id"] = cmid
        targets = (s.cid,) if t.cid == s.cid else (s.cid, t.cid)
        out: list[Action] = [Send(targets, p.encode(frame))]
        if cmid is not None:
            self._remember(s.key, cmid, "@" + t.name, pid, seq)
            ack = {"type": "ack", "client_msg_id": cmid, "id": pid, "seq": seq, "to": t.name}
            out.append(Send((s.cid,), p.encode(ack)))
        return out

    def _get_users(self, s: Session, req: p.GetUsers) -> list[Action]:
        name = check_room(req.room)
        room = self.rooms.get(name)
        if room is None and name in self.loading:
            raise _Loading(name)
        if room is None:
            return [self._error(s, "no_such_room", f"There is no room '{req.room[:40]}'.")]
        users = self._names(room)
        frame = {"type": "online_users", "room": room.name, "users": users, "count": len(users)}
        return [Send((s.cid,), p.encode(frame))]

    def _fetch_history(self, s: Session, req: p.FetchHistory) -> list[Action]:
        room = self._member_room(s, req.room)
        window = room.window
        end = bisect_left(window, req.before_seq, key=_seq)
        start = max(0, end - req.limit)
        complete = end - start == req.limit or not window or window[0].seq <= room.first_seq
        if complete:
            return [Send((s.cid,), self._page_frame(room, req.before_seq, window[start:end]))]
        return [Fetch(s.cid, room.name, req.before_seq, req.limit)]

    # ------------------------------------------------------------ rooms and presence

    def _install(self, name: str, state: RoomState | None) -> Room:
        """Make room `name` live in memory, from the store's `state` (None: a new room)."""
        if state is None:
            room = Room(name, self.epoch)
        else:
            room = Room(name, state.epoch, state.last_seq, state.first_seq)
            for m in state.recent[-self.config.resume_cap :]:
                m.payload = m.payload or chat_payload(m)
                m.text = ""
                room.window.append(m)
                room.window_bytes += len(m.payload)
            self.window_bytes += room.window_bytes
        self.dormant.pop(name, None)
        self.rooms[name] = room
        return room

    def _touch(self, room: Room) -> None:
        """Mark `room` as the most recently used (the end of `self.rooms`)."""
        rooms = self.rooms
        if next(reversed(rooms)) != room.name:
            rooms[room.name] = rooms.pop(room.name)

    def _drop_oldest(self, room: Room, n: int) -> None:
        gone = sum(len(m.payload) for m in room.window[:n])
        del room.window[:n]
        room.window_bytes -= gone
        self.window_bytes -= gone

    def _evict(self) -> None:
        """Keep memory bounded: unload unused rooms, then shorten the least recently used windows.

        First, rooms nobody is in (least recently used first) leave memory while there are more
        than `loaded_rooms` of them or the windows weigh more than `window_budget`; their
        history stays in the store and comes back when someone joins. Then, if the windows still
        weigh too much, the least recently used ones are cut to what a newcomer is shown.
        """
        cfg = self.config
        spare = len(self.rooms) - cfg.loaded_rooms
        if spare <= 0 and self.window_bytes <= cfg.window_budget:
            return
        for room in list(self.rooms.values()):
            if spare <= 0 and self.window_bytes <= cfg.window_budget:
                return
            if not room.members and not room.inflight and room.name != GENERAL:
                self.window_bytes -= room.window_bytes
                del self.rooms[room.name]
                if room.last_seq:
                    self._remember_dormant(room.name)
                spare -= 1
        for room in list(self.rooms.values()):
            if self.window_bytes <= cfg.window_budget:
                return
            self._drop_oldest(room, len(room.window) - len(self._recent(room.window)))

    def _remember_dormant(self, name: str) -> None:
        self.dormant.pop(name, None)
        self.dormant[name] = None
        if len(self.dormant) > 200:  # only for list_rooms: the 200 most recently active
            del self.dormant[next(iter(self.dormant))]

    def _recent(self, window: list[Message]) -> list[Message]:
        """What a newcomer is shown: the last `history_size` messages, within `history_bytes`."""
        cfg = self.config
        start = max(0, len(window) - cfg.history_size)
        weight = sum(len(m.payload) for m in window[start:])
        while weight > cfg.history_bytes and start < len(window) - 1:
            weight -= len(window[start].payload)
            start += 1
        return window[start:] if cfg.history_size else []

    def _member_room(self, s: Session, raw: str) -> Room:
        name = check_room(raw)
        if name not in s.rooms and any(cid == s.cid for cid, _ in self.loading.get(name, ())):
            raise _Loading(name)
        if name not in s.rooms:
            raise p.ProtocolError("not_in_room", f"You are not in #{name}; join it first.")
        return self.rooms[name]

    def _enter(self, s: Session, name: str, since: p.Position | None, now: float, out: list[Action]) -> None:
        room = self.rooms.get(name)
        if room is None:  # in the store, or new: load it first (room_loaded comes back here)
            waiting = self.loading.get(name)
            if waiting is not None:
                waiting.append((s.cid, since))
                return
            if sum(1 for r in self.rooms.values() if r.members) + len(self.loading) >= self.config.max_rooms:
                text = "The server has too many rooms in use; join an existing one."
                raise p.ProtocolError("too_many_rooms", text)
            self.loading[name] = [(s.cid, since)]
            out.append(LoadRoom(name))
            return
        self._touch(room)
        rejoin = s.cid in room.members
        if not rejoin:
            if len(s.rooms) >= self.config.max_rooms_per_user:
                raise p.ProtocolError("too_many_rooms", "You are in too many rooms; leave one first.")
            room.members[s.cid] = None
            s.rooms[name] = None
        small = len(room.members) <= self.config.large_room
        joined = {"type": "joined", "room": name, "epoch": room.epoch, "online_users": len(room.members)}
        if small:
            joined["users_list"] = self._names(room)
        out.append(Send((s.cid,), p.encode(joined)))
        out.append(Send((s.cid,), self._history_frame(room, since)))
        if rejoin:
            return
        notice = self._presence(room, "user_join", s.name, now)
        if small:
            out.append(Send(tuple(room.members), notice))
        else:
            out.append(Send((s.cid,), notice))
            room.joined_count += 1
            if len(room.joins) < self.config.presence_names:
                room.joins.append(s.name)

    def _exit(self, s: Session, room: Room, now: float, out: list[Action]) -> None:
        del room.members[s.cid]
        del s.rooms[room.name]
        if len(room.members) <= self.config.large_room:
            out.append(Send(tuple(room.members), self._presence(room, "user_leave", s.name, now)))
        else:
            room.left_count += 1
            if len(room.leaves) < self.config.presence_names:
                room.leaves.append(s.name)
        if not room.members and room.last_seq == 0 and room.name != GENERAL:
            self.window_bytes -= room.window_bytes
            del self.rooms[room.name]

    def _presence(self, room: Room, kind: str, name: str, now: float) -> bytes:
        where = "the chat" if room.name == GENERAL else f"#{room.name}"
        verb = "joined" if kind == "user_join" else "left"
        frame = {
            "type": kind,
            "room": room.name,
            "username": name,
            "message": f"{name} {verb} {where}",
            "timestamp": p.timestamp(now),
            "online_users": len(room.members),
        }
        if len(room.members) <= self.config.large_room:
            frame["users_list"] = self._names(room)
        return p.encode(frame)

    def _flush_presence(self, room: Room, now: float, out: list[Action]) -> None:
        where = "the chat" if room.name == GENERAL else f"#{room.name}"
        members = tuple(room.members)
        for kind, names, count, verb in (
            ("user_join", room.joins, room.joined_count, "joined"),
            ("user_leave", room.leaves, room.left_count, "left"),
        ):
            if not count:
                continue
            others = count - len(names)
            who = ", ".join(names) + (f" and {others} others" if others else "")
            frame = {
                "type": kind,
                "room": room.name,
                "username": names[0] if names else "",
                "usernames": names,
                f"count_{verb}": count,
                "message": f"{who} {verb} {where}",
                "timestamp": p.timestamp(now),
                "online_users": len(members),
            }
            out.append(Send(members, p.encode(frame)))
        room.joins, room.leaves, room.joined_count, room.left_count = [], [], 0, 0

    def _names(self, room: Room) -> list[str]:
        sessions = self.sessions
        return [sessions[c].name for c in room.members]

    def _rooms_frame(self, s: Session) -> bytes:
        listed = [(len(r.members), r.name) for r in self.rooms.values() if r.members or r.last_seq]
        listed += [(0, name) for name in self.dormant]
        listed.sort(key=lambda r: (-r[0], r[1]))
        rooms = [{"name": name, "members": n, "joined": name in s.rooms} for n, name in listed[:200]]
        return p.encode({"type": "rooms", "rooms": rooms})

    # ------------------------------------------------------------ history

    def _history_frame(self, room: Room, since: p.Position | None) -> bytes:
        window = room.window
        head: dict = {"type": "history", "room": room.name, "epoch": room.epoch}
        if since is not None and since.epoch == room.epoch and since.seq <= room.last_seq:
            start = bisect_right(window, since.seq, key=_seq)
            msgs = window[start:]
            # the window holds the newest committed messages, so anything missing lies before it
            skipped = max(0, msgs[0].seq - max(since.seq + 1, room.first_seq)) if msgs else 0
            if len(msgs) > self.config.resume_cap:
                skipped += len(msgs) - self.config.resume_cap
                msgs = msgs[-self.config.resume_cap :]
            head["mode"] = "resume"
            if skipped:
                head["skipped"] = skipped
        else:
            msgs = self._recent(window)
            head["mode"] = "recent"
            if since is not None:
                head["epoch_changed"] = True
        return _splice(head, msgs)

    def _page_frame(self, room: Room, before_seq: int, msgs: list[Message]) -> bytes:
        more = bool(msgs) and msgs[0].seq > room.first_seq
        head = {
            "type": "history",
            "room": room.name,
            "epoch": room.epoch,
            "mode": "page",
            "before_seq": before_seq,
            "more": more,
        }
        return _splice(head, msgs)

    # ------------------------------------------------------------ sent ids, errors, limits

    def _remember(self, user_key: str, cmid: str, where: str, mid: str, seq: int) -> None:
        seen = self.sent.pop(user_key, None)
        if seen is None:
            seen = OrderedDict()
        self.sent[user_key] = seen  # now the most recently heard from
        self.sent_total += cmid not in seen
        seen[cmid] = (where, mid, seq)
        if len(seen) > self.config.remembered_ids_per_user:
            seen.popitem(last=False)
            self.sent_total -= 1
        while self.sent_total > self.config.remembered_ids:
            _, forgotten = self.sent.popitem(last=False)
            self.sent_total -= len(forgotten)

    def _duplicate(self, s: Session, cmid: str) -> Send | None:
        seen = self.sent.get(s.key)
        hit = seen.get(cmid) if seen else None
        if hit is None:
            return None
        where, mid, seq = hit
        ack: dict = {"type": "ack", "client_msg_id": cmid, "id": mid, "seq": seq, "duplicate": True}
        if where.startswith("@"):
            ack["to"] = where[1:]
        else:
            ack["room"] = where
        return Send((s.cid,), p.encode(ack))

    def _error(self, s: Session, code: str, message: str, cmid: str | None = None) -> Send:
        extra = {} if cmid is None else {"client_msg_id": cmid}
        return Send((s.cid,), p.error(code, message, **extra))

    def _name_error(self, s: Session, code: str, message: str) -> Send:
        return Send((s.cid,), p.encode({"type": "username_error", "code": code, "message": message}))

    def _limited(self, s: Session, req: p.Request | None, wait: float, cmid: str | None) -> list[Action]:
        s.strikes += 1
        if s.strikes >= self.config.flood_strikes:
            return [Close(s.cid, 1008, "flooding: too many messages too fast")]
        retry = math.ceil((wait + 0.01) * 10) / 10  # rounded up: coming back on time must succeed
        text = f"You are sending too fast; wait {retry:g} s. Keep flooding and you will be disconnected."
        if isinstance(req, p.SetUsername):
            frame = {"type": "username_error", "code": "rate_limited", "message": text, "retry_after": retry}
            return [Send((s.cid,), p.encode(frame))]
        extra: dict = {"retry_after": retry}
        if cmid is not None:
            extra["client_msg_id"] = cmid
        return [Send((s.cid,), p.error("rate_limited", text, **extra))]


def _splice(head: dict, msgs: Iterable[Message]) -> bytes:
    """A history frame: `head`'s fields plus `messages`, joining the stored payloads as they are."""
    encoded = p.encode(head)
    return b"".join((encoded[:-1], b',"messages":[', b",".join(m.payload for m in msgs), b"]}"))
