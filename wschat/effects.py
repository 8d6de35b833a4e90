"""The hub's effects: the few things the I/O runtime is asked to do. NO I/O.

Every entry point of the hub returns a list of these, in order, and the runtime carries them
out without knowing which feature made them:

- `Send(targets, data)`: deliver one frame (`data`, built once) to each connection in
  `targets`; a room's fan-out is a `Send` too, made by the broker (`wschat.broker`);
- `Close(conn, code, reason)`: close one connection (after delivering what was sent to it);
- `Execute(token, command, holds)`: give a store command (`wschat.records`) to the store; its
  result, or the exception it raised, goes back to `Hub.store_result(token, result, now)`. When
  the answer is a reply to one connection (a history page read from disk), `holds` names it: its
  further requests wait until the answer is queued, so a client that asks faster than it reads
  makes the server hold one answer at a time, not a packet full of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from wschat.records import Command


@dataclass(slots=True)
class Send:
    targets: tuple[int, ...]
    data: bytes


@dataclass(slots=True)
class Close:
    conn: int
    code: int
    reason: str


@dataclass(slots=True)
class Execute:
    token: int
    command: Command
    holds: int = 0  # the connection whose input waits for this answer; 0 for none


Effect = Send | Close | Execute
