"""Unit tests of wschat.commands: addresses, command parsing, escaping, formatting, colour, backoff."""

from __future__ import annotations

import errno
import itertools
from datetime import timedelta, timezone

import pytest

from wschat import commands as c
from wschat.commands import (
    AddressError,
    Formatter,
    Style,
    backoff,
    color_enabled,
    escape,
    escape_lines,
    parse_address,
    parse_line,
)


@pytest.mark.parametrize(
    ("typed", "url", "display"),
    [
        ("", "ws://localhost:8765/", "localhost:8765"),
        ("   ", "ws://localhost:8765/", "localhost:8765"),
        ("192.168.1.100:8765", "ws://192.168.1.100:8765/", "192.168.1.100:8765"),
        ("chat.lan", "ws://chat.lan:8765/", "chat.lan:8765"),
        ("ws://10.0.0.5:9000", "ws://10.0.0.5:9000/", "10.0.0.5:9000"),
        ("WS://Host:9000/", "ws://Host:9000/", "Host:9000"),
        ("wss://chat.example.org", "wss://chat.example.org:443/", "chat.example.org:443"),
        ("wss://chat.example.org:8443/chat", "wss://chat.example.org:8443/chat", "chat.example.org:8443"),
        ("http://192.168.1.100:8765/", "ws://192.168.1.100:8765/", "192.168.1.100:8765"),
        ("https://chat.example.org/", "wss://chat.example.org:443/", "chat.example.org:443"),
        ("[::1]:8765", "ws://[::1]:8765/", "[::1]:8765"),
        ("[::1]", "ws://[::1]:8765/", "[::1]:8765"),
        ("::1", "ws://[::1]:8765/", "[::1]:8765"),
        ("ws://[fe80::1%eth0]:8765", "ws://[fe80::1%eth0]:8765/", "[fe80::1%eth0]:8765"),
    ],
)
def test_address_forms_become_websocket_urls(typed: str, url: str, display: str) -> None:
    address = parse_address(typed)
    assert (address.url, address.display) == (url, display)


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("ftp://host", "not a chat address"),
        ("host:0", "from 1 to 65535"),
        ("host:70000", "from 1 to 65535"),
        ("host:http", "from 1 to 65535"),
        ("host:", "from 1 to 65535"),
        ("bad host", "not a server address"),
        ("hö$t:1", "not a valid host name"),
        ("[::1", "not a valid IPv6 address"),
        ("[zz]:1", "not a valid IPv6 address"),
        ("ws://", "not a server address"),
    ],
)
def test_bad_addresses_are_refused_with_a_reason(typed: str, says: str) -> None:
    with pytest.raises(AddressError, match=says):
        parse_address(typed)


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("", c.Nothing()),
        ("   ", c.Nothing()),
        ("\n", c.Nothing()),
        ("hello", c.Say("hello")),
        ("  spaced  ", c.Say("  spaced  ")),
        ("//not a command", c.Say("/not a command")),
        ("/help", c.Help()),
        ("/HELP", c.Help()),
        ("/?", c.Help()),
        ("/quit", c.Quit()),
        ("/exit", c.Quit()),
        ("/users", c.Users()),
        ("/users #Dev", c.Users("dev")),
        ("/rooms", c.Rooms()),
        ("/join dev", c.Join("dev")),
        ("/join #Dev", c.Join("dev")),
        ("/leave", c.Leave()),
        ("/leave ops", c.Leave("ops")),
        ("/msg bob hi there", c.Msg("bob", "hi there")),
        ('/msg "Ann Lee" hi', c.Msg("Ann Lee", "hi")),
        ("/history", c.History(20)),
        ("/history 5", c.History(5)),
        ("/history 100", c.History(100)),
        ("/dance", c.Unknown("/dance")),
        ("/", c.Unknown("/")),
    ],
)
def test_lines_parse_to_commands(line: str, command: c.Command) -> None:
    assert parse_line(line) == command


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("/join", "Usage: /join ROOM"),
        ("/join no spaces allowed", "cannot be a room"),
        ("/join " + "x" * 40, "cannot be a room"),
        ("/msg", "Usage: /msg USER text"),
        ("/msg bob", "Usage: /msg USER text"),
        ('/msg "Ann Lee hi', "Usage: /msg USER text"),
        ("/history 0", "N from 1 to 100"),
        ("/history 101", "N from 1 to 100"),
        ("/history many", "N from 1 to 100"),
        ("/users bad!room", "cannot be a room"),
    ],
)
def test_misused_commands_say_how_to_use_them(line: str, says: str) -> None:
    command = parse_line(line)
    assert isinstance(command, c.Usage)
    assert says in command.message


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


def fmt(color: bool = False, unicode: bool = True) -> Formatter:
    # 2026-11-25 12:00:00 UTC, shown in a fixed UTC+2 zone
    return Formatter(Style(color, unicode, timezone(timedelta(hours=2))), lambda: 1795608000.0)


CHAT = {
    "type": "chat",
    "room": "general",
    "seq": 3,
    "username": "bob",
    "message": "hi",
    "timestamp": "2026-11-25T19:01:19.123+00:00",
}


def test_chat_line_shows_local_time_sender_and_text() -> None:
    assert fmt().chat(CHAT, mine=False, current="general") == "21:01 bob: hi"


def test_times_are_local_hh_mm_and_fall_back_to_now() -> None:
    f = fmt()
    assert f.hhmm("2026-11-25T23:30:00Z") == "01:30"
    assert f.hhmm("2024-01-14T10:30:00") == "10:30"  # a seed server's naive local time
    assert f.hhmm("yesterday") == "14:00"
    assert f.hhmm(None) == "14:00"


def test_messages_from_another_room_are_tagged_with_it() -> None:
    assert fmt().chat(CHAT, mine=False, current="dev") == "21:01 [#general] bob: hi"


def test_own_messages_have_a_colour_nobody_else_gets() -> None:
    f = fmt(color=True)
    mine = f.chat({**CHAT, "username": "me"}, mine=True, current="general")
    assert "\x1b[1;32mme\x1b[0m" in mine
    others = {f.name(n, mine=False) for n in ("bob", "ann", "zed", "Émile", "you", "me", "x" * 30)}
    assert len(others) == 7 and not any("\x1b[1;32m" in o for o in others)


def test_no_colour_means_no_escape_sequences_at_all() -> None:
    f = fmt(color=False)
    lines = [
        f.chat(CHAT, mine=True, current="general"),
        f.chat(CHAT, mine=False, current="general", history=True),
        f.private({**CHAT, "type": "private", "from": "bob", "to": "me", "id": "p1"}, me="me"),
        f.presence(
            {"type": "user_join", "room": "general", "username": "bob", "message": "bob joined"}, None
        ),
        f.system({"message": "shutting down"}, None),
        f.notice("x", "error"),
        *f.rooms({"rooms": [{"name": "general", "members": 2, "joined": True}]}, "general"),
        *f.help(),
    ]
    assert not any("\x1b" in line for line in lines)


def test_history_lines_are_marked_as_history() -> None:
    line = fmt().chat({**CHAT, "message": "old\nnews"}, mine=False, current="general", history=True)
    assert line == "│ 21:01 bob: old\n│         news"
    assert fmt(unicode=False).chat(CHAT, mine=False, current="general", history=True).startswith("| ")


def test_continuation_lines_are_indented_so_they_cannot_pose_as_messages() -> None:
    line = fmt().chat({**CHAT, "message": "hi\n21:02 alice: fake"}, mine=False, current="general")
    assert line.split("\n")[1] == "        21:02 alice: fake"


def test_names_and_messages_from_the_network_are_escaped_in_every_line() -> None:
    f = fmt()
    evil = "\x1b[2J"
    lines = [
        f.chat({**CHAT, "username": evil, "message": evil}, mine=False, current=None),
        f.private({"from": evil, "to": "me", "message": evil}, me="me"),
        f.presence({"type": "user_leave", "message": evil, "room": evil}, None),
        f.system({"message": evil, "room": evil}, None),
        f.users({"users": [evil], "count": 1, "room": evil}, "me"),
        f.rooms({"rooms": [{"name": evil, "members": 1}]}, None)[1],
    ]
    assert all("\x1b" not in line and "\\x1b[2J" in line for line in lines)


def test_private_messages_say_who_to_whom() -> None:
    f = fmt()
    got = f.private({"from": "bob", "to": "me", "message": "psst", "timestamp": CHAT["timestamp"]}, me="me")
    sent = f.private({"from": "me", "to": "bob", "message": "ok", "timestamp": CHAT["timestamp"]}, me="me")
    assert got == "21:01 🔒 private bob → you: psst"
    assert sent == "21:01 🔒 private you → bob: ok"


def test_ascii_terminals_get_no_emojis() -> None:
    line = fmt(unicode=False).presence({"type": "user_join", "message": "bob joined the chat"}, None)
    assert line == "14:00 --> bob joined the chat"


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


def test_backoff_doubles_from_two_seconds_up_to_thirty() -> None:
    delays = list(itertools.islice(backoff(rand=lambda: 0.5), 7))
    assert delays == [2, 4, 8, 16, 30, 30, 30]


def test_backoff_jitter_stays_within_a_quarter_and_under_the_cap() -> None:
    low = list(itertools.islice(backoff(rand=lambda: 0.0), 6))
    high = list(itertools.islice(backoff(rand=lambda: 0.999999), 6))
    assert low == [1.5, 3.0, 6.0, 12.0, 22.5, 22.5]
    assert high[:4] == pytest.approx([2.5, 5, 10, 20], rel=1e-5)
    assert high[4:] == [30, 30]
    assert all(c.seconds(d) == "2s" for d in (low[0], high[0]))


def test_backoff_with_real_randomness_spreads_clients_out() -> None:
    firsts = {next(backoff()) for _ in range(50)}
    assert len(firsts) > 1 and all(1.5 <= d <= 2.5 for d in firsts)


def test_connection_errors_are_plain_words() -> None:
    assert c.os_error_reason(errno.ECONNREFUSED, "[Errno 111] Connect call failed") == "connection refused"
    assert c.os_error_reason(errno.EHOSTUNREACH, "") == "no route to host"
    multi = "Multiple exceptions: [Errno 111] Connect call failed ('::1', 1), [Errno 111] Connect call failed"
    assert c.os_error_reason(None, multi) == "connection refused"
    assert c.os_error_reason(None, "Something Odd.") == "something odd"


def test_display_width_counts_wide_and_zero_width_characters() -> None:
    assert c.display_width("abc") == 3
    assert c.display_width("你好") == 4
    assert c.display_width("e\u0301") == 1
