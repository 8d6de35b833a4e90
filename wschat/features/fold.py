"""Rich messaging: how room events change the message they target, and the frames of both. NO I/O.

A chat message's frame carries its current state (`reactions`, `edited_at`, `reply_to` and
`reply_preview`; a deleted one keeps only its seq); the events that changed it (`reaction`,
`edit`, `delete`) are room messages of their own kinds. `apply` folds one event into its target;
the hub's history windows and the memory store both use it, and the SQLite store keeps the same
state in its tables. Every change is absolute (this user's reaction with this key is on or off,
the latest edit's text, deleted), so folding an event twice changes nothing.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from typing import Any

import orjson

from wschat import outbound
from wschat.features import mod_wire, wire
from wschat.records import Message


def payload(m: Message, mentions_you: bool = False) -> bytes:
    """The frame of a stored room message of any kind, from its fields (`m.text` holds the body);
    with `mentions_you`, the copy for the people it mentions."""
    kind = m.kind
    if kind == "chat" and not (m.meta or m.reactions or m.edited_at or m.deleted or mentions_you):
        return outbound.chat(  # the usual case first: a plain chat message, on every one stored
            str(m.id), m.room, m.seq, m.username, m.text, m.ts, m.client_id, m.client_msg_id, m.file
        )
    meta = m.meta or {}
    if kind == "reaction":
        return wire.reaction(
            m.room, m.seq, m.target, meta.get("key", ""), m.username, bool(meta.get("removed")), m.ts
        )
    if kind == "edit":
        return wire.edit(m.room, m.seq, m.target, m.text, m.username, m.ts)
    if kind == "delete":
        return wire.delete(m.room, m.seq, m.target, m.username, m.ts)
    if kind == "moderation":  # wschat.features.moderation: who did what, `m.text` the reason
        fields = {k: v for k, v in meta.items() if k != "action"}
        where = {"room": m.room, "seq": m.seq, "id": str(m.id), "reason": m.text}
        return mod_wire.moderation(meta.get("action", ""), m.username, m.ts, **where, **fields)
    rich: dict[str, Any] = {
        "reply_to": m.reply_to or None,
        "reply_preview": meta.get("reply_preview") if m.reply_to else None,
        "reactions": m.reactions or None,
        "edited_at": outbound.timestamp(m.edited_at) if m.edited_at else None,
        "deleted": True if m.deleted else None,
        "mentions": meta.get("mentions"),
        "mentions_you": True if mentions_you else None,
    }
    # a shared file (wschat.features.files) stays with its message through reactions and edits
    file = None if m.deleted else m.file
    return outbound.chat(
        str(m.id), m.room, m.seq, m.username, m.text, m.ts, m.client_id, m.client_msg_id, file, rich
    )


def text_of(m: Message) -> str:
    """A chat message's current body: its text, or (in a history window) the one in its frame."""
    if m.text or not m.payload:
        return m.text
    body = orjson.loads(m.payload).get("message", "")
    return body if isinstance(body, str) else ""


def apply(m: Message, ev: Message, ev_text: str) -> None:
    """Fold the event `ev` (whose body is `ev_text`) into its target `m`; rebuild `m`'s frame.

    Never changes a dict or list in place: the memory store keeps copies of window messages,
    and the two must not share a change.
    """
    text = text_of(m)
    textless = not m.text and bool(m.payload)
    if ev.kind == "reaction":
        m.reactions = react(
            m.reactions, (ev.meta or {}).get("key", ""), ev.username, bool((ev.meta or {}).get("removed"))
        )
    elif ev.kind == "edit":
        text, m.edited_at = ev_text, ev.ts
    elif ev.kind == "delete":
        text, m.deleted, m.reactions, m.meta, m.file = "", True, None, None, None
    m.text = text
    m.payload = payload(m)
    if textless:
        m.text = ""


def react(
    reactions: dict[str, list[str]] | None, key: str, name: str, removed: bool
) -> dict[str, list[str]] | None:
    """`reactions` with `name`'s reaction `key` on or off: a new dict; None when none are left."""
    out = {k: list(v) for k, v in (reactions or {}).items()}
    names = out.setdefault(key, [])
    if removed and name in names:
        names.remove(name)
    elif not removed and name not in names:
        names.append(name)
    if not names:
        del out[key]
    return out or None


def unquote(m: Message) -> None:
    """`m` answers a message that was deleted: its quote loses the deleted text."""
    meta = dict(m.meta or {})
    quoted = meta.get("reply_preview") or {}
    meta["reply_preview"] = {"username": quoted.get("username", ""), "message": ""}
    textless = not m.text and bool(m.payload)
    m.text = text_of(m)
    m.meta = meta
    m.payload = payload(m)
    if textless:
        m.text = ""


def _words(text: str) -> list[str]:
    """Words as FTS5's unicode61 tokenizer with remove_diacritics sees them: letters and digits,
    case and accents ignored."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.findall(r"\w+", plain.casefold())


def matches(m: Message, tokens: tuple[str, ...]) -> bool:
    """Whether the text of chat message `m` has every token (each a phrase of its words)."""
    words = _words(text_of(m))
    for token in tokens:
        parts = _words(token)
        n = len(parts)  # a token without letters or digits finds nothing, as in FTS5
        if not n or not any(words[i : i + n] == parts for i in range(len(words) - n + 1)):
            return False
    return True


def into_list(msgs: list[Message], ev: Message) -> None:
    """The memory store: `ev` changes its target (and, deleted, the quotes of it) in `msgs`, as
    copies: the originals may be in the hub's history window, which folds the event itself."""
    for i, m in enumerate(msgs):
        if m.kind != "chat":
            continue
        if m.seq == ev.target:
            msgs[i] = copy.copy(m)
            apply(msgs[i], ev, ev.text)
        elif ev.kind == "delete" and m.reply_to == ev.target:
            msgs[i] = copy.copy(m)
            unquote(msgs[i])
