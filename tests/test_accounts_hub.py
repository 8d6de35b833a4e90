"""wschat.features.accounts and login_limits without sockets: what is refused before a password
is hashed, the bound on hashes in flight, and the growing waits."""

from __future__ import annotations

from typing import Any

from hubharness import Harness

from wschat.features.account_records import AccountSession, CheckPassword, CreateAccount
from wschat.features.login_limits import Attempts
from wschat.features.private_records import MarkDelivered, StorePrivate
from wschat.hub import Snapshot


class AccountHarness(Harness):
    """Keeps the account commands the hub asks for, to answer them when the test says."""

    def __init__(self, snapshot: Snapshot | None = None, **config: Any) -> None:
        super().__init__(snapshot, **config)
        self.asked: list[tuple[int, Any]] = []

    def execute(self, token: int, command: Any) -> None:
        if type(command).__module__.startswith("wschat.features."):
            self.asked.append((token, command))
        else:
            super().execute(token, command)

    def attempt(self, cid: int, name: str, password: str = "wrong password") -> None:
        self.send(cid, {"type": "login", "username": name, "password": password})


def test_growing_waits_after_the_free_failures_and_a_success_clears_them() -> None:
    a = Attempts(free=2, base=1.0, cap=10.0)
    assert [a.failed("k", 0.0) for _ in range(6)] == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    assert a.failed("k", 0.0) == 10.0  # capped
    assert a.wait("k", 3.0) == 7.0 and a.wait("other", 3.0) == 0.0
    a.succeeded("k")
    assert a.wait("k", 3.0) == 0.0


def test_old_keys_are_forgotten_and_the_table_is_bounded() -> None:
    a = Attempts(free=0, base=1.0, cap=5.0, size=3)
    for i in range(5):
        a.failed(f"k{i}", float(i))
    assert list(a.entries) == ["k2", "k3", "k4"]
    a.forget_old(8.5)
    assert list(a.entries) == ["k4"]


def test_guests_are_refused_registered_names_and_look_alikes() -> None:
    h = AccountHarness(Snapshot(accounts=["Alice"]))
    for cid, name in enumerate(("alice", "Аlice", "AIice"), start=1):
        frames = h.login(cid, name)
        assert [(f["type"], f["code"]) for f in frames] == [("username_error", "name_registered")]
    assert h.types(1) == [] and h.login(9, "Bob")[0]["type"] == "username_accepted"


def test_accounts_required_refuses_guests() -> None:
    h = AccountHarness(accounts_required=True)
    frames = h.login(1, "Bob")
    assert frames[0]["code"] == "accounts_required"


def test_a_log_in_flood_is_refused_before_hashing_beyond_the_bound() -> None:
    h = AccountHarness(max_hashes=3)
    for cid in range(1, 11):
        h.connect(cid)
        h.attempt(cid, f"user{cid}")
    hashing = [c for _, c in h.asked if isinstance(c, CheckPassword)]
    assert len(hashing) == 3
    refused = [h.take(cid)[0] for cid in range(4, 11)]
    assert {(f["code"], f["retry_after"]) for f in refused} == {("rate_limited", 1.0)}
    h.attempt(1, "user1")  # a second try on a connection whose first is being checked
    assert h.take(1)[0]["code"] == "rate_limited"
    token, _ = h.asked[0]
    h.answer(token, None)
    assert h.take(1)[0]["code"] == "bad_credentials" and h.hub.accounts.hashing == 2


def test_failures_per_name_make_it_wait_before_anything_is_hashed() -> None:
    h = AccountHarness(account_free_failures=2)
    h.connect(1)
    for _ in range(3):
        h.attempt(1, "Alice")
        token, _ = h.asked[-1]
        h.answer(token, None)
        assert h.take(1)[-1]["code"] == "bad_credentials"
    asked = len(h.asked)
    h.attempt(1, "Alice")
    refusal = h.take(1)[0]
    assert (
        refusal["code"] == "rate_limited"
        and refusal["retry_after"] == 1.0
        and "wait 1 s" in refusal["message"]
    )
    assert len(h.asked) == asked  # refused before a hash was asked for
    h.attempt(1, "Bob")  # another name from the same address is not held back (20 free)
    assert len(h.asked) == asked + 1


def test_a_registration_logs_in_and_the_name_is_then_registered() -> None:
    h = AccountHarness()
    h.connect(1)
    h.send(1, {"type": "register", "username": "Alice", "password": "long enough"})
    token, command = h.asked[0]
    assert isinstance(command, CreateAccount) and command.key == "alice"
    assert "long enough" not in repr(command)  # never in a log line
    h.answer(token, AccountSession("Alice", "alice", "s1", "t" * 43))
    accepted = h.take(1)[0]
    assert accepted["account"] is True and accepted["session_token"] == "t" * 43
    assert accepted["session_id"] == "s1"
    assert h.login(2, "ALICE")[0]["code"] == "name_registered"


def logged_in_account(h: AccountHarness, cid: int, name: str) -> None:
    """An account logged in on `cid` (the store's answer given at once)."""
    h.connect(cid)
    h.attempt(cid, name, "the password")
    token, _ = h.asked[-1]
    h.answer(token, AccountSession(name, name.lower(), f"s{cid}", f"t{cid}"))
    h.take(cid)


def test_a_private_message_between_accounts_is_stored_before_it_is_delivered() -> None:
    h = AccountHarness(Snapshot(accounts=["Alice", "Bob"]))
    logged_in_account(h, 1, "Alice")
    h.send(1, {"type": "private", "to": "bob", "message": "hi", "client_msg_id": "c1"})
    assert h.take(1) == []  # nothing before the store answers
    token, command = h.asked[-1]
    assert isinstance(command, StorePrivate) and command.messages[0].conversation == "alice\nbob"
    command.messages[0].id, command.messages[0].seq = 7, 1  # as the store fills them in
    h.answer(token, None)
    frames = h.take(1)
    assert [f["type"] for f in frames] == ["private", "ack"]
    assert frames[0]["stored"] is True and frames[1] == {
        "type": "ack", "client_msg_id": "c1", "id": "pm7", "seq": 1, "to": "Bob", "stored": True,
    }  # fmt: skip
    _, mark = h.asked[-1]
    assert isinstance(mark, MarkDelivered) and mark.ids == [] and mark.cursors == {"s1": 7}


def test_a_private_message_with_a_guest_is_not_stored() -> None:
    h = AccountHarness(Snapshot(accounts=["Alice"]))
    logged_in_account(h, 1, "Alice")
    h.login(2, "Guest")
    asked = len(h.asked)
    h.send(1, {"type": "private", "to": "Guest", "message": "hi", "client_msg_id": "c1"})
    assert len(h.asked) == asked
    ack = next(f for f in h.take(1) if f["type"] == "ack")
    assert ack["stored"] is False
