"""Profiles on the wire: `set_profile`, `whois`, and the frames `profile` and `profiles`. NO I/O.

It owns the request dataclasses, their decoders and limits, the frame builders, and the
avatar object (initials and a colour from the name, the same in every client, and an uploaded
image's thumbnail URL when the account has set one).
`wschat.protocol` imports this module at its end and it adds its frame types to
`protocol.FRAME_TYPES`, as `wschat.features.wire` does. PROTOCOL.md ("Profiles") is the
specification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wschat import outbound
from wschat import protocol as p

MAX_STATUS_CHARS = 100
PRESENCES = ("online", "away", "busy")
# the web page's eight avatar colours, picked by the name's hash (the page computes the same)
MAX_MEDIA_ID = 64
MEDIA_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
AVATAR_COLOURS = ("#e11d48", "#d97706", "#059669", "#0284c7", "#7c3aed", "#db2777", "#0d9488", "#2563eb")


@dataclass(frozen=True, slots=True)
class SetProfile:
    status: str | None  # None: unchanged; "" clears it
    presence: str | None  # None: unchanged
    avatar: str | None = None  # an uploaded image's media id; None: unchanged; "" removes it


@dataclass(frozen=True, slots=True)
class Whois:
    username: str


def _set_profile(obj: dict, limits: p.Limits) -> SetProfile:
    status = p._text(obj, "status", required=False)
    presence = p._text(obj, "presence", required=False)
    avatar = p._text(obj, "avatar", required=False)
    if status is None and presence is None and avatar is None:
        raise p.ProtocolError(p.BAD_FIELD, "set_profile needs 'status', 'presence' or 'avatar'.")
    if avatar is not None and (len(avatar) > MAX_MEDIA_ID or not set(avatar) <= MEDIA_ID_CHARS):
        text = "'avatar' must be an uploaded file's id (upload_done's file.id) or empty."
        raise p.ProtocolError(p.BAD_FIELD, text)
    if status is not None:
        status = status.strip()
        if len(status) > MAX_STATUS_CHARS:
            raise p.ProtocolError(p.TOO_LONG, f"A status has at most {MAX_STATUS_CHARS} characters.")
        if any(ord(c) < 32 or ord(c) == 127 for c in status):
            raise p.ProtocolError(p.BAD_FIELD, "'status' must not contain control characters.")
    if presence is not None and presence not in PRESENCES:
        raise p.ProtocolError(p.BAD_FIELD, "'presence' must be online, away or busy.")
    return SetProfile(status, presence, avatar)


def _whois(obj: dict, limits: p.Limits) -> Whois:
    name = p._text(obj, "username")
    if not 0 < len(name) <= 64:
        raise p.ProtocolError(p.BAD_FIELD, "'username' must be a name of 1-64 characters.")
    return Whois(name)


def avatar(name: str, media_id: str = "") -> dict[str, str]:
    """The avatar: the name's first letter and a colour that depends on the name only, and with
    an uploaded image (`media_id`), its `url` (the thumbnail) and `id`; clients show the image
    and fall back to the initials.

    The colour is `AVATAR_COLOURS[h % 8]`, h = h * 31 + code point (32-bit) over the name's key
    (`names.name_key`: NFKC, case-folded), as the page draws its avatars (PROTOCOL.md, Profiles).
    """
    from wschat.names import name_key  # names imports protocol, which imports this module

    h = 0
    for ch in name_key(name):
        h = (h * 31 + ord(ch)) & 0xFFFFFFFF
    first = name.strip()[:1] or "?"
    drawn = {"initials": first.upper(), "colour": AVATAR_COLOURS[h % len(AVATAR_COLOURS)]}
    if media_id:
        drawn |= {"id": media_id, "url": f"/media/{media_id}/thumb"}
    return drawn


def card(name: str, presence: str, status: str, avatar_id: str = "") -> dict[str, Any]:
    """What a user list shows of someone online: presence, status and avatar."""
    return {"presence": presence, "status": status, "avatar": avatar(name, avatar_id)}


def profile(
    username: str,
    presence: str,
    status: str,
    *,
    account: bool,
    last_seen: float | None = None,
    avatar_id: str = "",
) -> bytes:
    """`profile`: someone's profile (the answer to `whois`, and sent when it changes)."""
    frame: dict[str, Any] = {"type": "profile", "username": username, "online": presence != "offline"}
    frame.update(card(username, presence, status, avatar_id))
    frame["account"] = account
    frame["last_seen"] = outbound.timestamp(last_seen) if last_seen else None
    return outbound.encode(frame)


def profiles(room: str, cards: dict[str, dict[str, Any]]) -> bytes:
    """`profiles`: the profiles of a room's members, after `joined` (name -> card)."""
    return outbound.encode({"type": "profiles", "room": room, "profiles": cards})


TYPES = (
    p.FrameType("set_profile", _set_profile),
    p.FrameType("whois", _whois),
    p.FrameType("profile", build=profile),
    p.FrameType("profiles", build=profiles),
)
p.FRAME_TYPES.update((t.name, t) for t in TYPES)
p._DECODERS.update((t.name, t.decode) for t in TYPES if t.decode is not None)
