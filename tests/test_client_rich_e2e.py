"""End to end: two terminal clients in pseudo-terminals react, reply, edit and delete."""

from __future__ import annotations

from support import logged_in
from terminal import Term
from test_client_e2e import login_term
from test_client_scripts import run

from wschat.server import ChatServer

REDRAW = r"\x1b\[\d+A\x1b\[J\d\d:\d\d "  # up to a message still on screen, clear below, print again


async def test_two_terminals_react_reply_edit_and_delete(server: ChatServer, terms: list[Term]) -> None:
    alice = await login_term(terms, server.port, "alice")
    bob = await login_term(terms, server.port, "bob")
    bob.type("coffee anyone?")
    await alice.expect("[1] bob: coffee anyone?")
    alice.type("/react 1 ☕")
    # on screen still: the message is redrawn where it is, with its reaction under it
    await bob.expect_re(REDRAW + r"\[1\] bob: coffee anyone\?\r\n +☕ 1\r\n")
    alice.type("/reply 1 yes please")
    await bob.expect("↱ bob: coffee anyone?")
    await bob.expect("[3] alice: yes please")
    bob.type("/edit tea anyone?")
    # redrawn edited, and what was printed under it printed again under it
    edited = r"\[1\] bob: tea anyone\? \(edited\)\r\n +☕ 1\r\n.*\[3\] alice: yes please"
    await alice.expect_re(REDRAW + edited)
    alice.type("/edit 1 mine now")
    await alice.expect("Only the author of a message may edit it.")
    bob.type("/delete 1")
    await alice.expect('bob deleted [1] "tea anyone?"')
    alice.type("/react 1 👍")
    await alice.expect("Message 1 of #general was deleted.")
    for t in (alice, bob):
        assert "reacted" not in t.output() and "edited [1]" not in t.output()


async def test_a_change_to_a_message_scrolled_off_the_screen_is_a_line_of_its_own(
    server: ChatServer, terms: list[Term]
) -> None:
    alice = await login_term(terms, server.port, "alice")
    bob = await login_term(terms, server.port, "bob")
    bob.type("coffee anyone?")
    await alice.expect("[1] bob: coffee anyone?")
    for _ in range(3):  # the screen is 40 rows: the help, three times, scrolls the message away
        alice.type("/help")
        await alice.expect("/quit")
    bob.type("/react 1 ☕")
    await alice.expect('bob reacted ☕ to [1] "coffee anyone?"')
    assert "\x1b[J" not in alice.output()


async def test_a_terminal_shows_typing_on_its_prompt_and_counts_unread(
    server: ChatServer, terms: list[Term]
) -> None:
    alice = await login_term(terms, server.port, "alice")
    carol = await logged_in(server.port, "carol")
    await carol.send({"type": "typing", "room": "general", "active": True})
    await alice.expect("#general (carol is typing…)> ")
    await carol.chat("hi @alice", mentions=["alice"])
    await alice.expect("[1] carol: hi @alice")
    await alice.expect("#general> ")  # her message ended her typing
    alice.type("/unread")
    await alice.expect("#general: 1 (1 mention)")
    alice.type("thanks")
    await carol.expect("receipt", username="alice", seq=1)
    alice.type("/unread")
    await alice.expect("No unread messages.")
    await carol.close()


async def test_a_terminal_searches_without_accents(server: ChatServer, terms: list[Term]) -> None:
    alice = await login_term(terms, server.port, "alice")
    alice.type("Un café noir, merci")
    await alice.expect("[1] alice: Un café noir, merci")
    alice.type("/search CAFE")
    await alice.expect('Messages with "CAFE", newest first (1):')
    await alice.expect("[#general] [1] alice: Un café noir, merci")


async def test_typing_in_one_terminal_shows_on_the_others_prompt_until_the_line_is_sent(
    server: ChatServer, terms: list[Term]
) -> None:
    alice = await login_term(terms, server.port, "alice")
    bob = await login_term(terms, server.port, "bob")
    await alice.expect("bob joined")
    alice.p.send("hel")  # keys, no Enter
    await bob.expect("#general (alice is typing…)> ")
    alice.p.send("lo\r")
    await bob.expect("[1] alice: hello")
    await bob.expect("#general> ")  # her line sent, her typing is over
    alice.p.send("again")
    await bob.expect("#general (alice is typing…)> ")
    alice.p.send("\x15")  # Ctrl+U: the line emptied without sending it
    await bob.expect("#general> ")


async def test_a_piped_client_sends_no_typing(server: ChatServer) -> None:
    carol = await logged_in(server.port, "carol")
    status, _, err = await run([f"127.0.0.1:{server.port}", "--username", "bot"], "hi\nbye\n")
    assert status == 0, err
    await carol.expect("chat", message="bye")
    assert [f for f in carol.seen if f.get("type") == "typing"] == []
    await carol.close()
