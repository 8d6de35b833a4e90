"""wschat.features.live and mentions: typing lists, read positions, receipts (no sockets)."""

from __future__ import annotations

from hubharness import Harness, only

from wschat.records import SaveReads, Snapshot


def room_of(n: int, **config: object) -> Harness:
    h = Harness(chat_burst=10_000, control_burst=10_000, **config)
    for i in range(1, n + 1):
        h.login(i, f"u{i}")
    for i in range(1, n + 1):
        h.take(i)
    return h


def typing(h: Harness, cid: int, active: bool = True) -> None:
    h.send(cid, {"type": "typing", "room": "general", "active": active})


def test_mentioned_members_get_mentions_you_and_the_others_do_not() -> None:
    h = room_of(3)
    h.chat(1, "hi there", mentions=["U2", "nobody"])
    (to2,) = only(h.take(2), "chat")
    (to3,) = only(h.take(3), "chat")
    assert to2["mentions_you"] is True and to2["mentions"] == ["U2", "nobody"]
    assert "mentions_you" not in to3 and to3["mentions"] == ["U2", "nobody"]
    (hist,) = only(h.login(4, "u4"), "history")
    assert hist["messages"][0]["mentions"] == ["U2", "nobody"]


def test_mentions_are_never_parsed_from_the_text() -> None:
    h = room_of(2)
    h.chat(1, "@u2 look")
    (msg,) = only(h.take(2), "chat")
    assert "mentions_you" not in msg and "mentions" not in msg


def test_typing_goes_to_the_others_not_back_to_the_typist() -> None:
    h = room_of(3)
    typing(h, 1)
    assert only(h.take(1), "typing") == []
    for cid in (2, 3):
        assert only(h.take(cid), "typing") == [
            {"type": "typing", "room": "general", "users": ["u1"], "count": 1}
        ]


def test_typing_changes_are_merged_into_at_most_one_frame_a_second() -> None:
    h = room_of(3)
    typing(h, 1)
    h.take(3)
    typing(h, 2)
    typing(h, 1)  # a renewal: no change
    assert only(h.take(3), "typing") == []
    h.advance(1.0)
    h.run(h.hub.tick(h.now))
    (frame,) = only(h.take(3), "typing")
    assert frame["users"] == ["u1", "u2"]
    (frame,) = only(h.take(1), "typing")  # the typist sees only the other one
    assert frame["users"] == ["u2"]


def test_typing_expires_after_six_seconds_without_renewal() -> None:
    h = room_of(2)
    typing(h, 1)
    h.take(2)
    h.advance(5.0)
    h.run(h.hub.tick(h.now))
    assert only(h.take(2), "typing") == []
    h.advance(1.0)
    h.run(h.hub.tick(h.now))
    assert only(h.take(2), "typing")[0]["users"] == []


def test_sending_a_message_or_leaving_ends_typing() -> None:
    h = room_of(3)
    typing(h, 1)
    typing(h, 2)
    h.advance(1.0)
    h.chat(1, "done")
    assert only(h.take(3), "typing")[-1]["users"] == ["u2"]
    h.advance(1.0)
    h.leave(2)
    assert only(h.take(3), "typing")[-1]["users"] == []


def test_a_typing_storm_costs_each_member_at_most_one_frame_a_second() -> None:
    h = room_of(1000)
    for second in range(4):
        for cid in range(1, 1001):  # everyone types (again) within the same second
            typing(h, cid)
            h.advance(0.0009)
        h.run(h.hub.tick(h.now))
        for cid in range(1, 1001):
            frames = only(h.take(cid), "typing")
            assert len(frames) <= 1, (second, cid)
            if second == 1 and cid in (1, 1000):  # the whole storm; later, renewals change nothing
                assert frames[0]["count"] == 999 and len(frames[0]["users"]) == 10
            if second > 1:
                assert frames == []
        h.advance(0.1)


def test_a_read_position_only_moves_forward_and_is_stored() -> None:
    h = room_of(2)
    for i in range(5):
        h.chat(1, f"m{i}")
    h.take(1), h.take(2)
    stored: list = []
    original = h.execute

    def execute(token: int, command: object) -> None:
        if isinstance(command, SaveReads):
            stored.extend(command.positions)
        original(token, command)

    h.execute = execute  # type: ignore[method-assign]
    h.send(2, {"type": "read", "room": "general", "seq": 4})
    (rc,) = only(h.take(1), "receipt")
    assert rc == {"type": "receipt", "username": "u2", "seq": 4, "room": "general"}
    h.send(2, {"type": "read", "room": "general", "seq": 2})
    assert only(h.take(1), "receipt") == []
    h.send(2, {"type": "read", "room": "general", "seq": 99})  # past the last: the last
    assert only(h.take(1), "receipt")[0]["seq"] == 5
    assert stored == [("u2", "general", 4, False), ("u2", "general", 5, False)]


def test_private_reads_send_no_receipts_until_turned_back_on() -> None:
    h = room_of(2)
    for i in range(5):
        h.chat(1, f"m{i}")
    h.send(2, {"type": "read", "room": "general", "seq": 3, "private": True})
    h.send(2, {"type": "read", "room": "general", "seq": 4, "private": True})
    assert only(h.take(1), "receipt") == []
    frames = h.login(3, "u3")
    assert only(frames, "receipts") == []
    h.send(2, {"type": "read", "room": "general", "seq": 5})
    assert only(h.take(1), "receipt")[0]["seq"] == 5


def test_entering_a_room_gives_your_position_and_the_others_receipts() -> None:
    snap = Snapshot(read_positions=[("u2", "general", 3, False), ("u9", "general", 1, False)])
    h = Harness(snap, chat_burst=10_000)
    h.login(2, "u2")
    for i in range(4):
        h.chat(2, f"m{i}")
    frames = h.login(1, "u1")
    assert only(frames, "receipts") == [{"type": "receipts", "room": "general", "positions": {"u2": 3}}]
    frames = h.login(9, "u9")
    assert only(frames, "read_position") == [{"type": "read_position", "room": "general", "seq": 1}]


def test_no_receipts_in_a_large_room() -> None:
    h = room_of(3, large_room=2)
    h.chat(1, "x")
    h.send(2, {"type": "read", "room": "general", "seq": 1})
    assert only(h.take(1), "receipt") == []


def test_a_private_read_receipt_goes_to_the_sender() -> None:
    h = room_of(2)
    h.send(1, {"type": "private", "to": "u2", "message": "psst"})
    (pm,) = only(h.take(2), "private")
    h.send(2, {"type": "read", "to": "u1", "seq": pm["seq"]})
    assert only(h.take(1), "receipt") == [{"type": "receipt", "username": "u2", "seq": pm["seq"], "to": "u1"}]
