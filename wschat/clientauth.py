"""The terminal client's account I/O: the password prompt and the file of session tokens.

- `read_password()` reads a password with `getpass` (from the terminal, never echoed; never from
  the command line or the environment); `--register` asks twice.
- `TokenFile` keeps one session token per server and account in
  `~/.config/wschat/sessions.json` (`$XDG_CONFIG_HOME`, `%APPDATA%\\wschat` on Windows,
  `$WSCHAT_SESSIONS` to override), written with mode 0600 in a folder of mode 0700, replaced
  atomically. Tokens, never passwords.
- `password_for()` and `tokens_for()`: what `--login` / `--register` need at start (the client's
  `run_client` calls them): the password when this device has no token for that server, and
  the token file with the token it keeps.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

from wschat.names import name_key

if TYPE_CHECKING:
    import argparse

    from wschat.address import Address
    from wschat.clientstate import ClientState

SESSIONS_ENV = "WSCHAT_SESSIONS"
SESSIONS_FILE = "sessions.json"


class PasswordUnavailable(Exception):
    """No password could be read (no terminal, or the two entries differ)."""


def default_path(env: Mapping[str, str], home: str, windows: bool = False) -> str:
    if env.get(SESSIONS_ENV):
        return env[SESSIONS_ENV]
    if windows and env.get("APPDATA"):
        return env["APPDATA"] + "\\wschat\\" + SESSIONS_FILE
    config = env.get("XDG_CONFIG_HOME") or home.rstrip("/") + "/.config"
    return f"{config}/wschat/{SESSIONS_FILE}"


def device_label() -> str:
    return f"terminal on {socket.gethostname()}"[:64]


def read_password(name: str, register: bool) -> str:
    """The password, read from the terminal without echo; asked twice to register.

    Never from piped input: without a terminal (getpass would fall back to reading stdin, and
    take a script's first line for the password) it raises PasswordUnavailable.
    """
    if os.name != "nt":
        try:
            with open("/dev/tty"):
                pass
        except OSError:
            raise PasswordUnavailable(
                "No terminal to type the password in; log in once interactively "
                "(the device then keeps a session token for scripts)."
            ) from None
    try:
        first = getpass.getpass(f"Password for {name}: ")
        if register:
            again = getpass.getpass("The same password again: ")
            if again != first:
                raise PasswordUnavailable("The two passwords differ; nothing was registered.")
    except (EOFError, OSError):
        raise PasswordUnavailable("No password could be read (no terminal to type it in).") from None
    if not first:
        raise PasswordUnavailable("No password typed.")
    return first


class TokenFile:
    """The session token of one account on one server, kept between runs."""

    def __init__(self, path: str, server: str, name: str) -> None:
        self.path = path
        self.key = f"{server} {name_key(name)}"

    def _read(self) -> dict[str, str]:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}

    def load(self) -> str | None:
        return self._read().get(self.key)

    def save(self, token: str | None) -> None:
        """Keep (or with None forget) the token; a file that cannot be written is not fatal."""
        data = self._read()
        if token is None:
            if data.pop(self.key, None) is None:
                return
        else:
            data[self.key] = token
        folder = os.path.dirname(self.path) or "."
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with contextlib.suppress(OSError):
            os.makedirs(folder, mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
            os.chmod(tmp, 0o600)  # a umask cannot widen it, but an existing file kept its mode
            os.replace(tmp, self.path)


def token_file(opts: argparse.Namespace, address: Address) -> TokenFile:
    path = default_path(os.environ, os.path.expanduser("~"), os.name == "nt")
    return TokenFile(path, address.display, opts.username)


def password_for(opts: argparse.Namespace, address: Address | None) -> str | None:
    """For --register, and --login without a token kept for this server: the password, read now
    (before the terminal goes into raw mode). Raises PasswordUnavailable."""
    if not opts.account:
        return None
    if opts.account == "login" and address is not None and token_file(opts, address).load():
        return None
    return read_password(opts.username, opts.account == "register")


def tokens_for(opts: argparse.Namespace, state: ClientState, address: Address) -> TokenFile | None:
    """An account's token file; the token this device has for it (--login) goes to `state`."""
    if not opts.account:
        return None
    tokens = token_file(opts, address)
    if opts.account == "login":
        state.account_token = tokens.load()
    return tokens
