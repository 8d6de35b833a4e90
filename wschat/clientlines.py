"""A third of the terminal client's state machine: what the user types -> effects. NO I/O.

`TypedLines` is the part of `wschat.clientstate.ClientState` that answers typed lines: the name
asked for at start, messages (queued in the outbox with a `client_msg_id`, refused with a
sentence when over the length limit), and commands, answered here (/help, /drop) or turned into
requests for the server. Kept apart only to keep each file readable; `ClientState` is the one
class to use.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from wschat import clientaccount, clientcalls, clientmod, clientprofile
from wschat import display as d
from wschat.clientframes import (
    CONNECTED,
    NAMING,
    OFFLINE,
    ONLINE,
    Effect,
    Outgoing,
    QuitRequested,
    Send,
    Show,
    note,
    preview,
)
from wschat.clienttrust import KeyCommand
from wschat.commands import (
    ACCOUNT_COMMANDS,
    RICH,
    Drop,
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
    parse_line,
)
from wschat.roomview import NO_SEQ_BELOW, RoomView


class TypedLines:
    """The typed-line half of `ClientState` (see wschat.clientstate for the calling rule)."""

    name: str | None
    phase: str
    connected: bool
    login_at: float
    logins: int
    current: str | None
    joined: dict[str, None]
    views: dict[str, RoomView]
    outbox: OrderedDict[str, Outgoing]
    paging: dict[str, dict[str, Any]]
    pending_join: str | None
    pending_leave: str | None
    max_chars: int
    new_id: Any
    _rich_command: Any  # from wschat.clientrich
    topics: dict[str, str]  # room -> its topic (wschat.clientmod)

    def _typed(self, text: str, now: float) -> list[Effect]:
        """What a typed line does (`ClientState.line()` is the entry point)."""
        if self.phase == NAMING:
            return self._naming_line(text, now)
        cmd = parse_line(text)
        if isinstance(cmd, Nothing):
            return []
        if isinstance(cmd, Say):
            if self.current is None:
                return [note("You are in no room; /join ROOM first (e.g. /join general).", "error")]
            return self._queue({"type": "chat", "message": cmd.text, "room": self.current}, cmd.text)
        if isinstance(cmd, Msg):  # encrypted between accounts (wschat.cliente2ee)
            return self._private_line(cmd.to, cmd.text)  # type: ignore[attr-defined]
        if isinstance(cmd, KeyCommand):
            return self._key_command(cmd)  # type: ignore[attr-defined]
        if isinstance(cmd, RICH):
            return self._rich_command(cmd)
        local = self._local_command(cmd)
        if local is not None:
            return local
        files = self._file_command(cmd)  # type: ignore[attr-defined]
        if files is not None:
            return files
        if self.phase != ONLINE:
            return [note("Not connected right now; try again once reconnected.", "offline")]
        return self._server_command(cmd)

    def _naming_line(self, text: str, now: float) -> list[Effect]:
        if isinstance(parse_line(text), Quit):
            return [QuitRequested()]
        name = text.strip()
        if not name:
            return [note("Please type a name.", "error")]
        self.name = name
        self.phase = CONNECTED if self.connected else OFFLINE
        self.login_at = now
        return []

    def _local_command(self, cmd: Any) -> list[Effect] | None:
        """Commands answered without the server; None for the others."""
        if isinstance(cmd, Help):
            return [Show(d.HelpText())]
        if isinstance(cmd, Quit):
            return [QuitRequested()]
        if isinstance(cmd, Drop):
            return self._drop_held()
        if isinstance(cmd, Unknown):
            return [note(f"Unknown command {cmd.name}; type /help for the list.", "error")]
        if isinstance(cmd, Usage):
            return [note(cmd.message, "error")]
        return None

    def _server_command(self, cmd: Any) -> list[Effect]:
        if isinstance(cmd, ACCOUNT_COMMANDS):
            return clientaccount.command(self, cmd)  # type: ignore[arg-type]
        if isinstance(cmd, clientmod.Moderate):
            return clientmod.command(self, cmd)  # type: ignore[arg-type]
        if isinstance(cmd, clientcalls.Decline):
            return clientcalls.command(self, cmd)  # type: ignore[arg-type]
        if isinstance(cmd, clientprofile.ProfileCmd):
            return clientprofile.command(self, cmd)  # type: ignore[arg-type]
        if isinstance(cmd, Users):
            room = cmd.room or self.current
            if room is None:
                return [note("You are in no room; try /users ROOM.", "error")]
            return [Send({"type": "get_users", "room": room})]
        if isinstance(cmd, Rooms):
            return [Send({"type": "list_rooms"})]
        if isinstance(cmd, Join):
            if cmd.room in self.joined:
                self.current = cmd.room
                return [note(f"Now talking in #{cmd.room}.", "ok")]
            self.pending_join = cmd.room
            return [Send({"type": "join", "room": cmd.room})]
        if isinstance(cmd, Leave):
            room = cmd.room or self.current
            if room is None or room not in self.joined:
                return [note(f"You are not in {f'#{room}' if room else 'any room'}.", "error")]
            self.pending_leave = room
            return [Send({"type": "leave", "room": room})]
        assert isinstance(cmd, History)
        return self._history_request(cmd.count)

    def _queue(self, frame: dict[str, Any], text: str) -> list[Effect]:
        if len(text) > self.max_chars:
            msg = f"Not sent: the message has {len(text)} characters; the limit is {self.max_chars}."
            return [note(msg, "error")]
        cmid = self.new_id()
        frame["client_msg_id"] = cmid
        online = self.phase == ONLINE
        # typed while disconnected after a login: its recipient may not be back yet either
        self.outbox[cmid] = Outgoing(cmid, frame, waited=not online and self.logins > 0)
        if online or not self.logins:  # before the first login it simply goes out at login
            return []
        n = len(self.outbox)
        waiting = f" ({n} waiting)" if n > 1 else ""
        return [
            note(
                f'Not connected: "{preview(text)}" is queued{waiting} and goes out once reconnected.',
                "queued",
            )
        ]

    def _drop_held(self) -> list[Effect]:
        held = [item for item in self.outbox.values() if item.held_for is not None]
        for item in held:
            del self.outbox[item.cmid]
        if not held:
            return [note("No private message is waiting for anyone.", "info")]
        return [note(f"Forgot {len(held)} private message(s) waiting for their recipient.", "ok")]

    def _history_request(self, count: int) -> list[Effect]:
        room = self.current
        if room is None:
            return [note("You are in no room; /join one first.", "error")]
        view = self.views.setdefault(room, RoomView())
        start = view.seen.top_start
        if start is not None and start <= 1:
            return [note(f"That is all: there are no older messages in #{room}.", "history")]
        if room in self.paging:
            return [note(f"Still loading older messages of #{room}...", "history")]
        before = start if start is not None else NO_SEQ_BELOW
        frame = {"type": "fetch_history", "room": room, "before_seq": before, "limit": count}
        self.paging[room] = frame
        return [Send(frame)]
