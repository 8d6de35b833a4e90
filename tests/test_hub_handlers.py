"""wschat.hub.handlers: the request handlers: chat, private messages, membership checks (no sockets)."""

from __future__ import annotations

from hubharness import Harness, filled, only


def test_chat_is_stamped_with_the_accepted_name_not_the_payload() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.take(1)
    h.chat(1, "hi", username="Mallory")
    for cid in (1, 2):
        (msg,) = only(h.take(cid), "chat")
        assert msg["username"] == "Alice"
        assert msg["message"] == "hi"
        assert msg["room"] == "general" and msg["seq"] == 1 and msg["id"] == "1"
        assert msg["timestamp"].endswith("+00:00")
        assert msg["client_id"].startswith("c1")


def test_messages_are_broadcast_only_after_they_are_committed() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.auto_commit = False
    h.chat(1, "hi", client_msg_id="m1")
    assert h.take(1) == []
    h.commit_held()
    assert [f["type"] for f in h.take(1)] == ["chat", "ack"]


def test_ack_carries_id_and_seq() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.chat(1, "one", client_msg_id="m1")
    h.chat(1, "two", client_msg_id="m2")
    acks = only(h.take(1), "ack")
    assert acks == [
        {"type": "ack", "client_msg_id": "m1", "id": "1", "seq": 1, "room": "general"},
        {"type": "ack", "client_msg_id": "m2", "id": "2", "seq": 2, "room": "general"},
    ]


def test_fetch_history_needs_membership() -> None:
    h = filled(3)
    h.send(1, {"type": "fetch_history", "room": "dev", "before_seq": 3})
    assert h.take(1)[0]["code"] == "not_in_room"


def test_sending_to_a_room_you_are_not_in_is_refused() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.chat(1, "hello?", room="dev", client_msg_id="m9")
    (err,) = h.take(1)
    assert err["code"] == "not_in_room" and err["client_msg_id"] == "m9"


def test_a_bad_room_name_is_refused() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.send(1, {"type": "join", "room": "no spaces"})
    assert h.take(1)[0]["code"] == "bad_room"


def test_get_users_lists_a_rooms_members() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.take(1)
    h.send(1, {"type": "get_users"})
    assert h.take(1) == [{"type": "online_users", "room": "general", "users": ["Alice", "Bob"], "count": 2}]


def test_private_messages_reach_both_ends_only() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.login(3, "Carol")
    for cid in (1, 2, 3):
        h.take(cid)
    h.send(1, {"type": "private", "to": "bob", "message": "psst", "client_msg_id": "p1"})
    mine = h.take(1)
    (theirs,) = h.take(2)
    assert h.take(3) == []
    assert theirs["type"] == "private" and theirs["from"] == "Alice" and theirs["to"] == "Bob"
    assert theirs["username"] == "Alice" and theirs["seq"] == 1 and theirs["id"]
    assert [f["type"] for f in mine] == ["private", "ack"]
    assert mine[1]["to"] == "Bob"


def test_private_message_to_someone_offline_is_an_error() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.send(1, {"type": "private", "to": "Nobody", "message": "hi"})
    (err,) = h.take(1)
    assert err["code"] == "no_such_user" and "Nobody is not online" in err["message"]


def test_private_sequence_numbers_grow_within_a_conversation() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.login(3, "Carol")
    for to in ("Bob", "Carol", "Bob"):
        h.send(1, {"type": "private", "to": to, "message": "x"})
    sent = only(h.take(1), "private")
    to_bob = [f["seq"] for f in sent if f["to"] == "Bob"]
    assert to_bob == sorted(to_bob) and len(set(to_bob)) == 2
    assert len({f["id"] for f in sent}) == 3


def test_errors_carry_the_client_msg_id_of_the_refused_frame() -> None:
    h = Harness()
    h.connect(1)
    h.chat(1, "early", client_msg_id="c0")
    assert h.take(1)[0]["client_msg_id"] == "c0"  # not_logged_in
    h.send(1, {"type": "set_username", "username": "Alice"})
    h.take(1)
    h.send(1, {"type": "chat", "message": "x", "room": 5, "client_msg_id": "c1"})
    h.send(1, {"type": "private", "message": "x", "client_msg_id": "c2"})
    assert [(f["code"], f["client_msg_id"]) for f in h.take(1)] == [("bad_field", "c1"), ("bad_field", "c2")]
