"""wschat.features.events: reactions, replies, edits and deletes in the hub (no sockets)."""

from __future__ import annotations

from hubharness import Harness, filled, only

from wschat.records import Message, RoomState, Snapshot


def two() -> Harness:
    h = Harness(chat_burst=10_000)
    h.login(1, "Alice")
    h.login(2, "Bob")
    h.chat(1, "Café au lait")  # seq 1
    h.take(1), h.take(2)
    return h


def react(h: Harness, cid: int, target: int, key: str, **extra: object) -> None:
    h.send(cid, {"type": "react", "room": "general", "target": target, "key": key, **extra})


def test_a_reaction_is_a_sequenced_room_event_sent_to_everyone() -> None:
    h = two()
    react(h, 2, 1, "👍")
    for cid in (1, 2):
        (ev,) = only(h.take(cid), "reaction")
        assert ev["seq"] == 2 and ev["target"] == 1 and ev["key"] == "👍"
        assert ev["username"] == "Bob" and ev["removed"] is False and ev["room"] == "general"


def test_a_users_reaction_with_one_key_counts_once() -> None:
    h = two()
    react(h, 2, 1, "👍")
    react(h, 2, 1, "👍")
    react(h, 1, 1, "👍")
    assert len(only(h.take(1), "reaction")) == 2
    (hist,) = only(h.login(3, "Carol"), "history")
    assert hist["messages"][0]["reactions"] == {"👍": ["Bob", "Alice"]}


def test_removing_a_reaction_takes_it_out_of_history() -> None:
    h = two()
    react(h, 2, 1, "👍")
    react(h, 2, 1, "👍", remove=True)
    evs = only(h.take(1), "reaction")
    assert [e["removed"] for e in evs] == [False, True]
    (hist,) = only(h.login(3, "Carol"), "history")
    assert "reactions" not in hist["messages"][0]
    h.take(2)
    react(h, 2, 1, "👎", remove=True)  # not there: nothing happens
    assert only(h.take(2), "reaction") == []


def test_a_reaction_key_has_a_length_limit_with_a_clear_error() -> None:
    h = two()
    react(h, 2, 1, "x" * 33)
    (err,) = only(h.take(2), "error")
    assert err["code"] == "too_long" and "32" in err["message"]


def test_a_reaction_to_a_missing_message_is_refused() -> None:
    h = two()
    react(h, 2, 99, "👍")
    (err,) = only(h.take(2), "error")
    assert err["code"] == "no_such_message"
    assert only(h.take(1), "reaction") == []


def test_only_the_author_may_edit_and_the_latest_edit_wins() -> None:
    h = two()
    h.send(2, {"type": "edit", "room": "general", "target": 1, "message": "hacked"})
    (err,) = only(h.take(2), "error")
    assert err["code"] == "not_allowed"
    h.send(1, {"type": "edit", "room": "general", "target": 1, "message": "Café noir"})
    h.send(1, {"type": "edit", "room": "general", "target": 1, "message": "Thé"})
    evs = only(h.take(2), "edit")
    assert [(e["seq"], e["target"], e["message"], e["username"]) for e in evs] == [
        (2, 1, "Café noir", "Alice"),
        (3, 1, "Thé", "Alice"),
    ]
    (hist,) = only(h.login(3, "Carol"), "history")
    (msg,) = hist["messages"]
    assert msg["message"] == "Thé" and msg["edited_at"] == evs[-1]["timestamp"]
    assert hist["last_seq"] == 3


def test_an_edit_of_an_edit_is_refused() -> None:
    h = two()
    h.send(1, {"type": "edit", "room": "general", "target": 1, "message": "x"})
    h.send(1, {"type": "edit", "room": "general", "target": 2, "message": "y"})
    (err,) = only(h.take(1), "error")
    assert err["code"] == "no_such_message"


def test_only_the_author_may_delete_and_the_body_is_gone() -> None:
    h = two()
    h.send(2, {"type": "delete", "room": "general", "target": 1})
    assert only(h.take(2), "error")[0]["code"] == "not_allowed"
    h.send(1, {"type": "delete", "room": "general", "target": 1})
    (ev,) = only(h.take(2), "delete")
    assert (ev["seq"], ev["target"], ev["username"]) == (2, 1, "Alice")
    stored = h.stored["general"].recent[0]
    assert b"Caf" not in stored.payload
    (hist,) = only(h.login(3, "Carol"), "history")
    assert hist["messages"] == [] and hist["last_seq"] == 2
    react(h, 2, 1, "👍")
    assert only(h.take(2), "error")[0]["code"] == "no_such_message"


def test_a_reply_carries_reply_to_and_a_short_preview() -> None:
    h = two()
    h.chat(2, "yes", reply_to=1)
    (msg,) = only(h.take(1), "chat")
    assert msg["reply_to"] == 1
    assert msg["reply_preview"] == {"username": "Alice", "message": "Café au lait"}
    h.chat(2, "no", reply_to=50, client_msg_id="r1")
    (err,) = only(h.take(2), "error")
    assert err["code"] == "no_such_message" and err["client_msg_id"] == "r1"


def test_deleting_a_message_empties_the_quotes_of_it() -> None:
    h = two()
    h.chat(2, "yes", reply_to=1)
    h.send(1, {"type": "delete", "room": "general", "target": 1})
    (hist,) = only(h.login(3, "Carol"), "history")
    (reply,) = hist["messages"]
    assert reply["reply_preview"] == {"username": "Alice", "message": ""}


def test_a_resume_gets_the_missed_events_exactly_once() -> None:
    h = two()
    h.leave(2)
    h.chat(1, "second")  # 2
    react(h, 1, 1, "🎉")  # 3
    h.send(1, {"type": "edit", "room": "general", "target": 1, "message": "edited"})  # 4
    h.send(1, {"type": "delete", "room": "general", "target": 2})  # 5
    epoch = h.hub.rooms["general"].epoch
    (hist,) = only(h.login(2, "Bob", resume={"general": {"epoch": epoch, "seq": 1}}), "history")
    assert hist["mode"] == "resume"
    assert [(m["type"], m["seq"]) for m in hist["messages"]] == [("reaction", 3), ("edit", 4), ("delete", 5)]


def test_events_count_against_the_message_rate() -> None:
    h = Harness(chat_rate=1, chat_burst=2)
    h.login(1, "Alice")
    h.chat(1, "one")
    react(h, 1, 1, "a")
    react(h, 1, 1, "b")
    assert only(h.take(1), "error")[-1]["code"] == "rate_limited"


def test_a_target_older_than_the_window_is_read_from_the_store() -> None:
    old = [Message(i, "general", i, "Alice", "alice", "c1", f"m{i}", 1.0, None, "E") for i in range(1, 6)]
    h = Harness(Snapshot(rooms={"general": RoomState("E", 5, 1, old[3:])}, epoch="E", next_id=6))
    h.stored["general"] = RoomState("E", 5, 1, old)
    h.login(1, "Alice")
    react(h, 1, 2, "👍")
    assert [r.seq for r in h.reads] == [2]
    (ev,) = only(h.take(1), "reaction")
    assert ev["target"] == 2 and ev["seq"] == 6
    h.chat(1, "re", reply_to=1)
    (msg,) = only(h.take(1), "chat")
    assert msg["reply_preview"] == {"username": "Alice", "message": "m1"}


def test_a_page_of_older_history_shows_folded_messages_only() -> None:
    h = filled(5)
    react(h, 1, 2, "👍")
    h.send(1, {"type": "fetch_history", "room": "general", "before_seq": 7})
    (page,) = only(h.take(1), "history")
    assert [m["seq"] for m in page["messages"]] == [1, 2, 3, 4, 5]
    assert page["messages"][1]["reactions"] == {"👍": ["Alice"]}


def test_an_edit_has_the_length_limit_of_a_message() -> None:
    h = Harness(max_message_chars=10)
    h.login(1, "Alice")
    h.chat(1, "short")
    h.send(1, {"type": "edit", "room": "general", "target": 1, "message": "x" * 11})
    (err,) = only(h.take(1), "error")
    assert err["code"] == "too_long" and "limit is 10" in err["message"]


def test_a_resent_reply_is_acknowledged_even_after_its_target_was_deleted() -> None:
    h = two()
    h.chat(2, "yes", reply_to=1, client_msg_id="r1")
    h.send(1, {"type": "delete", "room": "general", "target": 1})
    h.take(2)
    h.chat(2, "yes", reply_to=1, client_msg_id="r1")  # the resend after a lost connection
    (ack,) = only(h.take(2), "ack")
    assert ack["duplicate"] is True and ack["client_msg_id"] == "r1"
