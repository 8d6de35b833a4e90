"""The terminal client's rich messaging: reactions, replies, edits and deletes. NO I/O.

`RichFrames` is the part of `wschat.clientstate.ClientState` that

- adds to every room message shown its number (`[N]`, its seq: what the commands refer to), the
  quote of the message it answers, its reactions and an "(edited)" mark;
- shows `reaction`, `edit` and `delete` events (live, or missed while away and carried by the
  resume) as lines naming the message they change, each once (by seq, like messages);
- answers `/react`, `/reply`, `/edit` and `/delete` (`wschat.commands`). A reply is a chat
  message (it goes through the outbox); the others are sent only while connected.

A line-based terminal cannot redraw a message printed earlier, so a change is a line of its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from wschat import display as d
from wschat.clientframes import ONLINE, Effect, Send, Show, as_int, as_str, note, preview
from wschat.commands import DeleteMsg, EditMsg, React, Reply
from wschat.roomview import RoomView

EVENT_TYPES = frozenset(("reaction", "edit", "delete"))
TEXTS_KEPT = 2000  # messages remembered, to name them in event lines and for /edit


class RichFrames:
    """The rich-messaging part of `ClientState` (see wschat.clientstate for the calling rule)."""

    me: str
    phase: str
    current: str | None
    views: dict[str, RoomView]
    texts: OrderedDict[tuple[str, int], tuple[str, str]]  # (room, seq) -> (sender, text)
    my_last: dict[str, int]  # room -> seq of my last message there

    _queue: Callable[[dict[str, Any], str], list[Effect]]  # from TypedLines
    _tag: Callable[[Any], str | None]  # from FrameHandlers

    # ------------------------------------------------------------ messages

    def _rich_fields(self, m: dict[str, Any]) -> dict[str, Any]:
        """The rich parts of a chat frame, for `display.ChatMessage`; remembers the message."""
        room, seq = as_str(m.get("room"), "general"), as_int(m.get("seq"))
        sender = as_str(m.get("username"))
        if seq is not None:
            self.texts[(room, seq)] = (sender, as_str(m.get("message")))
            self.texts.move_to_end((room, seq))
            if len(self.texts) > TEXTS_KEPT:
                self.texts.popitem(last=False)
            if sender == self.me and self.me:
                self.my_last[room] = max(seq, self.my_last.get(room, 0))
        quote = None
        q = m.get("reply_preview")
        if as_int(m.get("reply_to")) and isinstance(q, dict):
            quote = (as_str(q.get("username")), as_str(q.get("message")) or "(deleted)")
        raw = m.get("reactions")
        reactions = ()
        if isinstance(raw, dict):
            reactions = tuple((k, len(v)) for k, v in raw.items() if isinstance(v, list) and v)
        return {"seq": seq, "quote": quote, "reactions": reactions, "edited": bool(m.get("edited_at"))}

    def _fresh(self, room: str, seq: int | None) -> bool:
        """Whether a room frame with `seq` is new (and mark it seen); frames come in seq order."""
        if seq is None:
            return True
        view = self.views.setdefault(room, RoomView())
        if seq in view.seen:
            return False
        lo = view.seen.top + 1 if view.seen.ranges and seq > view.seen.top else seq
        view.seen.add(lo, seq)
        return True

    def _on_room_event(self, frame: dict[str, Any], now: float) -> list[Effect]:
        room = as_str(frame.get("room"), "general")
        if not self._fresh(room, as_int(frame.get("seq"))):
            return []
        event = self._event_line(frame)
        return [Show(event)] if event is not None else []

    def _event_line(self, f: dict[str, Any]) -> d.RoomEvent | None:
        """One event as a line naming its target, or None (a reaction taken back is not news)."""
        room, target = as_str(f.get("room"), "general"), as_int(f.get("target"))
        if target is None:
            return None
        who = as_str(f.get("username"))
        known = self.texts.get((room, target))
        about = f' "{preview(known[1])}"' if known and known[1] else ""
        kind = f.get("type")
        if kind == "reaction":
            if f.get("removed"):
                return None
            text = f"reacted {as_str(f.get('key'))} to [{target}]{about}"
        elif kind == "edit":
            new = as_str(f.get("message"))
            if known:
                self.texts[(room, target)] = (known[0], new)
            text = f"edited [{target}]: {new}"
        else:
            if known:
                self.texts[(room, target)] = (known[0], "")
            text = f"deleted [{target}]{about}"
        mine = bool(self.me) and who == self.me
        return d.RoomEvent(who, text, target, self._tag(room), as_str(f.get("timestamp")) or None, mine)

    def _history_events(self, events: list[dict[str, Any]]) -> list[Effect]:
        """Events missed while away (a resume), after the messages."""
        lines = [e for f in events if (e := self._event_line(f)) is not None]
        return [Show(e) for e in lines]

    # ------------------------------------------------------------ commands

    def _rich_command(self, cmd: React | Reply | EditMsg | DeleteMsg) -> list[Effect]:
        room = self.current
        if room is None:
            return [note("You are in no room; /join one first.", "error")]
        if isinstance(cmd, Reply):
            return self._queue(
                {"type": "chat", "message": cmd.text, "room": room, "reply_to": cmd.seq}, cmd.text
            )
        if self.phase != ONLINE:
            return [note("Not connected right now; try again once reconnected.", "offline")]
        if isinstance(cmd, React):
            frame = {"type": "react", "room": room, "target": cmd.seq, "key": cmd.key}
            if cmd.remove:
                frame["remove"] = True
            return [Send(frame)]
        if isinstance(cmd, DeleteMsg):
            return [Send({"type": "delete", "room": room, "target": cmd.seq})]
        seq = cmd.seq if cmd.seq is not None else self.my_last.get(room)
        if seq is None:
            return [note(f"You have sent no message in #{room} to edit; use /edit N text.", "error")]
        return [Send({"type": "edit", "room": room, "target": seq, "message": cmd.text})]
