"""Sessions ended from outside the server (the host's `admin reset-password`): noticed within a
few seconds, and the account's open connections closed. NO I/O.

The admin command line works on the database while the server runs; it ends the account's
session rows and adds a row to a change counter (the `session_ends` table, its numbers only
growing). Every `Config.admin_poll` seconds (--admin-poll, 2 by default) the hub asks the store
for the rows after the last number it saw (`ReadSessionEnds`: one indexed read), and closes every
connection of those accounts here with 4001 (`CLOSE_SESSION_ENDED`), as a password changed in a
client does for the other devices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat import protocol as p
from wschat.effects import Close, Effect
from wschat.features.account_records import ReadSessionEnds
from wschat.hub import devices

if TYPE_CHECKING:
    from wschat.hub.core import Hub


class Watch:
    def __init__(self) -> None:
        self.seen = -1  # the last change number read (-1: not yet known)
        self.next_look = 0.0
        self.asking = False


def tick(hub: Hub, now: float) -> list[Effect]:
    watch: Watch = hub.session_watch
    if watch.asking or now < watch.next_look:
        return []
    watch.asking, watch.next_look = True, now + hub.config.admin_poll
    return [hub.ask(ReadSessionEnds(watch.seen), _read, None)]


def _read(hub: Hub, context: Any, result: Any, now: float) -> list[Effect]:
    watch: Watch = hub.session_watch
    watch.asking = False
    if not isinstance(result, tuple):
        return []  # the storage failed: the next look asks again from the same number
    latest, keys = result
    first = watch.seen < 0
    watch.seen = max(watch.seen, latest)
    if first:
        return []  # start-up: what was ended before concerns nobody online here
    out: list[Effect] = []
    for key in dict.fromkeys(keys):
        for cid in devices.connections(hub, key):
            s = hub.sessions.get(cid)
            if s is not None and s.account:
                out.append(Close(cid, p.CLOSE_SESSION_ENDED, "this device's session has ended"))
    return out
