"""wschat.hub.devices without sockets: an account's devices online at once, the name passed on
to the device that stays, rooms counting the user once, typing shown once, a device replacing
only its own older connection."""

from __future__ import annotations

from hubharness import only
from test_accounts_hub import AccountHarness, logged_in_account

from wschat.features.account_records import AccountSession


def alice_twice_and_bob() -> AccountHarness:
    """Alice's account on connections 1 and 2 (devices s1 and s2), Bob a guest on 3."""
    h = AccountHarness()
    logged_in_account(h, 1, "Alice")
    logged_in_account(h, 2, "Alice")
    h.login(3, "Bob")
    return h


def test_both_devices_are_the_accounts_connections_and_the_user_counts_once() -> None:
    h = alice_twice_and_bob()
    assert h.hub.connections_of("alice") == (1, 2)
    assert h.hub.connections_of("bob") == (3,)
    assert h.hub.connections_of("carol") == ()
    assert 1 not in h.closed and 2 not in h.closed
    h.send(3, {"type": "get_users", "room": "general"})
    assert only(h.take(3), "online_users")[0]["users"] == ["Alice", "Bob"]
    assert h.hub.stats()["users"] == 2


def test_the_first_device_going_passes_the_name_to_the_other() -> None:
    h = alice_twice_and_bob()
    h.take(3)
    h.leave(1)
    assert h.take(3) == []  # Alice is still online: not news
    assert h.hub.by_key["alice"] == 2 and h.hub.broker.names["alice"] == 2  # type: ignore[attr-defined]
    assert all(cid == 2 for look, cid in h.hub.by_look.items() if cid != 3)
    h.send(3, {"type": "private", "to": "alice", "message": "still there?"})
    assert only(h.take(2), "private")[0]["message"] == "still there?"
    h.leave(2)
    left = only(h.take(3), "user_leave")
    assert [(f["username"], f["reason"]) for f in left] == [("Alice", "disconnect")]
    assert "alice" not in h.hub.by_key and "alice" not in h.hub.devices


def test_a_device_logging_in_again_replaces_only_its_own_connection() -> None:
    h = alice_twice_and_bob()
    logged_in_account(h, 4, "Alice")  # a third device
    h.connect(5)
    h.attempt(5, "Alice", "the password")
    token, _ = h.asked[-1]
    h.answer(token, AccountSession("Alice", "alice", "s1", "t1"))  # device s1 again
    assert h.closed == {1: (4000, "logged in again from another connection")}
    assert h.hub.connections_of("alice") == (2, 4, 5)


def test_typing_on_two_devices_is_shown_once_and_never_to_oneself() -> None:
    h = alice_twice_and_bob()
    h.take(1), h.take(2), h.take(3)
    for cid in (1, 2):
        h.send(cid, {"type": "typing", "room": "general"})
        h.advance(1.5)
        h.run(h.hub.tick(h.now))
    typing = only(h.take(3), "typing")
    assert typing and all(f["users"] == ["Alice"] for f in typing)
    assert all("Alice" not in f["users"] for f in only(h.take(1) + h.take(2), "typing"))


def test_moderation_acts_on_every_device_of_the_user() -> None:
    h = AccountHarness(admins=frozenset({"op"}))
    logged_in_account(h, 1, "Alice")
    logged_in_account(h, 2, "Alice")
    logged_in_account(h, 4, "Op")
    h.login(3, "Bob")
    for cid in (1, 2, 3, 4):
        h.take(cid)
    h.send(4, {"type": "kick", "room": "general", "username": "alice", "reason": "calm down"})
    for cid in (1, 2):  # both devices are told, and both are out of the room
        frames = h.take(cid)
        assert [f["type"] for f in frames if f["type"] in ("moderation", "left")] == ["moderation", "left"]
        assert "general" not in h.hub.sessions[cid].rooms
    assert [f["username"] for f in only(h.take(3), "user_leave")] == ["Alice"]  # once
    h.send(4, {"type": "kick", "username": "alice"})  # off the server: every device
    assert h.closed[1][0] == h.closed[2][0] == 4002
