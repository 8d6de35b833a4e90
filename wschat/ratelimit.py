"""The one token-bucket rate limiter, used by the server's hub and the terminal client. NO I/O.

The server limits what each connection may send; the terminal client keeps a copy of the same
rule so that a full outbox is paced rather than refused.
"""

from __future__ import annotations


class TokenBucket:
    """Rate limit: `rate` tokens a second, at most `burst` saved up.

    A refused frame is told when to come back, and each refused frame gets its own slot, one token
    apart, after those promised before it (`promised_until`): a client that resends every refused
    frame after its own `retry_after` is accepted every time, instead of being refused again by
    its own earlier resends.
    """

    __slots__ = ("burst", "promised_until", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now
        self.promised_until = 0.0

    def take(self, now: float) -> float:
        """Spend one token. Returns 0 if allowed, else the seconds until this frame's slot."""
        if now < self.stamp:  # the wall clock stepped back (NTP): move the marks with it
            self.promised_until -= self.stamp - now
            self.stamp = now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        slot = max(now + (1 - self.tokens) / self.rate, self.promised_until + 1 / self.rate)
        self.promised_until = slot
        return slot - now

    def ready_in(self, now: float) -> float:
        """Seconds until a token is there (0: now), spending nothing and promising no slot.

        For a sender pacing itself (the terminal client's outbox): it may ask as often as it
        likes without pushing its own turn later, then `take()`s when this says 0.
        """
        if now < self.stamp:
            return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate
