"""End-to-end: the real `chat-client.py` in a pseudo-terminal against a real server.

The other side of each conversation is a plain websockets client (support.Client). Waits are
pexpect's `expect` with a timeout, in async mode so an in-process server keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

from support import ROOT, ServerProcess, logged_in, start_server
from terminal import CLIENT, ENV, Term

from wschat.server import ChatServer


async def login_term(terms: list[Term], port: int, name: str, *args: str) -> Term:
    t = Term(f"127.0.0.1:{port}", "--username", name, *args)
    terms.append(t)
    await t.expect(f"Welcome, {name}!")
    await t.expect("#general> ")
    return t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_prompts_for_address_and_name_and_asks_again_when_the_name_is_taken(
    server: ChatServer, terms: list[Term]
) -> None:
    bob = await logged_in(server.port, "Bob")
    t = Term("--browse", "0")  # no mDNS query onto the real LAN (tests/test_lan_discovery.py browses)
    terms.append(t)
    await t.expect("Welcome to WebSocket Chat!")
    await t.expect("Enter server address (default: localhost:8765): ")
    t.type(f"127.0.0.1:{server.port}")
    await t.expect("Enter your username: ")
    t.type("BOB")  # the same name as Bob's, by the server's rules
    await t.expect("The name 'Bob' is taken")
    await t.expect("Enter your username: ")
    t.type("alice")
    await t.expect("Welcome, alice!")
    joined = await bob.expect("user_join", username="alice")
    assert joined["users_list"] == ["Bob", "alice"]
    t.type("/quit")
    assert await t.exit_status() == 0
    await bob.close()


async def test_a_refused_command_line_name_is_asked_for_again_on_a_terminal(
    server: ChatServer, terms: list[Term]
) -> None:
    bob = await logged_in(server.port, "bob")
    t = Term(f"127.0.0.1:{server.port}", "--username", "Bob")
    terms.append(t)
    await t.expect("The name 'bob' is taken")
    await t.expect("Enter your username: ")
    t.type("carol")
    await t.expect("Welcome, carol!")
    t.type("/quit")
    assert await t.exit_status() == 0
    await bob.close()


async def test_chats_with_a_websocket_client_in_rooms_and_privately(
    server: ChatServer, terms: list[Term]
) -> None:
    bob = await logged_in(server.port, "bob")
    t = await login_term(terms, server.port, "alice")

    t.type("hello bob")
    got = await bob.expect("chat", username="alice")
    assert (got["message"], got["room"]) == ("hello bob", "general")
    await bob.chat("hi alice")
    await t.expect("bob: hi alice")

    t.type("/users")
    await t.expect("2 online in #general: bob, alice")

    t.type("/join Dev")
    await t.expect("Now talking in #dev")
    await t.expect("#dev> ")
    await bob.send({"type": "join", "room": "dev"})
    await bob.expect("history", room="dev")
    t.type("in dev now")
    got = await bob.expect("chat", username="alice", room="dev")
    assert got["message"] == "in dev now"
    await bob.chat("over in general")  # a room alice is in but not talking in: tagged
    await t.expect("[#general] [3] bob: over in general")

    t.type("/rooms")
    await t.expect_re(r"\* #dev \(2 online, current\)")
    await t.expect("#general (2 online, joined)")

    t.type("/msg bob just between us")
    got = await bob.expect("private")
    assert (got["from"], got["to"], got["message"]) == ("alice", "bob", "just between us")
    await bob.send({"type": "private", "to": "alice", "message": "sure"})
    await t.expect("bob → you: sure")

    t.type("/leave")
    await t.expect("You left #dev. Now talking in #general.")
    await bob.expect("user_leave", room="dev", username="alice")
    t.type("/frobnicate")
    await t.expect("Unknown command /frobnicate; type /help for the list.")
    t.type("/help")
    await t.expect("/msg USER text")

    t.type("/quit")
    assert await t.exit_status() == 0
    await bob.expect("user_leave", room="general", username="alice")
    assert t.count("bob: hi alice") == 1
    await bob.close()


async def test_control_characters_from_the_network_are_shown_escaped_not_executed(
    server: ChatServer, terms: list[Term]
) -> None:
    bob = await logged_in(server.port, "bob")
    t = await login_term(terms, server.port, "alice")
    await bob.chat("\x1b[31mRED\x1b[0m \x1b]0;pwned\x07 \u202eevil")
    await t.expect(r"bob: \x1b[31mRED\x1b[0m \x1b]0;pwned\x07 \u202eevil")
    t.type("/quit")
    assert await t.exit_status() == 0
    out = t.output()
    assert "\x1b[31m" not in out and "\x1b]0;" not in out and "\u202e" not in out
    await bob.close()


async def test_incoming_message_is_printed_above_the_half_typed_line_which_is_redrawn(
    server: ChatServer, terms: list[Term]
) -> None:
    bob = await logged_in(server.port, "bob")
    t = await login_term(terms, server.port, "alice")
    t.p.send("half-typed")
    await t.expect("#general> half-typed")
    await bob.chat("interrupting")
    await t.expect("\r\x1b[K")  # the input line is cleared first...
    await t.expect("bob: interrupting\r\n")  # ...the message gets its own line...
    await t.expect("#general> half-typed")  # ...and the typing is put back
    t.p.send(" and finished\r")
    got = await bob.expect("chat", username="alice")
    assert got["message"] == "half-typed and finished"
    t.p.sendintr()  # Ctrl+C
    assert await t.exit_status() == 0
    await bob.close()


async def test_history_is_marked_shown_once_and_pages_back_with_history_command(
    terms: list[Term],
) -> None:
    server = await start_server("--history-size", "3")
    try:
        bob = await logged_in(server.port, "bob")
        for i in range(1, 7):
            await bob.chat(f"old message {i}")
            await bob.expect("chat", message=f"old message {i}")
        t = await login_term(terms, server.port, "alice")
        await t.expect("Recent messages in #general (3):")
        await t.expect("end of history")
        assert re.search(r"│ \d\d:\d\d \[\d+\] bob: old message 4", t.output())
        t.type("/history 2")
        await t.expect("Older messages in #general (2):")
        await t.expect("bob: old message 3")
        await t.expect("end of older messages")
        t.type("/history")
        await t.expect("bob: old message 1")
        await t.expect("beginning of #general")
        t.type("/history")
        await t.expect("there are no older messages in #general")
        t.type("/quit")
        assert await t.exit_status() == 0
        for i in range(1, 7):
            assert t.count(f"bob: old message {i}\r\n") == 1, i
        await bob.close()
    finally:
        await server.stop()


async def test_unreachable_server_is_one_plain_sentence_then_retries(terms: list[Term]) -> None:
    port = free_port()
    t = Term(f"127.0.0.1:{port}", "--username", "alice")
    terms.append(t)
    await t.expect(f"Cannot reach 127.0.0.1:{port}: connection refused - reconnecting in 2s (attempt 1)")
    await t.expect(f"Cannot reach 127.0.0.1:{port}: connection refused - reconnecting in ", timeout=8)
    await t.expect("(attempt 2)")
    t.p.sendintr()
    assert await t.exit_status() == 0
    assert "Traceback" not in t.output()


async def test_reconnects_after_restart_and_sends_what_was_typed_offline_exactly_once(
    tmp_path: Path, terms: list[Term]
) -> None:
    port = free_port()
    db = str(tmp_path / "chat.db")
    proc = ServerProcess(db=db, port=port).wait_ready()
    try:
        t = await login_term(terms, port, "alice")
        other = await login_term(terms, port, "carol")  # a second terminal, reading along
        t.type("before the restart")
        await t.expect("alice: before the restart")
        await other.expect("alice: before the restart")

        assert await proc.astop() == 0
        await t.expect("Connection lost - reconnecting in 2s (attempt 1)")
        await other.expect("Connection lost - reconnecting in 2s (attempt 1)")
        t.type("typed while down 1")
        await t.expect('"typed while down 1" is queued and goes out')
        t.type("typed while down 2")
        await t.expect('"typed while down 2" is queued (2 waiting)')

        proc = ServerProcess(db=db, port=port).wait_ready()
        await t.expect("Reconnected as alice.", timeout=20)
        await t.expect("alice: typed while down 1")
        await t.expect("alice: typed while down 2")
        await t.expect("#general> ")

        bob = await logged_in(port, "bob")
        messages = [m["message"] for m in bob.seen if m["type"] == "history" for m in m["messages"]]
        assert messages == ["before the restart", "typed while down 1", "typed while down 2"]
        t.type("after the restart")
        got = await bob.expect("chat", username="alice")
        assert got["message"] == "after the restart"
        await bob.chat("welcome back")
        await t.expect("bob: welcome back")

        await other.expect("alice: typed while down 2", timeout=20)
        await other.expect("alice: after the restart")
        t.type("/quit")
        other.type("/quit")
        assert await t.exit_status() == 0
        assert await other.exit_status() == 0
        for text in ("before the restart", "typed while down 1", "typed while down 2", "after the restart"):
            assert t.count(f"alice: {text}") == 1, text
            assert other.count(f"alice: {text}") == 1, text
        await bob.close()
    finally:
        await proc.astop()


async def run_piped(port: int, stdin: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        CLIENT,
        f"127.0.0.1:{port}",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_piped_input_sends_each_line_and_exits_zero_after_the_acks(server: ChatServer) -> None:
    bob = await logged_in(server.port, "bob")
    script = "hi\n/join ops\nin ops\n/quit\nafter quitting\n"
    status, out, err = await run_piped(server.port, script, "--username", "bot")
    assert status == 0, err
    got = await bob.expect("chat", username="bot")
    assert (got["message"], got["room"]) == ("hi", "general")
    assert "bot: in ops" in out  # its own echo: the server stored it before the client quit
    assert "\x1b" not in out  # no colour or cursor movement when output is not a terminal
    assert "after quitting" not in out
    # the second message went to #ops, where bob is not
    await bob.send({"type": "join", "room": "ops"})
    history = await bob.expect("history", room="ops")
    assert [m["message"] for m in history["messages"]] == ["in ops"]
    await bob.close()


async def test_piped_input_end_of_input_acts_like_quit(server: ChatServer) -> None:
    bob = await logged_in(server.port, "bob")
    status, out, _ = await run_piped(server.port, "one\ntwo", "--username", "bot")
    assert status == 0
    assert [(await bob.expect("chat", username="bot"))["message"] for _ in range(2)] == ["one", "two"]
    assert "Goodbye!" in out
    await bob.close()


async def test_piped_input_with_a_refused_name_exits_one_with_the_reason(server: ChatServer) -> None:
    bob = await logged_in(server.port, "bob")
    status, _, err = await run_piped(server.port, "hi\n", "--username", "Bob")
    assert status == 1
    assert "The server refused the name 'Bob': The name 'bob' is taken" in err
    await bob.close()


async def test_bad_address_on_the_command_line_exits_two() -> None:
    status, _, err = await run_piped(0, "", "--username", "x")  # port 0 is not a port
    assert status == 2
    assert "The port must be a number from 1 to 65535" in err


async def test_piped_input_to_an_unreachable_server_gives_up_after_the_flush_timeout() -> None:
    port = free_port()
    status, out, _ = await run_piped(port, "hi\n", "--username", "bot", "--flush-timeout", "1")
    assert status == 1
    assert f"Cannot reach 127.0.0.1:{port}: connection refused - reconnecting in 2s (attempt 1)" in out
    assert "(attempt 3)" not in out  # the schedule was kept while waiting, no busy retrying
    assert "1 message(s) could not be sent" in out


async def test_a_private_message_typed_while_down_waits_for_its_recipient_after_a_restart(
    tmp_path: Path, terms: list[Term]
) -> None:
    port = free_port()
    db = str(tmp_path / "chat.db")
    proc = ServerProcess(db=db, port=port).wait_ready()
    try:
        t = await login_term(terms, port, "alice")
        assert await proc.astop() == 0
        await t.expect("Connection lost - reconnecting in 2s (attempt 1)")
        t.type("/msg bob pm while down")
        await t.expect('"pm while down" is queued and goes out')

        proc = ServerProcess(db=db, port=port).wait_ready()
        await t.expect("Reconnected as alice.", timeout=20)
        await t.expect(
            'bob is not online yet: "pm while down" is kept; it goes out when bob comes back online'
        )
        await t.expect("(/drop forgets it)")
        bob = await logged_in(port, "bob")  # alice sees bob join #general: the message goes out
        got = await bob.expect("private")
        assert (got["from"], got["message"]) == ("alice", "pm while down")
        await t.expect("you → bob: pm while down")
        t.type("/quit")
        assert await t.exit_status() == 0  # nothing left unsent
        assert "Not sent" not in t.output()
        assert t.count("you → bob: pm while down") == 1
        await bob.chat("thanks")  # anything after the private message: it came exactly once
        await bob.expect("chat", message="thanks")
        assert [m["message"] for m in bob.seen if m["type"] == "private"] == ["pm while down"]
        await bob.close()
    finally:
        await proc.astop()


async def test_end_of_input_at_the_name_prompt_ends_with_the_reason_not_goodbye(
    server: ChatServer, terms: list[Term]
) -> None:
    t = Term(f"127.0.0.1:{server.port}")
    terms.append(t)
    await t.expect("Enter your username: ")
    t.p.sendeof()  # Ctrl+D
    assert await t.exit_status() == 1
    out = t.output()
    assert "No username given (end of input)." in out
    assert "Goodbye!" not in out


async def test_links_in_messages_are_terminal_hyperlinks_and_escapes_stay_visible(
    server: ChatServer, terms: list[Term]
) -> None:
    bob = await logged_in(server.port, "bob")
    env = {k: v for k, v in ENV.items() if k != "NO_COLOR"}  # colour and escapes on
    t = Term(f"127.0.0.1:{server.port}", "--username", "alice", env=env)
    terms.append(t)
    await t.expect("Welcome, alice!")
    await bob.chat("docs at https://example.org/guide?x=1. and \x1b]8;;https://evil.example/\x07fake")
    osc8 = "\x1b]8;;https://example.org/guide?x=1\x1b\\https://example.org/guide?x=1\x1b]8;;\x1b\\."
    await t.expect(osc8)
    await t.expect("fake")
    t.type("/quit")
    assert await t.exit_status() == 0
    out = t.output()
    assert "\x1b]8;;https://evil.example/\x07" not in out  # the sender's own sequence never runs...
    ours = re.sub(r"\x1b\[[0-9;]*m|\x1b\]8;;[!-~]*\x1b\\", "", out)
    assert r"\x1b]8;;https://evil.example/\x07fake" in ours  # ...it is shown as text
    await bob.close()
