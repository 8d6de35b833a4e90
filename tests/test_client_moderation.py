"""The terminal client's moderation commands in a pty against a real server: /topic, /mute,
/kick, /ban -s, /inviteonly and /invite by a room's creator and operator, their lines, /help,
and a non-moderator's refusal shown plainly."""

from __future__ import annotations

from pathlib import Path

from support import Client, logged_in
from terminal import ENV, Term

from wschat.server import ChatServer

PASSWORD = "correct horse battery"


async def register(terms: list[Term], port: int, tokens: Path, name: str) -> Term:
    t = Term(f"127.0.0.1:{port}", "--register", name, env={**ENV, "WSCHAT_SESSIONS": str(tokens)})
    terms.append(t)
    await t.expect(f"Password for {name}: ")
    t.type(PASSWORD)
    await t.expect("The same password again: ")
    t.type(PASSWORD)
    await t.expect(f"Welcome, {name}! (logged in to your account)")
    await t.expect("#general - ")  # in the room: commands go to the server from here on
    return t


async def test_a_rooms_creator_moderates_from_the_terminal(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    alice = await register(terms, server.port, tmp_path / "s.json", "Alice")  # the first account
    alice.type("/help")
    await alice.expect("/kick [-s] NAME [reason]")
    await alice.expect("/inviteonly on|off")
    alice.type("/join den")
    await alice.expect("You moderate #den")
    bob = await logged_in(server.port, "Bob")
    await bob.send({"type": "join", "room": "den"})
    await bob.expect("history", room="den")
    alice.type("/topic the plans")
    await alice.expect("Alice set the topic (#den): the plans")
    alice.type("/mute Bob 1m shh")
    await alice.expect("Alice muted Bob (#den) until")
    await bob.chat("let me", room="den")
    assert (await bob.expect("error"))["code"] == "muted"
    alice.type("/kick Bob rude")
    await alice.expect("Alice kicked Bob out (#den): rude")
    await bob.expect("left", room="den")
    alice.type("/inviteonly on")
    await alice.expect("Alice made #den invite-only")
    await bob.send({"type": "join", "room": "den"})
    assert (await bob.expect("error"))["code"] == "invite_only"
    alice.type("/invite Bob")
    await alice.expect("Alice invited Bob (#den)")
    await bob.expect("moderation", action="invite")
    await bob.send({"type": "kick", "room": "general", "username": "Alice"})
    assert (await bob.expect("error"))["code"] == "not_moderator"
    alice.type("/ban -s Bob spam")
    await alice.expect("Alice banned Bob (the whole server): spam")
    await bob.ws.wait_closed()
    assert bob.ws.close_code == 4003
    again = await Client.open(server.port)
    await again.send({"type": "set_username", "username": "Robert"})
    assert (await again.expect("username_error"))["code"] == "banned"
    alice.type("/quit")
    assert await alice.exit_status() == 0


async def test_a_non_moderator_is_told_why_in_the_terminal(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    await register(terms, server.port, tmp_path / "s.json", "Alice")
    carol = await register(terms, server.port, tmp_path / "c.json", "Carol")
    carol.type("/kick Alice")
    await carol.expect("Only #general's creator and the operators may moderate it.")
    carol.type("/topic")
    await carol.expect("#general has no topic.")
    carol.type("/quit")
    assert await carol.exit_status() == 0
