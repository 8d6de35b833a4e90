"""Unit tests of wschat.commands: command parsing and the reconnect schedule."""

from __future__ import annotations

import itertools

import pytest

from wschat import commands as c
from wschat.commands import backoff, parse_line
from wschat.render import seconds


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


def test_backoff_doubles_from_two_seconds_up_to_thirty() -> None:
    delays = list(itertools.islice(backoff(rand=lambda: 0.5), 7))
    assert delays == [2, 4, 8, 16, 30, 30, 30]


def test_backoff_jitter_stays_within_a_quarter_and_under_the_cap() -> None:
    low = list(itertools.islice(backoff(rand=lambda: 0.0), 6))
    high = list(itertools.islice(backoff(rand=lambda: 0.999999), 6))
    assert low == [1.5, 3.0, 6.0, 12.0, 22.5, 22.5]
    assert high[:4] == pytest.approx([2.5, 5, 10, 20], rel=1e-5)
    assert high[4:] == [30, 30]
    assert all(seconds(d) == "2s" for d in (low[0], high[0]))


def test_backoff_with_real_randomness_spreads_clients_out() -> None:
    firsts = {next(backoff()) for _ in range(50)}
    assert len(firsts) > 1 and all(1.5 <= d <= 2.5 for d in firsts)
