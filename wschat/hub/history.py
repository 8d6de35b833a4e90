"""History windows: what each loaded room keeps in memory, the shared byte budget, and the
`history` frames built from them. NO I/O.

A loaded room keeps its newest committed messages (its window, seq order) as encoded `chat`
payloads. All windows together stay within `Config.window_budget`: rooms nobody is in leave
memory first (their history stays in the store and comes back when someone joins), then the
least recently used windows are cut to what a newcomer is shown.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

from wschat import outbound
from wschat import protocol as p
from wschat.features import fold
from wschat.hub.state import GENERAL, Room
from wschat.records import Message

if TYPE_CHECKING:
    from wschat.hub.core import Hub


def _seq(m: Message) -> int:
    return m.seq


def chat_payload(m: Message) -> bytes:
    """The frame of a stored room message: a `chat`, or a room event of wschat.features."""
    return fold.payload(m)


def shown(m: Message) -> bool:
    """Whether `m` goes into a recent or page history: chat messages that were not deleted.
    (Room events and deletions reach a resuming client as the events themselves.)"""
    return m.kind == "chat" and not m.deleted


def add(hub: Hub, room: Room, m: Message) -> None:
    """Append a committed message to its room's window (its payload holds the text)."""
    m.text = ""  # drop the string and the UTF-8 copy it caches
    room.window.append(m)
    size = len(m.payload)
    room.window_bytes += size
    hub.window_bytes += size
    cap = hub.config.resume_cap
    if len(room.window) > 2 * cap:
        drop_oldest(hub, room, len(room.window) - cap)


def fill(hub: Hub, room: Room, recent: list[Message]) -> None:
    """A room's window from the store's newest messages, when it is loaded."""
    for m in recent[-hub.config.resume_cap :]:
        m.payload = m.payload or chat_payload(m)
        m.text = ""
        room.window.append(m)
        room.window_bytes += len(m.payload)
    hub.window_bytes += room.window_bytes


def drop_oldest(hub: Hub, room: Room, n: int) -> None:
    gone = sum(len(m.payload) for m in room.window[:n])
    del room.window[:n]
    room.window_bytes -= gone
    hub.window_bytes -= gone


def unload(hub: Hub, room: Room) -> None:
    hub.window_bytes -= room.window_bytes
    del hub.rooms[room.name]
    hub.broker.unfollow(room.name)


def evict(hub: Hub) -> None:
    """Keep memory bounded: unload unused rooms, then shorten the least recently used windows."""
    cfg = hub.config
    spare = len(hub.rooms) - cfg.loaded_rooms
    if spare <= 0 and hub.window_bytes <= cfg.window_budget:
        return
    for room in list(hub.rooms.values()):
        if spare <= 0 and hub.window_bytes <= cfg.window_budget:
            return
        if not room.members and not room.inflight and room.name != GENERAL:
            unload(hub, room)
            if room.last_seq:
                remember_dormant(hub, room.name)
            spare -= 1
    for room in list(hub.rooms.values()):
        if hub.window_bytes <= cfg.window_budget:
            return
        drop_oldest(hub, room, len(room.window) - len(recent(hub, room.window)))


def remember_dormant(hub: Hub, name: str) -> None:
    hub.dormant.pop(name, None)
    hub.dormant[name] = None
    if len(hub.dormant) > 200:  # only for list_rooms: the 200 most recently active
        del hub.dormant[next(iter(hub.dormant))]


def recent(hub: Hub, window: list[Message]) -> list[Message]:
    """What a newcomer is shown: the window's end holding the last `history_size` chat messages
    (room events between them are not shown, see `shown`), within `history_bytes`."""
    cfg = hub.config
    if not cfg.history_size:
        return []
    start, count, weight = len(window), 0, 0
    while start > 0 and count < cfg.history_size:
        m = window[start - 1]
        if shown(m):
            if count and weight + len(m.payload) > cfg.history_bytes:
                break  # never none: the newest message goes even if it alone is too heavy
            count += 1
            weight += len(m.payload)
        start -= 1
    return window[start:]


def on_entry(hub: Hub, room: Room, since: p.Position | None) -> bytes:
    """The `history` frame for someone entering `room`: a resume from `since`, or the recent."""
    window = room.window
    if since is not None and since.epoch == room.epoch and since.seq <= room.last_seq:
        start = bisect_right(window, since.seq, key=_seq)
        msgs = window[start:]
        # the window holds the newest committed messages, so anything missing lies before it
        skipped = max(0, msgs[0].seq - max(since.seq + 1, room.first_seq)) if msgs else 0
        cap = hub.config.resume_cap
        if len(msgs) > cap:
            skipped += len(msgs) - cap
            msgs = msgs[-cap:]
        # everything missed, room events included (each once); a deleted message only as its event
        payloads = (m.payload for m in msgs if not m.deleted)
        return outbound.history(room.name, room.epoch, "resume", payloads, skipped=skipped or None)
    # moderation events (kick, mute, ban, topic...) among them are told too, as the events they are
    payloads = (m.payload for m in recent(hub, window) if shown(m) or m.kind == "moderation")
    changed = True if since is not None else None
    # last_seq: the events after the last message shown are folded into the messages already
    last = window[-1].seq if window else None
    return outbound.history(room.name, room.epoch, "recent", payloads, epoch_changed=changed, last_seq=last)


def page_in_window(room: Room, before_seq: int, limit: int) -> bytes | None:
    """The page before `before_seq` if the window holds all of it, else None (ask the store)."""
    window = room.window
    end = bisect_left(window, before_seq, key=_seq)
    start, count = end, 0
    while start > 0 and count < limit:  # room events and deleted messages are not shown
        start -= 1
        count += shown(window[start])
    if count == limit or not window or window[0].seq <= room.first_seq:
        return page(room, before_seq, window[start:end])
    return None


def page(room: Room, before_seq: int, msgs: list[Message]) -> bytes:
    msgs = [m for m in msgs if shown(m)]
    more = bool(msgs) and msgs[0].seq > room.first_seq
    payloads = (m.payload or chat_payload(m) for m in msgs)
    return outbound.history(room.name, room.epoch, "page", payloads, before_seq=before_seq, more=more)
