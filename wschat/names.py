"""User and room names: validation and the comparison key. NO I/O.

A username is what people see; its *key* is what makes two names "the same" for uniqueness:
Unicode NFKC normalisation, case folding and collapsed spaces, so "Alice", "ALICE" and the
full-width "Ａｌｉｃｅ" collide. Room names are plain lower-case identifiers.
"""

from __future__ import annotations

import re
import unicodedata

from wschat.protocol import ProtocolError

MAX_NAME_CHARS = 32
RESERVED = frozenset({"system", "server"})

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties) plus look-alikes of a blank:
# characters that render as nothing, so two names could differ only by them.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Control, format, surrogate, private use, unassigned, line/paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ROOM_RE = re.compile(r"[a-z0-9_-]{1,32}")
_SPACES = re.compile(r" +")


class InvalidName(ProtocolError):
    """A refused user or room name: `code` says which rule, str(self) says it for people."""


def _is_invisible(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _INVISIBLE_RANGES)


def _bad_char(ch: str) -> str | None:
    """Why `ch` may not appear in a name, or None if it may."""
    cat = unicodedata.category(ch)
    if cat in _BAD_CATEGORIES or _is_invisible(ch):
        return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')}) is a control or invisible character"
    if cat == "Zs" and ch != " ":
        return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')}) is a special space; use a plain space"
    return None


def check_username(raw: str) -> tuple[str, str]:
    """Validate a requested username.

    Returns (display name, key). Raises InvalidName with the rule that failed.
    """
    name = raw.strip(" ")
    if not name:
        raise InvalidName("name_empty", "Please choose a name: it cannot be empty.")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidName(
            "name_too_long", f"That name has {len(name)} characters; the limit is {MAX_NAME_CHARS}."
        )
    for ch in name:
        why = _bad_char(ch)
        if why:
            raise InvalidName("name_invalid_chars", f"Names cannot contain that character: {why}.")
    if unicodedata.category(name[0]).startswith("M"):
        raise InvalidName("name_invalid_chars", "A name cannot start with a combining mark.")
    if "  " in name:
        raise InvalidName("name_invalid_chars", "Use single spaces between words in a name.")
    key = name_key(name)
    if key in RESERVED:
        raise InvalidName("name_reserved", f"'{name}' is reserved for the server; choose another name.")
    return name, key


def name_key(name: str) -> str:
    """The comparison key: equal keys mean the same name."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return _SPACES.sub(" ", folded.strip())


def check_room(raw: str) -> str:
    """Validate and normalise a room name ('#Dev' -> 'dev'). Raises InvalidName (code bad_room)."""
    room = unicodedata.normalize("NFKC", raw.strip()).removeprefix("#").lower()
    if not _ROOM_RE.fullmatch(room):
        raise InvalidName(
            "bad_room",
            "Room names are 1-32 characters of lower-case letters, digits, '-' and '_'.",
        )
    return room
