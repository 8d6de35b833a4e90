"""Fan-out and cluster-wide facts behind one interface; the local (in-process) broker. NO I/O.

The hub asks its broker, and never learns which one it has, to:

- `follow(room, members, last_seq)` / `unfollow(room)`: this process has a room in memory
  (`members` is the hub's live mapping of local connections in it, not a copy);
- `next_seq(room)`: the room's next sequence number;
- `publish(room, data)`: send a frame to everyone in the room; returns the local delivery as a
  `Send`, made at once, so the members are those at the moment of publishing;
- `claim(key, owner)` / `release(key, owner)`: own a user name (its `names.name_key`);
- `presence(room, name, event)`: someone here joined ("join", or "resume" for a reconnect) or
  left ("leave", "disconnect") the room; a cluster broker tells the other processes, whose
  hubs build their own notices (`Hub.remote_presence`), so counts and lists span the cluster.

`LocalBroker` is the default: one process, everything in memory, no cost on the hot path
beyond one dict lookup per message. A cluster broker (Redis, issue 13) implements the same
methods: `publish` returns the local `Send` at once (local first) and hands the bytes to its
own connection for the other processes (its own echo is dropped by sequence number); frames
from other processes are delivered to the `members` given at `follow`; `next_seq` may answer 0
when the store assigns the seq atomically with the append (a Lua script), in which case the
committed `Message` carries it. What cannot be answered at once (a name claimed by a race
between processes) becomes a store command executed by the cluster's store, whose answer comes
back through `Hub.store_result(token, result, now)` to a continuation (`Hub.ask`). Nothing that
crosses processes is pickled: frames are already bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from wschat.effects import Send


class Broker(Protocol):
    # True when the store assigns seqs with the append (a Lua script): committed messages, this
    # process's and the others', then reach the hub in any order through `Hub.arrived`.
    stored_seqs: bool
    # True when a name is claimed through the store (`ClaimName`, answered later through
    # `Hub.store_result`) instead of `claim`, which must answer at once.
    names_by_store: bool

    def follow(self, room: str, members: Mapping[int, None], last_seq: int) -> None: ...

    def unfollow(self, room: str) -> None: ...

    def next_seq(self, room: str) -> int: ...

    def publish(self, room: str, data: bytes) -> Send: ...

    def claim(self, key: str, owner: int) -> bool: ...

    def presence(self, room: str, name: str, event: str) -> None: ...

    def release(self, key: str, owner: int) -> None: ...


class LocalBroker:
    """One process: rooms, sequence numbers and names are facts of this process alone."""

    __slots__ = ("members", "names", "seqs")
    stored_seqs = False
    names_by_store = False

    def __init__(self) -> None:
        self.members: dict[str, Mapping[int, None]] = {}
        self.seqs: dict[str, int] = {}
        self.names: dict[str, int] = {}

    def follow(self, room: str, members: Mapping[int, None], last_seq: int) -> None:
        self.members[room] = members
        self.seqs[room] = max(last_seq, self.seqs.get(room, 0))

    def unfollow(self, room: str) -> None:
        self.members.pop(room, None)
        self.seqs.pop(room, None)

    def next_seq(self, room: str) -> int:
        seq = self.seqs[room] + 1
        self.seqs[room] = seq
        return seq

    def publish(self, room: str, data: bytes) -> Send:
        return Send(tuple(self.members.get(room, ())), data)

    def presence(self, room: str, name: str, event: str) -> None:
        """Nobody else to tell: this process's notices reach everyone in the room."""

    def claim(self, key: str, owner: int) -> bool:
        holder = self.names.setdefault(key, owner)
        return holder == owner

    def release(self, key: str, owner: int) -> None:
        if self.names.get(key) == owner:
            del self.names[key]
