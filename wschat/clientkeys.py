"""The terminal client's encryption files: this device's key and the pinned keys of contacts. I/O.

For each server and account, in the folder `keys` next to the session tokens
(`~/.config/wschat/keys/`, `$WSCHAT_KEYS` to override; mode 0700):

- `<id>.key.pem`: this device's ECDH P-256 private key (PKCS #8 PEM), mode 0600, made at the
  first log-in and never sent anywhere (the server gets its public half, `publish_key`);
- `<id>.pins.json`: the contacts' pinned keys and verified marks (`wschat.cliente2ee`), mode 0600,
  replaced atomically.

`<id>` is a hash of the server's address and the account's name key. The state machine asks for
these with `Job` effects ("e2ee_open", "e2ee_save"), which `wschat.clientjobs` runs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from wschat import e2ee
from wschat.clientauth import default_path
from wschat.names import name_key

if TYPE_CHECKING:
    from wschat.client import App

KEYS_ENV = "WSCHAT_KEYS"


def folder(env: dict[str, str] | os._Environ[str], home: str) -> str:
    if env.get(KEYS_ENV):
        return env[KEYS_ENV]
    return os.path.join(os.path.dirname(default_path(env, home, os.name == "nt")), "keys")


def _base(server: str, account: str) -> str:
    ident = hashlib.sha256(f"{server}\n{name_key(account)}".encode()).hexdigest()[:24]
    return os.path.join(folder(os.environ, os.path.expanduser("~")), ident)


def _write(path: str, data: bytes) -> None:
    """Write `data` to `path` with mode 0600, atomically (a crash leaves the old file or the new)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def open_key(server: str, account: str) -> tuple[Any, dict[str, Any], str]:
    """This device's private key (made and saved if there is none), the pins, the key file's path."""
    base = _base(server, account)
    path = base + ".key.pem"
    try:
        with open(path, "rb") as f:
            key = e2ee.load_private_pem(f.read())
    except FileNotFoundError:
        key = e2ee.new_key()
        _write(path, e2ee.private_pem(key))
    pins: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        with open(base + ".pins.json", encoding="utf-8") as f:
            loaded = json.load(f)
        pins = loaded if isinstance(loaded, dict) else {}
    return key, pins, path


async def open_job(app: App, account: str) -> None:
    try:
        key, pins, path = await asyncio.to_thread(open_key, app.address.display, account)
    except (OSError, ValueError) as exc:
        app.apply(app.state.e2ee_failed(f"Cannot read or make this device's encryption key: {exc}"))
        return
    app.apply(app.state.e2ee_opened(key, pins, path))


async def save_job(app: App, account: str, pins: dict[str, Any]) -> None:
    data = json.dumps(pins, indent=1, ensure_ascii=False).encode()
    try:
        await asyncio.to_thread(_write, _base(app.address.display, account) + ".pins.json", data)
    except OSError as exc:
        app.say(f"Could not save the pinned encryption keys: {exc}", "error")


JOBS = {"e2ee_open": open_job, "e2ee_save": save_job}  # run by wschat.clientjobs
