"""ChatServer.run and the store path: effects carried out whatever made them; one store batch
per loop iteration (group commit); results back to the hub through store_result."""

from __future__ import annotations

from typing import Any

from rawws import RawClient, text
from support import start_server

from wschat.records import Append, Command, LoadRoom


async def test_messages_of_one_loop_iteration_go_to_the_store_as_one_batch() -> None:
    srv = await start_server()
    executed: list[Command] = []
    real_execute = srv.store.execute

    def execute(command: Command, done: Any) -> None:
        executed.append(command)
        real_execute(command, done)

    srv.store.execute = execute  # type: ignore[method-assign]
    try:
        c = await RawClient.connect(srv.port)
        c.send({"type": "set_username", "username": "Batch"})
        while (await c.recv_json())["type"] != "user_join":
            pass
        packet = [text({"type": "chat", "message": f"m{i}", "client_msg_id": f"id{i}"}) for i in range(15)]
        c.send_raw(b"".join(packet))  # one TCP read: one loop iteration
        acks = [f async for f in frames(c, 30) if f["type"] == "ack"]
        assert [a["client_msg_id"] for a in acks] == [f"id{i}" for i in range(15)]
        appends = [cmd for cmd in executed if isinstance(cmd, Append)]
        assert len(appends) == 1 and [m.text for m in appends[0].messages] == [""] * 15  # kept as frames
        assert [m.seq for m in appends[0].messages] == list(range(1, 16))
        c.close()
    finally:
        await srv.stop()


async def test_commands_that_are_not_batched_go_to_the_store_at_once() -> None:
    srv = await start_server()
    executed: list[Command] = []
    real_execute = srv.store.execute

    def execute(command: Command, done: Any) -> None:
        executed.append(command)
        real_execute(command, done)

    srv.store.execute = execute  # type: ignore[method-assign]
    try:
        c = await RawClient.connect(srv.port)
        c.send({"type": "set_username", "username": "Joiner", "rooms": ["dev", "ops"]})
        joined = []
        while len(joined) < 2:
            frame = await c.recv_json()
            if frame["type"] == "joined":
                joined.append(frame["room"])
        assert sorted(joined) == ["dev", "ops"]
        assert [cmd for cmd in executed if isinstance(cmd, LoadRoom)] == [LoadRoom("dev"), LoadRoom("ops")]
        assert not srv.hub.asked  # every result came back to the hub
        c.close()
    finally:
        await srv.stop()


async def frames(c: RawClient, n: int) -> Any:
    """The next `n` text frames."""
    for _ in range(n):
        yield await c.recv_json()
