"""The terminal client's state machine, logging in and room membership: login frame and answers. NO I/O.

`LoginFrames` is the part of `wschat.clientstate.ClientState` that logs in and keeps the rooms:
the login frame (`set_username`, or an account's `login`/`register` through
`wschat.clientaccount`, with the rooms wanted and each room's resume position), the answers
`username_accepted` (the server's limits, the rooms, "Reconnected") and `username_error`
(a wait, a new name asked for, or a script stopped), and `joined`/`left`. Kept apart only to
keep each file readable; `ClientState` is the one class to use.
"""

from __future__ import annotations

from typing import Any

from wschat import clientaccount
from wschat import display as d
from wschat.clientframes import (
    CONNECTED,
    GENERAL,
    NAMING,
    OFFLINE,
    ONLINE,
    Effect,
    Show,
    Stop,
    as_int,
    as_num,
    as_room,
    as_str,
    note,
)
from wschat.ratelimit import TokenBucket
from wschat.render import seconds
from wschat.roomview import RoomView


class LoginFrames:
    """The login and rooms part of `ClientState` (see wschat.clientstate for the calling rule)."""

    name: str | None
    me: str
    token: str | None
    account: str | None
    phase: str
    connected: bool
    interactive: bool
    login_at: float
    logins: int
    reconnecting: bool
    login_rooms: set[str]
    wanted: dict[str, None]
    joined: dict[str, None]
    current: str | None
    views: dict[str, RoomView]
    paging: dict[str, dict[str, Any]]
    page_retry: dict[str, float]
    pending_join: str | None
    pending_leave: str | None
    max_chars: int
    bucket: TokenBucket
    offline_told: bool
    unsent: int
    _view: Any  # from wschat.clientframes
    _names: Any
    _release_held: Any

    def login_frame(self) -> dict[str, Any]:
        if self.account:
            frame = clientaccount.login_frame(self)
        else:
            frame = {"type": "set_username", "username": self.name}
        if self.token and self.name == self.me and not self.account:
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

    def _on_username_accepted(self, frame: dict[str, Any], now: float) -> list[Effect]:
        self.me = as_str(frame.get("username"), self.name or "")
        self.name = self.me
        self.token = as_str(frame.get("session_token")) or None
        limits = frame.get("limits") if isinstance(frame.get("limits"), dict) else {}
        self.max_chars = int(as_num(limits.get("max_message_chars"), 4000)) or 4000
        rate, burst = as_num(limits.get("chat_rate"), 5.0), as_num(limits.get("chat_burst"), 20.0)
        if rate > 0:
            # a little under the server's limit: our sends reach it later and bunched up
            self.bucket = TokenBucket(rate * 0.9, max(1.0, burst - 2), now)
        raw = frame.get("rooms")
        rooms = [r for v in raw if (r := as_room(v))] if isinstance(raw, list) else []
        rooms = list(dict.fromkeys(rooms)) or list(self.wanted) or [GENERAL]
        self.wanted = dict.fromkeys(rooms)
        self.joined = dict.fromkeys(rooms)  # a seed server sends no `joined`
        if self.current not in self.joined:
            self.current = rooms[0]
        self.reconnecting = self.logins > 0
        self.login_rooms = set(rooms)
        self.logins += 1
        self.phase = ONLINE
        saved = clientaccount.accepted(self, frame) if self.account else []
        self.offline_told = False
        if self.reconnecting:
            extra = f" Sending {self.unsent} queued message(s)." if self.unsent else ""
            return [*saved, note(f"Reconnected as {self.me}.{extra}", "ok")]
        if not self.interactive:  # a script knows where it is; only people need the hint
            return saved
        welcome = as_str(frame.get("message")) or f"Welcome, {self.me}!"
        if self.account:
            welcome += " (logged in to your account)"
        hint = f"You are in #{self.current}. Type a message and press Enter; /help for commands."
        return [*saved, note(welcome, "ok"), note(hint)]

    def _on_username_error(self, frame: dict[str, Any], now: float) -> list[Effect]:
        reason = as_str(frame.get("message")) or "The server refused that name."
        if self.account and (final := clientaccount.refused(self, frame, now)) is not None:
            return final
        # Too fast, or (several server processes) Redis could not be reached to check the name:
        # both pass; try the same name again after the wait.
        if frame.get("code") in ("rate_limited", "store_failed"):
            wait = as_num(frame.get("retry_after"), 2.0)
            self.login_at = now + wait
            self.phase = CONNECTED if self.connected else OFFLINE
            return [note(f"{reason} Trying again in {seconds(wait)}.", "queued")]
        if not self.interactive:
            msg = f"The server refused the name '{self.name}': {reason} Run again with another --username."
            return [Stop(1, msg)]
        self.name = None
        self.phase = NAMING
        return [note(reason, "error")]

    def _on_joined(self, frame: dict[str, Any], now: float) -> list[Effect]:
        room = as_room(frame.get("room"))
        if room is None:
            return []
        _, out = self._view(room, frame.get("epoch"))
        self.joined[room] = None
        self.wanted[room] = None
        names = self._names(frame.get("users_list"))
        self._release_held(names)
        count = as_int(frame.get("online_users"))
        if self.pending_join == room:
            self.pending_join = None
            self.current = room
            out.append(Show(d.RoomJoined(room, count, names, self.me, switched=True)))
        elif room in self.login_rooms and not self.reconnecting and self.interactive:
            out.append(Show(d.RoomJoined(room, count, names, self.me, switched=False)))
        elif room not in self.login_rooms and self.interactive:  # joined on another device of yours
            out.append(note(f"You are in #{room} now (joined on another of your devices).", "ok"))
        return out

    def _on_left(self, frame: dict[str, Any], now: float) -> list[Effect]:
        room = as_room(frame.get("room"))
        if room is None:
            return []
        self.joined.pop(room, None)
        self.wanted.pop(room, None)
        self.paging.pop(room, None)
        self.page_retry.pop(room, None)
        if self.pending_leave == room:
            self.pending_leave = None
        if self.current == room:
            self.current = GENERAL if GENERAL in self.joined else next(iter(self.joined), None)
        if self.current is None:
            then = " You are in no room now; /join ROOM to talk."
        else:
            then = f" Now talking in #{self.current}."
        return [note(f"You left #{room}.{then}", "leave")]
