"""The media store: shared files in a directory (`--media-dir`), by content. I/O.

Layout under the directory (several server processes may share it: every change is a write
to a new name then an atomic `os.replace`, and the content address makes two processes storing
the same file agree):

- `blobs/<sha256[:2]>/<sha256>`: each file once, however many times it is sent;
- `thumbs/<sha256>`: its thumbnail, for images;
- `ids/<id>.json`: one per shared file, the capability in its URL (unguessable, not the hash):
  name, type, size, hash; what `GET /media/<id>` serves;
- `partial/<key>`: uploads under way, by sender and hash, so a sender resumes after a drop.

The store commands (`wschat.features.media_rules`) run one at a time on one thread of their
own, so an upload's pieces are written in order and the event loop never waits for the disk.
When the total would pass `--media-quota`, the files shared longest ago go first, except those
still shown in a room's recent history (`MediaFinish.keep`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from wschat import protocol as p
from wschat.features.media_rules import (
    OCTET,
    MediaBegin,
    MediaCancel,
    MediaFinish,
    MediaInfo,
    MediaRefused,
    MediaWrite,
    StoredFile,
    human_size,
    inline,
    sniff,
)
from wschat.records import Command

THUMB_SIZE = (480, 480)
PARTIAL_MAX_AGE = 7 * 86400  # seconds an abandoned partial upload is kept for a resume

Done = Any

if TYPE_CHECKING:  # Pillow is imported when the first image arrives, not at every start
    from PIL import Image


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class MediaStore:
    """Carries out the media store commands; `notify(done, result)` runs on the loop's thread."""

    executors: ClassVar[dict[type[Command], str]] = {
        MediaBegin: "begin",
        MediaWrite: "write",
        MediaFinish: "finish",
        MediaCancel: "cancel",
        MediaInfo: "info",
    }

    def __init__(self, root: str | None, notify: Any, *, quota_bytes: int) -> None:
        self._tmp = None
        if root is None:  # --db :memory:: files go with the process too
            self._tmp = tempfile.TemporaryDirectory(prefix="wschat-media-")
            root = self._tmp.name
        self.root = Path(root)
        self.notify = notify
        self.quota = quota_bytes
        for sub in ("blobs", "thumbs", "ids", "partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="chat-media")

    def execute(self, command: Command, done: Done) -> None:
        method = getattr(self, self.executors[type(command)])

        def run() -> None:
            try:
                result = method(command)
            except Exception as exc:
                result = exc
            self.notify(done, result)

        self.pool.submit(run)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- paths

    def blob(self, sha: str) -> Path:
        return self.root / "blobs" / sha[:2] / sha

    def thumb(self, sha: str) -> Path:
        return self.root / "thumbs" / sha

    def partial(self, key: str) -> Path:
        return self.root / "partial" / key

    # -- commands (on the media thread)

    def begin(self, c: MediaBegin) -> int | MediaRefused:
        blob = self.blob(c.sha256)
        if blob.exists() and blob.stat().st_size == c.size:
            return c.size
        if c.size > self.quota:
            text = f"The server keeps at most {human_size(self.quota)} of files in all; this one is bigger."
            return MediaRefused(p.MEDIA_FULL, text)
        part = self.partial(c.partial)
        if part.exists():
            return min(part.stat().st_size, c.size)
        part.touch()
        return 0

    def write(self, c: MediaWrite) -> None:
        part = self.partial(c.partial)
        with open(part, "r+b") as f:
            f.seek(c.offset)
            f.write(c.data)

    def cancel(self, c: MediaCancel) -> None:
        self.partial(c.partial).unlink(missing_ok=True)

    def finish(self, c: MediaFinish) -> StoredFile | MediaRefused:
        blob, part = self.blob(c.sha256), self.partial(c.partial)
        if not (blob.exists() and blob.stat().st_size == c.size):
            refused = self._check(part, c)
            if refused is not None:
                part.unlink(missing_ok=True)
                return refused
            blob.parent.mkdir(exist_ok=True)
            os.replace(part, blob)
        else:
            part.unlink(missing_ok=True)
        os.utime(blob)  # shared again: the last to be evicted
        stored = self._describe(blob, c)
        if isinstance(stored, MediaRefused):
            return stored
        meta = {
            "sha256": c.sha256,
            "name": c.name,
            "mime": stored.mime,
            "size": c.size,
            "thumb": stored.thumb,
            "created": time.time(),
        }
        _write_atomic(self.root / "ids" / f"{c.media_id}.json", json.dumps(meta).encode())
        return stored

    def _check(self, part: Path, c: MediaFinish) -> MediaRefused | None:
        if not part.exists() or part.stat().st_size != c.size:
            return MediaRefused(p.BAD_UPLOAD, f"{c.name}: the bytes received do not make {c.size} bytes.")
        digest = hashlib.sha256()
        with open(part, "rb") as f:
            while piece := f.read(1 << 20):
                digest.update(piece)
        if digest.hexdigest() != c.sha256:
            return MediaRefused(
                p.HASH_MISMATCH,
                f"{c.name}: the bytes received do not have the SHA-256 announced; the upload is dropped.",
            )
        return self._make_room(c.size, c.keep, c.name)

    def _make_room(self, size: int, keep: frozenset[str], name: str) -> MediaRefused | None:
        """Evict the files shared longest ago (not in `keep`) until `size` more fits the quota."""
        files = [(e.stat().st_mtime, e.stat().st_size, e.name) for d in (self.root / "blobs").iterdir()
                 for e in os.scandir(d) if e.is_file()]  # fmt: skip
        total = sum(s for _, s, _ in files)
        for _, s, sha in sorted(files):
            if total + size <= self.quota:
                break
            if sha in keep:
                continue
            self.blob(sha).unlink(missing_ok=True)
            self.thumb(sha).unlink(missing_ok=True)
            total -= s
        if total + size <= self.quota:
            return None
        return MediaRefused(
            p.MEDIA_FULL,
            f"The server's space for files is full ({human_size(self.quota)}); {name} was not stored.",
        )

    def _describe(self, blob: Path, c: MediaFinish) -> StoredFile | MediaRefused:
        """The type from the magic bytes; for images, size checked against bombs and a thumbnail."""
        with open(blob, "rb") as f:
            mime = sniff(f.read(512))
        if not inline(mime):
            return StoredFile(mime)
        from PIL import Image

        try:
            with warnings.catch_warnings():
                # our own limit (below) is lower and says more than Pillow's warning
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(blob) as im:
                    width, height = im.size  # from the header alone: nothing decoded yet
                    if width * height > c.thumb_pixels:
                        raise Image.DecompressionBombError(f"{width}×{height} pixels")
                    return self._thumbnail(im, blob, mime)
        except Image.DecompressionBombError as exc:  # ours, or Pillow's far beyond its limit
            blob.unlink(missing_ok=True)
            shown = str(exc) if str(exc).endswith(" pixels") else "too many pixels"
            text = f"{c.name} is an image of {shown}; at most {c.thumb_pixels:,} pixels are allowed."
            return MediaRefused(p.FILE_TOO_LARGE, text)
        except (OSError, ValueError, SyntaxError):
            return StoredFile(OCTET)  # image magic, not an image: served as an attachment

    def _thumbnail(self, im: Image.Image, blob: Path, mime: str) -> StoredFile:
        from PIL import ImageOps

        im = ImageOps.exif_transpose(im)  # orientation applied; the thumbnail keeps no EXIF or GPS
        width, height = im.size
        im.thumbnail(THUMB_SIZE)
        thumb = self.thumb(blob.name)
        if not thumb.exists():
            out = im.convert("RGB") if mime == "image/jpeg" else im.convert("RGBA")
            tmp = thumb.with_name(f".{thumb.name}.{secrets.token_hex(4)}")
            out.save(tmp, format="JPEG" if mime == "image/jpeg" else "PNG")
            os.replace(tmp, thumb)
        return StoredFile(mime, width, height, thumb=True)

    def info(self, c: MediaInfo) -> StoredFile | None:
        """The stored file's type, and whether it has a thumbnail (which an image shown inline has)."""
        found = self.lookup(c.media_id, False)
        if found is None or not found[1].exists():
            return None
        meta = found[0]
        return StoredFile(meta["mime"], thumb=bool(meta.get("thumb")) and self.thumb(meta["sha256"]).exists())

    # -- serving (called on a worker thread by wschat.mediaserve)

    def lookup(self, media_id: str, want_thumb: bool) -> tuple[dict[str, Any], Path] | None:
        if not media_id or any(ch not in _TOKEN_CHARS for ch in media_id):
            return None
        try:
            meta = json.loads((self.root / "ids" / f"{media_id}.json").read_bytes())
        except (OSError, ValueError):
            return None
        sha = meta["sha256"]
        if want_thumb:
            return (
                meta | {"mime": "image/jpeg" if meta["mime"] == "image/jpeg" else "image/png"},
                self.thumb(sha),
            )
        return meta, self.blob(sha)

    def clean_partials(self) -> None:
        """Forget uploads abandoned for a week."""
        cutoff = time.time() - PARTIAL_MAX_AGE
        for e in os.scandir(self.root / "partial"):
            with contextlib.suppress(OSError):
                if e.stat().st_mtime < cutoff:
                    os.unlink(e.path)


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
