"""wschat.hub.dedup: de-duplication of resent messages by client_msg_id (no sockets)."""

from __future__ import annotations

from hubharness import Harness, only

from wschat.hub import RoomState, Snapshot


def test_a_repeated_client_msg_id_is_acked_again_but_stored_once() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.chat(1, "once", client_msg_id="m1")
    h.take(1)
    h.take(2)
    h.chat(1, "once", client_msg_id="m1")
    assert h.take(1) == [
        {"type": "ack", "client_msg_id": "m1", "id": "1", "seq": 1, "room": "general", "duplicate": True}
    ]
    assert h.take(2) == []
    assert h.hub.rooms["general"].last_seq == 1


def test_a_repeat_while_the_first_copy_is_being_stored_is_stored_once_and_acked_twice() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.take(1)
    h.auto_commit = False
    h.chat(1, "once", client_msg_id="m1")
    h.chat(1, "once", client_msg_id="m1")
    assert len(h.held) == 1
    h.commit_held()
    frames = h.take(1)
    assert len(only(frames, "chat")) == 1
    assert [a.get("duplicate", False) for a in only(frames, "ack")] == [False, True]


def test_sent_ids_survive_a_restart_through_the_snapshot() -> None:
    snap = Snapshot(
        rooms={"general": RoomState("ep", last_seq=7)},
        next_id=8,
        sent_ids=[("alice", "m1", "general", 7, 7)],
    )
    h = Harness(snap)
    h.login(1, "Alice")
    h.chat(1, "again", client_msg_id="m1")
    (ack,) = h.take(1)
    assert ack["duplicate"] is True and ack["seq"] == 7 and ack["id"] == "7"


def test_the_ack_goes_to_the_users_new_connection_after_a_reconnect() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.auto_commit = False
    h.chat(1, "in flight", client_msg_id="m1")
    h.leave(1)
    h.login(2, "Alice")
    h.commit_held()
    assert only(h.take(2), "ack")[0]["client_msg_id"] == "m1"


def test_a_failed_commit_tells_the_sender_to_retry_and_forgets_the_id() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.auto_commit = False
    h.chat(1, "lost", client_msg_id="m1")
    h.commit_held(OSError("disk I/O error"))
    (err,) = h.take(1)
    assert err["code"] == "store_failed" and err["client_msg_id"] == "m1" and err["retry_after"] > 0
    h.auto_commit = True
    h.chat(1, "lost", client_msg_id="m1")
    assert [f["type"] for f in h.take(1)] == ["chat", "ack"]


def test_remembered_client_msg_ids_have_a_total_cap_forgetting_the_longest_quiet() -> None:
    h = Harness(remembered_ids=50, remembered_ids_per_user=20, chat_burst=1000)
    for cid in range(1, 6):
        h.login(cid, f"user{cid}")
        for i in range(20):
            h.send(cid, {"type": "private", "to": f"user{cid}", "message": "x", "client_msg_id": f"m{i}"})
    assert h.hub.ids.total <= 50
    assert h.hub.ids.total == sum(len(v) for v in h.hub.ids.sent.values())
    assert "user1" not in h.hub.ids.sent and "user5" in h.hub.ids.sent
