"""End-to-end encryption on the wire: `publish_key`, `get_keys`, `keys`, the `e2ee` envelope. NO I/O.

A `private` may carry an `e2ee` object instead of its text (PROTOCOL.md "End-to-end encrypted
private messages"): this module checks its shape (sizes, ids, base64) and keeps only the fields
it knows, so the server stores exactly what it checked. It cannot check the ciphertexts (it has
no key): the receiving devices do. The server puts a fixed sentence in `message`, for clients
that do not know `e2ee`; a client's own `message` is ignored (it is never the plaintext).

This module adds its types to `protocol.FRAME_TYPES` when imported and takes over the decoding
of `private` (a frame without `e2ee` is decoded as before).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from wschat import outbound
from wschat import protocol as p
from wschat.e2ee import IV_BYTES, KEY_ID_CHARS, MAX_MID, VERSION, unb64

MAX_COPIES = 32  # devices one message is encrypted for (the sender's and the recipient's)
MAX_PUBLIC_CHARS = 100  # base64 of a 65-byte point is 88
PLACEHOLDER = "🔒 An end-to-end encrypted message: open it in a client that supports encryption."
_KEY_ID = re.compile(rf"[0-9a-f]{{{KEY_ID_CHARS}}}")


@dataclass(frozen=True, slots=True)
class PublishKey:
    key: str


@dataclass(frozen=True, slots=True)
class GetKeys:
    username: str


def _bad(what: str, cmid: str | None = None) -> p.ProtocolError:
    return p.ProtocolError(p.BAD_FIELD, f"The encrypted message's {what}.", cmid)


def _copy(value: Any, max_ct: int, cmid: str | None) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _bad("copies must be objects with 'iv' and 'ct'", cmid)
    iv, ct = value.get("iv"), value.get("ct")
    try:
        if len(unb64(iv)) != IV_BYTES:
            raise ValueError
        if not isinstance(ct, str) or len(ct) > max_ct or len(unb64(ct)) < 17:
            raise ValueError
    except ValueError:
        raise _bad("'iv' must be 12 bytes and 'ct' a ciphertext, both in base64", cmid) from None
    return {"iv": iv, "ct": ct}  # type: ignore[dict-item]


def envelope(value: Any, limits: p.Limits, cmid: str | None) -> dict[str, Any]:
    """The `e2ee` object, checked and reduced to the fields PROTOCOL.md names."""
    if not isinstance(value, dict) or value.get("v") != VERSION:
        raise _bad(f"'e2ee' must be an object with \"v\": {VERSION}", cmid)
    mid, from_key, from_pub = value.get("mid"), value.get("from_key"), value.get("from_pub")
    if not isinstance(mid, str) or not 1 <= len(mid) <= MAX_MID:
        raise _bad(f"'mid' must be 1-{MAX_MID} characters", cmid)
    if not isinstance(from_key, str) or not _KEY_ID.fullmatch(from_key):
        raise _bad(f"'from_key' must be {KEY_ID_CHARS} hex digits", cmid)
    if not isinstance(from_pub, str) or len(from_pub) > MAX_PUBLIC_CHARS:
        raise _bad("'from_pub' must be the sender device's public key", cmid)
    copies = value.get("copies")
    if not isinstance(copies, dict) or not 1 <= len(copies) <= MAX_COPIES:
        raise _bad(f"'copies' must hold 1-{MAX_COPIES} devices' copies", cmid)
    # a message of max_message_chars characters, 4 UTF-8 bytes each, and the 16-byte tag
    max_ct = ((limits.max_message_chars * 4 + 16) // 3 + 1) * 4
    checked = {}
    for dev, copy in copies.items():
        if not _KEY_ID.fullmatch(dev):
            raise _bad(f"'copies' must be keyed by {KEY_ID_CHARS}-hex-digit key ids", cmid)
        checked[dev] = _copy(copy, max_ct, cmid)
    return {"v": VERSION, "mid": mid, "from_key": from_key, "from_pub": from_pub, "copies": checked}


def _private(obj: dict, limits: p.Limits) -> p.Private:
    if obj.get("e2ee") is None:
        return p._private(obj, limits)
    cmid = p._client_msg_id(obj)
    if cmid is None:
        raise p.ProtocolError(p.BAD_FIELD, "An encrypted message needs a 'client_msg_id'.")
    return p.Private(p._text(obj, "to"), PLACEHOLDER, cmid, envelope(obj["e2ee"], limits, cmid))


def _publish_key(obj: dict, limits: p.Limits) -> PublishKey:
    key = p._text(obj, "key")
    if len(key) > MAX_PUBLIC_CHARS:
        raise p.ProtocolError(p.BAD_FIELD, "'key' must be a P-256 public key (base64 of its 65-byte point).")
    return PublishKey(key)


def keys(username: str, registered: bool, devices: list[dict[str, Any]]) -> bytes:
    """`keys`: the devices' public keys of `username` (none when it is not an account)."""
    frame = {"type": "keys", "username": username, "registered": registered, "devices": devices}
    return outbound.encode(frame)


TYPES = (
    p.FrameType("private", _private, outbound.private),
    p.FrameType("publish_key", _publish_key),
    p.FrameType("get_keys", lambda o, lim: GetKeys(p._text(o, "username"))),
    p.FrameType("keys", build=keys),
)
p.FRAME_TYPES.update((t.name, t) for t in TYPES)
p._DECODERS.update((t.name, t.decode) for t in TYPES if t.decode is not None)
