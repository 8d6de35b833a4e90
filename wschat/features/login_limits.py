"""Failed log-in attempts, counted per account name and per address, with a growing wait. NO I/O.

After `free` failures in a row for one key, each further failure makes the key wait twice as
long as the last time (`base`, 2 x base, 4 x base... up to `cap` seconds); while it waits,
attempts are refused before any password is hashed, with the wait in the answer. A success
clears the key. Keys not heard from for `cap` seconds are forgotten, and at most `size` keys are
kept (the ones heard from longest ago go first), so the table cannot be grown without bound.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    failures: int
    until: float  # refused before this time
    last: float  # the last failure


class Attempts:
    def __init__(self, free: int, base: float, cap: float, size: int = 100_000) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.size = size
        self.entries: dict[str, _Entry] = {}  # heard from longest ago first

    def wait(self, key: str, now: float) -> float:
        """Seconds `key` must still wait before its next attempt (0: go ahead)."""
        entry = self.entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.until - now)

    def failed(self, key: str, now: float) -> float:
        """Count one failure; the wait it imposes from now."""
        entry = self.entries.pop(key, None)
        if entry is None or now - entry.last > self.cap:
            entry = _Entry(0, now, now)
        entry.failures += 1
        entry.last = now
        over = entry.failures - self.free
        delay = min(self.cap, self.base * 2 ** min(over - 1, 30)) if over > 0 else 0.0
        entry.until = now + delay
        self.entries[key] = entry
        while len(self.entries) > self.size:
            del self.entries[next(iter(self.entries))]
        return delay

    def succeeded(self, key: str) -> None:
        self.entries.pop(key, None)

    def forget_old(self, now: float) -> None:
        """Drop keys with no failure for `cap` seconds (called from the hub's tick)."""
        entries = self.entries
        while entries:  # oldest failure first: stop at the first key still remembered
            key = next(iter(entries))
            entry = entries[key]
            if now - entry.last <= self.cap or now < entry.until:
                break
            del entries[key]
