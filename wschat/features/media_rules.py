"""What the server decides about a shared file from its bytes and name, and its store commands. NO I/O.

- `sniff(head)`: the type from the file's first bytes (magic numbers), never from the client's
  claim or the file's name; only `INLINE` types (PNG, JPEG, GIF, WebP) are ever shown inline,
  as Zulip and the Matrix media repository do; SVG, HTML, XML, PDF and the rest are attachments.
- `content_disposition(name, inline)`: RFC 6266 with the name in RFC 8187 `filename*` and an
  ASCII fallback.
- The media store commands (`wschat.media` carries them out on its own thread): `MediaBegin`,
  `MediaWrite`, `MediaFinish`, `MediaCancel`, and what they answer.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from urllib.parse import quote

from wschat.records import Command

INLINE = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
OCTET = "application/octet-stream"

# (offset, magic bytes, type): the first that matches wins
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"fLaC", "audio/flac"),
    (4, b"ftyp", "video/mp4"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
)


def sniff(head: bytes) -> str:
    """The file's type from its first bytes (at least 64 of them, when it has that many)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for offset, magic, mime in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return mime
    if _is_text(head):
        return "text/plain; charset=utf-8"  # served as an attachment all the same: HTML, SVG, XML
    return OCTET


def _is_text(head: bytes) -> bool:
    try:
        head.decode()
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and len(head) >= 64  # cut inside the last character
    return b"\x00" not in head


def inline(mime: str) -> bool:
    return mime in INLINE


def content_disposition(name: str, *, inline: bool) -> str:
    """`inline` or `attachment`, with `filename` (ASCII fallback) and `filename*` (RFC 8187)."""
    kind = "inline" if inline else "attachment"
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    fallback = "".join(c if c.isalnum() or c in " .-_()" else "_" for c in ascii_name).strip() or "file"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # unreachable


# ---------------------------------------------------------------- store commands


@dataclass(frozen=True, slots=True)
class MediaBegin(Command):
    """An upload starts. Result: the bytes already there (`size` if the file is already stored)."""

    partial: str  # the partial file's key: the same person sending the same file again resumes
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class MediaWrite(Command):
    """Write `data` at `offset` of the partial file. Result: None."""

    partial: str
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MediaFinish(Command):
    """Check size and SHA-256, store by content, make the capability `media_id`.

    Result: a `StoredFile`, or `MediaRefused` (wrong hash, not enough room).
    """

    partial: str
    sha256: str
    size: int
    media_id: str
    name: str
    keep: frozenset[str] = field(default_factory=frozenset)  # hashes not to evict (still shown)
    thumb_pixels: int = 4096 * 4096  # a bigger image gets no thumbnail (decompression bombs)


@dataclass(frozen=True, slots=True)
class MediaCancel(Command):
    """Forget a partial file. Result: None."""

    partial: str


@dataclass(frozen=True, slots=True)
class MediaInfo(Command):
    """What the store has under `media_id` (an avatar's check). Result: a `StoredFile`, or None
    if no such file is stored (never was, or evicted)."""

    media_id: str


@dataclass(frozen=True, slots=True)
class StoredFile:
    mime: str
    width: int = 0
    height: int = 0
    thumb: bool = False


@dataclass(frozen=True, slots=True)
class MediaRefused:
    code: str  # protocol.HASH_MISMATCH or protocol.MEDIA_FULL
    message: str
