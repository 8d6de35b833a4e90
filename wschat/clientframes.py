"""A third of the terminal client's state machine: server frames about messages -> display events. NO I/O.

`wschat.clientstate.ClientState` is the state machine; this module holds its effects (`Show`,
`Send`, `QuitRequested`, `Stop`), the outbox entry (`Outgoing`) and `FrameHandlers`, the part of
`ClientState` that answers the frames carrying messages and presence: chat, private, history
pages, acknowledgements and refusals, who is online. Kept apart only to keep each file readable;
`ClientState` is the one class to use.

It guarantees that a room message is shown once, by `(room, seq)` within an epoch (`SeqSet`), a
private one once by `id`; and that a private message which waited in the outbox and finds its
recipient offline is held, not dropped, until the recipient is seen online again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wschat import display as d
from wschat.names import InvalidName, check_room, name_key
from wschat.render import seconds
from wschat.roomview import RoomView, SeqSet

GENERAL = "general"
PRIVATE_IDS_KEPT = 2000
WAIT_NOTICE_EVERY = 5.0  # seconds: one "it will be sent again" notice per burst of refusals

# phases
NAMING = "naming"  # waiting for the user to type a name
OFFLINE = "offline"  # have a name, no connection
CONNECTED = "connected"  # connected, login not sent yet (maybe waiting for retry_after)
LOGGING_IN = "logging_in"  # set_username sent
ONLINE = "online"  # accepted


@dataclass(frozen=True, slots=True)
class Show:
    event: d.Display
    key: tuple[str, int] | None = None  # a live room message's (room, seq): `Revised` may redraw it


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


@dataclass(frozen=True, slots=True)
class Job:
    """Work for the I/O layer (`wschat.clientjobs`): read, send or save a file."""

    kind: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SaveToken:
    """Keep this account session token for the next run (None: forget it). See wschat.clientaccount."""

    token: str | None


Effect = Show | Send | QuitRequested | Stop | Job | SaveToken


@dataclass(slots=True)
class Outgoing:
    """One message typed and not yet acknowledged."""

    cmid: str
    frame: dict[str, Any]
    sent_gen: int = -1  # the connection it was last sent on; resent on any other
    not_before: float = 0.0  # after rate_limited / store_failed
    waited: bool = False  # it waited in the outbox (typed offline, or unacknowledged at a drop)
    held_for: str | None = None  # a private message's recipient (name_key) who is not online


def note(text: str, kind: str = "info") -> Show:
    return Show(d.Notice(text, kind))


def as_str(v: Any, default: str = "") -> str:
    return v if isinstance(v, str) else default


def as_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def as_num(v: Any, default: float) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 3600:
        return float(v)
    return default


def as_room(v: Any) -> str | None:
    """A room name from the server, if it is one (anything else could not be sent back, or
    could smuggle escape sequences into the prompt)."""
    if not isinstance(v, str):
        return None
    try:
        return check_room(v)
    except InvalidName:
        return None


def preview(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class FrameHandlers:
    """The message-carrying half of `ClientState` (see wschat.clientstate for the calling rule)."""

    me: str
    interactive: bool
    quiet: bool
    current: str | None
    reconnecting: bool
    login_rooms: set[str]
    views: dict[str, RoomView]
    outbox: OrderedDict[str, Outgoing]
    private_seen: OrderedDict[str, None]
    paging: dict[str, dict[str, Any]]
    page_retry: dict[str, float]
    page_told: set[str]
    pending_join: str | None
    pending_leave: str | None
    last_wait_notice: float
    _rich_fields: Callable[[dict[str, Any]], dict[str, Any]]  # from wschat.clientrich
    _history_events: Callable[[list[dict[str, Any]]], list[Effect]]
    _live: Callable[[str, d.ChatMessage, dict[str, Any]], tuple[str, int] | None]

    def _on_chat(self, frame: dict[str, Any], now: float) -> list[Effect]:
        room = as_str(frame.get("room"), GENERAL)
        seq = as_int(frame.get("seq"))
        if seq is not None:
            view = self.views.setdefault(room, RoomView())
            if seq in view.seen:
                return []
            # room messages arrive in seq order with no gap: all up to this one are accounted for
            lo = view.seen.top + 1 if view.seen.ranges and seq > view.seen.top else seq
            view.seen.add(lo, seq)
        self._delivered(frame)
        msg = self._message(frame)
        return [Show(msg, self._live(room, msg, frame))]  # wschat.clientrich

    def _on_private(self, frame: dict[str, Any], now: float) -> list[Effect]:
        pid = frame.get("id")
        if isinstance(pid, str):
            if pid in self.private_seen:
                return []
            self.private_seen[pid] = None
            if len(self.private_seen) > PRIVATE_IDS_KEPT:
                self.private_seen.popitem(last=False)
        sender = as_str(frame.get("from", frame.get("username")))
        cmid = frame.get("client_msg_id")
        if isinstance(cmid, str) and sender == self.me:
            self.outbox.pop(cmid, None)
        mine = bool(self.me) and sender == self.me
        text = self._file_text(frame) or as_str(frame.get("message"))  # type: ignore[attr-defined]
        event = d.PrivateMessage(sender, as_str(frame.get("to")), text,
                                 as_str(frame.get("timestamp")) or None, mine)  # fmt: skip
        self._release_held((sender,))
        return [Show(event)]

    def _on_ack(self, frame: dict[str, Any], now: float) -> list[Effect]:
        cmid = frame.get("client_msg_id")
        if isinstance(cmid, str):
            self.outbox.pop(cmid, None)
        return []

    def _on_presence(self, frame: dict[str, Any], now: float) -> list[Effect]:
        joined = frame.get("type") == "user_join"
        names = self._names(frame.get("usernames")) or self._names([frame.get("username")])
        if frame.get("reason") == "disconnect":  # gone from the chat: its profile is not known now
            for gone in names:
                self.presence.cards.pop(gone.casefold(), None)  # type: ignore[attr-defined]
        if joined:
            self._release_held(names + self._names(frame.get("users_list")))
            if frame.get("resumed") is True:
                return []  # back after a reconnect (a server restart): not news
            if "usernames" not in frame and frame.get("username") == self.me:
                return []  # our own arrival: `joined` already said so
        name = as_str(frame.get("username"))
        text = as_str(frame.get("message")) or f"{name} {'joined' if joined else 'left'}"
        tag = self._tag(frame.get("room"))
        stamp = as_str(frame.get("timestamp")) or None
        return [Show(d.Presence(joined, text, as_int(frame.get("online_users")), tag, stamp))]

    def _on_online_users(self, frame: dict[str, Any], now: float) -> list[Effect]:
        names = self._names(frame.get("users"))
        count = as_int(frame.get("count"))
        room = as_str(frame.get("room")) or GENERAL
        event = d.UserList(room, len(names) if count is None else count, names, self.me)
        self._release_held(names)
        return [Show(event), *self.presence.of_users(names)]  # type: ignore[attr-defined]

    def _on_rooms(self, frame: dict[str, Any], now: float) -> list[Effect]:
        raw = frame.get("rooms")
        rooms = tuple(
            d.RoomInfo(as_str(r.get("name")), as_int(r.get("members")) or 0, bool(r.get("joined")))
            for r in (raw if isinstance(raw, list) else [])
            if isinstance(r, dict)
        )
        return [Show(d.RoomList(rooms, self.current))]

    def _on_system(self, frame: dict[str, Any], now: float) -> list[Effect]:
        stamp = as_str(frame.get("timestamp")) or None
        return [Show(d.Announcement(as_str(frame.get("message")), self._tag(frame.get("room")), stamp))]

    def _on_error(self, frame: dict[str, Any], now: float) -> list[Effect]:
        code = as_str(frame.get("code"))
        reason = as_str(frame.get("message")) or f"The server refused a request ({code})."
        cmid = frame.get("client_msg_id")
        if (upload := self._upload_refused(cmid, reason)) is not None:  # type: ignore[attr-defined]
            return upload
        item = self.outbox.get(cmid) if isinstance(cmid, str) else None
        if item is not None:
            return self._refused(item, code, reason, as_num(frame.get("retry_after"), 2.0), now)
        room = as_room(frame.get("room"))
        if code == "store_failed" and room is not None and room in self.paging:
            return self._page_failed(room, as_num(frame.get("retry_after"), 2.0), now)
        if code in ("bad_room", "too_many_rooms", "not_in_room"):
            self.pending_join = self.pending_leave = None
        if code == "not_in_room":
            self.paging.clear()
            self.page_retry.clear()
        return [note(reason, "error")]

    def _refused(self, item: Outgoing, code: str, reason: str, wait: float, now: float) -> list[Effect]:
        """The server refused a message of the outbox: wait and resend, hold it, or drop it."""
        if code in ("rate_limited", "store_failed"):
            item.sent_gen = -1
            item.not_before = now + wait
            if now - self.last_wait_notice < WAIT_NOTICE_EVERY:
                return []
            self.last_wait_notice = now
            return [note(f"{reason} (It will be sent again in {seconds(wait)}.)", "queued")]
        text = preview(as_str(item.frame.get("message")))
        to = as_str(item.frame.get("to"))
        if code == "no_such_user" and item.waited and to:
            # Typed while we were away: the recipient may simply not be back yet (a restart).
            item.held_for, item.sent_gen = name_key(to), -1
            then = f"it goes out when {to} comes back online (/drop forgets it)."
            return [note(f'{to} is not online yet: "{text}" is kept; {then}', "queued")]
        del self.outbox[item.cmid]
        return [note(f'Not sent ("{text}"): {reason}', "error")]

    def _release_held(self, names: tuple[str, ...]) -> None:
        """People seen online: their held private messages go out at the next `pump()`."""
        if not names or not any(item.held_for for item in self.outbox.values()):
            return
        keys = {name_key(n) for n in names}
        for item in self.outbox.values():
            if item.held_for in keys:
                item.held_for, item.sent_gen, item.not_before = None, -1, 0.0

    def _page_failed(self, room: str, wait: float, now: float) -> list[Effect]:
        """The server could not read a page of history: ask again later, and say so once."""
        self.page_retry[room] = now + wait
        if room in self.page_told:
            return []
        self.page_told.add(room)
        return [note(f"Couldn't load older messages of #{room}; retrying in {seconds(wait)}.", "history")]

    def _names(self, raw: Any) -> tuple[str, ...]:
        return tuple(n for n in raw if isinstance(n, str) and n) if isinstance(raw, list) else ()

    def _tag(self, room: Any) -> str | None:
        """A room worth naming on a line: one that is not the room being talked in."""
        return room if isinstance(room, str) and room and room != self.current else None

    def _message(self, m: dict[str, Any]) -> d.ChatMessage:
        sender = as_str(m.get("username"))
        mine = bool(self.me) and sender == self.me
        stamp = as_str(m.get("timestamp")) or None
        text = self._file_text(m) or as_str(m.get("message"))  # type: ignore[attr-defined]
        rich = self._rich_fields(m)  # wschat.clientrich
        return d.ChatMessage(sender, text, stamp, self._tag(m.get("room")), mine, **rich)

    def _delivered(self, msg: dict[str, Any]) -> None:
        cmid = msg.get("client_msg_id")
        if isinstance(cmid, str) and cmid in self.outbox and msg.get("username") == self.me:
            del self.outbox[cmid]

    def _filter(self, effects: list[Effect]) -> list[Effect]:
        """--quiet: only problems are shown."""
        if not self.quiet:
            return effects
        return [e for e in effects if not isinstance(e, Show) or _is_problem(e.event)]

    def _view(self, room: str, epoch: Any) -> tuple[RoomView, list[Effect]]:
        """The room's view; forget what we knew if the server's history was lost (new epoch)."""
        view = self.views.setdefault(room, RoomView())
        out: list[Effect] = []
        if isinstance(epoch, str):
            if view.epoch is not None and view.epoch != epoch:
                if view.seen.ranges:
                    out.append(
                        note(f"The server lost the history of #{room}; showing what it has now.", "history")
                    )
                view.seen = SeqSet()
            view.epoch = epoch
        return view, out

    def _on_history(self, frame: dict[str, Any], now: float) -> list[Effect]:
        room = as_str(frame.get("room"), GENERAL)
        view, out = self._view(room, frame.get("epoch"))
        if frame.get("epoch_changed") and view.seen.ranges:
            view.seen = SeqSet()
        raw = frame.get("messages")
        msgs = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        seqs = [s for m in msgs if (s := as_int(m.get("seq"))) is not None]
        # a resume carries the room events missed (reactions, edits, deletes): shown after
        kinds = ("reaction", "edit", "delete", "moderation")  # moderation: not a message to show as one
        events = [m for m in msgs if m.get("type") in kinds]
        events = [m for m in events if (s := as_int(m.get("seq"))) is None or s not in view.seen]
        msgs = [m for m in msgs if m.get("type") not in kinds]
        new = [self._message(m) for m in msgs if (s := as_int(m.get("seq"))) is None or s not in view.seen]
        for m in msgs:
            self._delivered(m)
        mode = as_str(frame.get("mode"), "recent")
        if mode == "page":
            return out + self._page(room, view, frame, seqs, new)
        last = as_int(frame.get("last_seq"))  # events after the last message are folded into them
        if seqs or last:
            lo = min(seqs) if seqs else last or 0
            if mode == "resume" and not frame.get("skipped"):
                lo = view.seen.top + 1  # everything after our position came: nothing between is missing
            view.seen.add(lo, max([*seqs, last or 0]))
        quiet = room in self.login_rooms and self.reconnecting
        self.login_rooms.discard(room)
        notes = self._moderation_notes(room, events, new)  # kicks, bans, topics...: among them by seq
        if mode == "resume":
            resumed = self._resumed(room, new, as_int(frame.get("skipped")), notes)
            return out + resumed + self._history_events(events)
        if not self.interactive:  # a script needs what happens from now on, not the past
            return out
        if new:
            title = f"Recent messages in #{room} ({len(new)}):"
            out.append(Show(d.HistoryPage(title, tuple(new), "end of history", notes)))
        elif not quiet and msgs == [] and room == self.current and not self.reconnecting:
            out.append(note(f"No messages in #{room} yet.", "history"))
        return out

    def _moderation_notes(self, room: str, events: list[dict[str, Any]], new: list[d.ChatMessage]) -> d.Notes:
        from wschat import clientmod  # it imports this module

        return clientmod.history_notes(self, room, events, new)

    def _page(
        self, room: str, view: RoomView, frame: dict[str, Any], seqs: list[int], new: list[d.ChatMessage]
    ) -> list[Effect]:
        """An older page of history (/history)."""
        self.paging.pop(room, None)
        self.page_retry.pop(room, None)
        self.page_told.discard(room)
        before = as_int(frame.get("before_seq"))
        if seqs:
            view.seen.add(min(seqs), before - 1 if before is not None else max(seqs))
        more = frame.get("more") is not False
        if not more:  # nothing exists below: mark it known so /history says so at once
            view.seen.add(0, (min(seqs) if seqs else before or 1) - 1)
        if not new:
            return [note(f"No older messages in #{room}.", "history")]
        end = "end of older messages" if more else f"beginning of #{room}"
        return [Show(d.HistoryPage(f"Older messages in #{room} ({len(new)}):", tuple(new), end))]

    def _resumed(
        self, room: str, new: list[d.ChatMessage], skipped: int | None, notes: d.Notes
    ) -> list[Effect]:
        """What was missed while away, after a reconnect (room events among it by seq)."""
        out: list[Effect] = []
        if new:
            head = f"{len(new)} message{'s' if len(new) != 1 else ''} in #{room} while you were away:"
            out.append(Show(d.HistoryPage(head, tuple(new), None, notes)))
        else:
            out += [Show(n) for _, n in notes]
        if skipped:
            text = f"{skipped} older message(s) in #{room} were not sent; /history shows them."
            out.append(note(text, "history"))
        return out


def _is_problem(event: d.Display) -> bool:
    return isinstance(event, d.Notice) and event.kind in ("error", "offline")
