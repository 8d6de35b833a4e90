"""How cluster mode writes a room message into Redis and reads it back. Pure.

A stream entry (field `m`) and a published copy on a room's channel are the same text,
`m <id> <seq> <epoch> <json>`: the id, seq and epoch as digits and words (the broker reads a
copy's seq and epoch without parsing the JSON), then the message's other fields as a JSON
object made by `orjson` (never pickle). `wschat.redisscript` puts the id, seq and epoch in front
of `body`; `parse_entry` reads the whole line; `folded` applies the room events among read
messages (edits, reactions, deletions: `wschat.features.fold`) to their targets.
"""

from __future__ import annotations

from typing import Any

import orjson

from wschat.features import fold
from wschat.records import Message


def body(m: Message) -> bytes:
    fields: dict[str, Any] = {"r": m.room, "u": m.username, "k": m.user_key, "c": m.client_id}
    fields |= {"t": m.text, "ts": m.ts}
    if m.client_msg_id is not None:
        fields["cm"] = m.client_msg_id
    if m.kind != "chat":  # a room event of rich messaging (wschat.features.events)
        fields |= {"kind": m.kind, "target": m.target}
    if m.reply_to:
        fields["reply_to"] = m.reply_to
    if m.meta:
        fields["meta"] = m.meta
    if m.file is not None:  # a shared file's `file` object (wschat.features.files)
        fields["f"] = m.file
    return orjson.dumps(fields)


def parse_entry(raw: bytes) -> Message:
    """A stream entry or a published message, `m <id> <seq> <epoch> <json>`, as a Message."""
    _, mid, seq, epoch, data = raw.split(b" ", 4)
    f = orjson.loads(data)
    m = Message(
        int(mid), f["r"], int(seq), f["u"], f["k"], f["c"], f["t"], f["ts"], f.get("cm"), epoch.decode()
    )
    m.kind, m.target, m.reply_to, m.meta = (
        f.get("kind", "chat"),
        f.get("target", 0),
        f.get("reply_to", 0),
        f.get("meta"),
    )
    m.file = f.get("f")
    return m


def folded(entries: list[Message]) -> list[Message]:
    """Read messages with the events among them folded into their targets (current state)."""
    for ev in [m for m in entries if m.kind != "chat"]:
        fold.into_list(entries, ev)
    return entries
