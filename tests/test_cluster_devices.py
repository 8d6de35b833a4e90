"""Several devices, moderation, whois and resent private messages across processes under --redis.

Two real server processes on one real redis-server, started once for the module. An account
is online on devices on both processes at once and is one user (PROTOCOL.md, "Several
devices"); a moderator on one process mutes, bans and kicks users connected to the other; whois
on one process tells the live presence of a user on the other; a private message resent with
its client_msg_id after a restart is recognised and stored once. A profile change reaches every
room member and device on both processes, with the devices' presence together; an unban
applies at once on the other process; "last seen" is recorded when the last device anywhere
goes; a stored private message given live on the other process is not given again; a room's
joiner gets the profiles of its members on the other process, and they get the joiner's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redisserver import RedisServer, available
from support import Client, ServerProcess, logged_in
from test_accounts_e2e import PASSWORD, account
from test_moderation_e2e import answer, closed_with

pytestmark = pytest.mark.slow

# --admin-poll 60: what reaches the other process must come at once, never by its re-read of
# moderation (a test that waited out the re-read would pass without the cluster path).
FAST = ("--rate", "1000", "--burst", "1000", "--admin", "Op", "--admin", "Mod", "--admin-poll", "60")


class Pair:
    """The redis-server and the two processes (`a`, `b`) every test of this module shares."""

    def __init__(self, redis: RedisServer) -> None:
        self.redis = redis
        self.procs = [self.start(), self.start()]

    def start(self) -> ServerProcess:
        return ServerProcess("--redis", self.redis.url, *FAST)

    @property
    def a(self) -> ServerProcess:
        return self.procs[0]

    @property
    def b(self) -> ServerProcess:
        return self.procs[1]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if not available():
        pytest.fail("redis-server is not installed: run `bash test.sh`, which installs it")
    folder: Path = tmp_path_factory.mktemp("redis")
    redis = RedisServer(folder).start()
    both: Pair | None = None
    try:
        both = Pair(redis)
        for proc in both.procs:
            proc.wait_ready()
        yield both
    finally:
        for proc in both.procs if both is not None else ():
            proc.stop()
        redis.stop()


def count(c: Client, type_: str, **fields: Any) -> int:
    """How many frames of `type_` matching `fields` `c` has received so far."""
    return sum(1 for f in c.seen if f.get("type") == type_ and all(f.get(k) == v for k, v in fields.items()))


async def logs_in(port: int, name: str, **fields: Any) -> tuple[Client, dict[str, Any]]:
    """An account's device logged in (or registered), with its `username_accepted`."""
    kind = "register" if fields.pop("register", False) else "login"
    if "session_token" not in fields:
        fields["password"] = PASSWORD
    c, made = await account(port, kind, name, **fields)
    assert made["type"] == "username_accepted", made
    await c.expect("history", room="general")
    return c, made


async def users(c: Client, room: str = "general") -> list[str]:
    await c.send({"type": "get_users", "room": room})
    return (await c.expect("online_users", room=room))["users"]


async def served_once(bob: Client, laptop: Client, phone: Client, tablet: Client) -> None:
    """Every room message and private message reaches each of Alice's devices once; what a
    device sends privately shows on the others; rooms joined or left on one follow on all."""
    devices = [laptop, phone, tablet]
    await bob.chat("hello all", client_msg_id="b1")
    await bob.send({"type": "private", "to": "Alice", "message": "psst", "client_msg_id": "bp1"})
    await phone.send({"type": "private", "to": "Bob", "message": "from my phone", "client_msg_id": "ap1"})
    assert (await bob.expect("private", message="from my phone"))["from"] == "Alice"
    for dev in devices:
        await dev.expect("chat", message="hello all")
        await dev.expect("private", message="psst")
        assert (await dev.expect("private", message="from my phone"))["from"] == "Alice"
    await bob.chat("barrier", client_msg_id="b2")
    for dev in devices:
        await dev.expect("chat", message="barrier")
        assert count(dev, "chat", message="hello all") == 1 and count(dev, "private", message="psst") == 1
    # A room joined on one device is joined on the others (here and on the other process);
    # left on one, it is left on all.
    await phone.send({"type": "join", "room": "den"})
    for dev in devices:
        await dev.expect("joined", room="den")
    await laptop.send({"type": "leave", "room": "den"})
    for dev in (phone, tablet):
        await dev.expect("left", room="den")


async def test_an_account_online_on_two_processes_is_one_user_and_each_device_is_served_once(
    pair: Pair,
) -> None:
    a, b = pair.a, pair.b
    bob, _ = await logs_in(b.port, "Bob", register=True, device="desk")
    laptop, made = await logs_in(a.port, "Alice", register=True, device="laptop")
    laptop_token = made["session_token"]
    await bob.expect("user_join", username="Alice")
    # A second and a third device, on the other process and on the same one: nothing is closed.
    phone, _ = await logs_in(b.port, "alice", device="phone")
    tablet0, made = await logs_in(a.port, "Alice", device="tablet")
    # The tablet reconnects with its token on the same process: its old connection only goes.
    tablet, _ = await logs_in(a.port, "Alice", session_token=made["session_token"])
    assert await closed_with(tablet0) == 4000  # CLOSE_TAKEOVER
    mark = await logged_in(b.port, "mark1")  # presence after it comes after theirs
    await bob.expect("user_join", username="mark1")
    await laptop.expect("user_join", username="mark1")
    assert count(bob, "user_join", username="Alice") == 1  # the first device only
    for c in (bob, laptop, phone):  # listed and counted once, on both processes
        listed = await users(c)
        assert listed.count("Alice") == 1 and len(listed) == len(set(listed)), listed
    await served_once(bob, laptop, phone, tablet)

    # The laptop reconnects with its own token on the other process: only its old connection goes.
    laptop2, _ = await logs_in(b.port, "Alice", session_token=laptop_token)
    assert await closed_with(laptop) == 4000  # CLOSE_TAKEOVER
    await bob.chat("still there?", client_msg_id="b3")
    for dev in (laptop2, phone, tablet):
        await dev.expect("chat", message="still there?")

    # The tablet (on a) revokes the phone (on b): exactly that device closes.
    await tablet.send({"type": "sessions"})
    listing = (await tablet.expect("sessions"))["sessions"]
    phone_id = next(s["id"] for s in listing if s["device"] == "phone")
    await tablet.send({"type": "revoke_session", "id": phone_id})
    await tablet.expect("session_revoked")
    assert await closed_with(phone) == 4001  # CLOSE_SESSION_ENDED
    await bob.chat("after the revoke", client_msg_id="b4")
    for dev in (laptop2, tablet):
        await dev.expect("chat", message="after the revoke")

    # A room joined on b reaches the tablet on a; the tablet goes while the laptop stays (b):
    # not news. A new device logging in on a is brought into the rooms of the one on b.
    await laptop2.send({"type": "join", "room": "attic"})
    await tablet.expect("joined", room="attic")
    await tablet.close()
    late = await logged_in(a.port, "mark2")
    await bob.expect("user_join", username="mark2")
    assert count(bob, "user_leave", username="Alice") == 0
    watch, _ = await logs_in(a.port, "Alice", device="watch")
    await watch.expect("joined", room="attic")
    # The last device going, anywhere, is news (once).
    await laptop2.close()
    await watch.close()
    leave = await bob.expect("user_leave", username="Alice")
    assert leave["reason"] == "disconnect" and "Alice" not in leave["users_list"]
    await bob.send({"type": "private", "to": "mark2", "message": "barrier"})
    await late.expect("private", message="barrier")
    await bob.expect("private", message="barrier")
    assert count(bob, "user_leave", username="Alice") == 1
    for c in (bob, mark, late):
        await c.close()


async def test_a_moderator_on_one_process_mutes_bans_and_kicks_users_on_the_other(pair: Pair) -> None:
    a, b = pair.a, pair.b
    op, _ = await logs_in(a.port, "Op", register=True)
    gus = await logged_in(b.port, "Gus", rooms=["yard"])
    await op.send({"type": "join", "room": "yard"})
    await op.expect("history", room="yard")

    # A guest on b muted in #yard from a: refused at once there (not only at b's next re-read).
    await op.send({"type": "mute", "room": "yard", "username": "Gus", "seconds": 60, "reason": "calm"})
    await gus.expect("moderation", action="mute", room="yard")
    await gus.chat("let me talk", room="yard", client_msg_id="g1")
    refused = await answer(gus, "ack", "error")
    assert refused["type"] == "error" and refused["code"] == "muted", refused
    await op.send({"type": "unmute", "room": "yard", "username": "Gus"})
    await gus.expect("moderation", action="unmute", room="yard")
    await gus.chat("thanks", room="yard", client_msg_id="g2")
    assert (await answer(gus, "ack", "error"))["type"] == "ack"

    # Banned from #yard: taken out, and refused when it comes back.
    await op.send({"type": "ban", "room": "yard", "username": "Gus", "reason": "spam"})
    told = await gus.expect("moderation", action="ban")
    assert (told["by"], told["reason"]) == ("Op", "spam")
    await gus.expect("left", room="yard")
    await gus.send({"type": "join", "room": "yard"})
    assert (await gus.expect("error"))["code"] == "banned"
    await op.send({"type": "unban", "room": "yard", "username": "Gus"})
    await op.expect("moderation", action="unban", room="yard")

    # Kicked off the server from a: its connection on b closes.
    await op.send({"type": "kick", "username": "Gus", "reason": "bye"})
    assert await closed_with(gus) == 4002  # CLOSE_KICKED

    # An account with a device on each process: a kick off the server closes both.
    troll_b, _ = await logs_in(b.port, "Troll", register=True, device="one")
    troll_a, _ = await logs_in(a.port, "Troll", device="two")
    await op.send({"type": "kick", "username": "Troll", "reason": "out"})
    assert await asyncio.gather(closed_with(troll_a), closed_with(troll_b)) == [4002, 4002]
    await op.close()


async def test_whois_on_one_process_tells_the_live_presence_of_a_user_on_the_other(pair: Pair) -> None:
    a, b = pair.a, pair.b
    carol, _ = await logs_in(b.port, "Carol", register=True)
    gwen = await logged_in(b.port, "Gwen")
    await carol.send({"type": "set_profile", "presence": "busy", "status": "in a meeting"})
    await carol.expect("profile", username="Carol", presence="busy")
    await gwen.send({"type": "set_profile", "presence": "away", "status": "lunch"})
    await gwen.expect("profile", username="Gwen", presence="away")
    asker = await logged_in(a.port, "Asker")
    for who, presence, status in (("Carol", "busy", "in a meeting"), ("gwen", "away", "lunch")):
        for _ in range(100):  # until b's save of the presence is in Redis; each answer is the event
            await asker.send({"type": "whois", "username": who})
            got = await answer(asker, "profile", "error")
            if got.get("presence") == presence:
                break
            assert got["type"] == "profile" and got["presence"] in ("online", presence), got
            await asyncio.sleep(0.05)
        assert (got["presence"], got["status"], got["username"]) == (presence, status, who.capitalize())
    # Carol's second device, on a (online): her presence is both devices' together (busy).
    desk, _ = await logs_in(a.port, "Carol", device="desk")
    await asker.send({"type": "whois", "username": "Carol"})
    assert (await answer(asker, "profile", "error"))["presence"] == "busy"
    await desk.close()
    await carol.close()
    await gwen.close()
    await asker.send({"type": "whois", "username": "Carol"})
    offline = await answer(asker, "profile", "error")
    for _ in range(100):  # until b has let her go (her name is released in Redis)
        if offline.get("presence") == "offline":
            break
        await asyncio.sleep(0.05)
        await asker.send({"type": "whois", "username": "Carol"})
        offline = await answer(asker, "profile", "error")
    assert offline["presence"] == "offline" and offline["status"] == "in a meeting"
    await asker.close()


async def test_a_private_message_resent_after_a_restart_is_recognised_and_stored_once(pair: Pair) -> None:
    a = pair.a
    dan, made = await logs_in(a.port, "Dan", register=True)
    token = made["session_token"]
    erin, _ = await logs_in(pair.b.port, "Erin", register=True)
    await erin.close()
    send = {"type": "private", "to": "Erin", "message": "once only", "client_msg_id": "d1"}
    await dan.send(send)
    first = await dan.expect("ack", client_msg_id="d1")
    assert first.get("stored") is True and not first.get("duplicate")
    await dan.close()
    await a.astop()  # the process and what it remembered of client ids are gone
    pair.procs[0] = pair.start().wait_ready()
    again, _ = await logs_in(pair.a.port, "Dan", session_token=token)
    await again.send(send)
    repeat = await again.expect("ack", client_msg_id="d1")
    assert (repeat.get("duplicate"), repeat["id"], repeat["seq"]) == (True, first["id"], first["seq"])
    await again.send({"type": "fetch_private", "with": "Erin"})
    page = await again.expect("private_history")
    assert [m["message"] for m in page["messages"]] == ["once only"]
    await again.close()


async def test_a_profile_change_reaches_members_and_devices_on_both_processes_devices_together(
    pair: Pair,
) -> None:
    a, b = pair.a, pair.b
    laptop, _ = await logs_in(a.port, "Rita", register=True, device="laptop")
    phone, _ = await logs_in(b.port, "Rita", device="phone")
    near, far = await logged_in(a.port, "Near"), await logged_in(b.port, "Far")
    await near.expect("user_join", username="Far")  # Far (b) is listed on a
    everyone = [laptop, phone, near, far]

    async def told(presence: str, status: str) -> None:
        for c in everyone:
            got = await c.expect("profile", username="Rita", presence=presence)
            assert got["status"] == status, got

    await laptop.send({"type": "set_profile", "presence": "busy", "status": "in a meeting"})
    await told("busy", "in a meeting")
    # The phone (b) says away: the laptop (a) is busy, so she is busy; then the laptop is back.
    await phone.send({"type": "set_profile", "presence": "away", "status": "on the road"})
    await told("busy", "on the road")
    await laptop.send({"type": "set_profile", "presence": "online"})
    await told("online", "on the road")
    # The laptop goes: the phone's away is now hers, on both processes (the phone's own too).
    await laptop.close()
    everyone.remove(laptop)
    await told("away", "on the road")
    # A guest's change on b reaches a.
    await far.send({"type": "set_profile", "status": "far away"})
    assert (await near.expect("profile", username="Far"))["status"] == "far away"
    for c in (phone, near, far):
        await c.close()


async def test_an_unban_on_one_process_applies_at_once_on_the_other(pair: Pair) -> None:
    a, b = pair.a, pair.b
    mod, _ = await logs_in(a.port, "Mod", register=True)
    # registered on a (so a knows the name is an account at once), then online on b only
    first, _ = await logs_in(a.port, "Hal", register=True)
    await first.close()
    hal, _ = await logs_in(b.port, "Hal")
    await mod.send({"type": "ban", "username": "Hal", "reason": "cool off"})
    assert await closed_with(hal) == 4003  # CLOSE_BANNED, at once on b
    again = await Client.open(b.port)
    await again.send({"type": "login", "username": "Hal", "password": PASSWORD})
    assert (await answer(again, "username_accepted", "username_error"))["code"] == "banned"
    await mod.send({"type": "unban", "username": "Hal"})
    await mod.expect("moderation", action="unban")
    # b lifts it when the unban arrives, long before its re-read of moderation (60 s here).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        await again.send({"type": "login", "username": "Hal", "password": PASSWORD})
        made = await answer(again, "username_accepted", "username_error")
        if made["type"] == "username_accepted" or loop.time() > deadline:
            break
        assert made["code"] == "banned", made
        await asyncio.sleep(0.05)  # the unban is on its way through Redis
    assert made["type"] == "username_accepted", made
    await again.close()
    await mod.close()


async def test_last_seen_is_recorded_when_the_last_device_anywhere_goes(pair: Pair) -> None:
    a, b = pair.a, pair.b
    peek = redis.Redis.from_url(pair.redis.url)
    try:
        one, _ = await logs_in(a.port, "Ivy", register=True, device="one")
        two, _ = await logs_in(b.port, "Ivy", device="two")
        asker = await logged_in(a.port, "Seer")
        assert peek.hlen("wschat:devs:ivy") == 2
        await one.close()  # a's last device of hers; b's stays
        for _ in range(200):  # until a has let that device go in Redis
            if peek.hlen("wschat:devs:ivy") == 1:
                break
            await asyncio.sleep(0.05)
        await asker.send({"type": "whois", "username": "Ivy"})
        assert (await asker.expect("profile", username="Ivy"))["presence"] == "online"
        assert peek.hget("wschat:profile:ivy", "last_seen") is None
        before = time.time()
        await two.close()
        for _ in range(200):  # until b has let her go
            await asker.send({"type": "whois", "username": "Ivy"})
            offline = await asker.expect("profile", username="Ivy")
            if offline["presence"] == "offline":
                break
            await asyncio.sleep(0.05)
        assert offline["presence"] == "offline" and offline["last_seen"], offline
        assert float(peek.hget("wschat:profile:ivy", "last_seen") or 0) >= before - 1
        await asker.close()
    finally:
        peek.close()


async def test_a_stored_private_message_given_live_on_the_other_process_is_not_given_again(
    pair: Pair,
) -> None:
    a, b = pair.a, pair.b
    pia, _ = await logs_in(a.port, "Pia", register=True)
    # registered on a (so a stores what Pia sends her at once), then online on b only
    first, _ = await logs_in(a.port, "Quin", register=True, device="laptop")
    await first.close()
    quin, made = await logs_in(b.port, "Quin", device="phone")
    await pia.send({"type": "private", "to": "Quin", "message": "live one", "client_msg_id": "q1"})
    assert (await quin.expect("private", message="live one"))["from"] == "Pia"
    await pia.expect("delivered")
    await quin.close()
    await pia.send({"type": "private", "to": "Quin", "message": "while away", "client_msg_id": "q2"})
    await pia.expect("ack", client_msg_id="q2")
    back, _ = await logs_in(a.port, "Quin", session_token=made["session_token"])
    missed = await back.expect("private", message="while away")
    assert missed.get("offline") is True
    assert count(back, "private", message="live one") == 0  # it would have come first
    for c in (pia, back):
        await c.close()


async def test_a_joiner_gets_the_profiles_of_members_on_the_other_process_and_they_get_its_own(
    pair: Pair,
) -> None:
    a, b = pair.a, pair.b
    # Sid (on b) is in #nook only, away with a status: nobody on a shares a room with him.
    sid = await logged_in(b.port, "Sid")
    await sid.send({"type": "join", "room": "nook"})
    await sid.expect("joined", room="nook")
    await sid.send({"type": "leave", "room": "general"})
    await sid.expect("left", room="general")
    await sid.send({"type": "set_profile", "presence": "away", "status": "napping"})
    await sid.expect("profile", username="Sid", presence="away")
    # Jonas (on a) is busy, then joins #nook, where nobody on a is yet (a follows it for him).
    jonas = await logged_in(a.port, "Jonas")
    await jonas.send({"type": "set_profile", "presence": "busy", "status": "deep work"})
    await jonas.expect("profile", username="Jonas", presence="busy")
    await jonas.send({"type": "join", "room": "nook"})
    cards = (await jonas.expect("profiles", room="nook"))["profiles"]
    assert cards["Sid"]["presence"] == "away" and cards["Sid"]["status"] == "napping", cards
    told = await sid.expect("profile", username="Jonas")  # only by his joining #nook
    assert told["presence"] == "busy" and told["status"] == "deep work", told
    # The next joiner on a gets one `profiles` with the members here and elsewhere.
    kim = await logged_in(a.port, "Kim")
    await kim.send({"type": "join", "room": "nook"})
    cards = (await kim.expect("profiles", room="nook"))["profiles"]
    assert cards["Sid"]["status"] == "napping" and cards["Jonas"]["presence"] == "busy", cards
    assert count(sid, "profile", username="Kim") == 0  # plain: nothing to tell
    for c in (sid, jonas, kim):
        await c.close()
