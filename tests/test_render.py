"""Unit tests of wschat.render: escaping, how each display event looks, colour, hyperlinks."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta, timezone

import pytest

from wschat.display import (
    Announcement,
    ChatMessage,
    HelpText,
    HistoryPage,
    Notice,
    Presence,
    PrivateMessage,
    RoomInfo,
    RoomJoined,
    RoomList,
    UserList,
)
from wschat.render import (
    Renderer,
    Style,
    color_enabled,
    display_width,
    escape,
    escape_lines,
    linkify,
    links_enabled,
    rows,
)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text", "plain text"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("bell\x07", "bell\\x07"),
        ("c1 \x9b31m", "c1 \\x9b31m"),
        ("del\x7f", "del\\x7f"),
        ("two\nlines", "two\\nlines"),
        ("over\rwrite", "over\\rwrite"),
        ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
        ("iso\u2066late", "iso\\u2066late"),
        ("sep\u2028arator", "sep\\u2028arator"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("émoji 👨‍👩‍👧 你好", "émoji 👨‍👩‍👧 你好"),  # joiners inside emoji stay
        (None, ""),
        (42, "42"),
    ],
)
def test_escape_shows_control_characters_as_text(raw: object, shown: str) -> None:
    assert escape(raw) == shown


def test_escaped_text_never_contains_a_control_character() -> None:
    every = (
        "".join(chr(i) for i in range(0x00, 0xA0)) + "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    )
    out = escape(every)
    assert all(ch.isprintable() for ch in out)


def test_message_bodies_keep_their_lines_but_each_line_is_escaped() -> None:
    assert escape_lines("one\r\ntwo\n\x1b[2Jthree\tx") == ["one", "two", "\\x1b[2Jthree    x"]


def renderer(color: bool = False, unicode: bool = True, links: bool = False) -> Renderer:
    # 2026-11-25 12:00:00 UTC, shown in a fixed UTC+2 zone
    return Renderer(Style(color, unicode, timezone(timedelta(hours=2)), links), lambda: 1795608000.0)


STAMP = "2026-11-25T19:01:19.123+00:00"
BOB = ChatMessage("bob", "hi", STAMP)


def test_chat_line_shows_local_time_sender_and_text() -> None:
    assert renderer().render(BOB) == "21:01 bob: hi"


def test_times_are_local_hh_mm_and_fall_back_to_now() -> None:
    r = renderer()
    assert r.hhmm("2026-11-25T23:30:00Z") == "01:30"
    assert r.hhmm("2024-01-14T10:30:00") == "10:30"  # a seed server's naive local time
    assert r.hhmm("yesterday") == "14:00"
    assert r.hhmm(None) == "14:00"


def test_messages_from_another_room_are_tagged_with_it() -> None:
    assert renderer().render(replace(BOB, tag="general")) == "21:01 [#general] bob: hi"


def test_own_messages_have_a_colour_nobody_else_gets() -> None:
    r = renderer(color=True)
    assert "\x1b[1;32mme\x1b[0m" in r.render(ChatMessage("me", "hi", STAMP, mine=True))
    others = {r.name(n, mine=False) for n in ("bob", "ann", "zed", "Émile", "you", "me", "x" * 30)}
    assert len(others) == 7 and not any("\x1b[1;32m" in o for o in others)


EVERY_KIND = [
    BOB,
    replace(BOB, mine=True),
    PrivateMessage("bob", "me", "psst", STAMP),
    Presence(True, "bob joined the chat", 2, "dev", STAMP),
    Announcement("shutting down"),
    Notice("x", "error"),
    HistoryPage("Recent messages in #general (1):", (BOB,), "end of history"),
    HistoryPage("1 message in #general while you were away:", (BOB,)),
    RoomJoined("dev", 2, ("bob", "me"), "me", switched=True),
    UserList("general", 2, ("bob", "me"), "me"),
    RoomList((RoomInfo("general", 2, True),), "general"),
    HelpText(),
]


def test_no_colour_means_no_escape_sequences_at_all() -> None:
    r = renderer(color=False, links=True)
    lines = [r.render(e) for e in EVERY_KIND] + [r.render(ChatMessage("bob", "see https://example.org/"))]
    assert not any("\x1b" in line for line in lines)


def test_history_lines_are_marked_as_history() -> None:
    page = HistoryPage(
        "Recent messages in #general (1):", (replace(BOB, text="old\nnews"),), "end of history"
    )
    assert renderer().render(page).split("\n") == [
        "14:00 📜 Recent messages in #general (1):",
        "│ 21:01 bob: old",
        "│         news",
        "── end of history ──",
    ]
    assert renderer(unicode=False).render(page).split("\n")[1].startswith("| ")


def test_messages_missed_while_away_are_ordinary_lines_under_a_heading() -> None:
    page = HistoryPage("2 messages in #general while you were away:", (BOB, replace(BOB, text="again")))
    assert renderer().render(page).split("\n") == [
        "14:00 📜 2 messages in #general while you were away:",
        "21:01 bob: hi",
        "21:01 bob: again",
    ]


def test_continuation_lines_are_indented_so_they_cannot_pose_as_messages() -> None:
    line = renderer().render(replace(BOB, text="hi\n21:02 alice: fake"))
    assert line.split("\n")[1] == "        21:02 alice: fake"


def test_text_from_the_network_is_escaped_in_every_kind_of_line() -> None:
    r = renderer(color=True, links=True)
    evil = "\x1b[2J"
    lines = [
        r.render(ChatMessage(evil, evil, STAMP, tag=evil)),
        r.render(PrivateMessage(evil, "me", evil)),
        r.render(Presence(False, evil, None, evil)),
        r.render(Announcement(evil, evil)),
        r.render(Notice(f'Not sent ("{evil}"): {evil}', "error")),
        r.render(HistoryPage(evil, (ChatMessage(evil, evil),), evil)),
        r.render(RoomJoined(evil, 1, (evil,), "me", switched=True)),
        r.render(UserList(evil, 1, (evil,), "me")),
        r.render(RoomList((RoomInfo(evil, 1, False),), None)),
    ]
    for line in lines:
        assert "\x1b[2J" not in line and "\\x1b[2J" in line, line


def test_private_messages_say_who_to_whom() -> None:
    r = renderer()
    assert r.render(PrivateMessage("bob", "me", "psst", STAMP)) == "21:01 📨 private bob → you: psst"
    assert r.render(PrivateMessage("me", "bob", "ok", STAMP, mine=True)) == "21:01 📨 private you → bob: ok"
    # end-to-end encrypted: a lock; a verified contact a check mark; changed keys said on the line
    assert r.render(PrivateMessage("bob", "me", "hi", STAMP, lock="e2ee")) == "21:01 🔒 private bob → you: hi"
    verified = PrivateMessage("bob", "me", "hi", STAMP, lock="verified")
    assert r.render(verified) == "21:01 🔒 private bob ✔ → you: hi"


def test_ascii_terminals_get_no_emojis() -> None:
    line = renderer(unicode=False).render(Presence(True, "bob joined the chat"))
    assert line == "14:00 --> bob joined the chat"


def test_presence_shows_the_servers_sentence_and_the_count() -> None:
    line = renderer().render(Presence(False, "bob left #dev", 3, "dev", STAMP))
    assert line == "21:01 [#dev] 🚪 bob left #dev (3 online)"


def test_joining_a_room_names_who_is_there() -> None:
    r = renderer()
    assert r.render(RoomJoined("dev", 2, ("bob", "me"), "me", switched=True)) == (
        "14:00 ✅ Now talking in #dev - 2 online: bob, me"
    )
    assert r.render(RoomJoined("dev", None, (), "me", switched=False)) == "14:00 👥 #dev"


def test_room_list_marks_the_current_and_joined_rooms() -> None:
    rooms = (RoomInfo("dev", 2, True), RoomInfo("general", 3, True), RoomInfo("ops", 1, False))
    assert renderer().render(RoomList(rooms, "dev")).split("\n") == [
        "14:00 🏠 3 rooms:",
        "   * #dev (2 online, current)",
        "     #general (3 online, joined)",
        "     #ops (1 online)",
    ]


# ---------------------------------------------------------------- hyperlinks


def osc8(url: str) -> str:
    return f"\x1b]8;;{url}\x1b\\{url}\x1b]8;;\x1b\\"


def test_http_and_https_urls_become_osc8_hyperlinks_when_escapes_are_on() -> None:
    r = renderer(color=True, links=True)
    line = r.render(ChatMessage("bob", "see https://example.org/a?b=1#c and http://lan:8765/.", STAMP))
    assert osc8("https://example.org/a?b=1#c") in line
    assert osc8("http://lan:8765/") + "." in line  # the full stop ends the sentence, not the link


def test_links_keep_a_closing_bracket_that_belongs_to_them() -> None:
    assert linkify("(https://en.wikipedia.org/wiki/Foo_(bar))") == (
        "(" + osc8("https://en.wikipedia.org/wiki/Foo_(bar)") + ")"
    )


@pytest.mark.parametrize(
    "text",
    ["javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "ftp://example.org/", "mailto:a@b.c"],
)
def test_other_schemes_never_become_links(text: str) -> None:
    assert "\x1b]8" not in renderer(color=True, links=True).render(ChatMessage("bob", text))


def test_no_links_without_colour_or_when_turned_off() -> None:
    msg = ChatMessage("bob", "https://example.org/")
    assert "\x1b]8" not in renderer(color=False, links=True).render(msg)
    assert "\x1b]8" not in renderer(color=True, links=False).render(msg)


@pytest.mark.parametrize(
    "evil",
    [
        "https://example.org/\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
        "https://example.org/\x07\x1b[2J",
        "https://exa\x1bmple.org/",
        "https://example.org/\u202eevil",
        "https://example.org/\x9b31m",
    ],
)
def test_a_link_can_never_carry_or_end_in_an_escape_sequence_from_the_network(evil: str) -> None:
    line = renderer(color=True, links=True).render(ChatMessage("bob", evil))
    # Every ESC left is one of ours: colour (ESC [ ... m) or an OSC 8 whose URL is printable ASCII.
    ours = re.compile(r"\x1b\[[0-9;]*m|\x1b\]8;;[!-~]*\x1b\\")
    rest = ours.sub("", line)
    assert "\x1b" not in rest and "\x07" not in rest and "\x9b" not in rest and "\u202e" not in rest
    for url in re.findall(r"\x1b\]8;;([!-~]*)\x1b\\", line):
        assert "\\" not in url and (url == "" or url.startswith(("http://", "https://")))


@pytest.mark.parametrize(
    ("env", "tty", "flag", "expected"),
    [
        ({}, True, False, True),
        ({}, False, False, False),
        ({"NO_COLOR": "1"}, True, False, False),
        ({"NO_COLOR": ""}, True, False, True),  # no-color.org: set and not empty
        ({}, True, True, False),
        ({"TERM": "dumb"}, True, False, False),
    ],
)
def test_colour_only_on_a_terminal_without_no_color(
    env: dict[str, str], tty: bool, flag: bool, expected: bool
) -> None:
    assert color_enabled(env, tty, flag) is expected


def test_links_only_where_escape_sequences_are_wanted_and_not_on_the_linux_console() -> None:
    assert links_enabled({"TERM": "xterm-256color"}, color=True)
    assert not links_enabled({"TERM": "xterm-256color"}, color=False)
    assert not links_enabled({"TERM": "linux"}, color=True)


def test_display_width_counts_wide_and_zero_width_characters() -> None:
    assert display_width("abc") == 3
    assert display_width("你好") == 4
    assert display_width("e\u0301") == 1


def test_rows_counts_wrapped_lines_without_colour_codes_or_hyperlinks() -> None:
    painted = Renderer(Style(color=True, links=True), clock=lambda: 0.0).paint("x" * 10, "32")
    assert rows(painted, 10) == 1  # the codes take no column
    assert rows(linkify("see https://example.com/a"), 80) == 1
    assert rows("x" * 11, 10) == 2 and rows("x" * 20, 10) == 2 and rows("x" * 21, 10) == 3
    assert rows("one\n\nthree", 80) == 3  # an empty line still takes a row
    assert rows("☕" * 5, 10) == 1 and rows("☕" * 6, 10) == 2  # wide characters take two columns
    assert rows("hi\a", 2) == 1  # the bell takes none
