"""The terminal client's moderation: `/kick /ban /unban /mute /unmute /topic /invite /inviteonly`,
and the lines for `moderation` and `room_info` frames. NO I/O.

A command acts in the current room; `-s` first acts on the whole server (operators):
`/ban -s Troll spamming`. `wschat.commands` calls `parse()` for these words (its `_COMMANDS`
gets them from here); `ClientState` sends what `command()` returns and shows what the
frame handlers in `FRAMES` return.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wschat import commands
from wschat import display as d
from wschat.clientframes import Send, as_int, as_str, note

if TYPE_CHECKING:
    from wschat.clientframes import Effect
    from wschat.clientstate import ClientState

DEFAULT_MUTE = 600
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Moderate:
    """A moderation request: `frame` to send; `room`: it acts in the current room."""

    frame: dict[str, Any]
    room: bool = True


def _duration(word: str) -> int | None:
    m = re.fullmatch(r"(\d{1,7})([smhd]?)", word.lower())
    return int(m.group(1)) * _UNITS[m.group(2) or "s"] if m else None


def _target(kind: str, arg: str, usage: str) -> commands.Usage | tuple[dict[str, Any], bool, str]:
    """(frame with `type` and `username`, in the room, the rest of the line) of `[-s] NAME rest`."""
    server = arg.startswith("-s ") or arg == "-s"
    split = commands._split_name(arg[2:] if server else arg)
    if split is None or not split[0]:
        return commands.Usage(usage)
    return {"type": kind, "username": split[0]}, not server, split[1]


def _with_reason(kind: str, usage: str) -> Any:
    def parse(arg: str) -> Any:
        found = _target(kind, arg, usage)
        if isinstance(found, commands.Usage):
            return found
        frame, room, rest = found
        if rest:
            frame["reason"] = rest
        return Moderate(frame, room)

    return parse


def _plain(kind: str, usage: str) -> Any:
    def parse(arg: str) -> Any:
        found = _target(kind, arg, usage)
        if isinstance(found, commands.Usage) or found[2]:
            return commands.Usage(usage)
        return Moderate(found[0], found[1])

    return parse


def _mute(arg: str) -> Any:
    usage = "Usage: /mute [-s] NAME [DURATION: 30s, 10m, 2h, 1d; default 10m] [reason]"
    found = _target("mute", arg, usage)
    if isinstance(found, commands.Usage):
        return found
    frame, room, rest = found
    first, _, reason = rest.partition(" ")
    seconds = _duration(first) if first else None
    if seconds is None:
        seconds, reason = DEFAULT_MUTE, rest
    if not 1 <= seconds <= 30 * 86400:
        return commands.Usage("A mute lasts from 1 second to 30 days.")
    frame["seconds"] = seconds
    if reason.strip():
        frame["reason"] = reason.strip()
    return Moderate(frame, room)


def _topic(arg: str) -> Any:
    return Moderate({"type": "set_topic", "topic": arg})


def _invite_only(arg: str) -> Any:
    if arg.lower() not in ("on", "off"):
        return commands.Usage("Usage: /inviteonly on|off (only invited people may join the current room)")
    return Moderate({"type": "set_invite_only", "invite_only": arg.lower() == "on"})


COMMANDS = {
    "kick": _with_reason("kick", "Usage: /kick [-s] NAME [reason] (-s: off the server)"),
    "ban": _with_reason("ban", "Usage: /ban [-s] NAME [reason] (-s: from the whole server)"),
    "unban": _plain("unban", "Usage: /unban [-s] NAME"),
    "mute": _mute,
    "unmute": _plain("unmute", "Usage: /unmute [-s] NAME"),
    "topic": _topic,
    "invite": _plain("invite", "Usage: /invite NAME (to the current room)"),
    "inviteonly": _invite_only,
}
HELP = [
    ("/kick [-s] NAME [reason]", "moderators: take NAME out of this room (-s: off the server)"),
    ("/ban [-s] NAME [reason]", "moderators: ban NAME (a guest: by address) here (-s: the server)"),
    ("/unban [-s] NAME", "moderators: lift a ban"),
    ("/mute [-s] NAME [10m] [reason]", "moderators: NAME may not talk here for a time (30s, 10m, 2h, 1d)"),
    ("/unmute [-s] NAME", "moderators: end a mute early"),
    ("/topic [TEXT]", "show this room's topic; moderators: set it"),
    ("/invite NAME", "moderators: let NAME join this invite-only room"),
    ("/inviteonly on|off", "moderators: only invited people may join this room (and it is not listed)"),
]


def command(st: ClientState, cmd: Moderate) -> list[Effect]:
    frame = dict(cmd.frame)
    if frame["type"] == "set_topic" and not frame["topic"]:
        room = st.current or "general"
        topic = st.topics.get(room, "")
        return [note(f"#{room}'s topic: {topic}" if topic else f"#{room} has no topic.")]
    if cmd.room:
        if st.current is None:
            return [note("You are in no room; /join ROOM first.", "error")]
        frame["room"] = st.current
    return [Send(frame)]


_DONE = {
    "kick": "kicked {u} out",
    "mute": "muted {u}",
    "unmute": "unmuted {u}",
    "ban": "banned {u}",
    "unban": "lifted the ban on {u}",
    "invite": "invited {u}",
}


def _sentence(f: dict[str, Any]) -> str:
    action, by, user = as_str(f.get("action")), as_str(f.get("by")), as_str(f.get("username"))
    room = as_str(f.get("room"))
    where = f" (#{room})" if room else " (the whole server)"
    if action == "topic":
        topic = as_str(f.get("topic"))
        return f"{by} set the topic{where}: {topic}" if topic else f"{by} cleared the topic{where}"
    if action == "invite_only":
        state = "invite-only" if f.get("invite_only") is True else "open to everyone"
        return f"{by} made #{room} {state}"
    text = f"{by} " + _DONE.get(action, action + " {u}").format(u=user or "someone") + where
    until = as_str(f.get("until"))
    if until and action in ("mute", "ban"):
        text += f" until {until[11:19]}"
    reason = as_str(f.get("reason"))
    return text + (f": {reason}" if reason else "")


def on_moderation(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    room, seq = as_str(frame.get("room")), as_int(frame.get("seq"))
    if room and seq is not None and not st._fresh(room, seq):
        return []
    if frame.get("action") == "topic" and room:
        st.topics[room] = as_str(frame.get("topic"))
    return [note(_sentence(frame), "system")]


def on_room_info(st: ClientState, frame: dict[str, Any], now: float) -> list[Effect]:
    room, topic = as_str(frame.get("room")), as_str(frame.get("topic"))
    st.topics[room] = topic
    out: list[Effect] = []
    if topic:
        out.append(note(f"#{room}'s topic: {topic}"))
    if frame.get("moderator") is True:
        out.append(note(f"You moderate #{room} (/kick, /ban, /mute, /topic, /invite; see /help)."))
    return out


def history_lines(st: ClientState, room: str, events: list[dict[str, Any]]) -> list[Effect]:
    """Moderation events in a room's history (recent or resumed), as lines after its messages."""
    out: list[Effect] = []
    for f in events:
        f = {**f, "room": as_str(f.get("room")) or room}
        if f.get("action") == "topic":
            st.topics[room] = as_str(f.get("topic"))
        out.append(note(_sentence(f), "system"))
    return out


def history_notes(
    st: ClientState, room: str, events: list[dict[str, Any]], messages: list[d.ChatMessage]
) -> d.Notes:
    """Moderation events of a history placed among its `messages` (in seq order) by their seq:
    (how many messages come before each, its line), for `display.HistoryPage.notes`."""
    mod = [e for e in events if e.get("type") == "moderation"]
    seqs = [m.seq if m.seq is not None else -1 for m in messages]
    placed = []
    for f, shown in zip(mod, history_lines(st, room, mod), strict=True):
        seq = as_int(f.get("seq"))
        at = len(seqs) if seq is None else bisect_left(seqs, seq)
        placed.append((at, shown.event))  # history_lines makes one Show(Notice) per event
    return tuple(placed)


FRAMES = {"moderation": on_moderation, "room_info": on_room_info}

# The commands join the command table and /help (before "/help" itself) when this is imported
# (by wschat.clientlines).
commands._COMMANDS.update(COMMANDS)
_at = next(i for i, (usage, _) in enumerate(commands.HELP) if usage == "/help")
commands.HELP[_at:_at] = HELP
