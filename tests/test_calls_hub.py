"""Calls in the hub, without sockets (wschat.features.calls): relaying between the two parties
only, busy, glare, the ring time-out, disconnects and a reload while ringing, the outcome."""

from __future__ import annotations

import pytest
from hubharness import Harness, only

from wschat import cli
from wschat.features.mod_records import Restriction


def _call(h: Harness, cid: int, to: str, action: str, call_id: str = "call-aaaa", **extra: object) -> None:
    frame = {"type": "call", "call_id": call_id, "to": to, "action": action, **extra}
    if action in ("invite", "accept") and "sdp" not in extra:
        frame["sdp"] = f"v=0 {action}"
    h.send(cid, frame)


def _three() -> Harness:
    h = Harness(call_timeout=45.0)
    for cid, name in ((1, "Alice"), (2, "Bob"), (3, "Carol")):
        h.login(cid, name)
    for cid in (1, 2, 3):
        h.take(cid)
    return h


def test_a_login_is_told_the_ice_servers_and_the_ring_time() -> None:
    h = Harness(call_timeout=20.0, ice_servers=({"urls": "stun:stun.example.org"},))
    frames = h.login(1, "Alice")
    config = only(frames, "username_accepted")[0]["calls"]
    assert config["ice_servers"] == [{"urls": "stun:stun.example.org"}] and config["ring_timeout"] == 20.0


def test_an_invite_reaches_the_callee_only_with_the_callers_name_and_the_answer_goes_back() -> None:
    h = _three()
    _call(h, 1, "bob", "invite", kind="video")
    (invite,) = h.take(2)
    assert invite == {
        "type": "call", "call_id": "call-aaaa", "from": "Alice", "to": "bob", "action": "invite",
        "kind": "video", "sdp": "v=0 invite",
    }  # fmt: skip
    _call(h, 2, "Alice", "ringing")
    _call(h, 2, "Alice", "accept")
    cand = {"candidate": "candidate:1 1 udp 1 192.0.2.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    _call(h, 1, "Bob", "candidate", candidate=cand)
    assert [(f["action"], f["from"]) for f in h.take(1)] == [("ringing", "Bob"), ("accept", "Bob")]
    assert h.take(2)[0]["candidate"] == cand
    assert h.take(3) == []
    h.advance(65)
    _call(h, 2, "Alice", "hangup")
    (hangup, event) = h.take(1)
    assert hangup["action"] == "hangup" and event["type"] == "private"
    assert event["call"] == {"call_id": "call-aaaa", "kind": "video", "outcome": "ended", "duration": 65}
    assert event["message"] == "📞 Video call, 1:05"
    assert only(h.take(2), "private")[0]["call"]["outcome"] == "ended"
    assert h.take(3) == []


def test_a_third_person_cannot_send_frames_into_a_call() -> None:
    h = _three()
    _call(h, 1, "Bob", "invite")
    h.take(2)
    _call(h, 3, "Bob", "accept")
    _call(h, 3, "Alice", "hangup")
    errors = h.take(3)
    assert [e["code"] for e in errors] == ["not_in_call", "not_in_call"]
    assert errors[0]["call_id"] == "call-aaaa"
    _call(h, 1, "Carol", "candidate", candidate={"candidate": "x"})  # Alice names someone else
    assert h.take(1)[0]["code"] == "not_in_call"
    assert h.take(2) == [] and h.take(3) == []


def test_calling_someone_in_a_call_is_busy_and_they_missed_it() -> None:
    h = _three()
    _call(h, 1, "Bob", "invite")
    _call(h, 3, "Bob", "invite", call_id="call-cccc")
    frames = h.take(3)
    assert frames[0] == {
        "type": "call",
        "call_id": "call-cccc",
        "from": "Bob",
        "action": "hangup",
        "reason": "busy",
    }
    assert frames[1]["call"]["outcome"] == "missed"
    bob = h.take(2)
    assert [f["call_id"] for f in only(bob, "call")] == ["call-aaaa"]  # Bob only rings for Alice
    assert only(bob, "private")[0]["call"] == {"call_id": "call-cccc", "kind": "audio", "outcome": "missed"}
    assert only(bob, "private")[0]["from"] == "Carol"


def test_glare_the_lower_call_id_goes_on_whichever_invite_comes_second() -> None:
    for first, second in (("call-1111", "call-2222"), ("call-2222", "call-1111")):
        h = _three()
        _call(h, 1, "Bob", "invite", call_id=first)
        _call(h, 2, "Alice", "invite", call_id=second)
        alice, bob = h.take(1), h.take(2)
        lost = max(first, second)
        won = min(first, second)
        ended = [f for f in alice + bob if f.get("action") == "hangup"]
        assert ended and all(f["call_id"] == lost and f["reason"] == "glare" for f in ended)
        assert not only(alice + bob, "private")  # nobody missed a call
        callee = 2 if won == first else 1
        (live,) = [f for f in (bob if callee == 2 else alice) if f.get("action") == "invite"][-1:]
        assert live["call_id"] == won
        _call(h, callee, "Alice" if callee == 2 else "Bob", "accept", call_id=won)
        assert only(h.take(3 - callee), "call")[0]["action"] == "accept"


def test_a_call_nobody_answers_stops_after_the_timeout_as_missed() -> None:
    h = _three()
    _call(h, 1, "Bob", "invite")
    h.take(2)
    h.advance(44)
    h.run(h.hub.tick(h.now))
    assert h.take(1) == []
    h.advance(2)
    h.run(h.hub.tick(h.now))
    for cid in (1, 2):
        hangup, event = h.take(cid)
        assert hangup["reason"] == "no_answer" and event["call"]["outcome"] == "missed"
    _call(h, 3, "Bob", "invite", call_id="call-cccc")  # Bob is free again
    assert only(h.take(2), "call")[0]["call_id"] == "call-cccc"


def test_decline_ends_the_call_as_declined() -> None:
    h = _three()
    _call(h, 1, "Bob", "invite")
    _call(h, 2, "Alice", "decline")
    frames = h.take(1)
    assert frames[0]["action"] == "decline" and frames[1]["call"]["outcome"] == "declined"


def test_a_reload_while_ringing_rings_again_and_a_callers_disconnect_ends_it() -> None:
    h = _three()
    _call(h, 1, "Bob", "invite")
    _call(h, 1, "Bob", "candidate", candidate={"candidate": "candidate:1"})
    assert len(h.take(2)) == 2
    h.leave(2)  # Bob's page reloads
    h.take(1)
    frames = h.login(4, "Bob")
    assert [f.get("action") for f in only(frames, "call")] == ["invite", "candidate"]
    _call(h, 4, "Alice", "accept")
    assert only(h.take(1), "call")[0]["action"] == "accept"
    h.leave(1)
    frames = h.take(4)
    (hangup,), (notice,) = only(frames, "call"), only(frames, "private")
    assert hangup["action"] == "hangup" and hangup["reason"] == "disconnected"
    assert notice["call"]["outcome"] == "ended"


def test_a_flood_of_call_frames_is_refused_with_its_own_error_then_closed() -> None:
    h = _three()
    _call(h, 1, "Bob", "invite")
    for _ in range(200):
        _call(h, 1, "Bob", "candidate", candidate={"candidate": "candidate:1"})
    errors = [f for f in h.take(1) if f["type"] == "error"]
    assert errors and all(e["code"] == "rate_limited" and "call frames" in e["message"] for e in errors)
    assert 1 in h.closed and h.closed[1][0] == 1008
    assert len(h.take(2)) <= 61
    assert h.take(3) == []


def test_call_frames_do_not_use_the_chat_or_control_budget() -> None:
    h = _three()
    _call(h, 1, "Bob", "invite")
    for _ in range(40):
        _call(h, 1, "Bob", "candidate", candidate={"candidate": "candidate:1"})
    assert not [f for f in h.take(1) if f["type"] == "error"]
    h.chat(1, "still chatting")
    assert only(h.take(1), "chat")


def test_ice_servers_come_from_the_command_line_and_turn_credentials_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cli.hub_config(cli.parse_args([])).ice_servers == ()  # none by default: one LAN
    monkeypatch.setenv("WSCHAT_ICE_USERNAME", "chat")
    monkeypatch.setenv("WSCHAT_ICE_CREDENTIAL", "s3cret")
    args = ["--ice-server", "stun:stun.example.org:3478", "--ice-server", "turn:turn.example.org:3478"]
    config = cli.hub_config(cli.parse_args([*args, "--call-timeout", "5"]))
    assert config.ice_servers == (
        {"urls": "stun:stun.example.org:3478"},
        {"urls": "turn:turn.example.org:3478", "username": "chat", "credential": "s3cret"},
    )
    assert config.call_timeout == 5.0
    with pytest.raises(SystemExit):
        cli.parse_args(["--ice-server", "http://example.org"])


def test_bad_call_frames_get_a_clear_error() -> None:
    h = _three()
    for frame, code in (
        ({"call_id": "short", "to": "Bob", "action": "invite", "sdp": "v"}, "bad_field"),
        ({"call_id": "call-aaaa", "to": "Bob", "action": "dance"}, "bad_field"),
        ({"call_id": "call-aaaa", "to": "Bob", "action": "invite"}, "bad_field"),  # no sdp
        ({"call_id": "call-aaaa", "to": "Bob", "action": "invite", "sdp": "x" * 40_000}, "too_long"),
        ({"call_id": "call-aaaa", "to": "Alice", "action": "invite", "sdp": "v"}, "bad_field"),  # yourself
        ({"call_id": "call-aaaa", "to": "Bob", "action": "candidate", "candidate": 5}, "bad_field"),
        ({"call_id": "call-aaaa", "to": "Bob", "action": "hangup", "reason": "glare"}, "bad_field"),
    ):
        h.send(1, {"type": "call", **frame})
        assert h.take(1)[0]["code"] == code, frame
    _call(h, 1, "Bob", "invite")
    _call(h, 1, "Carol", "invite", call_id="call-bbbb")
    assert h.take(1)[0]["code"] == "in_call"
    _call(h, 1, "Bob", "accept")  # only the person called answers
    assert h.take(1)[0]["code"] == "bad_field"


def test_someone_muted_on_the_server_cannot_call() -> None:
    h = _three()
    h.hub.moderation.add(Restriction("mute", "", "address:", "Alice", 0.0, "spam", "admin (host)"))
    _call(h, 1, "Bob", "invite")
    assert h.take(1)[0]["code"] == "muted"
    assert h.take(2) == []
