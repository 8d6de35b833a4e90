"""wschat.hub.sessions: sessions and names: login, takeover, the name deadline (no sockets)."""

from __future__ import annotations

from hubharness import Harness, only

from wschat.hub import Snapshot


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


def test_shutdown_notice_reaches_every_named_user() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.connect(2)
    h.take(1)
    h.run(h.hub.shutdown_notice(h.now))
    assert h.take(1)[0]["type"] == "system"
    assert h.take(2) == []


def test_name_deadlines_move_with_a_wall_clock_step_back() -> None:
    h = Harness(name_timeout=10)
    h.run(h.hub.tick(h.now))
    h.connect(1)
    h.advance(-3600)
    h.run(h.hub.tick(h.now))
    h.advance(11)
    h.run(h.hub.tick(h.now))
    assert h.closed == {1: (1008, "no name chosen within 10 s")}


def test_a_non_ascii_session_token_is_just_a_wrong_token() -> None:
    h = Harness()
    h.login(1, "Alice")
    assert h.login(2, "Alice", session_token="é")[0]["code"] == "name_taken"
