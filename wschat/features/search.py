"""Search in the hub: `search` -> `search_results`. NO I/O.

The store finds the messages (SQLite: FTS5; memory: a scan), in the rooms the user is in (or
the one room asked for, which the user must be in): never a deleted message, never a room
event. Results come newest first, `limit` at a time; `more` says an older page exists, asked
for with `before` = the id of the last result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wschat.effects import Effect, Send
from wschat.features import fold, wire
from wschat.hub import rooms
from wschat.hub.state import Session
from wschat.records import Message, Search

if TYPE_CHECKING:
    from wschat.hub.core import Hub


def search(hub: Hub, s: Session, req: wire.SearchReq, now: float) -> list[Effect]:
    if req.room is not None:
        where: tuple[str, ...] = (rooms.member_room(hub, s, req.room).name,)
    else:
        where = tuple(s.rooms)
    if not where:
        return [Send((s.cid,), wire.search_results(req.query, [], False))]
    command = Search(req.tokens, where, req.before, req.limit + 1)  # one more: is there a next page?
    return [hub.ask(command, _found, (s.cid, req))]


def _found(hub: Hub, ctx: tuple[int, wire.SearchReq], result: Any, now: float) -> list[Effect]:
    cid, req = ctx
    if cid not in hub.sessions:
        return []
    if isinstance(result, BaseException):
        text = "The server could not search (its storage failed); try again in a few seconds."
        return [hub.store_failed(cid, text)]
    found = [m for m in result if isinstance(m, Message) and m.kind == "chat" and not m.deleted]
    page = found[: req.limit]
    payloads = [fold.payload(m) if m.text or not m.payload else m.payload for m in page]
    return [Send((cid,), wire.search_results(req.query, payloads, len(found) > req.limit))]


HANDLERS = {wire.SearchReq: search}

from wschat.hub.handlers import HANDLERS as _REGISTRY  # noqa: E402  (see wschat.hub.handlers)

_REGISTRY.update((kind, (handler, True)) for kind, handler in HANDLERS.items())
