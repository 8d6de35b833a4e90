"""The terminal client's state machine: login, rooms, resume positions, outbox, de-duplication. NO I/O.

This module imports neither asyncio nor websockets nor aioconsole. `ClientState` is fed what
happens (a connection opened or closed, a frame arrived, the user typed a line, time passed)
and answers with effects for the I/O layer to carry out, in order:

- `Show(event)`: show a display event (`wschat.display`; `wschat.render` turns it into text);
- `Send(frame)`: send this frame now (only produced while connected);
- `QuitRequested()`: the user asked to leave: flush the outbox (bounded), close, exit 0;
- `Stop(status, message)`: give up now with this exit status and sentence.

Calling rule: `opened()` when a WebSocket connects, `closed()` when it goes; `frame()` for each
decoded server frame, `line()` for each typed line, `edited()` each time the line being typed
changes (an interactive terminal only: it may tell the room the user is typing, see
`wschat.clienttyping`), and after any of them `pump(now)`, which
returns the frames that are due (the login, outbox messages paced under the server's rate limit,
history pages to retry) and when to call it again.

What it guarantees, from PROTOCOL.md: every chat or private message typed gets a
`client_msg_id` and stays in the outbox until the server acknowledges it (or its echo arrives),
being resent with the same id after every reconnect; room messages are shown once, by
`(room, seq)` within an epoch, private ones once by `id`; a reconnect resumes each room from the
last seq shown, so nothing in between is lost. A private message that waited in the outbox and
finds its recipient offline is held (not dropped) until the recipient is seen online again.

`ClientState` is put together from parts, each in its own module: `wschat.clientlogin`
(logging in, `joined`/`left`), `wschat.clientframes` (messages, presence, history pages),
`wschat.clientlines` (typed lines), `wschat.clientrich` and `wschat.clientfiles`; this module
holds the state, the connection events, the pacing of what is sent (`pump`) and the frame
dispatch table.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from wschat import clientaccount, clientcalls, cliente2ee, clientmod, clientprofile
from wschat import display as d
from wschat.clientfiles import FileTransfers
from wschat.clientframes import (
    CONNECTED,
    GENERAL,
    LOGGING_IN,
    NAMING,
    OFFLINE,
    ONLINE,
    Effect,
    FrameHandlers,
    Job,
    Outgoing,
    QuitRequested,
    Send,
    Show,
    Stop,
    as_str,
)
from wschat.clientlines import TypedLines
from wschat.clientlogin import LoginFrames
from wschat.clientrich import TALK, RichFrames
from wschat.clienttyping import OwnTyping
from wschat.codes import CLOSE_TAKEOVER
from wschat.commands import (
    History,
    Join,
    Leave,
    Reply,
    Rooms,
    Say,
    Users,
    parse_line,
)
from wschat.ratelimit import TokenBucket
from wschat.roomview import NO_SEQ_BELOW, RoomView, SeqSet

__all__ = [
    "CLOSE_TAKEOVER",
    "NO_SEQ_BELOW",
    "ClientState",
    "Effect",
    "Job",
    "QuitRequested",
    "Send",
    "SeqSet",
    "Show",
    "Stop",
]


class ClientState(RichFrames, TypedLines, LoginFrames, FrameHandlers, FileTransfers, cliente2ee.E2EEClient):
    def __init__(
        self,
        *,
        name: str | None,
        rooms: list[str] | None = None,
        interactive: bool = True,
        quiet: bool = False,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        account: str | None = None,
        password: str | None = None,
        account_token: str | None = None,
        device: str = "",
    ) -> None:
        self.interactive = interactive  # a person can be asked again (stdin is a terminal)
        self.quiet = quiet  # show only problems (scripts that only send)
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
        self.paging: dict[str, dict[str, Any]] = {}  # room -> the fetch_history waiting for its page
        self.page_retry: dict[str, float] = {}  # room -> when to send its fetch_history again
        self.page_told: set[str] = set()  # rooms whose failed page the user was told about
        self.max_chars = 4000
        self.bucket = TokenBucket(4.5, 18, 0.0)
        self.last_wait_notice = -1e9
        self._init_files()
        self._init_e2ee()  # end-to-end encryption (wschat.cliente2ee)
        # accounts (wschat.clientaccount): "login" or "register", None for a guest
        self.account = account
        self.password = password  # read with getpass; forgotten once the server answers
        self.account_token = account_token  # this device's session token
        self.device = device
        self.offline_told = False  # "arrived while you were away" said since the last log-in
        self.unstored_told: set[str] = set()  # names told "private messages not stored" about
        self.conversation_before: dict[str, int] = {}  # /conversation: the oldest seq shown
        self.texts: OrderedDict[tuple[str, int], tuple[str, str]] = OrderedDict()  # wschat.clientrich
        self.topics: dict[str, str] = {}  # room -> its topic (wschat.clientmod)
        self.ringing: dict[str, str] = {}  # the call ringing for us: call_id, from (wschat.clientcalls)
        self.presence = clientprofile.Presence()  # this device's presence (wschat.clientprofile)
        self.my_last: dict[str, int] = {}
        self.typists: dict[str, tuple[tuple[str, ...], int]] = {}
        self.read_pos: dict[str, int] = {}
        self.unread: dict[str, dict[int, bool]] = {}
        self.searching: dict[str, Any] = {}
        self.own_typing = OwnTyping()
        self.live: OrderedDict[tuple[str, int], tuple[d.ChatMessage, dict[str, list[str]]]] = OrderedDict()

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

    @property
    def unsent(self) -> int:
        """Messages still to be acknowledged, not counting those held for someone offline."""
        return sum(1 for item in self.outbox.values() if item.held_for is None)

    def prompt(self) -> str:
        if self.phase == NAMING:
            return "Enter your username: "
        where = self.progress_text() + (f"#{self.current}" if self.current else "(no room)")
        if self.online:
            return f"{where}{self.typing_note()}> "
        return f"(offline) {where}> " if self.logins else f"(connecting) {where}> "

    def needs_server(self, line: str) -> bool:
        """A command that only makes sense once logged in (scripts wait for the login first)."""
        return not self.naming and isinstance(parse_line(line), (Users, Rooms, Join, Leave, History))

    # ------------------------------------------------------------ connection events

    def opened(self, now: float) -> None:
        self.connected = True
        self.gen += 1
        self.bucket = TokenBucket(self.bucket.rate, self.bucket.burst, now)
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
        self.page_retry.clear()
        self.page_told.clear()
        self.own_typing.forget()
        for item in self.outbox.values():
            item.waited = True

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
            self._pump_uploads(frames)
            wake = self._pump_pages(now, frames)
            out_wake = self._pump_outbox(now, frames)
            wake = out_wake if wake is None or (out_wake is not None and out_wake < wake) else wake
            if self.interactive:  # a person: away after a while idle (wschat.clientprofile)
                away = self.presence.pump(now, self.gen, frames)
                wake = away if wake is None or (away is not None and away < wake) else wake
        return frames, wake

    def _pump_outbox(self, now: float, frames: list[dict[str, Any]]) -> float | None:
        for item in self.outbox.values():
            if item.sent_gen == self.gen or item.held_for is not None:
                continue
            if item.not_before > now:  # keep the order: later messages wait too
                return item.not_before
            wait = self.bucket.ready_in(now)
            if wait:
                return now + wait
            self.bucket.take(now)
            item.sent_gen = self.gen
            frames.append(item.frame)
        return None

    def _pump_pages(self, now: float, frames: list[dict[str, Any]]) -> float | None:
        wake: float | None = None
        for room, at in list(self.page_retry.items()):
            if at <= now:
                del self.page_retry[room]
                frames.append(self.paging[room])
            else:
                wake = at if wake is None else min(wake, at)
        return wake

    # ------------------------------------------------------------ server frames

    def line(self, text: str, now: float) -> list[Effect]:
        """A line the user typed (a name while naming, else a message or a command)."""
        talks = not self.naming and isinstance(parse_line(text), TALK)
        out: list[Effect] = [Send(f) for f in self.own_typing.stop(now)]  # the line is done
        if self.online:
            out += [Send(f) for f in self.presence.active(now)]  # back from an automatic away
        out += self._typed(text, now)
        if talks:  # what was shown in the room the user talks in has been read
            out += self._mark_read()
        return self._filter(out)

    def edited(self, text: str, now: float) -> list[Effect]:
        """The line being typed is now `text` (not yet sent): maybe tell the room we type."""
        says = self.online and self.interactive and isinstance(parse_line(text), (Say, Reply))
        back = self.presence.active(now) if self.online else []  # back from an automatic away
        return [Send(f) for f in (*back, *self.own_typing.edited(self.current if says else None, now))]

    def frame(self, frame: dict[str, Any], now: float) -> list[Effect]:
        handler = _HANDLERS.get(as_str(frame.get("type")))
        if handler is None:  # unknown types are for newer clients
            return []
        out = handler(self, frame, now)
        was = self.own_typing.room
        if was is not None and was != self.current:  # we talk somewhere else now
            stop = self.own_typing.stop(now)
            if was in self.joined:  # (a room left has dropped our typing itself)
                out = [Send(f) for f in stop] + out
        return self._filter(out)


_HANDLERS: dict[str, Callable[[ClientState, dict[str, Any], float], list[Effect]]] = {
    "username_accepted": ClientState._on_username_accepted,
    "username_error": ClientState._on_username_error,
    "joined": ClientState._on_joined,
    "left": ClientState._on_left,
    "history": ClientState._on_history,
    "chat": ClientState._on_chat,
    "private": ClientState._on_private,
    "ack": ClientState._on_ack,
    "user_join": ClientState._on_presence,
    "user_leave": ClientState._on_presence,
    "online_users": ClientState._on_online_users,
    "rooms": ClientState._on_rooms,
    "system": ClientState._on_system,
    "error": ClientState._on_error,
    "upload_ready": ClientState._on_upload_ready,
    "upload_done": ClientState._on_upload_done,
    **clientaccount.FRAMES,
    **clientmod.FRAMES,
    **clientcalls.FRAMES,
    **clientprofile.FRAMES,
    "reaction": ClientState._on_room_event,
    "edit": ClientState._on_room_event,
    "delete": ClientState._on_room_event,
    "typing": ClientState._on_typing,
    "read_position": ClientState._on_read_position,
    "search_results": ClientState._on_search_results,
    **cliente2ee.FRAMES,  # wraps username_accepted, private, private_history, error, session_revoked
}
