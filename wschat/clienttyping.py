"""When the terminal client tells a room that its user is typing. NO I/O.

`OwnTyping` owns the client's side of `typing` (PROTOCOL.md, "Mentions, typing and read
receipts"). It is told, each time the line being typed changes, in which room that line would be
said (`None`: the line is empty, a command, or there is nobody to tell), and answers with the
`typing` frames to send:

- `active: true` when the user starts typing in a room, then at most one every `TYPING_EVERY`
  (3 s) while they keep typing: a renewal, because the server forgets a typist `TYPING_TTL`
  (6 s) after its last one;
- `active: false` when the line is sent or emptied, or becomes a command, or the room changes
  (the new room then gets its own `active: true`);
- nothing when the user went idle: 6 s after the last `active: true` the server has already
  forgotten them, so a stop would only cost a frame. The next key starts afresh.

`forget()` is for a lost connection: the server drops a disconnected typist by itself.
"""

from __future__ import annotations

from typing import Any

TYPING_EVERY = 3.0  # seconds between two `active: true` while the user keeps typing
TYPING_TTL = 6.0  # the server forgets a typist this long after its last `active: true`


def typing_frame(room: str, active: bool) -> dict[str, Any]:
    return {"type": "typing", "room": room, "active": active}


class OwnTyping:
    def __init__(self) -> None:
        self.room: str | None = None  # where the server was last told we type
        self.sent_at = 0.0  # when (the last `active: true`)

    def edited(self, room: str | None, now: float) -> list[dict[str, Any]]:
        """The typed line changed; it would be said in `room` (None: it would not be said)."""
        out = self.stop(now) if self.room is not None and room != self.room else []
        if room is None or (room == self.room and now - self.sent_at < TYPING_EVERY):
            return out
        self.room, self.sent_at = room, now
        out.append(typing_frame(room, True))
        return out

    def stop(self, now: float) -> list[dict[str, Any]]:
        """The line was sent or dropped: `active: false` unless the server has forgotten us."""
        room, self.room = self.room, None
        if room is None or now - self.sent_at >= TYPING_TTL:
            return []
        return [typing_frame(room, False)]

    def forget(self) -> None:
        """The connection is gone, and the server stopped our typing with it."""
        self.room = None
