"""End-to-end encryption: the device keys the server publishes, and their store commands. NO I/O.

The server keeps one public key per account session (device): the one that device published
with `publish_key`. An account's devices are the keys of its sessions that have not ended, so
revoking a session (or logging out, or changing the password) takes its key off the list.
"""

from __future__ import annotations

from dataclasses import dataclass

from wschat.records import Command


@dataclass(frozen=True, slots=True)
class DeviceKey:
    session_id: str
    key_id: str
    public: str  # base64 of the raw P-256 point (wschat.e2ee)
    device: str  # the session's device label
    created: float


@dataclass(frozen=True, slots=True)
class SaveDeviceKey(Command):
    """Device `session_id` of account `key` publishes `public`. Result: the account's keys now."""

    key: str
    session_id: str
    key_id: str
    public: str
    now: float


@dataclass(frozen=True, slots=True)
class ReadDeviceKeys(Command):
    """The current device keys of these accounts, one per live session that published one (a
    key may appear under several sessions). Result: {account key: [DeviceKey]}."""

    keys: tuple[str, ...]
