"""Unit tests of wschat.clientstate: login, resume, outbox, de-duplication, rooms, history paging."""

from __future__ import annotations

import itertools
from datetime import UTC
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wschat.clientstate import (
    NO_SEQ_BELOW,
    ClientState,
    QuitRequested,
    Send,
    SeqSet,
    Show,
    Stop,
)
from wschat.render import Renderer, Style

EPOCH = "e1"


def make(name: str | None = "alice", interactive: bool = True, rooms: list[str] | None = None) -> ClientState:
    ids = (f"m{i}" for i in itertools.count(1))
    s = ClientState(
        name=name,
        rooms=rooms,
        interactive=interactive,
        new_id=lambda: next(ids),
    )
    s.presence.away_after = 0  # no automatic away here (the test below)
    return s


def test_profile_presence_goes_away_when_idle_and_comes_back_on_typing() -> None:
    s = ClientState(name="alice")
    online(s)
    frames, wake = s.pump(1.0)
    assert frames == [] and wake == 601.0  # ten minutes after the last input (none: the login)
    frames, wake = s.pump(601.0)
    assert frames == [{"type": "set_profile", "presence": "away"}] and wake is None
    sent = [e.frame for e in s.edited("h", 700.0) if hasattr(e, "frame")]
    assert sent[0] == {"type": "set_profile", "presence": "online"}  # then typing
    s.line("/busy", 701.0)  # chosen: never away by itself, and said again after a reconnect
    assert s.pump(2000.0)[1] is None


def chat(seq: int, text: str = "", user: str = "bob", room: str = "general", **extra: Any) -> dict[str, Any]:
    return {
        "type": "chat",
        "id": str(100 + seq),
        "room": room,
        "seq": seq,
        "username": user,
        "message": text or f"message {seq}",
        "timestamp": "2026-11-25T19:01:19.123+00:00",
        **extra,
    }


def accepted(name: str = "alice", rooms: tuple[str, ...] = ("general",), **limits: Any) -> dict[str, Any]:
    return {
        "type": "username_accepted",
        "username": name,
        "client_id": "c1",
        "message": f"Welcome, {name}!",
        "session_token": "tok",
        "rooms": list(rooms),
        "limits": {"max_message_chars": 4000, "chat_rate": 5, "chat_burst": 20, **limits},
    }


def history(msgs: list[dict[str, Any]], mode: str = "recent", room: str = "general", **extra: Any) -> dict:
    return {"type": "history", "room": room, "epoch": EPOCH, "mode": mode, "messages": msgs, **extra}


RENDER = Renderer(Style(tz=UTC), clock=lambda: 0.0)


def shown(effects: list[Any], renderer: Renderer = RENDER) -> str:
    return "\n".join(renderer.render(e.event) for e in effects if isinstance(e, Show))


def sent(effects: list[Any]) -> list[dict[str, Any]]:
    return [e.frame for e in effects if isinstance(e, Send)]


def online(s: ClientState, msgs: list[dict[str, Any]] | None = None, now: float = 0.0) -> list[Any]:
    """Connect and log in; returns what was shown. History holds `msgs`."""
    s.opened(now)
    frames, _ = s.pump(now)
    assert frames[0]["type"] == "set_username"
    out = s.frame(accepted(s.name or "alice"), now)
    out += s.frame({"type": "joined", "room": "general", "epoch": EPOCH, "online_users": 2}, now)
    out += s.frame(history(msgs or []), now)
    return out


# ---------------------------------------------------------------- SeqSet


def test_seqset_merges_touching_and_overlapping_ranges() -> None:
    seen = SeqSet()
    seen.add(5, 7)
    seen.add(1, 2)
    seen.add(9, 9)
    assert seen.ranges == [[1, 2], [5, 7], [9, 9]]
    assert (3 in seen, 6 in seen, 9 in seen, 10 in seen) == (False, True, True, False)
    seen.add(8, 8)
    assert seen.ranges == [[1, 2], [5, 9]]
    seen.add(2, 6)
    assert seen.ranges == [[1, 9]]
    assert (seen.top, seen.top_start) == (9, 1)


def test_seqset_empty() -> None:
    seen = SeqSet()
    seen.add(3, 2)
    assert (seen.top, seen.top_start, 1 in seen) == (0, None, False)


# ---------------------------------------------------------------- login


def test_first_login_asks_for_general_and_nothing_else() -> None:
    s = make()
    s.opened(0)
    frames, wake = s.pump(0)
    assert frames == [{"type": "set_username", "username": "alice", "rooms": ["general"]}]
    assert wake is None
    assert s.pump(0) == ([], None)  # sent once


def test_without_a_name_the_user_is_asked_and_the_answer_is_sent() -> None:
    s = make(name=None)
    assert s.naming and s.prompt() == "Enter your username: "
    s.opened(0)
    assert s.pump(0) == ([], None)
    assert "Please type a name" in shown(s.line("   ", 0))
    assert s.line("  carol ", 0) == []
    frames, _ = s.pump(0)
    assert frames[0]["username"] == "carol"


def test_a_refused_name_is_asked_again_on_a_terminal() -> None:
    s = make()
    s.opened(0)
    s.pump(0)
    out = s.frame({"type": "username_error", "code": "name_taken", "message": "The name 'alice' is taken"}, 0)
    assert "The name 'alice' is taken" in shown(out)
    assert s.naming and s.prompt() == "Enter your username: "
    s.line("alice2", 0)
    assert s.pump(0)[0][0]["username"] == "alice2"


def test_a_refused_name_without_a_terminal_stops_with_status_one() -> None:
    s = make(interactive=False)
    s.opened(0)
    s.pump(0)
    out = s.frame({"type": "username_error", "code": "name_taken", "message": "taken"}, 0)
    assert len(out) == 1 and isinstance(out[0], Stop)
    assert out[0].status == 1 and "refused the name 'alice': taken" in out[0].message


def test_a_rate_limited_login_is_retried_after_the_wait() -> None:
    for code in ("rate_limited", "store_failed"):  # store_failed: the cluster's Redis was away
        s = make()
        s.opened(0)
        s.pump(0)
        out = s.frame({"type": "username_error", "code": code, "message": "slow", "retry_after": 1.5}, 0)
        assert "Trying again in 2s" in shown(out)
        assert s.pump(1.0) == ([], 1.5)
        assert s.pump(1.5)[0][0]["type"] == "set_username"


def test_quit_works_while_asking_for_a_name() -> None:
    s = make(name=None)
    assert s.line("/quit", 0) == [QuitRequested()]


def test_login_shows_welcome_room_and_history_once() -> None:
    s = make()
    out = shown(online(s, [chat(1, "old one"), chat(2, "old two")]))
    assert "Welcome, alice!" in out
    assert "#general - 2 online" in out
    assert "Recent messages in #general (2):" in out
    assert "│ 19:01 [1] bob: old one\n│ 19:01 [2] bob: old two\n── end of history ──" in out
    assert s.online and s.prompt() == "#general> "


# ---------------------------------------------------------------- de-duplication and resume


def test_a_room_message_is_shown_once_however_often_it_arrives() -> None:
    s = make()
    online(s, [chat(1), chat(2)])
    assert s.frame(chat(2), 0) == []
    assert "message 3" in shown(s.frame(chat(3), 0))
    assert s.frame(chat(3), 0) == []
    assert s.frame(history([chat(1), chat(2), chat(3)]), 0) == []


def test_reconnect_resumes_each_room_from_the_last_message_shown_with_the_token() -> None:
    s = make()
    online(s, [chat(1), chat(2)])
    s.frame(chat(3), 0)
    s.closed()
    assert s.prompt() == "(offline) #general> "
    s.opened(5)
    frame = s.pump(5)[0][0]
    assert frame == {
        "type": "set_username",
        "username": "alice",
        "session_token": "tok",
        "rooms": ["general"],
        "resume": {"general": {"epoch": EPOCH, "seq": 3}},
    }


def test_after_reconnecting_only_missed_messages_are_shown_and_quietly() -> None:
    s = make()
    online(s, [chat(1), chat(2)])
    s.closed()
    s.opened(5)
    s.pump(5)
    out = s.frame(accepted(), 5)
    out += s.frame({"type": "joined", "room": "general", "epoch": EPOCH, "online_users": 2}, 5)
    out += s.frame(history([chat(2), chat(3), chat(4)], mode="resume"), 5)
    text = shown(out)
    assert "Reconnected as alice." in text
    assert "Welcome" not in text and "online" not in text
    assert "2 messages in #general while you were away:" in text
    assert "message 3" in text and "message 4" in text and "message 2" not in text


def test_a_new_epoch_forgets_what_was_seen_in_that_room() -> None:
    s = make()
    online(s, [chat(1), chat(2)])
    s.closed()
    s.opened(5)
    s.pump(5)
    s.frame(accepted(), 5)
    out = s.frame({"type": "joined", "room": "general", "epoch": "e2"}, 5)
    assert "lost the history of #general" in shown(out)
    out = s.frame({**history([chat(1, "fresh start")], epoch_changed=True), "epoch": "e2"}, 5)
    assert "fresh start" in shown(out)
    s.closed()
    s.opened(6)
    assert s.pump(6)[0][0]["resume"] == {"general": {"epoch": "e2", "seq": 1}}


def test_private_messages_are_shown_once_by_id() -> None:
    s = make()
    online(s)
    pm = {"type": "private", "id": "p1", "seq": 1, "from": "bob", "to": "alice", "message": "psst"}
    assert "bob → you: psst" in shown(s.frame(pm, 0))
    assert s.frame(pm, 0) == []


def test_own_messages_are_recognised_as_such() -> None:
    s = make()
    online(s)
    colour = Renderer(Style(color=True, tz=UTC), clock=lambda: 0.0)
    assert "\x1b[1;32malice" in shown(s.frame(chat(1, user="alice"), 0), colour)
    assert "\x1b[1;32m" not in shown(s.frame(chat(2, user="bob"), 0), colour)


# ---------------------------------------------------------------- outbox


def test_typed_messages_go_out_with_an_id_to_the_current_room() -> None:
    s = make()
    online(s)
    assert s.line("hello", 0) == []
    frames, _ = s.pump(0)
    assert frames == [{"type": "chat", "message": "hello", "room": "general", "client_msg_id": "m1"}]
    assert s.pump(0) == ([], None)


def test_messages_typed_before_the_first_login_go_out_after_it_in_order() -> None:
    s = make()
    assert s.line("one", 0) == [] and s.line("two", 0) == []  # no "queued" noise before the first login
    online(s)
    assert [f["message"] for f in s.pump(0)[0]] == ["one", "two"]


def test_an_ack_or_the_echo_empties_the_outbox() -> None:
    s = make()
    online(s)
    s.line("one", 0)
    s.line("two", 0)
    s.pump(0)
    s.frame({"type": "ack", "client_msg_id": "m1", "id": "9", "seq": 1, "room": "general"}, 0)
    assert list(s.outbox) == ["m2"]
    s.frame(chat(2, "two", user="alice", client_msg_id="m2"), 0)
    assert not s.outbox


def test_unacknowledged_messages_are_resent_with_the_same_id_after_reconnecting() -> None:
    s = make()
    online(s)
    s.line("lost in flight", 0)
    first = s.pump(0)[0]
    s.closed()
    out = s.line("typed offline", 1)
    assert 'Not connected: "typed offline" is queued (2 waiting)' in shown(out)
    s.opened(2)
    s.pump(2)
    assert s.pump(2) == ([], None)  # nothing before the login is accepted
    s.frame(accepted(), 2)
    again = s.pump(2)[0]
    assert again == [first[0], {**first[0], "message": "typed offline", "client_msg_id": "m2"}]
    s.frame({"type": "ack", "client_msg_id": "m1", "duplicate": True, "id": "9", "seq": 1}, 2)
    s.frame({"type": "ack", "client_msg_id": "m2", "id": "10", "seq": 2}, 2)
    assert not s.outbox


def test_a_message_found_in_the_resumed_history_is_not_resent() -> None:
    s = make()
    online(s)
    s.line("stored but never acked", 0)
    s.pump(0)
    s.closed()
    s.opened(1)
    s.pump(1)
    s.frame(accepted(), 1)
    s.frame(history([chat(1, "stored but never acked", user="alice", client_msg_id="m1")], mode="resume"), 1)
    assert not s.outbox
    assert s.pump(1) == ([], None)


def test_rate_limited_or_store_failed_messages_wait_and_are_resent() -> None:
    for code in ("rate_limited", "store_failed"):
        s = make()
        online(s)
        s.line("one", 0)
        s.line("two", 0)
        s.pump(0)
        err = {"type": "error", "code": code, "message": "wait", "client_msg_id": "m1", "retry_after": 2}
        out = s.frame(err, 0)
        assert "It will be sent again in 2s" in shown(out)
        assert s.pump(1) == ([], 2)
        assert [f["client_msg_id"] for f in s.pump(2)[0]] == ["m1"]
        assert list(s.outbox) == ["m1", "m2"]


def test_a_refused_message_leaves_the_outbox_with_the_reason() -> None:
    s = make()
    online(s)
    s.line("x" * 10, 0)
    s.pump(0)
    err = {"type": "error", "code": "too_long", "message": "Too long.", "client_msg_id": "m1"}
    assert 'Not sent ("xxxxxxxxxx"): Too long.' in shown(s.frame(err, 0))
    assert not s.outbox


def test_an_overlong_message_is_refused_before_sending() -> None:
    s = make()
    online(s)
    s.frame({**accepted(max_message_chars=10)}, 0)
    assert "the limit is 10" in shown(s.line("x" * 11, 0))
    assert not s.outbox


def test_a_full_outbox_is_paced_under_the_servers_rate_limit() -> None:
    s = make()
    s.opened(0)
    s.pump(0)
    s.frame(accepted(chat_rate=1, chat_burst=5), 0)
    for i in range(10):
        s.line(f"m{i}", 0)
    frames, wake = s.pump(0)
    assert len(frames) == 3  # burst 5, less a margin of 2
    assert wake is not None and 1.0 < wake < 1.2  # one more a second, a little slower than the server
    for t in (0.1, 0.2, 0.5, 0.9):  # incoming frames make the I/O pump early and often: no later turn
        frames, again = s.pump(t)
        assert frames == [] and again == pytest.approx(wake)
    assert len(s.pump(wake)[0]) == 1


# ---------------------------------------------------------------- rooms and commands


def test_join_switches_room_and_other_rooms_are_tagged() -> None:
    s = make()
    online(s)
    assert sent(s.line("/join #Dev", 0)) == [{"type": "join", "room": "dev"}]
    assert not s.settled
    out = s.frame(
        {"type": "joined", "room": "dev", "epoch": "d1", "online_users": 1, "users_list": ["alice"]}, 0
    )
    assert "Now talking in #dev - 1 online: alice" in shown(out)
    assert s.current == "dev" and s.settled and s.prompt() == "#dev> "
    s.line("in dev", 0)
    assert s.pump(0)[0][0]["room"] == "dev"
    assert "[#general] [1] bob: message 1" in shown(s.frame(chat(1), 0))
    assert "[#dev]" not in shown(s.frame(chat(1, room="dev"), 0))
    s.closed()
    s.opened(1)
    login = s.pump(1)[0][0]
    assert login["rooms"] == ["general", "dev"]
    assert login["resume"] == {"general": {"epoch": EPOCH, "seq": 1}, "dev": {"epoch": "d1", "seq": 1}}


def test_joining_a_room_you_are_in_just_switches_to_it() -> None:
    s = make(rooms=["dev", "general"])
    s.opened(0)
    s.pump(0)
    s.frame(accepted(rooms=("dev", "general")), 0)
    assert s.current == "dev"
    effects = s.line("/join general", 0)
    assert sent(effects) == [] and s.current == "general"


def test_leave_returns_to_general() -> None:
    s = make()
    online(s)
    s.line("/join dev", 0)
    s.frame({"type": "joined", "room": "dev", "epoch": "d1"}, 0)
    assert sent(s.line("/leave", 0)) == [{"type": "leave", "room": "dev"}]
    out = s.frame({"type": "left", "room": "dev"}, 0)
    assert "You left #dev. Now talking in #general." in shown(out)
    assert s.current == "general"
    s.line("/leave", 0)
    out = s.frame({"type": "left", "room": "general"}, 0)
    assert "You are in no room now" in shown(out)
    assert "You are in no room" in shown(s.line("hello?", 0))
    assert "You are not in any room" in shown(s.line("/leave", 0))


def test_users_rooms_and_msg_send_the_right_frames() -> None:
    s = make()
    online(s)
    assert sent(s.line("/users", 0)) == [{"type": "get_users", "room": "general"}]
    assert sent(s.line("/rooms", 0)) == [{"type": "list_rooms"}]
    s.line("/msg bob hi", 0)
    assert s.pump(0)[0] == [{"type": "private", "to": "bob", "message": "hi", "client_msg_id": "m1"}]
    out = s.frame({"type": "online_users", "room": "general", "users": ["bob", "alice"], "count": 2}, 0)
    assert "2 online in #general: bob, alice" in shown(out)


def test_commands_that_need_the_server_say_so_when_offline() -> None:
    s = make()
    online(s)
    s.closed()
    for line in ("/users", "/rooms", "/join x", "/leave", "/history"):
        assert "Not connected right now" in shown(s.line(line, 0)), line
        assert s.needs_server(line)
    assert not s.needs_server("hello") and not s.needs_server("/help")


def test_unknown_commands_point_to_help_and_empty_lines_do_nothing() -> None:
    s = make()
    online(s)
    assert "Unknown command /dance; type /help for the list." in shown(s.line("/dance", 0))
    assert s.line("", 0) == [] and s.line("   ", 0) == []
    assert not s.outbox
    assert "/history [N]" in shown(s.line("/help", 0))


# ---------------------------------------------------------------- /history


def test_history_pages_back_from_the_oldest_message_shown_and_shows_each_once() -> None:
    s = make()
    online(s, [chat(5), chat(6), chat(7)])
    assert sent(s.line("/history 2", 0)) == [
        {"type": "fetch_history", "room": "general", "before_seq": 5, "limit": 2}
    ]
    assert "Still loading" in shown(s.line("/history", 0))
    out = s.frame({**history([chat(3), chat(4), chat(5)], mode="page"), "before_seq": 5, "more": True}, 0)
    text = shown(out)
    assert "Older messages in #general (2):" in text
    assert "message 3" in text and "message 4" in text and "message 5" not in text
    assert "end of older messages" in text
    assert sent(s.line("/history", 0))[0]["before_seq"] == 3
    out = s.frame({**history([chat(1), chat(2)], mode="page"), "before_seq": 3, "more": False}, 0)
    assert "beginning of #general" in shown(out)
    assert "there are no older messages" in shown(s.line("/history", 0))


def test_history_of_an_unknown_room_asks_for_the_newest_page() -> None:
    s = make()
    online(s)
    s.frame(history([], room="general"), 0)
    assert sent(s.line("/history", 0))[0]["before_seq"] == NO_SEQ_BELOW


def test_a_resume_that_skipped_messages_lets_history_fill_the_gap() -> None:
    s = make()
    online(s, [chat(1), chat(2)])
    s.closed()
    s.opened(1)
    s.pump(1)
    s.frame(accepted(), 1)
    out = s.frame(history([chat(1500), chat(1501)], mode="resume", skipped=1497), 1)
    assert "1497 older message(s) in #general were not sent; /history shows them." in shown(out)
    assert sent(s.line("/history 100", 1))[0]["before_seq"] == 1500
    page = [chat(i) for i in range(1400, 1500)]
    s.frame({**history(page, mode="page"), "before_seq": 1500, "more": True}, 1)
    assert sent(s.line("/history 100", 1))[0]["before_seq"] == 1400


# ---------------------------------------------------------------- robustness


TYPES = ["chat", "history", "username_accepted", "joined", "left", "private", "ack", "error", "rooms",
         "online_users", "user_join", "user_leave", "system", "username_error", "bogus"]  # fmt: skip
fields = st.dictionaries(
    st.sampled_from(
        ["type", "room", "seq", "username", "message", "messages", "client_msg_id", "epoch", "mode", "id",
         "rooms", "users", "count", "limits", "online_users", "users_list", "from", "to", "timestamp",
         "retry_after", "code", "before_seq", "more", "skipped", "epoch_changed", "usernames", "resumed"]
    ),
    st.one_of(
        st.sampled_from([*TYPES, "page", "resume", "general", "alice", "m1", EPOCH]),
        st.none(), st.booleans(), st.integers(-5, 2**60), st.floats(), st.text(max_size=5),
        st.lists(st.one_of(st.integers(), st.text(max_size=3), st.fixed_dictionaries({"seq": st.integers()}),
                           st.dictionaries(st.text(max_size=3), st.integers())), max_size=3),
    ),
)  # fmt: skip
frames = st.builds(lambda kind, rest: {"type": kind, **rest}, st.sampled_from(TYPES), fields)


@settings(max_examples=200, deadline=None)
@given(st.lists(frames, max_size=6))
def test_no_frame_from_a_server_crashes_the_client_state(batch: list[dict[str, Any]]) -> None:
    s = make()
    online(s)
    s.line("pending", 0)
    for frame in batch:
        for effect in s.frame(frame, 1.0):
            if isinstance(effect, Show):
                assert "\x1b" not in RENDER.render(effect.event)  # colour is off: nothing may inject escapes
        s.pump(1.0)


# ---------------------------------------------------------------- private messages for people not back yet


def offline_pm(to: str = "bob", text: str = "pm while down") -> ClientState:
    """alice was online, lost the connection, typed a private message, and is back before `to`."""
    s = make()
    online(s)
    s.closed()
    s.line(f"/msg {to} {text}", 1)
    s.opened(2)
    s.pump(2)
    s.frame(accepted(), 2)
    assert s.pump(2)[0] == [{"type": "private", "to": to, "message": text, "client_msg_id": "m1"}]
    return s


def not_online(to: str = "bob", cmid: str = "m1") -> dict[str, Any]:
    return {"type": "error", "code": "no_such_user", "message": f"{to} is not online.", "client_msg_id": cmid}


def test_a_private_message_that_waited_is_kept_until_its_recipient_comes_back() -> None:
    s = offline_pm()
    text = shown(s.frame(not_online(), 2))
    assert 'bob is not online yet: "pm while down" is kept' in text and "/drop" in text
    assert "Not sent" not in text
    assert list(s.outbox) == ["m1"] and s.unsent == 0
    assert s.pump(3) == ([], None)  # held: not sent again while bob is away
    s.frame({"type": "user_join", "room": "general", "username": "carol", "message": "carol joined"}, 4)
    assert s.pump(4) == ([], None)  # someone else
    join = {"type": "user_join", "room": "general", "username": "Bob", "message": "Bob joined the chat"}
    s.frame(join, 5)
    frames, _ = s.pump(5)
    assert frames == [{"type": "private", "to": "bob", "message": "pm while down", "client_msg_id": "m1"}]
    assert s.pump(5) == ([], None)  # exactly once
    s.frame({"type": "ack", "client_msg_id": "m1", "id": "p1", "seq": 1, "to": "Bob"}, 5)
    assert not s.outbox


def test_a_held_private_message_goes_out_when_a_list_or_a_resumed_join_names_the_recipient() -> None:
    for seen in (
        {"type": "online_users", "room": "general", "users": ["alice", "bob"], "count": 2},
        {"type": "user_join", "room": "general", "username": "bob", "resumed": True},
        {"type": "user_join", "room": "general", "usernames": ["bob", "dan"], "count_joined": 2},
        {"type": "joined", "room": "dev", "users_list": ["bob"], "online_users": 1},
    ):
        s = offline_pm()
        s.frame(not_online(), 2)
        s.frame(seen, 3)
        assert [f["client_msg_id"] for f in s.pump(3)[0]] == ["m1"], seen


def test_a_private_message_typed_while_online_to_someone_offline_is_refused_at_once() -> None:
    s = make()
    online(s)
    s.line("/msg bob hi", 0)
    s.pump(0)
    assert 'Not sent ("hi"): bob is not online.' in shown(s.frame(not_online(), 0))
    assert not s.outbox


def test_drop_forgets_held_private_messages_only() -> None:
    s = offline_pm()
    s.frame(not_online(), 2)
    s.line("a room message", 2)
    assert "Forgot 1 private message(s)" in shown(s.line("/drop", 3))
    assert [item.frame["message"] for item in s.outbox.values()] == ["a room message"]
    assert "No private message is waiting" in shown(s.line("/drop", 3))


# ---------------------------------------------------------------- presence and history pages


def test_a_resumed_join_is_not_news_but_a_new_one_and_a_room_leave_are_shown_as_the_server_says() -> None:
    s = make()
    online(s)
    resumed = {"type": "user_join", "room": "general", "username": "bob", "resumed": True,
               "message": "bob joined the chat", "online_users": 2}  # fmt: skip
    assert s.frame(resumed, 0) == []
    fresh = {**resumed, "resumed": False, "username": "carol", "message": "carol joined the chat"}
    assert "carol joined the chat (2 online)" in shown(s.frame(fresh, 0))
    left = {"type": "user_leave", "room": "general", "username": "bob", "message": "bob left #general",
            "reason": "leave", "online_users": 1}  # fmt: skip
    assert "bob left #general (1 online)" in shown(s.frame(left, 0))


def test_a_history_page_the_server_could_not_read_is_asked_for_again_and_told_once() -> None:
    s = make()
    online(s, [chat(5), chat(6)])
    request = sent(s.line("/history 2", 0))[0]
    failed = {"type": "error", "code": "store_failed", "message": "The history could not be read.",
              "retry_after": 2, "room": "general", "before_seq": 5}  # fmt: skip
    text = shown(s.frame(failed, 0))
    assert "Couldn't load older messages of #general; retrying in 2s." in text
    assert "beginning" not in text and "No older messages" not in text
    assert s.pump(1) == ([], 2)
    assert s.pump(2)[0] == [request]
    assert s.frame(failed, 2) == []  # told once
    assert "Still loading older messages" in shown(s.line("/history", 3))
    assert s.pump(4)[0] == [request]
    out = s.frame({**history([chat(3), chat(4)], mode="page"), "before_seq": 5, "more": True}, 4)
    assert "Older messages in #general (2):" in shown(out)
    assert s.pump(10) == ([], None)


# ---------------------------------------------------------------- scripts


def test_a_script_sees_no_welcome_hint_or_earlier_history_but_does_see_new_messages() -> None:
    s = make(interactive=False)
    out = online(s, [chat(1, "from before")])
    assert shown(out) == ""
    assert "bob: live" in shown(s.frame(chat(2, "live"), 0))


def test_quiet_shows_only_problems() -> None:
    s = ClientState(name="alice", quiet=True, interactive=False)
    assert online(s, [chat(1)]) == []
    assert s.frame(chat(2, "live"), 0) == []
    s.line("x", 0)
    s.pump(0)
    err = {"type": "error", "code": "too_long", "message": "Too long.", "client_msg_id": next(iter(s.outbox))}
    assert "Not sent" in shown(s.frame(err, 0))


def test_a_private_message_typed_before_the_first_login_is_refused_as_usual() -> None:
    s = make()
    s.line("/msg bob early", 0)
    s.opened(0)
    s.pump(0)
    s.frame(accepted(), 0)
    s.pump(0)
    assert 'Not sent ("early"): bob is not online.' in shown(s.frame(not_online(), 0))
    assert not s.outbox


def test_quiet_shows_no_notice_for_typed_lines_but_their_problems() -> None:
    s = ClientState(name="alice", quiet=True, interactive=False)
    online(s)
    s.closed()
    assert s.line("queued while down", 0) == [] and len(s.outbox) == 1
    assert "Unknown command" in shown(s.line("/dance", 0))


def test_moderation_events_in_a_rooms_history_are_told_after_its_messages() -> None:
    s = make()
    event = {"type": "moderation", "by": "Op", "room": "general"}
    kick = {**event, "action": "kick", "username": "Eve", "seq": 2}
    topic = {**event, "action": "topic", "topic": "be kind", "seq": 3}
    text = shown(online(s, [chat(1, "hello"), kick, topic]))
    assert text.index("hello") < text.index("Op kicked Eve out (#general)") < text.index("Op set the topic")
    assert s.topics["general"] == "be kind"


def test_moderation_events_in_a_history_sit_among_its_messages_by_seq_recent_and_resumed() -> None:
    s = make()
    event = {"type": "moderation", "by": "Op", "room": "general"}
    kick = {**event, "action": "kick", "username": "Eve", "seq": 2}
    topic = {**event, "action": "topic", "topic": "be kind", "seq": 4}
    text = shown(online(s, [chat(1, "hello"), kick, chat(3, "after the kick"), topic, chat(5, "last")]))
    order = ["hello", "Op kicked Eve out", "after the kick", "Op set the topic", "last", "end of history"]
    assert [text.index(t) for t in order] == sorted(text.index(t) for t in order)
    s.closed()
    s.opened(5)
    s.pump(5)
    s.frame(accepted(), 5)
    s.frame({"type": "joined", "room": "general", "epoch": EPOCH, "online_users": 2}, 5)
    ban = {**event, "action": "ban", "username": "Mallory", "seq": 7}
    text = shown(s.frame(history([chat(6, "missed one"), ban, chat(8, "missed two")], mode="resume"), 5))
    assert "2 messages in #general while you were away:" in text
    assert text.index("missed one") < text.index("Op banned Mallory") < text.index("missed two")
