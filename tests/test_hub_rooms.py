"""wschat.hub.rooms: join, leave, large rooms, loading rooms from the store (no sockets)."""

from __future__ import annotations

import json

from hubharness import Harness, only


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


def test_empty_rooms_without_history_disappear_but_general_stays() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.send(1, {"type": "join", "room": "tmp"})
    h.send(1, {"type": "leave", "room": "tmp"})
    h.send(1, {"type": "leave", "room": "general"})
    assert set(h.hub.rooms) == {"general"}


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


# ---------------------------------------------------------------- join and leave notices


def test_leaving_a_room_says_so_and_a_disconnect_says_left_the_chat() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.send(2, {"type": "join", "room": "dev"})
    h.send(1, {"type": "join", "room": "dev"})
    h.take(1)
    h.send(2, {"type": "leave", "room": "general"})
    (left,) = only(h.take(1), "user_leave")
    assert left["message"] == "Bob left #general" and left["reason"] == "leave"
    h.leave(2)
    (gone,) = only(h.take(1), "user_leave")
    assert gone["room"] == "dev" and gone["message"] == "Bob left the chat"
    assert gone["reason"] == "disconnect"


def test_a_reconnect_that_resumes_is_not_announced_as_news() -> None:
    h = Harness()
    h.login(1, "Alice")
    epoch = h.hub.rooms["general"].epoch
    h.login(2, "Bob")
    (fresh,) = only(h.take(1), "user_join")
    assert "resumed" not in fresh
    h.leave(2)
    h.take(1)
    h.login(3, "Bob", resume={"general": {"epoch": epoch, "seq": 0}})
    (back,) = only(h.take(1), "user_join")
    assert back["resumed"] is True and back["online_users"] == 2 and back["users_list"] == ["Alice", "Bob"]
    h.send(3, {"type": "join", "room": "dev", "epoch": epoch, "seq": 0})
    h.send(1, {"type": "join", "room": "dev"})
    assert "resumed" not in only(h.take(1), "user_join")[0]


def test_a_session_takeover_is_a_resumed_join() -> None:
    h = Harness()
    h.login(1, "Alice")
    (accepted, *_) = h.login(2, "Bob")
    h.take(1)
    h.login(3, "Bob", session_token=accepted["session_token"])
    leave, join = [f for f in h.take(1) if f["type"] in ("user_leave", "user_join")]
    assert leave["reason"] == "disconnect" and join["resumed"] is True


def test_batched_notices_say_resumed_only_when_every_join_was_a_reconnect() -> None:
    h = Harness(large_room=2)
    epoch = h.hub.rooms["general"].epoch
    for cid, name in enumerate(["A", "B", "C"], start=1):
        h.login(cid, name, resume={"general": {"epoch": epoch, "seq": 0}})
    h.take(1)
    h.run(h.hub.tick(h.now))
    (notice,) = h.take(1)
    assert notice["usernames"] == ["C"] and notice["resumed"] is True
    h.login(4, "D", resume={"general": {"epoch": epoch, "seq": 0}})
    h.login(5, "E")
    h.run(h.hub.tick(h.now))
    (mixed,) = h.take(1)
    assert mixed["usernames"] == ["D", "E"] and "resumed" not in mixed


def test_batched_leave_notices_keep_the_reason_when_all_agree() -> None:
    h = Harness(large_room=2)
    for cid, name in enumerate("ABCDEFG", start=1):
        h.login(cid, name)
    h.run(h.hub.tick(h.now))
    h.take(1)
    h.leave(7)
    h.leave(6)
    h.run(h.hub.tick(h.now))
    (gone,) = h.take(1)
    assert gone["message"] == "G, F left the chat" and gone["reason"] == "disconnect"
    h.send(5, {"type": "leave", "room": "general"})
    h.leave(4)
    h.run(h.hub.tick(h.now))
    (mixed,) = only(h.take(1), "user_leave")
    assert mixed["message"] == "E, D left #general" and "reason" not in mixed
