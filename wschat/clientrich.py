"""The terminal client's rich messaging: reactions, replies, edits, deletes, mentions, typing,
read positions and unread counts. NO I/O.

`RichFrames` is the part of `wschat.clientstate.ClientState` that

- adds to every room message shown its number (`[N]`, its seq: what the commands refer to), the
  quote of the message it answers, its reactions and an "(edited)" mark;
- shows `reaction`, `edit` and `delete` events (live, or missed while away and carried by the
  resume) as lines naming the message they change, each once (by seq, like messages); a live
  reaction or edit to a message shown live not long ago is `Revised`: the terminal redraws that
  message in place while it is still on screen, and shows the line otherwise;
- answers `/react`, `/reply`, `/edit` and `/delete` (`wschat.commands`). A reply is a chat
  message (it goes through the outbox); the others are sent only while connected;
- marks messages that mention you (`mentions_you`, or your name in `mentions`): highlighted,
  with a bell when they arrive live;
- keeps who is typing in each room (`typing`) for the prompt: `#general (bob is typing…)> `;
- keeps read positions and unread counts: a room's messages count as read once you type a line
  to it (a message or a /react, /reply, /edit, /delete; the client then sends `read`);
  `/unread` lists the rest;
- `/search words` sends `search` and shows the results (tagged with their room); `/search`
  alone asks for the next, older page of the last search.

A line-based output (a pipe, a file) cannot redraw a message printed earlier, so there a change
is a line of its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from wschat import display as d
from wschat.clientframes import ONLINE, Effect, Send, Show, as_int, as_str, note, preview
from wschat.commands import DeleteMsg, EditMsg, React, Reply, Say, SearchMsgs, Unread
from wschat.render import escape
from wschat.roomview import RoomView

EVENT_TYPES = frozenset(("reaction", "edit", "delete"))
TALK = (Say, React, Reply, EditMsg, DeleteMsg)  # lines that talk in the current room: it is read
TEXTS_KEPT = 2000  # messages remembered, to name them in event lines and for /edit
LIVE_KEPT = 200  # live messages remembered as shown, to redraw (more than a screen holds)


class RichFrames:
    """The rich-messaging part of `ClientState` (see wschat.clientstate for the calling rule)."""

    me: str
    phase: str
    current: str | None
    views: dict[str, RoomView]
    texts: OrderedDict[tuple[str, int], tuple[str, str]]  # (room, seq) -> (sender, text)
    my_last: dict[str, int]  # room -> seq of my last message there
    interactive: bool
    typists: dict[str, tuple[tuple[str, ...], int]]  # room -> (names shown, how many type)
    read_pos: dict[str, int]  # room -> my read position
    unread: dict[str, dict[int, bool]]  # room -> seq of an unread message -> it mentions me
    searching: dict[str, Any]  # the last search: query, and the id to page from (absent: no more)
    live: OrderedDict[tuple[str, int], tuple[d.ChatMessage, dict[str, list[str]]]]  # as shown, who reacted

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
        mention = bool(m.get("mentions_you")) or (
            bool(self.me) and isinstance(m.get("mentions"), list) and self.me in m["mentions"]
        )
        if seq is not None and sender != self.me and seq > self.read_pos.get(room, 0):
            self.unread.setdefault(room, {})[seq] = mention
        edited = bool(m.get("edited_at"))
        return {"seq": seq, "quote": quote, "reactions": reactions, "edited": edited, "mention": mention}

    def _live(self, room: str, msg: d.ChatMessage, m: dict[str, Any]) -> tuple[str, int] | None:
        """A room message shown live: remembered (and who reacted with what) so that a reaction or
        an edit can redraw it; its key, for the terminal to find it again."""
        if msg.seq is None:
            return None
        raw = m.get("reactions")
        names = (
            {k: [n for n in v if isinstance(n, str)] for k, v in raw.items() if isinstance(v, list)}
            if isinstance(raw, dict)
            else {}
        )
        key = (room, msg.seq)
        self.live[key] = (msg, names)
        self.live.move_to_end(key)
        if len(self.live) > LIVE_KEPT:
            self.live.popitem(last=False)
        return key

    def _revised(self, f: dict[str, Any]) -> tuple[tuple[str, int], d.ChatMessage] | None:
        """A live reaction or edit to a message shown live: that message as it is now."""
        key = (as_str(f.get("room"), "general"), as_int(f.get("target")) or 0)
        shown = self.live.get(key)
        if shown is None or f.get("type") not in ("reaction", "edit"):
            return None
        msg, names = shown
        if f.get("type") == "edit":
            msg = replace(msg, text=as_str(f.get("message")), edited=True)
        else:
            k, who = as_str(f.get("key")), as_str(f.get("username"))
            people = [n for n in names.get(k, []) if n != who] + ([] if f.get("removed") else [who])
            names = {**names, k: people} if people else {n: v for n, v in names.items() if n != k}
            msg = replace(msg, reactions=tuple((n, len(v)) for n, v in names.items() if v))
        self.live[key] = (msg, names)
        return key, msg

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
        if (revised := self._revised(frame)) is not None:
            return [Show(d.Revised(*revised, event))]
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

    # ------------------------------------------------------------ typing, reading

    def _on_typing(self, frame: dict[str, Any], now: float) -> list[Effect]:
        room = as_str(frame.get("room"), "general")
        raw = frame.get("users")
        names = tuple(n for n in raw if isinstance(n, str) and n != self.me) if isinstance(raw, list) else ()
        count = max(as_int(frame.get("count")) or 0, len(names))
        if count:
            self.typists[room] = (names, count)
        else:
            self.typists.pop(room, None)
        return []

    def typing_note(self) -> str:
        """Who types in the current room, for the prompt ("" if nobody)."""
        names, count = self.typists.get(self.current or "", ((), 0))
        if not count:
            return ""
        if count == 1 and names:
            return f" ({escape(names[0])} is typing…)"
        if count == 2 and len(names) == 2:
            return f" ({escape(names[0])} and {escape(names[1])} are typing…)"
        return f" ({count} people are typing…)"

    def _on_read_position(self, frame: dict[str, Any], now: float) -> list[Effect]:
        room, seq = as_str(frame.get("room"), "general"), as_int(frame.get("seq"))
        if seq is not None and seq > self.read_pos.get(room, 0):
            self.read_pos[room] = seq
            self.unread[room] = {s: m for s, m in self.unread.get(room, {}).items() if s > seq}
        return []

    def _mark_read(self) -> list[Effect]:
        """The user typed while talking in the current room: what was shown there is read."""
        room = self.current
        if room is None or self.phase != ONLINE or not self.interactive:
            return []
        self.unread.pop(room, None)
        top = self.views[room].seen.top if room in self.views else 0
        if top <= self.read_pos.get(room, 0):
            return []
        self.read_pos[room] = top
        return [Send({"type": "read", "room": room, "seq": top})]

    def _unread_list(self) -> list[Effect]:
        rooms = [(r, u) for r, u in self.unread.items() if u]
        if not rooms:
            return [note("No unread messages.", "ok")]
        parts = []
        for room, seqs in sorted(rooms, key=lambda ru: -len(ru[1])):
            mentions = sum(seqs.values())
            extra = f" ({mentions} mention{'s' if mentions != 1 else ''})" if mentions else ""
            parts.append(f"#{room}: {len(seqs)}{extra}")
        return [note("Unread: " + ", ".join(parts) + ". Type a line in a room to mark it read.", "history")]

    # ------------------------------------------------------------ search

    def _search(self, cmd: SearchMsgs) -> list[Effect]:
        if cmd.words:
            self.searching = {"query": cmd.words}
            return [Send({"type": "search", "query": cmd.words})]
        before = self.searching.get("before")
        if before is None:
            return [note("Nothing more to show; /search words starts a new search.", "error")]
        return [Send({"type": "search", "query": self.searching["query"], "before": before})]

    def _on_search_results(self, frame: dict[str, Any], now: float) -> list[Effect]:
        raw = frame.get("results")
        found = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        query = as_str(frame.get("query"))
        last = found[-1].get("id") if found else None
        self.searching = {"query": query}
        if frame.get("more") and isinstance(last, str) and last.isdigit():
            self.searching["before"] = int(last)
        if not found:
            return [note(f'No messages with "{query}".', "history")]
        msgs = tuple(self._found(m) for m in found)
        end = "more: /search" if "before" in self.searching else "end of results"
        return [Show(d.HistoryPage(f'Messages with "{query}", newest first ({len(msgs)}):', msgs, end))]

    def _found(self, m: dict[str, Any]) -> d.ChatMessage:
        """A search result: always tagged with its room, with none of a live message's effects."""
        sender = as_str(m.get("username"))
        room = as_str(m.get("room"), "general")
        return d.ChatMessage(sender, as_str(m.get("message")), as_str(m.get("timestamp")) or None,
                             room, bool(self.me) and sender == self.me, seq=as_int(m.get("seq")),
                             edited=bool(m.get("edited_at")))  # fmt: skip

    # ------------------------------------------------------------ commands

    def _rich_command(self, cmd: React | Reply | EditMsg | DeleteMsg | Unread | SearchMsgs) -> list[Effect]:
        if isinstance(cmd, Unread):
            return self._unread_list()
        if isinstance(cmd, SearchMsgs):
            return (
                self._search(cmd) if self.phase == ONLINE else [note("Not connected right now.", "offline")]
            )
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
