"""The chat state machine, split by concern. NO I/O (no asyncio, websockets or sqlite3).

- `core`: the `Hub` and its entry points, rate limits, the store-result path;
- `handlers`: one handler per request kind, in a registry;
- `sessions`: names, session takeover, leaving, the name deadline;
- `rooms`: entering and leaving rooms, presence and its batching in large rooms;
- `history`: the rooms' in-memory history windows, their byte budget, `history` frames;
- `dedup`: resent messages recognised by their `client_msg_id`;
- `state`: the configuration and the per-connection and per-room state.

The effects the hub returns are in `wschat.effects`, what it stores in `wschat.records`.
"""

from wschat.effects import Close, Effect, Execute, Send
from wschat.hub.core import Hub
from wschat.hub.history import chat_payload
from wschat.hub.state import GENERAL, Config, Room, Session
from wschat.records import Append, LoadRoom, Message, ReadPage, RoomState, Snapshot

__all__ = [
    "GENERAL",
    "Append",
    "Close",
    "Config",
    "Effect",
    "Execute",
    "Hub",
    "LoadRoom",
    "Message",
    "ReadPage",
    "Room",
    "RoomState",
    "Send",
    "Session",
    "Snapshot",
    "chat_payload",
]
