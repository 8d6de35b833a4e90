"""Private messages between accounts end to end: stored, sequenced per conversation, delivered
once in order at log-in on every device, `delivered` to the sender, paged back, and nothing
acknowledged lost across kill -9 of the server. Guests' private messages stay unstored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import Client, ServerProcess, logged_in, start_server

PASSWORD = "correct horse battery"


async def login(port: int, name: str, kind: str = "login", **fields: Any) -> tuple[Client, dict[str, Any]]:
    c = await Client.open(port)
    secret = {} if "session_token" in fields else {"password": PASSWORD}
    await c.send({"type": kind, "username": name, **secret, **fields})
    accepted = await c.expect("username_accepted")
    return c, accepted


async def privates(c: Client, n: int) -> list[dict[str, Any]]:
    return [await c.expect("private") for _ in range(n)]


async def test_30_messages_to_an_offline_account_reach_two_devices_once_in_order_across_kill_9(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "chat.db")
    srv = ServerProcess("--burst", "100", db=db).wait_ready()
    try:
        bob, phone_login = await login(srv.port, "Bob", "register", device="phone")
        lap, laptop = await login(srv.port, "Bob", device="laptop")  # a second device, both online
        await bob.close()
        await lap.close()  # Bob is offline on both devices
        alice, _ = await login(srv.port, "Alice", "register")
        await alice.expect("history")
        for i in range(30):
            await alice.send({"type": "private", "to": "bob", "message": f"m{i}", "client_msg_id": f"c{i}"})
        acks = [await alice.expect("ack", client_msg_id=f"c{i}") for i in range(30)]
        assert all(a["stored"] is True and a["to"] == "Bob" for a in acks)
        assert [a["seq"] for a in acks] == list(range(1, 31))
        srv.kill()  # kill -9: every acknowledged message must survive
        srv = ServerProcess("--burst", "100", db=db, port=srv.port).wait_ready()
        first, _ = await login(srv.port, "Bob", session_token=laptop["session_token"])
        got = await privates(first, 30)
        assert [m["message"] for m in got] == [f"m{i}" for i in range(30)]
        assert all(m["offline"] is True and m["from"] == "Alice" and m["stored"] is True for m in got)
        await first.close()
        phone, _ = await login(srv.port, "Bob", session_token=phone_login["session_token"])  # its own copy
        again = await privates(phone, 30)
        assert [m["id"] for m in again] == [m["id"] for m in got]
        await phone.close()
        back, _ = await login(srv.port, "Bob", session_token=laptop["session_token"])
        await back.send({"type": "get_users"})
        await back.expect("online_users")
        assert not [f for f in back.drain() if f["type"] == "private"]  # once: not given again
    finally:
        srv.stop()


async def test_the_sender_sees_delivered_and_the_conversation_pages_back() -> None:
    srv = await start_server()
    try:
        bob, _ = await login(srv.port, "Bob", "register")
        await bob.close()
        alice, _ = await login(srv.port, "Alice", "register")
        for i in range(5):
            await alice.send({"type": "private", "to": "Bob", "message": f"m{i}", "client_msg_id": f"c{i}"})
        last = [await alice.expect("ack", client_msg_id=f"c{i}") for i in range(5)][-1]
        bob, _ = await login(srv.port, "Bob")
        await privates(bob, 5)
        told = [await alice.expect("delivered") for _ in range(5)]
        assert [d["seq"] for d in told] == [1, 2, 3, 4, 5] and told[-1]["id"] == last["id"]
        await bob.send({"type": "private", "to": "Alice", "message": "live", "client_msg_id": "b1"})
        live = await alice.expect("private", message="live")
        assert live["seq"] == 6 and "offline" not in live
        assert (await bob.expect("delivered"))["seq"] == 6
        await bob.send({"type": "fetch_private", "with": "alice", "limit": 4})
        page = await bob.expect("private_history")
        assert page["with"] == "Alice" and page["more"] is True
        assert [m["seq"] for m in page["messages"]] == [3, 4, 5, 6]
        assert all(m["delivered_at"] for m in page["messages"])
        await bob.send({"type": "fetch_private", "with": "Alice", "before_seq": 3})
        older = await bob.expect("private_history")
        assert [m["message"] for m in older["messages"]] == ["m0", "m1"] and older["more"] is False
    finally:
        await srv.stop()


async def test_private_messages_with_a_guest_are_not_stored() -> None:
    srv = await start_server()
    try:
        alice, _ = await login(srv.port, "Alice", "register")
        guest = await logged_in(srv.port, "Guest")
        await alice.send({"type": "private", "to": "Guest", "message": "hi", "client_msg_id": "a1"})
        ack = await alice.expect("ack", client_msg_id="a1")
        assert ack["stored"] is False
        assert "stored" not in await guest.expect("private")
        await guest.close()
        await alice.send({"type": "private", "to": "Guest", "message": "gone?", "client_msg_id": "a2"})
        assert (await alice.expect("error"))["code"] == "no_such_user"
        await alice.send({"type": "fetch_private", "with": "Guest"})
        assert (await alice.expect("error"))["code"] == "no_such_user"
        other = await logged_in(srv.port, "Other")
        await other.send({"type": "fetch_private", "with": "Alice"})
        assert (await other.expect("error"))["code"] == "not_an_account"
    finally:
        await srv.stop()


async def test_a_private_message_resent_after_a_restart_is_not_stored_twice(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    srv = ServerProcess(db=db).wait_ready()
    try:
        bob, _ = await login(srv.port, "Bob", "register")
        await bob.close()
        alice, _ = await login(srv.port, "Alice", "register")
        await alice.send({"type": "private", "to": "Bob", "message": "once", "client_msg_id": "same"})
        first = await alice.expect("ack", client_msg_id="same")
        srv.kill()
        srv = ServerProcess(db=db, port=srv.port).wait_ready()
        alice, _ = await login(srv.port, "Alice")
        await alice.send({"type": "private", "to": "Bob", "message": "once", "client_msg_id": "same"})
        again = await alice.expect("ack", client_msg_id="same")
        assert again["duplicate"] is True and again["id"] == first["id"] and again["stored"] is True
        await alice.send({"type": "fetch_private", "with": "Bob"})
        assert [m["message"] for m in (await alice.expect("private_history"))["messages"]] == ["once"]
    finally:
        srv.stop()
