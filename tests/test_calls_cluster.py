"""Calls between two processes of one chat on a real redis-server: the set-up crosses in order,
busy is known across processes, and an invite for nobody ends as offline."""

from __future__ import annotations

from clusternode import Node
from redisserver import RedisServer
from test_redis_cluster import alice_and_bob


def call(call_id: str, to: str, action: str, **extra: object) -> dict[str, object]:
    return {"type": "call", "call_id": call_id, "to": to, "action": action, **extra}


async def test_a_call_between_two_processes_is_relayed_in_order_and_ends_on_both(
    redis_server: RedisServer,
) -> None:
    a, b = await Node.start(redis_server.url), await Node.start(redis_server.url)
    try:
        await alice_and_bob(a, b)
        a.send(1, call("call-cluster-1", "bob", "invite", kind="video", sdp="v=0 offer"))
        for i in range(5):  # candidates sent at once must not overtake the offer
            a.send(1, call("call-cluster-1", "bob", "candidate", candidate={"candidate": f"candidate:{i}"}))
        await b.wait(1, "call", 6)
        got = b.frames(1, "call")
        assert [f["action"] for f in got] == ["invite"] + ["candidate"] * 5
        assert got[0]["from"] == "alice" and got[0]["sdp"] == "v=0 offer"
        assert [f["candidate"]["candidate"] for f in got[1:]] == [f"candidate:{i}" for i in range(5)]
        b.send(1, call("call-cluster-1", "alice", "accept", sdp="v=0 answer"))
        await a.wait(1, "call", action="accept")
        a.login(2, "carol")  # on alice's process, calling bob (on the other one), who is busy
        await a.wait(2, "history")
        a.send(2, call("call-cluster-2", "bob", "invite", sdp="v=0"))
        await a.wait(2, "call", reason="busy")
        b.send(1, call("call-cluster-1", "alice", "hangup"))
        await a.wait(1, "call", action="hangup")
        await a.wait(1, "private")
        assert a.frames(1, "private")[0]["call"]["outcome"] == "ended"
        assert not a.hub.calls.legs and not b.hub.calls.legs
        a.send(1, call("call-cluster-3", "nobody", "invite", sdp="v=0"))
        await a.wait(1, "call", reason="offline")
    finally:
        await a.stop()
        await b.stop()
