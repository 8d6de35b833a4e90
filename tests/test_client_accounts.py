"""The terminal client's accounts end to end, in a pty against a real server: --register and
--login with the password read by getpass, the device token kept with mode 0600 and used on the
next run and on reconnect, /sessions, /logout, and a session ended from elsewhere."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from support import Client, logged_in
from terminal import CLIENT, ENV, Term
from test_files_e2e import png

from wschat.server import ChatServer

PASSWORD = "correct horse battery"


def client(terms: list[Term], port: int, tokens: Path, *args: str) -> Term:
    t = Term(f"127.0.0.1:{port}", *args, env={**ENV, "WSCHAT_SESSIONS": str(tokens)})
    terms.append(t)
    return t


async def register(terms: list[Term], port: int, tokens: Path, name: str) -> Term:
    t = client(terms, port, tokens, "--register", name)
    await t.expect(f"Password for {name}: ")
    t.type(PASSWORD)
    await t.expect("The same password again: ")
    t.type(PASSWORD)
    await t.expect(f"Welcome, {name}! (logged in to your account)")
    await t.expect("#general> ")
    return t


async def test_register_keeps_a_token_with_mode_0600_and_the_next_run_logs_in_with_it(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    tokens = tmp_path / "wschat" / "sessions.json"
    t = await register(terms, server.port, tokens, "Alice")
    assert PASSWORD not in t.output()  # getpass does not echo
    t.type("/quit")
    assert await t.exit_status() == 0
    assert stat.S_IMODE(os.stat(tokens).st_mode) == 0o600
    saved = json.loads(tokens.read_text())
    assert list(saved) == [f"127.0.0.1:{server.port} alice"] and PASSWORD not in tokens.read_text()
    again = client(terms, server.port, tokens, "--login", "Alice")
    await again.expect("Welcome, Alice! (logged in to your account)")  # no password asked
    assert "Password" not in again.output()
    again.type("/sessions")
    await again.expect("Your account's sessions (1)")  # the same device, the same session
    await again.expect("(this device)")
    again.type("/quit")
    assert await again.exit_status() == 0


async def test_a_guest_is_told_the_name_is_registered(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    t = await register(terms, server.port, tmp_path / "s.json", "Alice")
    t.type("/quit")
    assert await t.exit_status() == 0
    guest = client(terms, server.port, tmp_path / "s.json", "--username", "alice")
    await guest.expect("is a registered name: log in with its password, or choose another.")
    await guest.expect("Enter your username: ")
    guest.type("/quit")
    assert await guest.exit_status() == 0


async def test_a_wrong_password_ends_the_run_with_the_reason(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    t = await register(terms, server.port, tmp_path / "s.json", "Alice")
    t.type("/quit")
    assert await t.exit_status() == 0
    wrong = client(terms, server.port, tmp_path / "other.json", "--login", "Alice")
    await wrong.expect("Password for Alice: ")
    wrong.type("not the password")
    await wrong.expect("The name or the password is wrong.")
    assert await wrong.exit_status() == 1


async def test_the_token_logs_in_again_after_a_dropped_connection(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    t = await register(terms, server.port, tmp_path / "s.json", "Alice")
    bob = await logged_in(server.port, "Bob")
    ws = next(iter(server.conns.values()))  # Alice's connection, the first one
    ws.transport.abort()
    await t.expect("Reconnected as Alice.", timeout=20)
    t.type("hello again")
    got = await bob.expect("chat", username="Alice")
    assert got["message"] == "hello again"
    t.type("/quit")
    assert await t.exit_status() == 0


async def test_logout_forgets_the_token_and_a_revoked_device_stops(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    tokens = tmp_path / "s.json"
    t = await register(terms, server.port, tokens, "Alice")
    t.type("/logout")
    await t.expect("Logged out on this device")
    assert await t.exit_status() == 0
    assert json.loads(tokens.read_text()) == {}
    again = client(terms, server.port, tokens, "--login", "Alice")
    await again.expect("Password for Alice: ")
    again.type(PASSWORD)
    await again.expect("Welcome, Alice! (logged in to your account)")
    other = await Client.open(server.port)
    await other.send({"type": "login", "username": "Alice", "password": PASSWORD})
    await other.expect("username_accepted")  # a second device: the terminal stays online
    await other.send({"type": "join", "room": "porch"})
    await again.expect("You are in #porch now (joined on another of your devices).")
    await other.send({"type": "sessions"})
    listing = (await other.expect("sessions"))["sessions"]
    terminal = next(s for s in listing if not s["current"])
    await other.send({"type": "revoke_session", "id": terminal["id"]})
    await other.expect("session_revoked")
    await again.expect("was ended (revoked, or the password changed)")  # revoked while online: 4001
    assert await again.exit_status() == 1
    assert json.loads(tokens.read_text()) == {}


async def test_private_messages_wait_for_an_offline_account_and_say_delivered(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    tokens = tmp_path / "s.json"
    bob = await Client.open(server.port)
    await bob.send({"type": "register", "username": "Bob", "password": PASSWORD})
    bob_login = await bob.expect("username_accepted")
    await bob.close()
    t = await register(terms, server.port, tokens, "Alice")
    t.type("/msg Bob are you there?")
    await t.expect("→ Bob")  # shown as sent (stored for Bob)
    bob = await Client.open(server.port)
    await bob.send({"type": "login", "username": "Bob", "session_token": bob_login["session_token"]})
    waiting = await bob.expect("private")
    assert waiting["message"] == "are you there?" and waiting["offline"] is True
    await t.expect("Delivered to Bob (message 1).")
    t.type("/quit")
    assert await t.exit_status() == 0
    await bob.send({"type": "private", "to": "Alice", "message": "yes, while you were out"})
    await bob.expect("private", message="yes, while you were out")
    again = client(terms, server.port, tokens, "--login", "Alice")
    await again.expect("Private messages that arrived while you were away:")
    await again.expect("yes, while you were out")
    again.type("/conversation Bob")
    await again.expect("Private conversation with Bob, 2 messages:")
    await again.expect("are you there?")
    again.type("/quit")
    assert await again.exit_status() == 0


async def test_a_guest_is_told_its_private_messages_are_not_stored(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    bob = await logged_in(server.port, "Bob")
    guest = client(terms, server.port, tmp_path / "s.json", "--username", "Ann")
    await guest.expect("Welcome, Ann!")
    guest.type("/msg Bob hello")
    await guest.expect("Private messages with Bob are not stored (you are a guest)")
    await bob.expect("private", message="hello")
    guest.type("/conversation Bob")
    await guest.expect("That is for registered accounts")
    guest.type("/quit")
    assert await guest.exit_status() == 0


async def test_a_script_logs_in_with_the_kept_token_and_never_reads_a_password_from_its_input(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    tokens = tmp_path / "s.json"
    t = await register(terms, server.port, tokens, "Alice")
    t.type("/quit")
    assert await t.exit_status() == 0
    bob = await logged_in(server.port, "Bob")
    env = {**ENV, "WSCHAT_SESSIONS": str(tokens)}
    args = [sys.executable, CLIENT, f"127.0.0.1:{server.port}", "--login", "Alice"]
    done = await asyncio.to_thread(
        subprocess.run, args, input="from a script\n", capture_output=True, text=True, env=env,
        timeout=30, start_new_session=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (await bob.expect("chat", username="Alice"))["message"] == "from a script"
    nobody = tmp_path / "none.json"  # no token kept: no terminal to ask, so a clear refusal
    done = await asyncio.to_thread(
        subprocess.run, args, input="secret?\n", capture_output=True, text=True,
        env={**ENV, "WSCHAT_SESSIONS": str(nobody)}, timeout=30, start_new_session=True,
    )  # fmt: skip
    assert done.returncode == 2 and "No terminal to type the password in" in done.stderr


async def test_revoking_this_devices_own_session_stops_the_client_and_forgets_the_token(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    tokens = tmp_path / "s.json"
    t = await register(terms, server.port, tokens, "Alice")
    t.type("/sessions")
    row = await t.expect_re(r"  ([0-9a-f]{16})  terminal on .*\(this device\)")
    t.type(f"/revoke {row.group(1)}")
    await t.expect("ended; that device must log in again")
    assert await t.exit_status() == 1
    assert "This device's session was ended (revoked, or the password changed)" in t.output()
    assert json.loads(tokens.read_text()) == {}


async def test_profile_commands_whois_and_going_away_by_itself(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    bob = await logged_in(server.port, "Bob")
    t = await register(terms, server.port, tmp_path / "s.json", "Alice")
    t.type("/status on a train")
    assert (await bob.expect("profile", username="Alice"))["status"] == "on a train"
    t.type("/busy")
    assert (await bob.expect("profile", username="Alice"))["presence"] == "busy"
    await t.expect("You are busy; status: on a train.")
    t.type("/back")
    assert (await bob.expect("profile", username="Alice"))["presence"] == "online"
    t.type("/whois bob")
    await t.expect("Bob [B] (guest)")
    picture = tmp_path / "me.png"
    picture.write_bytes(png())
    t.type(f"/avatar {picture}")  # uploaded, then set: the room sees the image's URL
    assert (await bob.expect("profile", username="Alice"))["avatar"]["url"].endswith("/thumb")
    await t.expect("avatar: an image.")
    t.type("/whois alice")
    await t.expect("Alice: on a train [A, avatar image set] (account)")
    t.type("/avatar off")
    assert "url" not in (await bob.expect("profile", username="Alice"))["avatar"]
    await bob.send({"type": "set_profile", "status": "lunch", "presence": "away"})
    await t.expect("Bob (away): lunch")
    t.type("/users")
    await t.expect("online in #general")
    await t.expect("Bob (away): lunch")  # the user list says who is away
    t.type("/autoaway 1s")
    await t.expect("You will be shown as away after 1 s without typing.")
    assert (await bob.expect("profile", username="Alice"))["presence"] == "away"  # idle
    t.type("I am back")
    assert (await bob.expect("profile", username="Alice"))["presence"] == "online"  # typed
    await bob.expect("chat", message="I am back")
    t.type("/quit")
    assert await t.exit_status() == 0


async def test_passwd_reads_both_passwords_without_echo_and_logs_the_other_devices_out(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    t = await register(terms, server.port, tmp_path / "s.json", "Alice")
    phone = await Client.open(server.port)
    await phone.send({"type": "login", "username": "Alice", "password": PASSWORD})
    await phone.expect("username_accepted")
    t.type("/passwd")
    await t.expect("Current password: ")
    t.type("not the password")
    await t.expect("New password")
    t.type("a brand new secret")
    await t.expect("The same new password again: ")
    t.type("a brand new secret")
    await t.expect("The current password is wrong; nothing was changed.")
    t.type("/passwd")
    await t.expect("Current password: ")
    t.type(PASSWORD)
    await t.expect("New password")
    t.type("a brand new secret")
    await t.expect("The same new password again: ")
    t.type("a brand new secret")
    await t.expect("Your password is changed")
    await asyncio.wait_for(phone.ws.wait_closed(), 10)
    assert phone.ws.close_code == 4001  # the other device
    assert "a brand new secret" not in t.output() and PASSWORD not in t.output()  # never echoed
    t.type("/quit")
    assert await t.exit_status() == 0
