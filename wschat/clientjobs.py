"""The terminal client's file I/O: hashing and sending uploads, downloading files. I/O.

Each `Job` effect of the state machine (`wschat.clientfiles`) runs here as a task; results go
back to the state machine through its methods and `App.apply`, progress through
`ClientState.progress()` and a refresh of the prompt (the status line).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed

from wschat import clientkeys
from wschat.clientframes import Job

if TYPE_CHECKING:
    from wschat.client import App

PIECE = 1 << 20


def start(app: App, job: Job) -> None:
    runner = {"hash": _hash, "send": _send, "download": _download, "passwd": _passwd, **clientkeys.JOBS}[
        job.kind
    ]
    task = asyncio.ensure_future(runner(app, **job.args))
    app.jobs.add(task)
    task.add_done_callback(app.jobs.discard)


async def _passwd(app: App) -> None:
    """/passwd: the current and the new password (twice) read without echo, then `change_password`."""
    ask = getattr(app.console, "secret", None)
    if ask is None:
        app.say("/passwd needs a full terminal (this one cannot hide what you type).", "error")
        return
    try:
        old = await ask("Current password: ")
        new = await ask("New password (at least 8 characters): ")
        again = await ask("The same new password again: ")
    except EOFError:
        app.say("No password read; nothing was changed.", "error")
        return
    if new != again:
        app.say("The two new passwords differ; nothing was changed.", "error")
    elif not old or not new:
        app.say("An empty password; nothing was changed.", "error")
    else:
        app.send({"type": "change_password", "old": old, "new": new})


def _sha256(path: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(PIECE):
            digest.update(piece)
    return os.path.getsize(path), digest.hexdigest()


async def _hash(app: App, path: str, room: str | None, to: str | None, avatar: bool = False) -> None:
    full = os.path.expanduser(path)
    try:
        if not os.path.isfile(full):
            raise FileNotFoundError(f"{path} is not a file")
        size, sha = await asyncio.to_thread(_sha256, full)
    except OSError as exc:
        app.apply(app.state.job_failed("", f"Cannot share {path}: {exc.strerror or exc}."))
        return
    if size == 0:
        app.apply(app.state.job_failed("", f"{path} is empty; there is nothing to share."))
        return
    app.apply(app.state.upload_hashed(full, os.path.basename(full), size, sha, room, to, avatar))


def _read(path: str, offset: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)


async def _send(
    app: App, upload_id: str, offset: int, chunk_size: int, path: str, size: int, name: str, key: str
) -> None:
    ws = app.ws
    head = bytes([len(upload_id)]) + upload_id.encode()
    at = offset
    try:
        while at < size and ws is not None and app.ws is ws:
            data = await asyncio.to_thread(_read, path, at, min(chunk_size, size - at))
            if not data:
                raise OSError(f"{name} got shorter while it was being sent")
            await ws.send(head + data)  # waits while the socket's buffer is full
            at += len(data)
            app.state.progress(key, f"↑ {name}", at, size)
            app.console.refresh()
    except ConnectionClosed:
        pass  # sent again from where the server stopped once reconnected
    except OSError as exc:
        app.apply(app.state.job_failed(key, f"Cannot read {name}: {exc}."))


def _target(folder: str, name: str) -> Path:
    base = Path(os.path.expanduser(folder))
    safe = name.replace("/", "_").replace("\\", "_").lstrip(".") or "file"
    path = base / safe
    n = 1
    while path.exists():
        stem, dot, ext = safe.rpartition(".")
        path = base / (f"{stem} ({n}).{ext}" if dot and stem else f"{safe} ({n})")
        n += 1
    return path


async def _download(app: App, url: str, name: str, size: int, folder: str, key: str) -> None:
    ws_url = urlsplit(app.address.url)
    secure = ws_url.scheme == "wss"
    host, port = ws_url.hostname or "localhost", ws_url.port or (443 if secure else 80)
    ssl_ctx: Any = app.connector.trust.connect_kwargs().get("ssl") if secure else None
    label = f"↓ {name}"
    try:
        path = _target(folder, name)
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl_ctx)
        try:
            hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            writer.write(f"GET {url} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n".encode())
            status = (await reader.readline()).split(b" ", 2)
            headers = await reader.readuntil(b"\r\n\r\n")
            if len(status) < 2 or status[1] != b"200":
                body = (await reader.read(500)).decode(errors="replace").strip()
                raise OSError(body or f"the server answered {status[1:2]}")
            del headers
            await _save(app, reader, path, key, label, size)
        finally:
            writer.close()
    except (OSError, asyncio.IncompleteReadError) as exc:
        app.apply(app.state.job_failed(key, f"Could not download {name}: {exc}"))
        return
    app.apply(app.state.progress_done(key, f"Saved {name} to {path}"))


async def _save(app: App, reader: asyncio.StreamReader, path: Path, key: str, label: str, size: int) -> None:
    got = 0
    part = path.with_name(path.name + ".part")
    try:
        with open(part, "wb") as f:
            while data := await reader.read(PIECE):
                await asyncio.to_thread(f.write, data)
                got += len(data)
                app.state.progress(key, label, got, size)
                app.console.refresh()
        if got != size:
            raise OSError(f"got {got} of {size} bytes")
        os.replace(part, path)
    finally:
        with contextlib.suppress(OSError):
            part.unlink()
