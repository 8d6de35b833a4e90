"""Two devices of one account online at once, on a real server (PROTOCOL.md, "Several devices"):
both in the account's rooms, each given every message once, the user listed once, private
messages on every device of both ends, read positions synced, a device's resume replacing
only that device's connection, and "left" only when the last device goes."""

from __future__ import annotations

import asyncio
from typing import Any

from support import Client, logged_in, start_server

PASSWORD = "correct horse battery"


async def device(port: int, **fields: Any) -> tuple[Client, dict[str, Any]]:
    """A connection logged in to Alice's account (register or login), its history read."""
    c = await Client.open(port)
    kind = "register" if fields.pop("new", False) else "login"
    await c.send({"type": kind, "username": "Alice", **fields})
    accepted = await c.expect("username_accepted")
    for room in accepted["rooms"]:
        await c.expect("history", room=room)
    return c, accepted


def count(c: Client, type_: str, **fields: Any) -> int:
    return sum(1 for f in c.seen if f.get("type") == type_ and all(f.get(k) == v for k, v in fields.items()))


async def test_two_devices_of_one_account_are_online_together() -> None:
    srv = await start_server()
    try:
        bob = await logged_in(srv.port, "Bob")
        laptop, first = await device(srv.port, new=True, password=PASSWORD, device="laptop")
        await bob.expect("user_join", username="Alice")
        phone, second = await device(srv.port, password=PASSWORD, device="phone")
        assert second["session_id"] != first["session_id"]
        await bob.send({"type": "get_users", "room": "general"})
        assert sorted((await bob.expect("online_users"))["users"]) == ["Alice", "Bob"]

        # a room joined on one device is joined on both; the room lists Alice once
        await laptop.send({"type": "join", "room": "den"})
        await laptop.expect("history", room="den")
        await phone.expect("joined", room="den")
        await bob.send({"type": "join", "room": "den"})
        joined = await bob.expect("joined", room="den")
        assert sorted(joined["users_list"]) == ["Alice", "Bob"] and joined["online_users"] == 2

        # every message reaches each device once; the ack goes to the device that sent it
        await bob.chat("hi both", room="den")
        for c in (laptop, phone):
            await c.expect("chat", room="den", message="hi both")
        await phone.chat("from the phone", room="den", client_msg_id="m1")
        await phone.expect("ack", client_msg_id="m1")
        await laptop.expect("chat", room="den", message="from the phone")
        await bob.expect("chat", room="den", message="from the phone")

        # private messages: on both of Alice's devices, and on the sender's other device
        await bob.send({"type": "private", "to": "Alice", "message": "psst"})
        for c in (laptop, phone):
            await c.expect("private", message="psst")
        await laptop.send({"type": "private", "to": "Bob", "message": "hush", "client_msg_id": "p1"})
        await bob.expect("private", message="hush")
        await phone.expect("private", message="hush", username="Alice")
        await laptop.expect("ack", client_msg_id="p1")

        # read positions follow the user
        await laptop.send({"type": "read", "room": "den", "seq": 2})
        await phone.expect("read_position", room="den", seq=2)

        # the phone resumes with its token: only its old connection is replaced (4000)
        again, _ = await device(srv.port, session_token=second["session_token"])
        await asyncio.wait_for(phone.ws.wait_closed(), 10)
        assert phone.ws.close_code == 4000
        await laptop.chat("still here", room="den", client_msg_id="m2")
        await laptop.expect("ack", client_msg_id="m2")
        await again.expect("chat", room="den", message="still here")

        # leaving a room leaves it on every device; the room hears it once
        await again.send({"type": "leave", "room": "den"})
        await again.expect("left", room="den")
        await laptop.expect("left", room="den")
        await bob.expect("user_leave", room="den", username="Alice")

        # one device going is not news; the last one going is
        await laptop.close()
        await again.close()
        await bob.expect("user_leave", room="general", username="Alice", reason="disconnect")
        await bob.send({"type": "get_users", "room": "general"})
        assert (await bob.expect("online_users"))["users"] == ["Bob"]
        assert count(bob, "user_leave", room="general", username="Alice") == 1
        assert count(bob, "user_join", room="general", username="Alice") == 1
    finally:
        await srv.stop()
