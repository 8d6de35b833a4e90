"""End to end: two terminal clients in pseudo-terminals react, reply, edit and delete."""

from __future__ import annotations

from support import logged_in
from terminal import Term
from test_client_e2e import login_term

from wschat.server import ChatServer


async def test_two_terminals_react_reply_edit_and_delete(server: ChatServer, terms: list[Term]) -> None:
    alice = await login_term(terms, server.port, "alice")
    bob = await login_term(terms, server.port, "bob")
    bob.type("coffee anyone?")
    await alice.expect("[1] bob: coffee anyone?")
    alice.type("/react 1 ☕")
    await bob.expect('alice reacted ☕ to [1] "coffee anyone?"')
    alice.type("/reply 1 yes please")
    await bob.expect("↱ bob: coffee anyone?")
    await bob.expect("[3] alice: yes please")
    bob.type("/edit tea anyone?")
    await alice.expect("bob edited [1]: tea anyone?")
    alice.type("/edit 1 mine now")
    await alice.expect("Only the author of a message may edit it.")
    bob.type("/delete 1")
    await alice.expect('bob deleted [1] "tea anyone?"')
    alice.type("/react 1 👍")
    await alice.expect("Message 1 of #general was deleted.")


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
