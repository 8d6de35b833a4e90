"""What the terminal client has shown of each room: sequence numbers, as ranges, per epoch. NO I/O.

A room's messages carry a per-room `seq` within an `epoch` (PROTOCOL.md). `SeqSet` records the
seqs already shown (or known not to exist), so a message is shown once however often it arrives
(live, in a resume, in a /history page); `RoomView` adds the epoch they belong to.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

NO_SEQ_BELOW = 2**53 - 1  # before_seq for "the newest page" when nothing of the room is known


class SeqSet:
    """Sequence numbers known to be shown (or known not to exist), as sorted disjoint ranges."""

    __slots__ = ("ranges",)

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []  # [lo, hi] inclusive, sorted, not touching

    def __contains__(self, seq: int) -> bool:
        i = bisect_right(self.ranges, [seq, NO_SEQ_BELOW + 1]) - 1
        return i >= 0 and self.ranges[i][0] <= seq <= self.ranges[i][1]

    def add(self, lo: int, hi: int) -> None:
        if hi < lo:
            return
        kept: list[list[int]] = []
        for r in self.ranges:
            if r[1] < lo - 1 or r[0] > hi + 1:
                kept.append(r)
            else:  # overlapping or touching: merge
                lo, hi = min(lo, r[0]), max(hi, r[1])
        kept.append([lo, hi])
        kept.sort()
        self.ranges = kept

    @property
    def top(self) -> int:
        """The highest seq known; 0 if none."""
        return self.ranges[-1][1] if self.ranges else 0

    @property
    def top_start(self) -> int | None:
        """Where the newest unbroken run starts: /history pages back from here."""
        return self.ranges[-1][0] if self.ranges else None


@dataclass(slots=True)
class RoomView:
    epoch: str | None = None
    seen: SeqSet = field(default_factory=SeqSet)
