"""The terminal client's state machine: login, rooms, resume positions, outbox, de-duplication. NO I/O.

This module imports neither asyncio nor websockets nor aioconsole. `ClientState` is fed what
happens (a connection opened or closed, a frame arrived, the user typed a line, time passed)
and answers with effects for the I/O layer to carry out, in order:

- `Show(text)`: print one (possibly multi-line) piece of text above the input line;
- `Send(frame)`: send this frame now (only produced while connected);
- `QuitRequested()`: the user asked to leave: flush the outbox (bounded), close, exit 0;
- `Stop(status, message)`: give up now with this exit status and sentence.

Calling rule: `opened()` when a WebSocket connects, `closed()` when it goes; `frame()` for each
decoded server frame, `line()` for each typed line, and after any of them `pump(now)`, which
returns the frames that are due (the login, then outbox messages paced under the server's rate
limit) and when to call it again.

What it guarantees, from PROTOCOL.md: every chat or private message typed gets a
`client_msg_id` and stays in the outbox until the server acknowledges it (or its echo arrives),
being resent with the same id after every reconnect; room messages are shown once, by
`(room, seq)` within an epoch, private ones once by `id`; a reconnect resumes each room from the
last seq shown, so nothing in between is lost.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wschat.commands import (
    Formatter,
    Help,
    History,
    Join,
    Leave,
    Msg,
    Nothing,
    Quit,
    Rooms,
    Say,
    Unknown,
    Usage,
    Users,
    escape,
    parse_line,
    seconds,
)
from wschat.names import InvalidName, check_room

GENERAL = "general"
NO_SEQ_BELOW = 2**53 - 1  # before_seq for "the newest page" when nothing of the room is known
PRIVATE_IDS_KEPT = 2000

# phases
NAMING = "naming"  # waiting for the user to type a name
OFFLINE = "offline"  # have a name, no connection
CONNECTED = "connected"  # connected, login not sent yet (maybe waiting for retry_after)
LOGGING_IN = "logging_in"  # set_username sent
ONLINE = "online"  # accepted


@dataclass(frozen=True, slots=True)
class Show:
    text: str


@dataclass(frozen=True, slots=True)
class Send:
    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QuitRequested:
    pass


@dataclass(frozen=True, slots=True)
class Stop:
    status: int
    message: str


Effect = Show | Send | QuitRequested | Stop


class SeqSet:
    """Sequence numbers known to be shown (or known not to exist), as sorted disjoint ranges."""

    __slots__ = ("ranges",)

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []  # [lo, hi] inclusive, sorted, not touching

    def __contains__(self, seq: int) -> bool:
        i = bisect_right(self.ranges, [seq, NO_SEQ_BELOW + 1]) - 1
        return i >= 0 and self.ranges[i][0] <= seq <= self.ranges[i][1]

    def add(self, lo: int, hi: int) -> None:
        if hi < lo:
            return
        kept: list[list[int]] = []
        for r in self.ranges:
            if r[1] < lo - 1 or r[0] > hi + 1:
                kept.append(r)
            else:  # overlapping or touching: merge
                lo, hi = min(lo, r[0]), max(hi, r[1])
        kept.append([lo, hi])
        kept.sort()
        self.ranges = kept

    @property
    def top(self) -> int:
        """The highest seq known; 0 if none."""
        return self.ranges[-1][1] if self.ranges else 0

    @property
    def top_start(self) -> int | None:
        """Where the newest unbroken run starts: /history pages back from here."""
        return self.ranges[-1][0] if self.ranges else None


@dataclass(slots=True)
class RoomView:
    epoch: str | None = None
    seen: SeqSet = field(default_factory=SeqSet)


@dataclass(slots=True)
class Outgoing:
    """One message typed and not yet acknowledged."""

    cmid: str
    frame: dict[str, Any]
    sent_gen: int = -1  # the connection it was last sent on; resent on any other
    not_before: float = 0.0  # after rate_limited / store_failed


class Bucket:
    """The client's copy of the server's chat rate limit, so a full outbox is paced, not refused."""

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def take(self, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def _str(v: Any, default: str = "") -> str:
    return v if isinstance(v, str) else default


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _num(v: Any, default: float) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 3600:
        return float(v)
    return default


def _room(v: Any) -> str | None:
    """A room name from the server, if it is one (anything else could not be sent back, or
    could smuggle escape sequences into the prompt)."""
    if not isinstance(v, str):
        return None
    try:
        return check_room(v)
    except InvalidName:
        return None


def _preview(text: str, n: int = 30) -> str:
    text = escape(text)
    return text if len(text) <= n else text[: n - 1] + "…"


class ClientState:
    def __init__(
        self,
        fmt: Formatter,
        *,
        name: str | None,
        rooms: list[str] | None = None,
        interactive: bool = True,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.fmt = fmt
        self.interactive = interactive  # a person can be asked again (stdin is a terminal)
        self.new_id = new_id
        self.name: str | None = name.strip() if name and name.strip() else None
        self.phase = OFFLINE if self.name else NAMING
        self.me = ""  # the name the server accepted
        self.token: str | None = None
        self.wanted: dict[str, None] = dict.fromkeys(rooms or [GENERAL])
        self.joined: dict[str, None] = {}
        self.current: str | None = next(iter(self.wanted))
        self.views: dict[str, RoomView] = {}
        self.outbox: OrderedDict[str, Outgoing] = OrderedDict()
        self.private_seen: OrderedDict[str, None] = OrderedDict()
        self.connected = False
        self.gen = 0
        self.login_at = 0.0
        self.logins = 0  # accepted logins so far; the I/O resets its backoff when this grows
        self.reconnecting = False
        self.login_rooms: set[str] = set()
        self.pending_join: str | None = None
        self.pending_leave: str | None = None
        self.paging: set[str] = set()
        self.max_chars = 4000
        self.bucket = Bucket(4.5, 18)
        self.last_wait_notice = -1e9

    # ------------------------------------------------------------ questions

    @property
    def online(self) -> bool:
        return self.phase == ONLINE

    @property
    def naming(self) -> bool:
        return self.phase == NAMING

    @property
    def settled(self) -> bool:
        """No room change is waiting for the server's answer (scripts wait for this)."""
        return self.pending_join is None and self.pending_leave is None

    def prompt(self) -> str:
        if self.phase == NAMING:
            return "Enter your username: "
        where = f"#{self.current}" if self.current else "(no room)"
        if self.online:
            return f"{where}> "
        return f"(offline) {where}> " if self.logins else f"(connecting) {where}> "

    def needs_server(self, line: str) -> bool:
        """A command that only makes sense once logged in (scripts wait for the login first)."""
        return not self.naming and isinstance(parse_line(line), (Users, Rooms, Join, Leave, History))

    def login_frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "set_username", "username": self.name}
        if self.token and self.name == self.me:
            frame["session_token"] = self.token
        rooms = list(self.wanted) or [GENERAL]
        frame["rooms"] = rooms
        resume = {
            r: {"epoch": v.epoch, "seq": v.seen.top}
            for r in rooms
            if (v := self.views.get(r)) is not None and v.epoch is not None
        }
        if resume:
            frame["resume"] = resume
        return frame

    # ------------------------------------------------------------ connection events

    def opened(self, now: float) -> None:
        self.connected = True
        self.gen += 1
        self.bucket = Bucket(self.bucket.rate, self.bucket.burst, now)
        if self.phase == OFFLINE:
            self.phase = CONNECTED
            self.login_at = now

    def closed(self) -> None:
        self.connected = False
        if self.phase in (CONNECTED, LOGGING_IN, ONLINE):
            self.phase = OFFLINE
        self.joined.clear()
        self.pending_join = self.pending_leave = None
        self.paging.clear()

    def pump(self, now: float) -> tuple[list[dict[str, Any]], float | None]:
        """Frames due now, and when to call again (None: only when something happens)."""
        frames: list[dict[str, Any]] = []
        wake: float | None = None
        if self.phase == CONNECTED and self.name:
            if now >= self.login_at:
                frames.append(self.login_frame())
                self.phase = LOGGING_IN
            else:
                wake = self.login_at
        if self.phase == ONLINE:
            for item in self.outbox.values():
                if item.sent_gen == self.gen:
                    continue
                if item.not_before > now:  # keep the order: later messages wait too
                    wake = item.not_before
                    break
                wait = self.bucket.take(now)
                if wait:
                    wake = now + wait
                    break
                item.sent_gen = self.gen
                frames.append(item.frame)
        return frames, wake

    # ------------------------------------------------------------ typed lines

    def line(self, text: str, now: float) -> list[Effect]:
        f = self.fmt
        cmd = parse_line(text)
        if self.phase == NAMING:
            if isinstance(cmd, Quit):
                return [QuitRequested()]
            name = text.strip()
            if not name:
                return [Show(f.notice("Please type a name.", "error"))]
            self.name = name
            self.phase = CONNECTED if self.connected else OFFLINE
            self.login_at = now
            return []
        if isinstance(cmd, Nothing):
            return []
        if isinstance(cmd, Say):
            if self.current is None:
                return [Show(f.notice("You are in no room; /join ROOM first (e.g. /join general).", "error"))]
            return self._queue({"type": "chat", "message": cmd.text, "room": self.current}, cmd.text)
        if isinstance(cmd, Msg):
            return self._queue({"type": "private", "to": cmd.to, "message": cmd.text}, cmd.text)
        if isinstance(cmd, Help):
            return [Show("\n".join(f.help()))]
        if isinstance(cmd, Quit):
            return [QuitRequested()]
        if isinstance(cmd, Unknown):
            return [Show(f.notice(f"Unknown command {escape(cmd.name)}; type /help for the list.", "error"))]
        if isinstance(cmd, Usage):
            return [Show(f.notice(cmd.message, "error"))]
        if not self.online:
            return [Show(f.notice("Not connected right now; try again once reconnected.", "offline"))]
        if isinstance(cmd, Users):
            room = cmd.room or self.current
            if room is None:
                return [Show(f.notice("You are in no room; try /users ROOM.", "error"))]
            return [Send({"type": "get_users", "room": room})]
        if isinstance(cmd, Rooms):
            return [Send({"type": "list_rooms"})]
        if isinstance(cmd, Join):
            if cmd.room in self.joined:
                self.current = cmd.room
                return [Show(f.notice(f"Now talking in #{cmd.room}.", "ok"))]
            self.pending_join = cmd.room
            return [Send({"type": "join", "room": cmd.room})]
        if isinstance(cmd, Leave):
            room = cmd.room or self.current
            if room is None or room not in self.joined:
                shown = f"#{room}" if room else "any room"
                return [Show(f.notice(f"You are not in {shown}.", "error"))]
            self.pending_leave = room
            return [Send({"type": "leave", "room": room})]
        assert isinstance(cmd, History)
        return self._history_request(cmd.count)

    def _queue(self, frame: dict[str, Any], text: str) -> list[Effect]:
        if len(text) > self.max_chars:
            msg = f"Not sent: the message has {len(text)} characters; the limit is {self.max_chars}."
            return [Show(self.fmt.notice(msg, "error"))]
        cmid = self.new_id()
        frame["client_msg_id"] = cmid
        self.outbox[cmid] = Outgoing(cmid, frame)
        if self.online or not self.logins:  # before the first login it simply goes out at login
            return []
        n = len(self.outbox)
        waiting = f" ({n} waiting)" if n > 1 else ""
        note = f'Not connected: "{_preview(text)}" is queued{waiting} and goes out once reconnected.'
        return [Show(self.fmt.notice(note, "queued"))]

    def _history_request(self, count: int) -> list[Effect]:
        room = self.current
        if room is None:
            return [Show(self.fmt.notice("You are in no room; /join one first.", "error"))]
        view = self.views.setdefault(room, RoomView())
        start = view.seen.top_start
        if start is not None and start <= 1:
            return [Show(self.fmt.notice(f"That is all: there are no older messages in #{room}.", "history"))]
        if room in self.paging:
            return [Show(self.fmt.notice(f"Still loading older messages of #{room}...", "history"))]
        self.paging.add(room)
        before = start if start is not None else NO_SEQ_BELOW
        return [Send({"type": "fetch_history", "room": room, "before_seq": before, "limit": count})]

    # ------------------------------------------------------------ server frames

    def frame(self, frame: dict[str, Any], now: float) -> list[Effect]:
        handler = _HANDLERS.get(_str(frame.get("type")))
        if handler is None:  # unknown types are for newer clients
            return []
        return handler(self, frame, now)

    def _on_username_accepted(self, frame: dict[str, Any], now: float) -> list[Effect]:
        f = self.fmt
        self.me = _str(frame.get("username"), self.name or "")
        self.name = self.me
        self.token = _str(frame.get("session_token")) or None
        limits = frame.get("limits") if isinstance(frame.get("limits"), dict) else {}
        self.max_chars = int(_num(limits.get("max_message_chars"), 4000)) or 4000
        rate, burst = _num(limits.get("chat_rate"), 5.0), _num(limits.get("chat_burst"), 20.0)
        if rate > 0:
            # a little under the server's limit: our sends reach it later and bunched up
            self.bucket = Bucket(rate * 0.9, max(1.0, burst - 2), now)
        raw = frame.get("rooms")
        rooms = [r for v in raw if (r := _room(v))] if isinstance(raw, list) else []
        rooms = list(dict.fromkeys(rooms)) or list(self.wanted) or [GENERAL]
        self.wanted = dict.fromkeys(rooms)
        self.joined = dict.fromkeys(rooms)  # a seed server sends no `joined`
        if self.current not in self.joined:
            self.current = rooms[0]
        self.reconnecting = self.logins > 0
        self.login_rooms = set(rooms)
        self.logins += 1
        self.phase = ONLINE
        if self.reconnecting:
            extra = f" Sending {len(self.outbox)} queued message(s)." if self.outbox else ""
            return [Show(f.notice(f"Reconnected as {escape(self.me)}.{extra}", "ok"))]
        welcome = escape(frame.get("message")) or f"Welcome, {escape(self.me)}!"
        return [
            Show(f.notice(welcome, "ok")),
            Show(
                f.notice(f"You are in #{self.current}. Type a message and press Enter; /help for commands.")
            ),
        ]

    def _on_username_error(self, frame: dict[str, Any], now: float) -> list[Effect]:
        f = self.fmt
        reason = escape(frame.get("message")) or "The server refused that name."
        if frame.get("code") == "rate_limited":
            wait = _num(frame.get("retry_after"), 2.0)
            self.login_at = now + wait
            self.phase = CONNECTED if self.connected else OFFLINE
            return [Show(f.notice(f"{reason} Trying again in {seconds(wait)}.", "queued"))]
        refused = escape(self.name)
        if not self.interactive:
            msg = f"The server refused the name '{refused}': {reason} Run again with another --username."
            return [Stop(1, msg)]
        self.name = None
        self.phase = NAMING
        return [Show(f.notice(reason, "error"))]

    def _view(self, room: str, epoch: Any) -> tuple[RoomView, list[Effect]]:
        """The room's view; forget what we knew if the server's history was lost (new epoch)."""
        view = self.views.setdefault(room, RoomView())
        out: list[Effect] = []
        if isinstance(epoch, str):
            if view.epoch is not None and view.epoch != epoch:
                if view.seen.ranges:
                    text = f"The server lost the history of #{escape(room)}; showing what it has now."
                    out.append(Show(self.fmt.notice(text, "history")))
                view.seen = SeqSet()
            view.epoch = epoch
        return view, out

    def _on_joined(self, frame: dict[str, Any], now: float) -> list[Effect]:
        room = _room(frame.get("room"))
        if room is None:
            return []
        _, out = self._view(room, frame.get("epoch"))
        self.joined[room] = None
        self.wanted[room] = None
        count = _int(frame.get("online_users"))
        names = frame.get("users_list")
        who = ""
        if isinstance(names, list) and names:
            who = ": " + ", ".join(self.fmt.name(n, n == self.me) for n in names if isinstance(n, str))
        online = f" - {count} online{who}" if count is not None else ""
        if self.pending_join == room:
            self.pending_join = None
            self.current = room
            out.append(Show(self.fmt.notice(f"Now talking in #{escape(room)}{online}", "ok")))
        elif room in self.login_rooms and not self.reconnecting:
            out.append(Show(self.fmt.notice(f"#{escape(room)}{online}", "users")))
        return out

    def _on_left(self, frame: dict[str, Any], now: float) -> list[Effect]:
        room = _room(frame.get("room"))
        if room is None:
            return []
        self.joined.pop(room, None)
        self.wanted.pop(room, None)
        self.paging.discard(room)
        if self.pending_leave == room:
            self.pending_leave = None
        if self.current == room:
            self.current = GENERAL if GENERAL in self.joined else next(iter(self.joined), None)
        if self.current is None:
            then = " You are in no room now; /join ROOM to talk."
        else:
            then = f" Now talking in #{self.current}."
        return [Show(self.fmt.notice(f"You left #{escape(room)}.{then}", "leave"))]

    def _delivered(self, msg: dict[str, Any]) -> None:
        cmid = msg.get("client_msg_id")
        if isinstance(cmid, str) and cmid in self.outbox and msg.get("username") == self.me:
            del self.outbox[cmid]

    def _on_history(self, frame: dict[str, Any], now: float) -> list[Effect]:
        f = self.fmt
        room = _str(frame.get("room"), GENERAL)
        view, out = self._view(room, frame.get("epoch"))
        if frame.get("epoch_changed") and view.seen.ranges:
            view.seen = SeqSet()
        raw = frame.get("messages")
        msgs = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        mode = _str(frame.get("mode"), "recent")
        seqs = [s for m in msgs if (s := _int(m.get("seq"))) is not None]
        new = [m for m in msgs if (s := _int(m.get("seq"))) is None or s not in view.seen]
        for m in msgs:
            self._delivered(m)
        tag = escape(room)
        if mode == "page":
            self.paging.discard(room)
            before = _int(frame.get("before_seq"))
            if seqs:
                view.seen.add(min(seqs), before - 1 if before is not None else max(seqs))
            more = frame.get("more") is not False
            if not more:  # nothing exists below: mark it known so /history says so at once
                view.seen.add(0, (min(seqs) if seqs else before or 1) - 1)
            if not new:
                return [*out, Show(f.notice(f"No older messages in #{tag}.", "history"))]
            lines = [f.history_head(f"Older messages in #{tag} ({len(new)}):")]
            lines += [self._chat_line(m, history=True) for m in new]
            lines.append(f.history_foot("end of older messages" if more else f"beginning of #{tag}"))
            return [*out, Show("\n".join(lines))]
        if seqs:
            lo = min(seqs)
            if mode == "resume" and not frame.get("skipped"):
                lo = view.seen.top + 1  # everything after our position came: nothing between is missing
            view.seen.add(lo, max(seqs))
        quiet = room in self.login_rooms and self.reconnecting
        self.login_rooms.discard(room)
        if mode == "resume":
            if new:
                head = f"{len(new)} message{'s' if len(new) != 1 else ''} in #{tag} while you were away:"
                out.append(Show(f.history_head(head)))
                out.extend(Show(self._chat_line(m)) for m in new)
            skipped = _int(frame.get("skipped"))
            if skipped:
                text = f"{skipped} older message(s) in #{tag} were not sent; /history shows them."
                out.append(Show(f.notice(text, "history")))
            return out
        if new:
            lines = [f.history_head(f"Recent messages in #{tag} ({len(new)}):")]
            lines += [self._chat_line(m, history=True) for m in new]
            lines.append(f.history_foot())
            out.append(Show("\n".join(lines)))
        elif not quiet and msgs == [] and room == self.current and not self.reconnecting:
            out.append(Show(f.notice(f"No messages in #{tag} yet.", "history")))
        return out

    def _chat_line(self, m: dict[str, Any], history: bool = False) -> str:
        mine = bool(self.me) and m.get("username") == self.me
        return self.fmt.chat(m, mine=mine, current=self.current, history=history)

    def _on_chat(self, frame: dict[str, Any], now: float) -> list[Effect]:
        room = _str(frame.get("room"), GENERAL)
        seq = _int(frame.get("seq"))
        if seq is not None:
            view = self.views.setdefault(room, RoomView())
            if seq in view.seen:
                return []
            # room messages arrive in seq order with no gap: all up to this one are accounted for
            lo = view.seen.top + 1 if view.seen.ranges and seq > view.seen.top else seq
            view.seen.add(lo, seq)
        self._delivered(frame)
        return [Show(self._chat_line(frame))]

    def _on_private(self, frame: dict[str, Any], now: float) -> list[Effect]:
        pid = frame.get("id")
        if isinstance(pid, str):
            if pid in self.private_seen:
                return []
            self.private_seen[pid] = None
            if len(self.private_seen) > PRIVATE_IDS_KEPT:
                self.private_seen.popitem(last=False)
        cmid = frame.get("client_msg_id")
        if isinstance(cmid, str) and frame.get("from", frame.get("username")) == self.me:
            self.outbox.pop(cmid, None)
        return [Show(self.fmt.private(frame, me=self.me))]

    def _on_ack(self, frame: dict[str, Any], now: float) -> list[Effect]:
        cmid = frame.get("client_msg_id")
        if isinstance(cmid, str):
            self.outbox.pop(cmid, None)
        return []

    def _on_user_join(self, frame: dict[str, Any], now: float) -> list[Effect]:
        if "usernames" not in frame and frame.get("username") == self.me:
            return []  # our own arrival: `joined` already said so
        return [Show(self.fmt.presence(frame, self.current))]

    def _on_online_users(self, frame: dict[str, Any], now: float) -> list[Effect]:
        return [Show(self.fmt.users(frame, self.me))]

    def _on_rooms(self, frame: dict[str, Any], now: float) -> list[Effect]:
        return [Show("\n".join(self.fmt.rooms(frame, self.current)))]

    def _on_system(self, frame: dict[str, Any], now: float) -> list[Effect]:
        return [Show(self.fmt.system(frame, self.current))]

    def _on_error(self, frame: dict[str, Any], now: float) -> list[Effect]:
        f = self.fmt
        code = _str(frame.get("code"))
        reason = escape(frame.get("message")) or f"The server refused a request ({escape(code)})."
        cmid = frame.get("client_msg_id")
        item = self.outbox.get(cmid) if isinstance(cmid, str) else None
        if item is not None:
            if code in ("rate_limited", "store_failed"):
                wait = _num(frame.get("retry_after"), 2.0)
                item.sent_gen = -1
                item.not_before = now + wait
                if now - self.last_wait_notice < 5:
                    return []
                self.last_wait_notice = now
                return [Show(f.notice(f"{reason} (It will be sent again in {seconds(wait)}.)", "queued"))]
            del self.outbox[item.cmid]
            text = _preview(_str(item.frame.get("message")))
            return [Show(f.notice(f'Not sent ("{text}"): {reason}', "error"))]
        if code in ("bad_room", "too_many_rooms", "not_in_room"):
            self.pending_join = self.pending_leave = None
        if code == "not_in_room":
            self.paging.clear()
        return [Show(f.notice(reason, "error"))]


_HANDLERS: dict[str, Callable[[ClientState, dict[str, Any], float], list[Effect]]] = {
    "username_accepted": ClientState._on_username_accepted,
    "username_error": ClientState._on_username_error,
    "joined": ClientState._on_joined,
    "left": ClientState._on_left,
    "history": ClientState._on_history,
    "chat": ClientState._on_chat,
    "private": ClientState._on_private,
    "ack": ClientState._on_ack,
    "user_join": ClientState._on_user_join,
    "user_leave": ClientState._on_user_join,
    "online_users": ClientState._on_online_users,
    "rooms": ClientState._on_rooms,
    "system": ClientState._on_system,
    "error": ClientState._on_error,
}
