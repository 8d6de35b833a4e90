"""The profiles feature's store commands and their result. NO I/O.

The store executes them (`wschat.profilestore`, in the accounts' database, on the accounts
thread); a cluster-wide variant (Redis) may execute the same commands. Only accounts have stored
profiles: a guest's status lives while it is online.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from wschat.records import Command


@dataclass(frozen=True, slots=True)
class StoredProfile:
    """What the store keeps of an account's profile."""

    status: str = ""
    last_seen: float | None = None  # when its last device went offline
    avatar: str = ""  # the media id of its uploaded avatar image ("": none, initials)


@dataclass(frozen=True, slots=True)
class ReadProfile(Command):
    """The stored profile of account `key`. Result: StoredProfile (empty if none was saved)."""

    key: str


@dataclass(frozen=True, slots=True)
class SaveProfile(Command):
    """Save account `key`'s status, last-seen time and avatar (each None: unchanged)."""

    key: str
    status: str | None = None
    last_seen: float | None = None
    avatar: str | None = None  # a media id; "" removes it


@dataclass(frozen=True, slots=True)
class ShareProfile(Command):
    """Cluster mode: user `key` (shown as `name`) now has this profile, its devices' presence on
    every process together; every other process tells the user's devices and the members of its
    small rooms there (`wschat.features.profile_cluster`). Result: None (published, JSON)."""

    key: str
    name: str
    account: bool
    presence: str
    status: str
    avatar: str
    room: str = ""  # for that room's members only: the user just joined it (not a change)

    def payload(self) -> bytes:
        """What crosses Redis (JSON, never pickle)."""
        fields = {"k": self.key, "n": self.name, "acc": self.account, "pr": self.presence}
        if self.room:
            fields["r"] = self.room
        return orjson.dumps(fields | {"st": self.status, "av": self.avatar})

    @classmethod
    def parse(cls, data: bytes) -> ShareProfile:
        """The command `payload` made (ValueError, KeyError or TypeError if it is not one)."""
        f = orjson.loads(data)
        room = str(f.get("r", ""))
        return cls(str(f["k"]), str(f["n"]), bool(f["acc"]), str(f["pr"]), str(f["st"]), str(f["av"]), room)


@dataclass(frozen=True, slots=True)
class LiveProfile:
    """A user online on other processes, as its devices there make it (cluster mode)."""

    name: str
    presences: tuple[str, ...]  # what each of its devices there says (online, away, busy)
    status: str
    avatar: str  # an account's avatar's media id ("": none)
    account: bool


@dataclass(frozen=True, slots=True)
class ReadLiveProfiles(Command):
    """Cluster mode: the profiles of users `keys` (name keys) from their devices on the other
    processes, for a room's joiner (`wschat.features.profile_cluster.entered`). Result: dict,
    name key -> LiveProfile (a user with no device elsewhere is left out)."""

    keys: tuple[str, ...]
