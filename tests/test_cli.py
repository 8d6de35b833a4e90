"""The server's command line: every numeric option is checked with a sentence, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import ROOT

from wschat.cli import build_parser, parse_args

NUMERIC = [
    ("--port", ["99999", "-1", "abc", "1.5"]),
    ("--history-size", ["-1", "x"]),
    ("--max-messages-per-room", ["0", "1e3"]),
    ("--max-message-chars", ["0", "-5"]),
    ("--max-frame-bytes", ["10", "99999999999999999999"]),
    ("--rate", ["0", "-1", "nan", "inf"]),
    ("--burst", ["0.5", "abc"]),
    ("--control-rate", ["0", "-inf"]),
    ("--control-burst", ["0", "nan"]),
    ("--flood-strikes", ["0", "2.5"]),
    ("--name-timeout", ["0", "-1", "1e308"]),
    ("--handshake-timeout", ["0", "nan"]),
    ("--max-pending-bytes", ["100", "-1"]),
    ("--slow-client-grace", ["-1", "inf"]),
    ("--max-connections", ["0", "many"]),
    ("--max-connections-per-ip", ["0", "-3"]),
    ("--max-rooms", ["0", "1.0"]),
    ("--history-memory", ["0", "-64"]),
    ("--large-room", ["0", "x"]),
    ("--ping-interval", ["-1", "nan"]),
    ("--max-file-mb", ["0", "nan"]),
    ("--daily-upload-mb", ["-1", "x"]),
    ("--media-quota", ["0", "inf"]),
    ("--workers", ["0", "two"]),
    ("--call-timeout", ["0", "nan", "-1", "7200"]),
    ("--redis-ttl", ["2", "x"]),
    ("--login-wait", ["0", "-1", "nan"]),
    ("--admin-poll", ["0", "inf"]),
]


TEXT_OPTIONS = ("--allow-origin", "--ice-server")  # checked, but not numbers


def test_every_numeric_option_of_the_parser_is_in_this_table() -> None:
    numeric = {
        a.option_strings[-1]
        for a in build_parser()._actions
        if a.type is not None
        and a.option_strings
        and a.option_strings[-1] not in ("--allow-origin", "--ice-server")
    }
    assert numeric == {flag for flag, _ in NUMERIC}


@pytest.mark.parametrize(("flag", "value"), [(f, v) for f, values in NUMERIC for v in values])
def test_a_bad_number_is_one_sentence_and_exit_2(flag: str, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args([f"{flag}={value}"])  # = so that argparse takes "-1" as a value
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: {value!r} is not a" in err


def test_workers_need_redis_and_a_fixed_port(capsys) -> None:
    for args, words in (
        (["--workers", "2", "--port", "8000"], "--workers needs --redis"),
        (
            ["--workers", "2", "--port", "0", "--redis", "redis://127.0.0.1/0"],
            "--workers needs a fixed --port",
        ),
    ):
        with pytest.raises(SystemExit) as info:
            parse_args(args)
        assert info.value.code == 2 and words in capsys.readouterr().err
    opts = parse_args(["--workers", "3", "--port", "8000", "--redis", "redis://127.0.0.1/0"])
    assert (opts.workers, opts.redis) == (3, "redis://127.0.0.1/0")


def test_good_numbers_are_taken() -> None:
    opts = parse_args(["--port", "0", "--rate", "0.5", "--ping-interval", "0", "--history-size", "0"])
    assert (opts.port, opts.rate, opts.ping_interval, opts.history_size) == (0, 0.5, 0.0, 0)
    assert parse_args(["--port", "65535"]).port == 65535


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--port", "99999"], {}, "argument --port: '99999' is not a port number; use 0 to 65535"),
        ([], {"CHAT_PORT": "abc"}, "CHAT_PORT='abc' is not a port number"),
        ([], {"CHAT_PORT": "-1"}, "CHAT_PORT='-1' is not a port number"),
    ],
)
def test_the_server_refuses_a_bad_port_without_a_traceback(args: list[str], env: dict, words: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "chat-server.py"), "--db", ":memory:", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )
    assert proc.returncode == 2
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
