"""wschat.hub: the chat state machine, driven without sockets."""

from __future__ import annotations

import json
from typing import Any

from hubharness import Harness, only

from wschat.hub import Message, ReadPage, RoomState, Snapshot


def test_login_sends_accepted_joined_history_then_user_join() -> None:
    h = Harness()
    frames = h.login(1, "Alice")
    assert [f["type"] for f in frames] == ["username_accepted", "joined", "history", "user_join"]
    accepted, joined, history, join = frames
    assert accepted["username"] == "Alice" and accepted["client_id"] and accepted["session_token"]
    assert accepted["rooms"] == ["general"]
    assert joined["room"] == "general" and joined["users_list"] == ["Alice"]
    assert history["messages"] == [] and history["mode"] == "recent"
    assert join["online_users"] == 1 and join["users_list"] == ["Alice"]
    assert join["message"] == "Alice joined the chat"


def test_everyone_in_the_room_sees_a_join_with_count_and_list() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    join = only(h.take(1), "user_join")[0]
    assert join["username"] == "Bob"
    assert join["online_users"] == 2
    assert join["users_list"] == ["Alice", "Bob"]


def test_disconnect_tells_the_rest_with_the_new_count() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.take(1)
    h.leave(2)
    (leave,) = h.take(1)
    assert leave["type"] == "user_leave" and leave["username"] == "Bob"
    assert leave["online_users"] == 1 and leave["users_list"] == ["Alice"]
    assert h.hub.stats() == {"connections": 1, "users": 1, "rooms": 1}


def test_a_taken_name_is_refused_and_the_client_may_retry_on_the_same_connection() -> None:
    h = Harness()
    h.login(1, "Alice")
    frames = h.login(2, "aLiCe")
    assert frames == [
        {
            "type": "username_error",
            "code": "name_taken",
            "message": "The name 'Alice' is taken (names ignore case and width); choose another.",
        }
    ]
    h.send(2, {"type": "set_username", "username": "Bob"})
    assert h.types(2)[0] == "username_accepted"


def test_invalid_names_say_which_rule_failed() -> None:
    h = Harness()
    h.connect(1)
    h.send(1, {"type": "set_username", "username": "x" * 40})
    (frame,) = h.take(1)
    assert frame["type"] == "username_error" and frame["code"] == "name_too_long"


def test_a_name_is_free_again_after_its_owner_leaves() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.leave(1)
    assert h.login(2, "Alice")[0]["type"] == "username_accepted"


def test_requests_before_a_name_get_not_logged_in() -> None:
    h = Harness()
    h.connect(1)
    h.chat(1, "hi")
    (frame,) = h.take(1)
    assert frame["type"] == "error" and frame["code"] == "not_logged_in"


def test_a_second_set_username_is_refused() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.send(1, {"type": "set_username", "username": "Eve"})
    assert h.take(1)[0]["code"] == "already_logged_in"


def test_session_token_takes_over_a_name_held_by_a_dead_connection() -> None:
    h = Harness()
    token = h.login(1, "Alice")[0]["session_token"]
    h.login(2, "Bob")
    h.take(2)
    frames = h.login(3, "Alice", session_token=token)
    assert frames[0]["type"] == "username_accepted"
    assert h.closed[1][0] == 4000
    bob = h.take(2)
    assert [f["type"] for f in bob] == ["user_leave", "user_join"]
    # the old connection's late disconnect changes nothing
    h.leave(1)
    assert h.take(2) == []
    assert h.hub.by_key["alice"] == 3


def test_a_wrong_session_token_does_not_take_over() -> None:
    h = Harness()
    h.login(1, "Alice")
    frames = h.login(2, "Alice", session_token="guess")
    assert frames[0]["code"] == "name_taken"
    assert 1 not in h.closed


def test_unnamed_connections_are_closed_after_the_name_timeout() -> None:
    h = Harness(name_timeout=10)
    h.connect(1)
    h.login(2, "Bob")
    h.advance(9)
    h.run(h.hub.tick(h.now))
    assert h.closed == {}
    h.advance(2)
    h.run(h.hub.tick(h.now))
    assert h.closed == {1: (1008, "no name chosen within 10 s")}


def test_each_refused_name_gives_another_name_timeout_but_not_forever() -> None:
    h = Harness(name_timeout=10)
    h.login(1, "Alice")
    h.connect(2)
    for _ in range(5):  # someone trying taken names every 9 s
        h.advance(9)
        h.send(2, {"type": "set_username", "username": "alice"})
        h.run(h.hub.tick(h.now))
    assert h.closed == {}
    h.advance(9)
    h.send(2, {"type": "set_username", "username": "alice"})
    h.run(h.hub.tick(h.now))  # 54 s: still inside 6 timeouts
    assert h.closed == {}
    h.advance(6)
    h.run(h.hub.tick(h.now))
    assert h.closed == {2: (1008, "no name chosen within 10 s")}


def test_new_rooms_take_the_databases_epoch() -> None:
    h = Harness(Snapshot(epoch="dbepoch"))
    frames = h.login(1, "Alice", rooms=["general", "brand-new"])
    assert {f["epoch"] for f in only(frames, "joined")} == {"dbepoch"}


# ---------------------------------------------------------------- chat, history, acks


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


def test_newcomer_gets_the_last_50_of_60_messages_in_order() -> None:
    h = Harness(chat_burst=100)
    h.login(1, "Alice")
    for i in range(60):
        h.chat(1, f"m{i}")
    frames = h.login(2, "Bob")
    (history,) = only(frames, "history")
    assert [m["message"] for m in history["messages"]] == [f"m{i}" for i in range(10, 60)]
    assert [m["seq"] for m in history["messages"]] == list(range(11, 61))
    assert all(m["type"] == "chat" for m in history["messages"])


def test_history_size_is_configurable() -> None:
    h = Harness(history_size=3)
    h.login(1, "Alice")
    for i in range(5):
        h.chat(1, f"m{i}")
    (history,) = only(h.login(2, "Bob"), "history")
    assert [m["message"] for m in history["messages"]] == ["m2", "m3", "m4"]


# ---------------------------------------------------------------- resume


def filled(n: int, **config: Any) -> Harness:
    h = Harness(chat_burst=10_000, **config)
    h.login(1, "Alice")
    for i in range(n):
        h.chat(1, f"m{i + 1}")
    h.take(1)
    return h


def test_resume_sends_exactly_what_was_missed() -> None:
    h = filled(200)
    epoch = h.hub.rooms["general"].epoch
    frames = h.login(2, "Bob", resume={"general": {"epoch": epoch, "seq": 80}})
    (history,) = only(frames, "history")
    assert history["mode"] == "resume" and "skipped" not in history
    assert [m["seq"] for m in history["messages"]] == list(range(81, 201))


def test_resume_when_up_to_date_sends_nothing() -> None:
    h = filled(5)
    epoch = h.hub.rooms["general"].epoch
    (history,) = only(h.login(2, "Bob", resume={"general": {"epoch": epoch, "seq": 5}}), "history")
    assert history["messages"] == [] and history["mode"] == "resume"


def test_resume_beyond_the_cap_says_how_many_were_skipped() -> None:
    h = filled(60, resume_cap=20)
    epoch = h.hub.rooms["general"].epoch
    (history,) = only(h.login(2, "Bob", resume={"general": {"epoch": epoch, "seq": 10}}), "history")
    assert [m["seq"] for m in history["messages"]] == list(range(41, 61))
    assert history["skipped"] == 30


def test_resume_with_another_epoch_gets_fresh_history() -> None:
    h = filled(60)
    (history,) = only(h.login(2, "Bob", resume={"general": {"epoch": "old", "seq": 10}}), "history")
    assert history["mode"] == "recent" and history["epoch_changed"] is True
    assert [m["seq"] for m in history["messages"]] == list(range(11, 61))


def test_resume_from_the_future_is_treated_as_a_changed_epoch() -> None:
    h = filled(3)
    epoch = h.hub.rooms["general"].epoch
    (history,) = only(h.login(2, "Bob", resume={"general": {"epoch": epoch, "seq": 99}}), "history")
    assert history["epoch_changed"] is True


def test_resume_rejoins_every_room_named() -> None:
    h = Harness()
    frames = h.login(1, "Alice", rooms=["dev"], resume={"ops": {"epoch": "x", "seq": 0}})
    assert frames[0]["rooms"] == ["dev", "ops"]
    assert [f["room"] for f in only(frames, "joined")] == ["dev", "ops"]


# ---------------------------------------------------------------- scrollback


def test_fetch_history_pages_backwards_from_memory() -> None:
    h = filled(120)
    h.send(1, {"type": "fetch_history", "room": "general", "before_seq": 51, "limit": 20})
    (page,) = h.take(1)
    assert page["mode"] == "page" and page["more"] is True
    assert [m["seq"] for m in page["messages"]] == list(range(31, 51))
    h.send(1, {"type": "fetch_history", "room": "general", "before_seq": 11})
    (page,) = h.take(1)
    assert [m["seq"] for m in page["messages"]] == list(range(1, 11))
    assert page["more"] is False


def test_fetch_history_older_than_memory_asks_the_store() -> None:
    h = filled(60, resume_cap=20)
    h.send(1, {"type": "fetch_history", "room": "general", "before_seq": 30, "limit": 10})
    assert h.take(1) == []
    assert h.fetches == [ReadPage("general", 30, 10)]
    older = [Message(i, "general", i, "Alice", "alice", "c", f"m{i}", h.now) for i in range(20, 30)]
    h.answer_fetch(older)
    (page,) = h.take(1)
    assert [m["seq"] for m in page["messages"]] == list(range(20, 30))


def test_fetch_history_needs_membership() -> None:
    h = filled(3)
    h.send(1, {"type": "fetch_history", "room": "dev", "before_seq": 3})
    assert h.take(1)[0]["code"] == "not_in_room"


# ---------------------------------------------------------------- rooms


def test_rooms_join_leave_list_and_per_room_presence() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.take(1)
    h.send(2, {"type": "join", "room": "#Dev"})
    frames = h.take(2)
    assert [f["type"] for f in frames] == ["joined", "history", "user_join"]
    assert frames[0]["room"] == "dev"
    assert h.take(1) == []  # Alice is not in dev
    h.send(1, {"type": "list_rooms"})
    (rooms,) = h.take(1)
    assert rooms["rooms"] == [
        {"name": "general", "members": 2, "joined": True},
        {"name": "dev", "members": 1, "joined": False},
    ]
    h.chat(2, "dev talk", room="dev")
    assert h.take(1) == []
    assert only(h.take(2), "chat")[0]["room"] == "dev"
    h.send(2, {"type": "leave", "room": "dev"})
    assert [f["type"] for f in h.take(2)] == ["left"]


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


def test_empty_rooms_without_history_disappear_but_general_stays() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.send(1, {"type": "join", "room": "tmp"})
    h.send(1, {"type": "leave", "room": "tmp"})
    h.send(1, {"type": "leave", "room": "general"})
    assert set(h.hub.rooms) == {"general"}


def test_get_users_lists_a_rooms_members() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.take(1)
    h.send(1, {"type": "get_users"})
    assert h.take(1) == [{"type": "online_users", "room": "general", "users": ["Alice", "Bob"], "count": 2}]


def test_large_rooms_batch_presence_and_drop_the_member_list() -> None:
    h = Harness(large_room=3)
    for cid, name in enumerate(["A", "B", "C"], start=1):
        h.login(cid, name)
    for cid in (1, 2, 3):
        h.take(cid)
    frames = h.login(4, "D")
    assert "users_list" not in only(frames, "joined")[0]
    (own,) = only(frames, "user_join")
    assert own["username"] == "D" and "users_list" not in own
    h.login(5, "E")
    assert h.take(1) == []  # batched until the next tick
    h.run(h.hub.tick(h.now))
    (notice,) = h.take(1)
    assert notice["type"] == "user_join"
    assert notice["usernames"] == ["D", "E"] and notice["count_joined"] == 2
    assert notice["online_users"] == 5
    assert "users_list" not in notice
    h.run(h.hub.tick(h.now))
    assert h.take(1) == []


def test_presence_bytes_per_join_stop_growing_once_a_room_is_large() -> None:
    h = Harness(large_room=10)
    sizes = []
    for cid in range(1, 41):
        frames = h.login(cid, f"user{cid}")
        sizes.append(len(json.dumps(only(frames, "user_join")[-1])))
    assert max(sizes[15:]) - min(sizes[15:]) < 5  # only digits of the count vary


# ---------------------------------------------------------------- private messages


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


# ---------------------------------------------------------------- limits


def test_rate_limit_refuses_then_closes_a_flooder() -> None:
    h = Harness(chat_rate=5, chat_burst=20, flood_strikes=10)
    h.login(1, "Alice")
    h.take(1)
    for i in range(100):
        h.chat(1, f"m{i}", client_msg_id=f"id{i}")
    frames = h.take(1)
    assert len(only(frames, "chat")) == 20
    errors = only(frames, "error")
    # flood_strikes refusals are all answered; the one after them closes (PROTOCOL.md)
    assert len(errors) == 10 and all(e["code"] == "rate_limited" for e in errors)
    assert errors[0]["client_msg_id"] == "id20" and errors[0]["retry_after"] > 0
    assert h.closed[1][0] == 1008


def test_a_client_that_slows_down_is_forgiven() -> None:
    h = Harness(chat_rate=5, chat_burst=20, flood_strikes=3)
    h.login(1, "Alice")
    for _ in range(3):
        for i in range(22):  # two over the burst each round
            h.chat(1, f"m{i}")
        h.advance(10)
    assert h.closed == {}


def test_garbage_frames_count_against_the_control_limit() -> None:
    h = Harness(control_rate=1, control_burst=5, flood_strikes=3)
    h.connect(1)
    for _ in range(20):
        h.send(1, "{garbage")
    assert h.closed[1][0] == 1008


def test_binary_frames_get_an_error() -> None:
    h = Harness()
    h.connect(1)
    h.run(h.hub.binary(1, h.now))
    assert h.take(1)[0]["code"] == "binary_unsupported"


def test_too_long_message_is_refused_with_too_long() -> None:
    h = Harness(max_message_chars=10)
    h.login(1, "Alice")
    h.chat(1, "x" * 11)
    assert h.take(1)[0]["code"] == "too_long"


def test_frames_after_a_hub_close_are_ignored() -> None:
    h = Harness()
    token = h.login(1, "Alice")[0]["session_token"]
    h.login(2, "Alice", session_token=token)
    h.chat(1, "zombie")
    assert h.take(1) == []


def test_shutdown_notice_reaches_every_named_user() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.connect(2)
    h.take(1)
    h.run(h.hub.shutdown_notice(h.now))
    assert h.take(1)[0]["type"] == "system"
    assert h.take(2) == []


# ---------------------------------------------------------------- memory stays bounded


def test_rooms_nobody_is_in_leave_memory_and_come_back_with_their_history() -> None:
    h = Harness(loaded_rooms=3)
    h.login(1, "Alice")
    for i in range(6):
        h.send(1, {"type": "join", "room": f"r{i}"})
        h.chat(1, f"hello r{i}", room=f"r{i}")
        h.send(1, {"type": "leave", "room": f"r{i}"})
    assert len(h.hub.rooms) <= 3 and "general" in h.hub.rooms
    assert "r0" not in h.hub.rooms
    h.take(1)
    h.send(1, {"type": "list_rooms"})
    listed = {r["name"] for r in h.take(1)[0]["rooms"]}
    assert {f"r{i}" for i in range(6)} <= listed  # unloaded rooms are still listed
    h.send(1, {"type": "join", "room": "r0"})
    assert h.loads.count("r0") == 2  # created, then loaded back from the store
    (history,) = only(h.take(1), "history")
    assert [m["message"] for m in history["messages"]] == ["hello r0"]
    h.chat(1, "again", room="r0")
    assert only(h.take(1), "chat")[0]["seq"] == 2  # the sequence goes on, no reuse


def test_joiners_wait_together_for_a_room_being_loaded() -> None:
    h = Harness()
    h.auto_load = False
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.take(1)
    h.take(2)
    h.send(1, {"type": "join", "room": "dev"})
    h.send(2, {"type": "join", "room": "dev"})
    assert h.loads == ["dev"] and h.take(1) == [] and h.take(2) == []
    h.answer_load("dev", None)
    assert [f["type"] for f in h.take(1)] == ["joined", "history", "user_join", "user_join"]
    assert only(h.take(2), "joined")[0]["online_users"] == 2


def test_a_room_that_cannot_be_loaded_tells_who_waited_to_retry() -> None:
    h = Harness()
    h.auto_load = False
    h.login(1, "Alice")
    h.take(1)
    h.send(1, {"type": "join", "room": "dev"})
    h.answer_load("dev", OSError("disk gone"))
    (err,) = h.take(1)
    assert err["code"] == "store_failed" and err["room"] == "dev" and err["retry_after"] > 0
    assert "dev" not in h.hub.rooms and not h.hub.loading


def test_rooms_made_and_left_do_not_use_up_the_room_limit() -> None:
    h = Harness(max_rooms=5, loaded_rooms=5)
    h.login(1, "Mallory")
    for i in range(20):  # each left with a message in it: they stay in the store
        h.send(1, {"type": "join", "room": f"spam{i}"})
        h.chat(1, ".", room=f"spam{i}")
        h.send(1, {"type": "leave", "room": f"spam{i}"})
    h.login(2, "Alice")
    h.take(2)
    h.send(2, {"type": "join", "room": "team"})
    assert only(h.take(2), "joined")[0]["room"] == "team"


def test_the_room_limit_counts_rooms_with_people_in_them() -> None:
    h = Harness(max_rooms=3)
    h.login(1, "Alice")  # general
    h.send(1, {"type": "join", "room": "a"})
    h.send(1, {"type": "join", "room": "b"})
    h.take(1)
    h.send(1, {"type": "join", "room": "c"})
    assert h.take(1)[0]["code"] == "too_many_rooms"


def test_history_windows_share_a_byte_budget() -> None:
    big = "x" * 3000
    h = Harness(chat_burst=10_000, window_budget=200_000, history_size=5)
    h.login(1, "Alice")
    for room in ("a", "b", "c"):
        h.send(1, {"type": "join", "room": room})
        for _ in range(40):
            h.chat(1, big, room=room)
    hub = h.hub
    assert hub.window_bytes <= 200_000
    assert hub.window_bytes == sum(r.window_bytes for r in hub.rooms.values())
    assert all(r.window_bytes == sum(len(m.payload) for m in r.window) for r in hub.rooms.values())
    assert len(hub.rooms["a"].window) == 5  # the least recently used was cut to what newcomers see
    assert len(hub.rooms["c"].window) > 5


def test_a_newcomers_history_is_capped_in_bytes_but_never_empty() -> None:
    h = Harness(chat_burst=100, history_bytes=20_000)
    h.login(1, "Alice")
    for i in range(10):
        h.chat(1, f"{i}" + "y" * 3999)
    (history,) = only(h.login(2, "Bob"), "history")
    assert 1 <= len(history["messages"]) <= 5
    assert history["messages"][-1]["message"].startswith("9")
    h2 = Harness(history_bytes=10)
    h2.login(1, "Alice")
    h2.chat(1, "z" * 100)
    assert len(only(h2.login(2, "Bob"), "history")[0]["messages"]) == 1


def test_remembered_client_msg_ids_have_a_total_cap_forgetting_the_longest_quiet() -> None:
    h = Harness(remembered_ids=50, remembered_ids_per_user=20, chat_burst=1000)
    for cid in range(1, 6):
        h.login(cid, f"user{cid}")
        for i in range(20):
            h.send(cid, {"type": "private", "to": f"user{cid}", "message": "x", "client_msg_id": f"m{i}"})
    assert h.hub.ids.total <= 50
    assert h.hub.ids.total == sum(len(v) for v in h.hub.ids.sent.values())
    assert "user1" not in h.hub.ids.sent and "user5" in h.hub.ids.sent


def test_committed_messages_keep_only_their_encoded_frame() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.chat(1, "hello")
    (m,) = h.hub.rooms["general"].window
    assert m.text == "" and b'"message":"hello"' in m.payload


def test_a_wall_clock_step_back_does_not_make_an_honest_client_a_flooder() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.take(1)
    h.advance(-3600)  # NTP corrects the clock by an hour
    for _ in range(60):
        h.chat(1, "steady")
        h.advance(1)
    frames = h.take(1)
    assert len(only(frames, "chat")) == 60 and not only(frames, "error")
    assert h.closed == {}


def test_name_deadlines_move_with_a_wall_clock_step_back() -> None:
    h = Harness(name_timeout=10)
    h.run(h.hub.tick(h.now))
    h.connect(1)
    h.advance(-3600)
    h.run(h.hub.tick(h.now))
    h.advance(11)
    h.run(h.hub.tick(h.now))
    assert h.closed == {1: (1008, "no name chosen within 10 s")}


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


def test_a_non_ascii_session_token_is_just_a_wrong_token() -> None:
    h = Harness()
    h.login(1, "Alice")
    assert h.login(2, "Alice", session_token="é")[0]["code"] == "name_taken"


def test_resume_positions_match_rooms_however_they_are_spelled() -> None:
    h = filled(5)
    epoch = h.hub.rooms["general"].epoch
    frames = h.login(2, "Bob", rooms=["General"], resume={"#GENERAL": {"epoch": epoch, "seq": 3}})
    (history,) = only(frames, "history")
    assert history["mode"] == "resume" and [m["seq"] for m in history["messages"]] == [4, 5]


def test_requests_about_a_room_still_loading_wait_for_it_in_order() -> None:
    h = Harness()
    h.auto_load = False
    h.connect(1)
    h.send(1, {"type": "set_username", "username": "Alice", "rooms": ["dev"]})
    h.chat(1, "one", room="dev", client_msg_id="a")  # sent before `joined` arrived
    h.send(1, {"type": "get_users", "room": "dev"})
    h.chat(1, "two", room="dev")
    assert [f["type"] for f in h.take(1)] == ["username_accepted"]
    h.answer_load("dev", None)
    frames = h.take(1)
    assert [f["type"] for f in frames] == [
        "joined",
        "history",
        "user_join",
        "chat",
        "ack",
        "online_users",
        "chat",
    ]
    assert [f["message"] for f in only(frames, "chat")] == ["one", "two"]


def test_a_room_that_fails_to_load_refuses_the_requests_held_for_it() -> None:
    h = Harness()
    h.auto_load = False
    h.connect(1)
    h.send(1, {"type": "set_username", "username": "Alice", "rooms": ["dev"]})
    h.chat(1, "one", room="dev", client_msg_id="a")
    h.take(1)
    h.answer_load("dev", OSError("disk gone"))
    assert [(f["code"], f.get("client_msg_id")) for f in h.take(1)] == [
        ("store_failed", None),
        ("store_failed", "a"),
    ]
