"""Calls through a real server (one per module, `--call-timeout 1`): signalling reaches the other
party only and never the database, the outcome is a stored message between accounts and a
notice with guests, no answer ends as missed, a non-party and a flood are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from support import Client, logged_in, start_server
from websockets.exceptions import ConnectionClosed

from wschat.server import ChatServer

pytestmark = pytest.mark.asyncio(loop_scope="module")
PASSWORD = "correct horse battery"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ChatServer]:
    folder = tmp_path_factory.mktemp("calls")
    srv = await start_server("--call-timeout", "1", db=str(folder / "chat.db"))
    srv.folder = folder  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        await srv.stop()


async def register(port: int, name: str) -> Client:
    c = await Client.open(port)
    await c.send({"type": "register", "username": name, "password": PASSWORD})
    accepted = await c.expect("username_accepted")
    await c.expect("history", room=accepted["rooms"][0])
    return c


def call(call_id: str, to: str, action: str, **extra: Any) -> dict[str, Any]:
    return {"type": "call", "call_id": call_id, "to": to, "action": action, **extra}


async def synced(c: Client) -> list[dict[str, Any]]:
    """Everything `c` received until the server answered a request sent now (nothing in flight)."""
    await c.send({"type": "list_rooms"})
    await c.expect("rooms")
    return c.seen


async def test_signalling_reaches_the_other_party_only_and_never_the_database(server: ChatServer) -> None:
    alice, bob = await register(server.port, "Alice"), await register(server.port, "Bob")
    carol = await logged_in(server.port, "Carol")
    marker = "v=0 o=- 4611731400430051336 2 IN IP4 127.0.0.1 s=SECRET-OFFER-7c1e"
    await alice.send(call("call-e2e-0001", "Bob", "invite", kind="video", sdp=marker))
    invite = await bob.expect("call", action="invite")
    assert invite["from"] == "Alice" and invite["sdp"] == marker and invite["kind"] == "video"
    await bob.send(call("call-e2e-0001", "Alice", "ringing"))
    await bob.send(call("call-e2e-0001", "Alice", "accept", sdp="v=0 SECRET-ANSWER-7c1e"))
    await alice.expect("call", action="accept")
    cand = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.7 51234 typ host SECRET-CAND", "sdpMid": "0"}
    await alice.send(call("call-e2e-0001", "Bob", "candidate", candidate=cand))
    assert (await bob.expect("call", action="candidate"))["candidate"] == cand
    await alice.send(call("call-e2e-0001", "Bob", "hangup"))
    await bob.expect("call", action="hangup")
    for end in (alice, bob):
        event = await end.expect("private", stored=True)
        assert event["call"]["outcome"] == "ended" and event["from"] == "Alice" and event["to"] == "Bob"
    await bob.send({"type": "fetch_private", "with": "Alice"})
    page = await bob.expect("private_history")
    assert [m["call"]["call_id"] for m in page["messages"]] == ["call-e2e-0001"]
    assert not [f for f in await synced(carol) if f["type"] == "call"]
    for path in Path(server.folder).rglob("*"):  # type: ignore[attr-defined]
        if path.is_file():
            assert b"SECRET" not in path.read_bytes(), path
    for c in (alice, bob, carol):
        await c.close()


async def test_a_call_nobody_answers_ends_as_missed_for_both(server: ChatServer) -> None:
    dan, eve = await logged_in(server.port, "Dan"), await logged_in(server.port, "Eve")
    await dan.send(call("call-e2e-0002", "Eve", "invite", kind="audio", sdp="v=0"))
    await eve.expect("call", action="invite")
    for c in (dan, eve):
        assert (await c.expect("call", action="hangup"))["reason"] == "no_answer"
        notice = await c.expect("private")
        assert notice["call"]["outcome"] == "missed" and notice["message"] == "📞 Missed voice call"
        assert "stored" not in notice
    await dan.close()
    await eve.close()


async def test_busy_decline_a_non_party_and_a_flood_are_refused(server: ChatServer) -> None:
    fay, gus, hal = [await logged_in(server.port, n) for n in ("Fay", "Gus", "Hal")]
    await fay.send(call("call-e2e-0003", "Gus", "invite", sdp="v=0"))
    await gus.expect("call", action="invite")
    await hal.send(call("call-e2e-0004", "Gus", "invite", sdp="v=0"))
    assert (await hal.expect("call", call_id="call-e2e-0004"))["reason"] == "busy"
    await hal.send(call("call-e2e-0003", "Fay", "hangup"))
    assert (await hal.expect("error"))["code"] == "not_in_call"
    await gus.send(call("call-e2e-0003", "Fay", "decline"))
    assert (await fay.expect("call", action="decline"))["from"] == "Gus"
    assert (await fay.expect("private"))["call"]["outcome"] == "declined"
    await fay.send(call("call-e2e-0005", "Gus", "invite", sdp="v=0"))
    for _ in range(150):
        await fay.send(call("call-e2e-0005", "Gus", "candidate", candidate={"candidate": "candidate:1"}))
    limited = await fay.expect("error", code="rate_limited")
    assert "call frames" in limited["message"] and limited["retry_after"] > 0
    with pytest.raises(ConnectionClosed):
        for _ in range(200):  # read what is queued, or the client never reads the close
            await fay.recv()
    assert fay.ws.close_code == 1008
    assert (await gus.expect("call", action="hangup", call_id="call-e2e-0005"))["reason"] == "disconnected"
    relayed = [f for f in gus.seen if f.get("action") == "candidate"]
    assert 0 < len(relayed) <= 70  # the burst and what the rate let through; the rest refused
    assert not [f for f in await synced(hal) if f.get("call_id") == "call-e2e-0005"]
    await gus.close()
    await hal.close()
