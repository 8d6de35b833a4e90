"""wschat.hub.history: recent history, resume, paging, the memory budget (no sockets)."""

from __future__ import annotations

from hubharness import Harness, filled, only

from wschat.hub import Message, ReadPage


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


def test_committed_messages_keep_only_their_encoded_frame() -> None:
    h = Harness()
    h.login(1, "Alice")
    h.chat(1, "hello")
    (m,) = h.hub.rooms["general"].window
    assert m.text == "" and b'"message":"hello"' in m.payload


def test_resume_positions_match_rooms_however_they_are_spelled() -> None:
    h = filled(5)
    epoch = h.hub.rooms["general"].epoch
    frames = h.login(2, "Bob", rooms=["General"], resume={"#GENERAL": {"epoch": epoch, "seq": 3}})
    (history,) = only(frames, "history")
    assert history["mode"] == "resume" and [m["seq"] for m in history["messages"]] == [4, 5]


def test_a_failed_page_read_is_a_store_failed_error_not_an_empty_page() -> None:
    h = filled(60, resume_cap=20)
    h.send(1, {"type": "fetch_history", "room": "general", "before_seq": 30, "limit": 10})
    h.answer_fetch(OSError("disk I/O error"))
    (err,) = h.take(1)
    assert err["type"] == "error" and err["code"] == "store_failed"
    assert err["room"] == "general" and err["before_seq"] == 30 and err["retry_after"] > 0
    h.send(1, {"type": "fetch_history", "room": "general", "before_seq": 30, "limit": 10})
    h.answer_fetch([Message(i, "general", i, "Alice", "alice", "c", f"m{i}", h.now) for i in range(20, 30)])
    (page,) = h.take(1)
    assert [m["seq"] for m in page["messages"]] == list(range(20, 30)) and page["more"] is True
