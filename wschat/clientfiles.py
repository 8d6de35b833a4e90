"""The terminal client's file sharing: /upload, /download, file lines, progress. NO I/O.

`FileTransfers` is the part of `wschat.clientstate.ClientState` that knows the uploads under way
and the files seen in the chat. What needs the disk or the network is asked of the I/O layer
(`wschat.clientjobs`) as a `Job` effect, and its results come back through the methods below:

- `/upload PATH` -> `Job("hash")`; the I/O reads and hashes the file, then `upload_hashed()`
  queues an `upload_begin` (sent by `pump`, and again after each reconnect: the server then
  answers with the offset where the upload stopped) -> `upload_ready` -> `Job("send")`, which
  sends the bytes -> `upload_done`.
- A message carrying a `file` is shown as one line with its name, size and a short ID;
  `/download ID [DIR]` -> `Job("download")`.
- `progress()` records what a job has done; `progress_text()` is put in front of the prompt
  (the status line).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from wschat.clientframes import Effect, Job, Send, note
from wschat.commands import Download, Upload

FILES_KEPT = 2000
SHORT_ID = 8
BAR = 12


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def file_line(file: dict[str, Any]) -> str:
    """How a shared file shows in the chat: name, size, type and the ID /download takes."""
    name = str(file.get("name", "file"))
    size = file.get("size") if isinstance(file.get("size"), int) else 0
    fid = str(file.get("id", ""))[:SHORT_ID]
    return f"📎 {name} ({human_size(size)}, {file.get('mime', '?')}) · ID {fid} · /download {fid}"


def _where(room: str | None, to: str | None) -> str:
    return f"#{room}" if to is None else to


@dataclass(slots=True)
class PendingUpload:
    cmid: str
    path: str
    name: str
    size: int
    sha256: str
    room: str | None
    to: str | None = None
    sent_gen: int = -1  # the connection its upload_begin went on; sent again on any other
    avatar: bool = False  # /avatar FILE: for the profile, then set_profile {avatar: its id}


class FileTransfers:
    """The file half of `ClientState` (see the module docstring)."""

    gen: int
    current: str | None
    new_id: Any

    def _init_files(self) -> None:
        self.uploads: OrderedDict[str, PendingUpload] = OrderedDict()
        self.files: OrderedDict[str, dict[str, Any]] = OrderedDict()  # media id -> file object
        self.transfers: dict[str, tuple[str, int, int]] = {}  # job key -> (label, done, total)

    # -- typed commands

    def _file_command(self, cmd: Any) -> list[Effect] | None:
        if isinstance(cmd, Upload):
            if cmd.to is not None:
                return [Job("hash", {"path": cmd.path, "room": None, "to": cmd.to})]
            if self.current is None:
                return [note("You are in no room; /join ROOM first, then /upload PATH.", "error")]
            return [Job("hash", {"path": cmd.path, "room": self.current, "to": None})]
        if isinstance(cmd, Download):
            hits = [f for fid, f in self.files.items() if fid.startswith(cmd.file_id)]
            if len(hits) != 1:
                why = "no file" if not hits else "several files"
                return [note(f"There is {why} with the ID {cmd.file_id} in this chat.", "error")]
            f = hits[0]
            args = {"url": f["url"], "name": f.get("name", "file"), "size": f.get("size", 0)}
            return [Job("download", {**args, "folder": cmd.folder, "key": "d" + str(f["id"])})]
        return None

    # -- results of the I/O jobs

    def upload_hashed(
        self,
        path: str,
        name: str,
        size: int,
        sha256: str,
        room: str | None,
        to: str | None = None,
        avatar: bool = False,
    ) -> list[Effect]:
        cmid = self.new_id()
        self.uploads[cmid] = PendingUpload(cmid, path, name, size, sha256, room, to, avatar=avatar)
        where = "as your avatar" if avatar else f"to {_where(room, to)}"
        return [note(f"Uploading {name} ({human_size(size)}) {where}…", "queued")]

    def job_failed(self, key: str, text: str) -> list[Effect]:
        self.transfers.pop(key, None)
        return [note(text, "error")]

    def progress(self, key: str, label: str, done: int, total: int) -> None:
        self.transfers[key] = (label, done, total)

    def progress_done(self, key: str, text: str) -> list[Effect]:
        self.transfers.pop(key, None)
        return [note(text, "ok")]

    def progress_text(self) -> str:
        parts = []
        for label, done, total in self.transfers.values():
            frac = done / total if total else 1.0
            filled = round(frac * BAR)
            parts.append(f"[{label} {'█' * filled}{'░' * (BAR - filled)} {frac:4.0%}]")
        return " ".join(parts) + " " if parts else ""

    # -- frames

    def _pump_uploads(self, frames: list[dict[str, Any]]) -> None:
        for up in self.uploads.values():
            if up.sent_gen != self.gen:
                up.sent_gen = self.gen
                target = {"to": up.to} if up.to is not None else {"room": up.room}
                if up.avatar:
                    target = {"for": "avatar"}
                frames.append(
                    {"type": "upload_begin", "name": up.name, "size": up.size, "sha256": up.sha256,
                     **target, "client_msg_id": up.cmid}
                )  # fmt: skip

    def _on_upload_ready(self, frame: dict[str, Any], now: float) -> list[Effect]:
        up = self.uploads.get(str(frame.get("client_msg_id")))
        if up is None:
            return []
        args = {k: frame.get(k) for k in ("upload_id", "offset", "chunk_size")}
        return [Job("send", {**args, "path": up.path, "size": up.size, "name": up.name, "key": up.cmid})]

    def _on_upload_done(self, frame: dict[str, Any], now: float) -> list[Effect]:
        up = self.uploads.pop(str(frame.get("client_msg_id")), None)
        if up is None:
            return []
        self.transfers.pop(up.cmid, None)
        file = frame.get("file")
        if up.avatar and isinstance(file, dict) and isinstance(file.get("id"), str):
            # the server checks it is an image; the `profile` answer says the avatar is set
            return [Send({"type": "set_profile", "avatar": file["id"]})]
        return [note(f"Uploaded {up.name} to {_where(up.room, up.to)}.", "ok")]

    def _upload_refused(self, cmid: Any, reason: str) -> list[Effect] | None:
        up = self.uploads.pop(cmid, None) if isinstance(cmid, str) else None
        if up is None:
            return None
        self.transfers.pop(up.cmid, None)
        return [note(f"{up.name} was not shared: {reason}", "error")]

    def _file_text(self, m: dict[str, Any]) -> str | None:
        """The line for a message that shares a file (remembered for /download); else None."""
        file = m.get("file")
        if (
            not isinstance(file, dict)
            or not isinstance(file.get("id"), str)
            or not isinstance(file.get("url"), str)
        ):
            return None
        self.files[file["id"]] = file
        if len(self.files) > FILES_KEPT:
            self.files.popitem(last=False)
        return file_line(file)
