"""The accounts feature's store commands and their results. NO I/O.

The store (`wschat.accountstore`) executes them: the ones that hash a password
(`CreateAccount`, `CheckPassword`, `SetPassword`) on its bounded hashing thread, the others on
its accounts thread. Passwords cross here in the clear and are never kept: the store hashes
them (argon2id) and forgets them. Session tokens are made by the store, which keeps only their
SHA-256; the plain token is returned once, to the device that logged in.
"""

from __future__ import annotations

from dataclasses import dataclass

from wschat.records import Command


@dataclass(frozen=True, slots=True)
class AccountSession:
    """A successful log-in: the account and this device's session (`token` only when new)."""

    name: str
    key: str
    session_id: str
    token: str = ""


@dataclass(frozen=True, slots=True)
class DeviceSession:
    """One row of an account's sessions list."""

    id: str
    device: str
    created: float
    last_used: float


@dataclass(frozen=True, slots=True, repr=False)
class CreateAccount(Command):
    """Register `name` with `password` and open a session. Result: AccountSession, or None if taken."""

    key: str
    name: str
    password: str
    device: str
    now: float


@dataclass(frozen=True, slots=True, repr=False)
class CheckPassword(Command):
    """Log in with a password (a dummy verification for an unknown name, so both take as long).

    Result: AccountSession with a new session, or None.
    """

    key: str
    password: str
    device: str
    now: float


@dataclass(frozen=True, slots=True, repr=False)
class CheckToken(Command):
    """Log in with a session token (compared in constant time). Result: AccountSession, or None."""

    key: str
    token: str
    now: float


@dataclass(frozen=True, slots=True)
class EndSession(Command):
    """End one session of the account (log-out, revoke). Result: True if there was one."""

    key: str
    session_id: str


@dataclass(frozen=True, slots=True)
class ReadSessions(Command):
    """Result: the account's sessions (list of DeviceSession), most recently used first."""

    key: str


@dataclass(frozen=True, slots=True, repr=False)
class SetPassword(Command):
    """Change the password if `old` is right, ending every session but `keep`.

    Result: the number of sessions ended, or None if `old` is wrong.
    """

    key: str
    old: str
    new: str
    keep: str


@dataclass(frozen=True, slots=True)
class ReadSessionEnds(Command):
    """The accounts whose sessions the host's admin command line ended after change `after`
    (`admin reset-password`), from its change counter (the `session_ends` table).

    Result: (the latest change number, the account keys changed after `after`); `after` < 0
    asks only for the latest number (at start-up).
    """

    after: int
