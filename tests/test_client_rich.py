"""The terminal client's rich messaging (wschat.clientrich): commands, event lines, rendering."""

from __future__ import annotations

from test_clientstate import EPOCH, RENDER, accepted, chat, history, make, online, sent, shown

from wschat import display as d
from wschat.commands import DeleteMsg, EditMsg, React, Reply, Usage, parse_line


def event(kind: str, seq: int, target: int, user: str = "bob", **extra: object) -> dict:
    return {"type": kind, "room": "general", "seq": seq, "target": target, "username": user,
            "timestamp": "2026-11-25T19:02:00.000+00:00", **extra}  # fmt: skip


def test_the_commands_parse_with_the_number_shown_before_a_message() -> None:
    assert parse_line("/react 12 👍") == React(12, "👍")
    assert parse_line("/react [12] -👍") == React(12, "👍", remove=True)
    assert parse_line("/reply 3 yes indeed") == Reply(3, "yes indeed")
    assert parse_line("/edit 4 fixed") == EditMsg(4, "fixed")
    assert parse_line("/edit fixed typo") == EditMsg(None, "fixed typo")
    assert parse_line("/delete 5") == DeleteMsg(5)
    for bad in ("/react 12", "/react x 👍", "/reply 3", "/delete", "/delete 5 6", "/edit"):
        assert isinstance(parse_line(bad), Usage), bad


def test_messages_show_their_number_quote_reactions_and_edited_mark() -> None:
    s = make()
    quoted = chat(2, "yes", reply_to=1, reply_preview={"username": "carol", "message": "coffee?"})
    text = shown(s.frame(quoted, 0))
    assert "↱ carol: coffee?" in text and "[2] bob: yes" in text
    text = shown(s.frame(chat(3, "hi", reactions={"👍": ["a", "b"], "🎉": ["c"]}, edited_at="x"), 0))
    assert "[3] bob: hi (edited)" in text and "👍 2  🎉 1" in text


def test_reaction_edit_and_delete_events_are_lines_naming_the_message_once() -> None:
    s = make()
    online(s, [chat(1, "coffee?")])
    text = shown(s.frame(event("reaction", 2, 1, key="☕", removed=False), 0))
    assert 'bob reacted ☕ to [1] "coffee?"' in text
    assert s.frame(event("reaction", 2, 1, key="☕", removed=False), 0) == []  # once
    assert "bob edited [1]: tea?" in shown(s.frame(event("edit", 3, 1, message="tea?"), 0))
    assert 'bob deleted [1] "tea?"' in shown(s.frame(event("delete", 4, 1), 0))


def test_a_resume_shows_missed_events_after_the_messages_and_moves_the_position() -> None:
    s = make()
    online(s, [chat(1, "coffee?")])
    s.closed()
    s.opened(5)
    s.pump(5)
    out = s.frame(accepted(), 5)
    out += s.frame({"type": "joined", "room": "general", "epoch": EPOCH, "online_users": 2}, 5)
    missed = [event("reaction", 2, 1, key="☕", removed=False), chat(3, "more")]
    out += s.frame(history(missed, mode="resume"), 5)
    text = shown(out)
    assert text.index("[3] bob: more") < text.index("bob reacted ☕ to [1]")
    assert s.views["general"].seen.top == 3


def test_recent_history_position_includes_the_events_folded_into_it() -> None:
    s = make()
    online(s)
    s.frame(history([chat(1)], last_seq=4), 0)
    assert s.views["general"].seen.top == 4


def test_react_edit_delete_send_frames_and_edit_alone_takes_your_last_message() -> None:
    s = make()
    online(s)
    s.frame(chat(7, "mine", user="alice"), 0)
    assert sent(s.line("/react 7 👍", 0)) == [
        {"type": "react", "room": "general", "target": 7, "key": "👍"},
        {"type": "read", "room": "general", "seq": 7},  # typing a line: what was shown is read
    ]
    assert sent(s.line("/edit better", 0)) == [
        {"type": "edit", "room": "general", "target": 7, "message": "better"}
    ]
    assert sent(s.line("/delete 7", 0)) == [{"type": "delete", "room": "general", "target": 7}]
    s.line("/reply 7 answer", 0)
    (frame,) = s.pump(1)[0]
    assert frame["reply_to"] == 7 and frame["message"] == "answer" and "client_msg_id" in frame


def test_edit_without_a_message_of_yours_says_how() -> None:
    s = make()
    online(s)
    assert "You have sent no message in #general to edit" in shown(s.line("/edit oops", 0))


def test_help_lists_the_rich_commands() -> None:
    s = make()
    text = shown(s.line("/help", 0))
    for cmd in ("/react", "/reply", "/edit", "/delete"):
        assert cmd in text


def test_typing_shows_on_the_prompt_of_that_room_only() -> None:
    s = make()
    online(s)
    s.frame({"type": "typing", "room": "general", "users": ["bob"], "count": 1}, 0)
    assert s.prompt() == "#general (bob is typing…)> "
    s.frame({"type": "typing", "room": "general", "users": ["bob", "ann"], "count": 2}, 0)
    assert s.prompt() == "#general (bob and ann are typing…)> "
    s.frame({"type": "typing", "room": "general", "users": ["a"] * 10, "count": 40}, 0)
    assert s.prompt() == "#general (40 people are typing…)> "
    s.frame({"type": "typing", "room": "dev", "users": [], "count": 0}, 0)
    s.frame({"type": "typing", "room": "general", "users": ["\x1b[31mx"], "count": 1}, 0)
    assert "\x1b" not in s.prompt()
    s.frame({"type": "typing", "room": "general", "users": [], "count": 0}, 0)
    assert s.prompt() == "#general> "


def test_a_mention_is_highlighted_with_a_bell_when_live_only() -> None:
    from wschat.render import Renderer, Style

    colour = Renderer(Style(color=True), clock=lambda: 0.0)
    s = make()
    online(s)
    assert "\a" in shown(s.frame(chat(1, "hey alice", mentions=["alice"], mentions_you=True), 0), colour)
    assert "\a" not in shown(s.frame(chat(2, "plain"), 0), colour)
    old = shown(s.frame(history([chat(3, "old", mentions=["alice"])]), 0), colour)
    assert "\a" not in old


def test_unread_counts_messages_after_the_read_position_and_typing_marks_read() -> None:
    s = make()
    online(s, [chat(1), chat(2, "hi alice", mentions=["alice"]), chat(3)])
    s.frame({"type": "read_position", "room": "general", "seq": 1}, 0)
    assert "#general: 2 (1 mention)" in shown(s.line("/unread", 0))
    out = s.line("hello", 0)
    assert {"type": "read", "room": "general", "seq": 3} in sent(out)
    assert "No unread messages." in shown(s.line("/unread", 0))
    s.frame(chat(4, room="dev"), 0)
    assert "#dev: 1" in shown(s.line("/unread", 0))


def test_search_sends_the_words_shows_results_tagged_and_pages_on() -> None:
    s = make()
    online(s)
    assert sent(s.line("/search café noir", 0)) == [{"type": "search", "query": "café noir"}]
    results = [chat(9, "un café noir", room="dev"), chat(4, "café noir")]
    frame = {"type": "search_results", "query": "café noir", "results": results, "more": True}
    text = shown(s.frame(frame, 0))
    assert 'Messages with "café noir", newest first (2):' in text
    assert "[#dev] [9] bob: un café noir" in text and "more: /search" in text
    assert sent(s.line("/search", 0)) == [{"type": "search", "query": "café noir", "before": 104}]
    s.frame({"type": "search_results", "query": "café noir", "results": [], "more": False}, 0)
    assert "Nothing more to show" in shown(s.line("/search", 0))
    assert s.unread == {}


def test_a_live_reaction_or_edit_revises_the_message_shown_live_with_the_line_as_fallback() -> None:
    s = make()
    online(s)
    s.frame(chat(1, "coffee?", reactions={"☕": ["carol"]}), 0)
    out = s.frame(event("reaction", 2, 1, key="☕", removed=False), 0)
    assert len(out) == 1 and isinstance(out[0].event, d.Revised)
    rev = out[0].event
    assert rev.key == ("general", 1) and rev.message.reactions == (("☕", 2),)
    assert 'bob reacted ☕ to [1] "coffee?"' in RENDER.render(rev.instead)
    rev = s.frame(event("reaction", 3, 1, key="☕", user="carol", removed=True), 0)[0].event
    assert rev.message.reactions == (("☕", 1),) and rev.instead is None  # taken back: no line
    rev = s.frame(event("reaction", 4, 1, key="☕", removed=True), 0)[0].event
    assert rev.message.reactions == ()
    rev = s.frame(event("edit", 5, 1, message="tea?"), 0)[0].event
    assert "[1] bob: tea? (edited)" in RENDER.render(rev)
    out = s.frame(event("delete", 6, 1), 0)  # a delete stays a line
    assert not isinstance(out[0].event, d.Revised)


def test_a_message_from_history_is_changed_by_a_line_not_revised() -> None:
    s = make()
    online(s, [chat(1, "coffee?")])
    assert "reacted ☕ to [1]" in shown(s.frame(event("reaction", 2, 1, key="☕", removed=False), 0))
