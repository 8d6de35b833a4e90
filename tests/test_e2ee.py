"""End-to-end encrypted private messages: the construction against PROTOCOL.md's test vector,
refusals of what does not decrypt, and a real server that stores and relays only ciphertext
(offline delivery to two devices, `stale_keys`, device lists after a revoke), with the
plaintext of a marker message never in the database file, its WAL or the server's log."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from e2eedevice import Device, answer
from support import Client, ServerProcess, start_server
from test_accountstore import run

from wschat import e2ee
from wschat import protocol as p
from wschat.accountstore import AccountStore
from wschat.features.account_records import CheckPassword, CreateAccount, EndSession
from wschat.features.e2ee_records import ReadDeviceKeys, SaveDeviceKey

DOC = (Path(__file__).resolve().parent.parent / "PROTOCOL.md").read_text()
VECTOR = DOC[DOC.index("**Test vector.**") :]


def _doc(pattern: str) -> str:
    found = re.search(pattern, VECTOR)
    assert found, pattern
    return found.group(1)


def test_the_construction_matches_the_test_vector_in_protocol_md() -> None:
    alice = ec.derive_private_key(0x0A11CE, ec.SECP256R1())
    bob = ec.derive_private_key(0x0B0B, ec.SECP256R1())
    assert e2ee.public_text(alice) == _doc(r"Alice's public key `([^`]+)`")
    assert e2ee.key_id(e2ee.public_text(bob)) == _doc(r"Bob's `[^`]+`, id `([0-9a-f]+)`")
    bob_device = e2ee.Device(e2ee.key_id(e2ee.public_text(bob)), e2ee.public_text(bob))
    env = e2ee.encrypt(
        alice, "Alice", "Bob", "m-0001", "Hello, Bob! 🔒", [bob_device], iv=lambda n: bytes(range(1, 13))
    )
    copy = env["copies"][bob_device.id]
    assert copy == {"iv": "AQIDBAUGBwgJCgsM", "ct": _doc(r'"ct": "([^"]+)"')}
    assert e2ee.decrypt(bob, "Alice", "Bob", env) == "Hello, Bob! 🔒"
    number = _doc(r"safety number \(one device each\): `([0-9 ]+)`")
    assert e2ee.safety_number([e2ee.public_text(alice)], [e2ee.public_text(bob)]) == number
    assert e2ee.safety_number([e2ee.public_text(bob)], [e2ee.public_text(alice)]) == number
    assert re.fullmatch(r"(\d{5} ){11}\d{5}", number)


def test_tampered_moved_or_foreign_copies_never_decrypt() -> None:
    alice, bob, carol = e2ee.new_key(), e2ee.new_key(), e2ee.new_key()
    dev = e2ee.Device(e2ee.key_id(e2ee.public_text(bob)), e2ee.public_text(bob))
    env = e2ee.encrypt(alice, "Alice", "Bob", "m1", "secret", [dev])
    assert e2ee.decrypt(bob, "Alice", "Bob", env) == "secret"
    ct = bytearray(e2ee.unb64(env["copies"][dev.id]["ct"]))
    ct[0] ^= 1
    tampered = json.loads(json.dumps(env))
    tampered["copies"][dev.id]["ct"] = e2ee.b64(bytes(ct))
    other_mid = {**env, "mid": "m2"}  # the associated data binds the message id...
    with pytest.raises(e2ee.Undecryptable):
        e2ee.decrypt(bob, "Alice", "Bob", tampered)
    with pytest.raises(e2ee.Undecryptable):
        e2ee.decrypt(bob, "Alice", "Bob", other_mid)
    with pytest.raises(e2ee.Undecryptable):  # ...the sender and the recipient
        e2ee.decrypt(bob, "Mallory", "Bob", env)
    with pytest.raises(e2ee.Undecryptable):
        e2ee.decrypt(bob, "Alice", "Carol", env)
    with pytest.raises(e2ee.Undecryptable, match="not encrypted for this device"):
        e2ee.decrypt(carol, "Alice", "Bob", env)
    swapped = {**env, "from_pub": e2ee.public_text(carol)}  # a key that is not `from_key`'s
    with pytest.raises(e2ee.Undecryptable):
        e2ee.decrypt(bob, "Alice", "Bob", swapped)


def test_the_server_checks_the_envelope_shape() -> None:
    key = e2ee.new_key()
    dev = e2ee.Device(e2ee.key_id(e2ee.public_text(key)), e2ee.public_text(key))
    env = e2ee.encrypt(key, "A", "B", "m", "x", [dev])
    frame = {"type": "private", "to": "B", "client_msg_id": "c1", "message": "the plaintext", "e2ee": env}
    req = p.decode(json.dumps(frame))
    assert isinstance(req, p.Private) and req.e2ee == env and "plaintext" not in req.message
    bad = [
        {**env, "v": 2},
        {**env, "mid": ""},
        {**env, "from_key": "XYZ"},
        {**env, "copies": {}},
        {**env, "copies": {dev.id: {"iv": "AAAA", "ct": env["copies"][dev.id]["ct"]}}},
        {**env, "copies": {"nothex": env["copies"][dev.id]}},
    ]
    for b in bad:
        with pytest.raises(p.ProtocolError) as exc:
            p.decode(json.dumps({**frame, "e2ee": b}))
        assert exc.value.code == p.BAD_FIELD and exc.value.client_msg_id == "c1"
    with pytest.raises(p.ProtocolError, match="client_msg_id"):
        p.decode(json.dumps({"type": "private", "to": "B", "e2ee": env}))
    extra = p.decode(json.dumps({**frame, "e2ee": {**env, "junk": "x" * 100}}))
    assert isinstance(extra, p.Private) and extra.e2ee is not None and "junk" not in extra.e2ee


async def test_an_encrypted_message_reaches_two_offline_devices_and_the_server_holds_only_ciphertext(
    tmp_path: Path,
) -> None:
    marker = "MARKER-plaintext-7f3a9c the server must never see this"
    server = ServerProcess(db=str(tmp_path / "chat.db")).wait_ready()
    try:
        phone = await Device.login(server.port, "Bob", "register", device="phone")
        laptop = await Device.login(server.port, "Bob", device="laptop")
        await phone.close()  # Bob is offline on both devices
        await laptop.close()
        alice = await Device.login(server.port, "Alice", "register")
        assert {d.id for d in await alice.devices("bob")} == {phone.id, laptop.id}
        ack = await alice.send("bob", marker, "c1")
        assert ack["type"] == "ack" and ack["stored"] is True
        echo = await alice.client.expect("private", client_msg_id="c1")
        assert alice.read(echo) == marker and marker not in json.dumps(echo)
        assert echo["message"].startswith("🔒")  # what a client without encryption shows
        for device in (phone, laptop):
            token = device.accepted["session_token"]
            again = await Device.login(server.port, "Bob", key=device.key, session_token=token)
            got = await again.client.expect("private", offline=True)
            assert again.read(got) == marker and got["from"] == "Alice" and got["to"] == "Bob"
            await again.close()
        await alice.client.send({"type": "fetch_private", "with": "Bob"})
        page = await alice.client.expect("private_history")
        assert [alice.read(m) for m in page["messages"]] == [marker]
        # a plain private message's text is in the files: the search below can find a text
        await alice.client.send(
            {"type": "private", "to": "Bob", "message": "CONTROL-in-clear", "client_msg_id": "p1"}
        )
        await answer(alice.client, "p1")
        await alice.close()
        running = {f.name: f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("chat.db")}
        assert "chat.db-wal" in running  # what the server wrote since the last checkpoint
        assert all(b"MARKER" not in data for data in running.values())
        assert any(b"CONTROL-in-clear" in data for data in running.values())
    finally:
        server.stop()
    files = [f for f in tmp_path.iterdir() if f.name.startswith("chat.db")]
    assert all(b"MARKER" not in f.read_bytes() for f in files)  # checkpointed into the file
    assert "MARKER" not in server.stderr_text()


async def test_the_server_refuses_stale_copies_guests_and_bad_keys_and_lists_live_devices() -> None:
    srv = await start_server()
    try:
        carol = await Device.login(srv.port, "Carol", "register", device="one")
        dave = await Device.login(srv.port, "Dave", "register")
        env = await dave.envelope("carol", "hi", "m1")
        missing = {**env, "copies": {k: v for k, v in env["copies"].items() if k != carol.id}}
        await dave.client.send({"type": "private", "to": "carol", "client_msg_id": "s1", "e2ee": missing})
        refused = await answer(dave.client, "s1")
        assert refused["type"] == "error" and refused["code"] == "stale_keys"
        other = e2ee.encrypt(e2ee.new_key(), "Dave", "Carol", "m2", "hi", await dave.devices("carol"))
        await dave.client.send({"type": "private", "to": "carol", "client_msg_id": "s2", "e2ee": other})
        assert (await answer(dave.client, "s2"))["code"] == "stale_keys"  # not this device's key
        await dave.client.send({"type": "private", "to": "carol", "client_msg_id": "s3", "e2ee": env})
        assert (await answer(dave.client, "s3"))["type"] == "ack"
        keyless = await Client.open(srv.port)  # an account that never published a key
        await keyless.send({"type": "register", "username": "Eve", "password": "correct horse battery"})
        await keyless.expect("username_accepted")
        mine = e2ee.encrypt(dave.key, "Dave", "Eve", "m3", "hi", await dave.devices("Dave"))
        await dave.client.send({"type": "private", "to": "eve", "client_msg_id": "s4", "e2ee": mine})
        assert (await answer(dave.client, "s4"))["code"] == "stale_keys"  # nobody could read it
        await keyless.close()
        await dave.client.send({"type": "publish_key", "key": "AAAA"})
        assert (await dave.client.expect("error"))["code"] == "bad_field"
        assert (await dave.keys("nobody-here")) == {
            "type": "keys", "username": "nobody-here", "registered": False, "devices": [],
        }  # fmt: skip
        guest = await Client.open(srv.port)
        await guest.login("Guesty")
        await guest.send({"type": "publish_key", "key": carol.public})
        assert (await guest.expect("error"))["code"] == "not_an_account"
        await guest.send({"type": "private", "to": "carol", "client_msg_id": "g1", "e2ee": env})
        assert (await answer(guest, "g1"))["code"] == "not_an_account"
        # a second device of Carol's, then revoked: the list follows the sessions
        second = await Device.login(srv.port, "Carol", device="two")
        assert len(await second.devices("Carol")) == 2
        await second.client.send({"type": "revoke_session", "id": carol.accepted["session_id"]})
        await second.client.expect("session_revoked")
        assert [d.id for d in await second.devices("carol")] == [second.id]
        await second.close()
        # two tabs of one browser: two sessions, one key, listed once; either tab may send
        tab = await Device.login(srv.port, "Carol", key=second.key)
        assert [d.id for d in await tab.devices("carol")] == [second.id]
        await tab.close()
        first_tab = await Device.login(
            srv.port, "Carol", key=second.key, session_token=second.accepted["session_token"]
        )
        assert (await first_tab.send("Dave", "from the first tab", "t1"))["type"] == "ack"
        await first_tab.close()
    finally:
        await srv.stop()


def test_device_keys_on_a_real_sqlite_file_follow_the_live_sessions(tmp_path: Path) -> None:
    store = AccountStore(str(tmp_path / "chat.db"), lambda fn, r: fn(r))
    store.open()
    try:
        one = run(store, CreateAccount("ann", "Ann", "correct horse battery", "one", 1.0))
        two = run(store, CheckPassword("ann", "correct horse battery", "two", 2.0))
        keys = [e2ee.public_text(e2ee.new_key()) for _ in range(2)]
        run(store, SaveDeviceKey("ann", one.session_id, e2ee.key_id(keys[0]), keys[0], 3.0))
        listed = run(store, SaveDeviceKey("ann", two.session_id, e2ee.key_id(keys[1]), keys[1], 4.0))
        assert [(d.key_id, d.device) for d in listed] == [
            (e2ee.key_id(keys[0]), "one"),
            (e2ee.key_id(keys[1]), "two"),
        ]
        again = run(store, SaveDeviceKey("ann", two.session_id, e2ee.key_id(keys[1]), keys[1], 9.0))
        assert [d.created for d in again] == [3.0, 4.0]  # published again: the same key, kept
        assert run(store, EndSession("ann", one.session_id)) is True
        after = run(store, ReadDeviceKeys(("ann", "nobody")))
        assert [d.key_id for d in after["ann"]] == [e2ee.key_id(keys[1])] and after["nobody"] == []
    finally:
        store.close()


async def test_two_devices_of_one_account_online_together_both_read_and_get_the_key_list() -> None:
    srv = await start_server()
    try:
        phone = await Device.login(srv.port, "Bob", "register", device="phone")
        laptop = await Device.login(srv.port, "Bob", device="laptop")  # both online now
        listed = await phone.client.expect("keys", username="Bob")  # the laptop's key, told to the phone
        assert {d["id"] for d in listed["devices"]} == {phone.id, laptop.id}
        alice = await Device.login(srv.port, "Alice", "register")
        assert (await alice.send("Bob", "to both devices at once", "c1"))["type"] == "ack"
        for device in (phone, laptop):
            got = await device.client.expect("private", **{"from": "Alice"})
            assert device.read(got) == "to both devices at once"
        assert (await laptop.send("Alice", "from the laptop", "l1"))["type"] == "ack"
        mine = await phone.client.expect("private", **{"from": "Bob"})  # the phone sees what the laptop sent
        assert phone.read(mine) == "from the laptop"
        assert alice.read(await alice.client.expect("private", **{"from": "Bob"})) == "from the laptop"
        for d in (phone, laptop, alice):
            await d.close()
    finally:
        await srv.stop()
