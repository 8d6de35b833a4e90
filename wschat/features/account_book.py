"""What the hub keeps about accounts: registered names, log-in limits, hashes in flight. NO I/O.

The registered names live in the store; the hub holds them (and their look-alike keys) in
memory, loaded with the start-up snapshot and added to on each registration, so a guest's
`set_username` is checked without a store round trip.
"""

from __future__ import annotations

from collections.abc import Iterable

from wschat.features.login_limits import Attempts
from wschat.hub.state import Config
from wschat.names import lookalike_keys, name_key


class Book:
    def __init__(self, config: Config, names: Iterable[str] = ()) -> None:
        self.registered: dict[str, str] = {}  # name key -> the registered spelling
        self.looks: dict[str, str] = {}  # look-alike key -> a registered name that has it
        wait, cap = config.login_wait, config.login_wait_cap
        self.by_account = Attempts(config.account_free_failures, wait, cap)
        self.by_address = Attempts(config.address_free_failures, wait, cap)
        self.registrations = Attempts(config.free_registrations, 60.0, 24 * 3600.0)
        self.hashing = 0  # password hashes asked of the store, not yet answered
        self.pending: set[int] = set()  # connections whose log-in is being checked
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        self.registered[name_key(name)] = name
        for look in lookalike_keys(name):
            self.looks.setdefault(look, name)

    def holder_of(self, key: str, looks: frozenset[str]) -> str | None:
        """The registered name that is `key`, or that looks like it; None if there is none."""
        if key in self.registered:
            return self.registered[key]
        for look in looks:
            if look in self.looks:
                return self.looks[look]
        return None

    def tick(self, now: float) -> None:
        self.by_account.forget_old(now)
        self.by_address.forget_old(now)
        self.registrations.forget_old(now)
