"""The terminal client's end-to-end encryption in a pty against a real server, with a test device
(`e2eedevice`, the same construction) at the other end: its key file (mode 0600), messages
both ways with a lock, the safety number identical on both ends, verified marks, a changed key
flagged and held until accepted, and tampered, misdirected or replayed messages refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from e2eedevice import Device, answer
from terminal import ENV, Term

from wschat import e2ee
from wschat.clientstate import ClientState, Job, Send, Show
from wschat.server import ChatServer

PASSWORD = "correct horse battery"


async def register(terms: list[Term], port: int, folder: Path, name: str) -> Term:
    env = {**ENV, "WSCHAT_SESSIONS": str(folder / "sessions.json")}
    t = Term(f"127.0.0.1:{port}", "--register", name, env=env)
    terms.append(t)
    await t.expect(f"Password for {name}: ")
    t.type(PASSWORD)
    await t.expect("The same password again: ")
    t.type(PASSWORD)
    await t.expect(f"Welcome, {name}! (logged in to your account)")
    await t.expect("#general> ")
    return t


async def refusals(alice: Device, bob: Term, bob_keys: list[e2ee.Device]) -> None:
    """Refused, never shown as text: a tampered copy, a copy for another conversation, a replay."""
    env = await alice.envelope("Bob", "TAMPERED-TEXT", "m-t")
    mine = env["copies"][bob_keys[0].id]
    ct = bytearray(e2ee.unb64(mine["ct"]))
    ct[3] ^= 0x40
    mine["ct"] = e2ee.b64(bytes(ct))
    await alice.client.send({"type": "private", "to": "Bob", "client_msg_id": "a3", "e2ee": env})
    await answer(alice.client, "a3")
    await bob.expect("A private message from Alice could not be decrypted")
    targets = [*bob_keys, e2ee.Device(alice.id, alice.public)]
    elsewhere = e2ee.encrypt(alice.key, "Alice", "Carol", "m-c", "MISDIRECTED-TEXT", targets)
    await alice.client.send({"type": "private", "to": "Bob", "client_msg_id": "a4", "e2ee": elsewhere})
    await answer(alice.client, "a4")
    await bob.expect("A private message from Alice could not be decrypted")
    once = await alice.envelope("Bob", "REPLAYED-TEXT", "m-r")
    for cmid in ("a5", "a6"):  # the same message (same mid) stored twice, as a server could replay it
        await alice.client.send({"type": "private", "to": "Bob", "client_msg_id": cmid, "e2ee": once})
        await answer(alice.client, cmid)
    await bob.expect("Refused a replayed message from Alice")
    out = bob.output()
    assert "TAMPERED-TEXT" not in out and "MISDIRECTED-TEXT" not in out and out.count("REPLAYED-TEXT") == 1


async def test_the_terminal_client_encrypts_decrypts_verifies_and_refuses(
    server: ChatServer, terms: list[Term], tmp_path: Path
) -> None:
    bob = await register(terms, server.port, tmp_path, "Bob")
    alice = await Device.login(server.port, "Alice", "register")
    bob_keys = await alice.devices("Bob")
    for _ in range(100):  # Bob's client publishes its key right after logging in
        if bob_keys:
            break
        await alice.client.send({"type": "get_users"})
        await alice.client.expect("online_users")
        bob_keys = await alice.devices("Bob")
    [key_file] = (tmp_path / "keys").glob("*.key.pem")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "keys").st_mode) == 0o700

    assert (await alice.send("Bob", "hello from a test device", "a1"))["type"] == "ack"
    await bob.expect("Messages with Alice are end-to-end encrypted")
    await bob.expect("🔒 private Alice → you: hello from a test device")

    bob.type("/msg Alice a reply, encrypted")
    got = await alice.client.expect("private", **{"from": "Bob"})
    assert alice.read(got) == "a reply, encrypted" and "a reply" not in json.dumps(got)
    await bob.expect("🔒 private you → Alice: a reply, encrypted")

    bob.type("/safety Alice")
    await bob.expect("Safety number of your conversation with Alice")
    number = e2ee.safety_number([alice.public], [k.key for k in bob_keys])
    groups = number.split()
    await bob.expect(" ".join(groups[:6]))
    await bob.expect(" ".join(groups[6:]))
    bob.type("/verify Alice")
    await bob.expect("✔ Alice is verified")
    assert (await alice.send("Bob", "now verified", "a2"))["type"] == "ack"
    await bob.expect("🔒 private Alice ✔ → you: now verified")

    await refusals(alice, bob, bob_keys)

    # Alice on a new device: a key Bob has not pinned; his messages wait until he accepts it
    await alice.close()
    phone = await Device.login(server.port, "Alice", device="phone")
    bob.type("/msg Alice are you there?")
    await bob.expect("Alice's keys changed: verify before you trust this conversation")
    await bob.expect("Not sent yet (1 waiting)")
    bob.type("/accept Alice")
    await bob.expect("Alice's new keys are trusted (not verified)")
    got = await phone.client.expect("private", **{"from": "Bob"})
    assert phone.read(got) == "are you there?"
    bob.type("/quit")
    assert await bob.exit_status() == 0


# ---------------------------------------------------------------- the state machine alone


def state_online() -> tuple[ClientState, list[Any]]:
    st = ClientState(
        name="Bob", account="login", password="pw", new_id=iter(f"id{i}" for i in range(99)).__next__
    )
    st.opened(0.0)
    st.pump(0.0)
    frame = {"type": "username_accepted", "username": "Bob", "session_token": "t", "account": True,
             "rooms": ["general"], "limits": {}}  # fmt: skip
    effects = st.frame(frame, 0.0)
    return st, effects


def test_the_key_file_is_asked_for_once_and_the_key_published_when_it_opens() -> None:
    st, effects = state_online()
    assert [e for e in effects if isinstance(e, Job)] == [Job("e2ee_open", {"account": "Bob"})]
    key = e2ee.new_key()
    opened = st.e2ee_opened(key, {}, "/k.pem")
    assert [e.frame for e in opened if isinstance(e, Send)] == [
        {"type": "publish_key", "key": e2ee.public_text(key)}
    ]


def test_a_server_without_encryption_gets_the_waiting_messages_in_clear_and_says_so() -> None:
    st, _ = state_online()
    st.e2ee_opened(e2ee.new_key(), {}, "/k.pem")
    asked = st.line("/msg Alice hello", 0.0)
    assert {"type": "get_keys", "username": "Alice"} in [e.frame for e in asked if isinstance(e, Send)]
    refusal = {
        "type": "error",
        "code": "unknown_type",
        "message": "Unknown message type 'publish_key'. See PROTOCOL.md.",
    }
    told = st.frame(refusal, 0.0)
    assert any("does not support end-to-end encryption" in e.event.text for e in told if isinstance(e, Show))
    frames, _ = st.pump(0.0)
    assert [(f["type"], f["to"], f["message"]) for f in frames] == [("private", "Alice", "hello")]


def test_a_guest_is_told_its_private_messages_go_in_clear() -> None:
    st = ClientState(name="Gus")
    st.opened(0.0)
    st.pump(0.0)
    st.frame({"type": "username_accepted", "username": "Gus", "rooms": ["general"], "limits": {}}, 0.0)
    told = st.line("/msg Alice hi", 0.0)
    assert any("not end-to-end encrypted" in e.event.text for e in told if isinstance(e, Show))
    frames, _ = st.pump(0.0)
    assert [f["message"] for f in frames if f["type"] == "private"] == ["hi"]


def test_a_message_too_large_once_encrypted_for_every_device_is_refused_not_sent() -> None:
    st, _ = state_online()
    key = e2ee.new_key()
    st.e2ee_opened(key, {}, "/k.pem")
    st.line("/msg Alice " + "x" * 4000, 0.0)
    pubs = [e2ee.public_text(k) for k in [key] + [e2ee.new_key() for _ in range(12)]]
    devices = [{"id": e2ee.key_id(pub), "key": pub, "device": "d"} for pub in pubs]
    st.frame({"type": "keys", "username": "Bob", "registered": True, "devices": devices[:1]}, 0.0)
    told = st.frame({"type": "keys", "username": "Alice", "registered": True, "devices": devices[1:]}, 0.0)
    assert any(
        "encrypted for 13 devices it is too large" in e.event.text for e in told if isinstance(e, Show)
    )
    frames, _ = st.pump(0.0)
    assert [f for f in frames if f["type"] == "private"] == []


def test_a_stored_conversation_pages_back_decrypted_with_locks_and_refusals() -> None:
    st, _ = state_online()
    bob_key, alice_key = e2ee.new_key(), e2ee.new_key()
    st.e2ee_opened(bob_key, {}, "/k.pem")
    bob = e2ee.Device(e2ee.key_id(e2ee.public_text(bob_key)), e2ee.public_text(bob_key))

    def stored(seq: int, text: str, recipient: str = "Bob") -> dict[str, Any]:
        env = e2ee.encrypt(alice_key, "Alice", recipient, f"mid{seq}", text, [bob])
        return {"id": f"pm{seq}", "seq": seq, "from": "Alice", "to": "Bob", "message": "🔒 …",
                "timestamp": "2026-11-30T10:00:00.000+00:00", "stored": True, "e2ee": env}  # fmt: skip

    messages = [stored(1, "first"), stored(2, "SECRET-ELSEWHERE", "Carol"), stored(3, "third")]
    page = {"type": "private_history", "with": "Alice", "more": False, "messages": messages}
    shown = st.frame(page, 0.0)
    texts = [e.event.text for e in shown if isinstance(e, Show)]
    assert any("could not be decrypted" in t for t in texts)
    events = [e.event for e in shown if isinstance(e, Show) and type(e.event).__name__ == "PrivateMessage"]
    assert [(m.text, m.lock) for m in events] == [("first", "e2ee"), ("third", "e2ee")]
    assert not any("SECRET" in t for t in texts)
