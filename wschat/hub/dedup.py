"""De-duplication of resent messages by their `client_msg_id`. NO I/O.

A client resends what it has no `ack` for after a reconnect, with the same `client_msg_id`;
the server acknowledges the repeat again (`duplicate: true`) and neither stores nor delivers it
twice. Memory stays bounded: at most `per_user` ids per user, `total` in all (the users heard
from longest ago are forgotten first).
"""

from __future__ import annotations

from collections import OrderedDict

from wschat import protocol as p
from wschat.effects import Effect, Send
from wschat.records import Message


class SentIds:
    __slots__ = ("inflight", "per_user", "sent", "total", "total_cap")

    def __init__(self, per_user: int, total_cap: int) -> None:
        self.per_user, self.total_cap = per_user, total_cap
        # user key -> its recent client_msg_id -> (room or "@name", id, seq); users heard from
        # longest ago first, so the total cap forgets them first
        self.sent: OrderedDict[str, OrderedDict[str, tuple[str, str, int]]] = OrderedDict()
        self.total = 0
        # (user key, client_msg_id) being stored -> how many repeats arrived meanwhile
        self.inflight: dict[tuple[str, str], int] = {}

    def remember(self, user_key: str, cmid: str, where: str, mid: str, seq: int) -> None:
        """`where` is the room, or "@" and the recipient's name for a private message."""
        sent = self.sent
        seen = sent.get(user_key)
        if seen is None:
            seen = sent[user_key] = OrderedDict()
        else:
            sent.move_to_end(user_key)  # now the most recently heard from
        self.total += cmid not in seen
        seen[cmid] = (where, mid, seq)
        if len(seen) > self.per_user:
            seen.popitem(last=False)
            self.total -= 1
        while self.total > self.total_cap:
            _, forgotten = self.sent.popitem(last=False)
            self.total -= len(forgotten)

    def repeat_ack(self, user_key: str, cmid: str) -> bytes | None:
        """The `duplicate` ack for an id already stored or delivered, else None."""
        seen = self.sent.get(user_key)
        hit = seen.get(cmid) if seen else None
        if hit is None:
            return None
        where, mid, seq = hit
        if where.startswith("@"):
            stored = mid.startswith("pm")  # a stored private message (wschat.features.offline)
            return p.outbound.ack(cmid, mid, seq, to=where[1:], duplicate=True, stored=stored)
        return p.outbound.ack(cmid, mid, seq, room=where, duplicate=True)

    def storing(self, user_key: str, cmid: str) -> bool:
        """Note that (user, id) is being stored; False if it already was (the repeat is counted)."""
        key = (user_key, cmid)
        if key in self.inflight:
            self.inflight[key] += 1
            return False
        self.inflight[key] = 0
        return True

    def stored(self, user_key: str, cmid: str) -> int:
        """The store answered for (user, id): how many repeats arrived meanwhile."""
        return self.inflight.pop((user_key, cmid), 0)


def room_acks(ids: SentIds, m: Message, holder: int | None, repeats: int) -> list[Effect]:
    """A stored room message with a client_msg_id: its id remembered; the sender's connection
    (`holder`, if still here) gets its `ack`, and one more, `duplicate`, per repeat that arrived
    while it was being stored."""
    cmid = m.client_msg_id
    if cmid is None:
        return []
    mid = str(m.id)
    ids.remember(m.user_key, cmid, m.room, mid, m.seq)
    if holder is None:
        return []
    out: list[Effect] = [
        Send((holder,), p.outbound.ack(cmid, mid, m.seq, room=m.room, duplicate=m.duplicate))
    ]
    if repeats:
        again = p.outbound.ack(cmid, mid, m.seq, room=m.room, duplicate=True)
        out += [Send((holder,), again)] * repeats
    return out
