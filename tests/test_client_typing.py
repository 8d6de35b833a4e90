"""The terminal client's own typing (wschat.clienttyping, and ClientState.edited): when `typing`
frames go out. Pure: times are given, nothing waits."""

from __future__ import annotations

from test_clientstate import EPOCH, make, online, sent

from wschat.clienttyping import OwnTyping


def typing(room: str, active: bool) -> dict:
    return {"type": "typing", "room": room, "active": active}


def test_typing_is_told_at_once_then_at_most_every_3_s_while_it_goes_on() -> None:
    t = OwnTyping()
    assert t.edited("general", 10.0) == [typing("general", True)]
    assert t.edited("general", 10.5) == []
    assert t.edited("general", 12.9) == []
    assert t.edited("general", 13.0) == [typing("general", True)]  # a renewal before the 6 s expiry
    assert t.edited("general", 15.9) == []


def test_typing_stops_when_the_line_is_emptied_sent_or_said_elsewhere() -> None:
    t = OwnTyping()
    t.edited("general", 0.0)
    assert t.edited(None, 1.0) == [typing("general", False)]  # emptied (or became a command)
    assert t.edited(None, 1.5) == []  # told once
    t.edited("general", 2.0)
    assert t.stop(2.5) == [typing("general", False)]  # sent
    assert t.stop(2.6) == []
    t.edited("general", 3.0)
    assert t.edited("dev", 3.5) == [typing("general", False), typing("dev", True)]  # another room


def test_after_6_s_idle_no_stop_is_sent_and_the_next_key_starts_afresh() -> None:
    t = OwnTyping()
    t.edited("general", 0.0)
    assert t.stop(6.0) == []  # the server forgot us 6 s after the last `typing`
    t.edited("general", 10.0)
    assert t.edited("general", 16.5) == [typing("general", True)]
    assert t.edited(None, 23.0) == []


def test_a_lost_connection_forgets_the_typing_the_server_dropped() -> None:
    t = OwnTyping()
    t.edited("general", 0.0)
    t.forget()
    assert t.stop(1.0) == []
    assert t.edited("general", 1.0) == [typing("general", True)]


def test_the_client_tells_its_room_while_a_message_or_reply_is_typed_not_a_command() -> None:
    s = make()
    online(s)
    assert sent(s.edited("h", 1.0)) == [typing("general", True)]
    assert sent(s.edited("hello", 1.2)) == []
    assert sent(s.edited("/join dev", 1.4)) == [typing("general", False)]
    assert sent(s.edited("/reply 3 sure", 2.0)) == [typing("general", True)]
    assert sent(s.edited("", 2.2)) == [typing("general", False)]
    assert sent(s.edited("//slash is a message", 2.4)) == [typing("general", True)]


def test_sending_the_line_stops_typing_before_the_message() -> None:
    s = make()
    online(s)
    s.edited("hello", 1.0)
    out = sent(s.line("hello", 1.5))
    assert out[0] == typing("general", False)
    frames, _ = s.pump(1.5)
    assert frames[0]["type"] == "chat" and frames[0]["message"] == "hello"


def test_switching_rooms_stops_typing_in_the_room_left_behind() -> None:
    s = make()
    online(s)
    s.line("/join dev", 0.5)
    s.edited("hel", 1.0)  # typed before `joined` came back
    joined = {"type": "joined", "room": "dev", "epoch": EPOCH, "online_users": 1}
    assert sent(s.frame(joined, 1.2)) == [typing("general", False)]
    assert sent(s.edited("hello", 1.3)) == [typing("dev", True)]


def test_a_room_left_is_not_told_and_nothing_is_sent_offline_or_from_a_script() -> None:
    s = make()
    online(s)
    s.edited("hel", 1.0)
    assert sent(s.frame({"type": "left", "room": "general"}, 1.5)) == []  # the server dropped it
    s = make()
    online(s)
    s.edited("hel", 1.0)
    s.closed()
    assert sent(s.edited("hello", 1.5)) == []
    s = make(interactive=False)
    online(s)
    assert sent(s.edited("hello", 1.0)) == []
