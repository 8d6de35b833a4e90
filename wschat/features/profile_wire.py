"""Profiles on the wire: `set_profile`, `whois`, and the frames `profile` and `profiles`. NO I/O.

It owns the request dataclasses, their decoders and limits, the frame builders, and the
generated avatar (initials and a colour from the name, the same in every client).
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
# twelve colours that carry white initials legibly, picked by the name's hash
AVATAR_COLOURS = (
    "#b3261e", "#c2185b", "#7b1fa2", "#512da8", "#303f9f", "#1565c0",
    "#00695c", "#2e7d32", "#558b2f", "#ef6c00", "#d84315", "#5d4037",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SetProfile:
    status: str | None  # None: unchanged; "" clears it
    presence: str | None  # None: unchanged


@dataclass(frozen=True, slots=True)
class Whois:
    username: str


def _set_profile(obj: dict, limits: p.Limits) -> SetProfile:
    status = p._text(obj, "status", required=False)
    presence = p._text(obj, "presence", required=False)
    if status is None and presence is None:
        raise p.ProtocolError(p.BAD_FIELD, "set_profile needs 'status', 'presence' or both.")
    if status is not None:
        status = status.strip()
        if len(status) > MAX_STATUS_CHARS:
            raise p.ProtocolError(p.TOO_LONG, f"A status has at most {MAX_STATUS_CHARS} characters.")
        if any(ord(c) < 32 or ord(c) == 127 for c in status):
            raise p.ProtocolError(p.BAD_FIELD, "'status' must not contain control characters.")
    if presence is not None and presence not in PRESENCES:
        raise p.ProtocolError(p.BAD_FIELD, "'presence' must be online, away or busy.")
    return SetProfile(status, presence)


def _whois(obj: dict, limits: p.Limits) -> Whois:
    name = p._text(obj, "username")
    if not 0 < len(name) <= 64:
        raise p.ProtocolError(p.BAD_FIELD, "'username' must be a name of 1-64 characters.")
    return Whois(name)


def avatar(name: str) -> dict[str, str]:
    """The generated avatar: up to two initials and a colour that depends on the name only.

    The colour is `AVATAR_COLOURS[h % 12]`, h the 32-bit FNV-1a hash of the lower-cased name's
    code points; the page computes the same for the users it lists (PROTOCOL.md, Profiles).
    """
    words = [w for w in name.replace("_", " ").replace("-", " ").replace(".", " ").split() if w]
    initials = (words[0][0] + words[1][0]) if len(words) > 1 else name[:2]
    h = 0x811C9DC5
    for ch in name.lower():
        h = ((h ^ ord(ch)) * 0x01000193) & 0xFFFFFFFF
    return {"initials": initials.upper(), "colour": AVATAR_COLOURS[h % len(AVATAR_COLOURS)]}


def card(name: str, presence: str, status: str) -> dict[str, Any]:
    """What a user list shows of someone online: presence, status and avatar."""
    return {"presence": presence, "status": status, "avatar": avatar(name)}


def profile(
    username: str,
    presence: str,
    status: str,
    *,
    account: bool,
    last_seen: float | None = None,
) -> bytes:
    """`profile`: someone's profile (the answer to `whois`, and sent when it changes)."""
    frame: dict[str, Any] = {"type": "profile", "username": username, "online": presence != "offline"}
    frame.update(card(username, presence, status))
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
