"""What the hub holds about moderation, and who may moderate what. NO I/O.

Operators: the accounts named by `--admin` (always), else those granted by the admin command
line, else the first account registered (unless the admin command line removed it). A room's
moderators: the operators and its creator (the account that made it). Guests moderate nothing:
a guest's name is anyone's once it leaves.

Bans and mutes apply to an account by its key, to a guest by its address ("guests by
address"): a banned guest cannot come back under another name from the same address.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from wschat.features.mod_records import ModState, Restriction, RoomRules
from wschat.hub.state import Session

if TYPE_CHECKING:
    from wschat.hub.core import Hub


def subject_of(s: Session) -> str:
    """What a ban or a mute of `s` is aimed at: its account, or (a guest) its address."""
    return f"account:{s.key}" if s.account else f"address:{s.address}"


def remaining(r: Restriction, now: float) -> str:
    """ " for 5 more minutes" (or "" when it has no end), for the sentences people read."""
    if not r.until:
        return ""
    left = max(1, math.ceil(r.until - now))
    return f" for {left} more seconds" if left < 120 else f" for {math.ceil(left / 60)} more minutes"


class ModBook:
    def __init__(self, state: ModState | None) -> None:
        self.operators: dict[str, bool] = {}
        self.rooms: dict[str, RoomRules] = {}
        self.restrictions: dict[tuple[str, str, str], Restriction] = {}
        self.load(state or ModState())
        self.pending = 0  # changes sent to the store and not yet written
        self.generation = 0  # counts changes: a re-read asked before one is stale
        self.rereading = False
        self.next_reread = 0.0
        # cluster mode: where the user an action names is on the other processes, while that
        # action's handler runs (wschat.features.mod_cluster); name key -> its places
        self.places: dict[str, tuple] = {}

    def load(self, state: ModState) -> None:
        self.operators = dict(state.operators)
        self.rooms = dict(state.rooms)
        self.restrictions = {(r.what, r.scope, r.subject): r for r in state.restrictions}

    def rules(self, room: str) -> RoomRules:
        """The room's rules (a fresh default, not kept, when it has none)."""
        return self.rooms.get(room) or RoomRules()

    def rules_to_change(self, room: str) -> RoomRules:
        return self.rooms.setdefault(room, RoomRules())

    def operator_key(self, hub: Hub, key: str) -> bool:
        if key in hub.config.admins:
            return True
        granted = self.operators.get(key)
        if granted is not None:
            return granted
        return key == next(iter(hub.accounts.registered), None)

    def is_operator(self, hub: Hub, s: Session) -> bool:
        return s.account and self.operator_key(hub, s.key)

    def moderates(self, hub: Hub, s: Session, room: str) -> bool:
        """Whether `s` may moderate `room`: an operator, or the room's creator."""
        if not s.account:
            return False
        creator = self.rules(room).creator
        return (bool(creator) and creator == s.key) or self.operator_key(hub, s.key)

    def find(self, what: str, scope: str, subject: str, now: float) -> Restriction | None:
        r = self.restrictions.get((what, scope, subject))
        if r is None or (r.until and r.until <= now):
            return None
        return r

    def applies(self, what: str, s: Session, room: str | None, now: float) -> Restriction | None:
        """The ban or mute of `s` on the whole server, else in `room`; None if none."""
        if not self.restrictions:  # the usual case (nobody banned or muted), on every chat message
            return None
        subject = subject_of(s)
        found = self.find(what, "", subject, now)
        if found is None and room is not None:
            found = self.find(what, room, subject, now)
        return found

    def add(self, r: Restriction) -> None:
        self.restrictions[(r.what, r.scope, r.subject)] = r
        self.generation += 1

    def lift(self, what: str, scope: str, subject: str) -> Restriction | None:
        self.generation += 1
        return self.restrictions.pop((what, scope, subject), None)

    def expired(self, now: float) -> list[Restriction]:
        """The restrictions that have run out, taken out of the book."""
        gone = [r for r in self.restrictions.values() if r.until and r.until <= now]
        for r in gone:
            del self.restrictions[(r.what, r.scope, r.subject)]
        return gone

    def hidden(self, hub: Hub, s: Session, room: str) -> bool:
        """An invite-only room is not listed to who may not enter it."""
        rules = self.rooms.get(room)
        if rules is None or not rules.invite_only or room in s.rooms:
            return False
        return not (s.key in rules.invited or self.moderates(hub, s, room))
