"""Limits under abuse, against a real server: sizes, rates, connection caps, slowloris, slow readers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from rawws import RawClient, frame, handshake
from support import Client, logged_in, start_server
from websockets.exceptions import ConnectionClosed, InvalidStatus

TIMEOUT = 10.0


async def test_message_over_the_char_limit_gets_too_long_and_the_connection_stays() -> None:
    srv = await start_server("--max-message-chars", "100")
    try:
        a = await logged_in(srv.port, "Alice")
        await a.chat("x" * 101, client_msg_id="long")
        err = await a.expect("error")
        assert (err["code"], err["client_msg_id"]) == ("too_long", "long")
        assert "101 characters; the limit is 100" in err["message"]
        await a.chat("x" * 100)
        assert (await a.expect("chat"))["message"] == "x" * 100
    finally:
        await srv.stop()


async def test_frame_over_the_size_limit_closes_with_1009() -> None:
    srv = await start_server("--max-frame-bytes", "1024")
    try:
        a = await logged_in(srv.port, "Alice")
        await a.send("x" * 2000)
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await a.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    finally:
        await srv.stop()


async def test_fragmented_message_over_the_size_limit_closes_with_1009() -> None:
    srv = await start_server("--max-frame-bytes", "1024")
    try:
        c = await RawClient.connect(srv.port)
        assert c.status == 101
        for i in range(4):  # 4 x 600 bytes: each fragment fits, the message does not
            c.send_raw(frame(b"x" * 600, opcode=0x1 if i == 0 else 0x0, fin=i == 3))
        assert await c.wait_closed() == 1009
        c.close()
    finally:
        await srv.stop()


async def test_a_client_that_keeps_its_socket_open_after_a_protocol_failure_is_dropped() -> None:
    # The server gives a peer 3 s to answer its close, then cuts it off.
    srv = await start_server("--max-frame-bytes", "1024")
    try:
        c = await RawClient.connect(srv.port)
        c.send({"type": "set_username", "username": "Alice"})
        assert (await c.recv_json())["type"] == "username_accepted"
        c.send_raw(frame(b"x" * 2000))
        assert await c.wait_closed() == 1009  # the server half-closes; this client never answers
        await asyncio.wait_for(_until(lambda: srv.total == 0 and not srv.hub.sessions), TIMEOUT)
        await asyncio.wait_for(srv.stop(), TIMEOUT)  # and shutting down does not hang on it
    finally:
        await srv.stop()


async def test_invalid_utf8_in_a_text_frame_closes_with_1007() -> None:
    srv = await start_server()
    try:
        c = await RawClient.connect(srv.port)
        c.send({"type": "set_username", "username": "Alice"})
        assert (await c.recv_json())["type"] == "username_accepted"
        c.send_raw(frame(b'{"type":"chat","message":"\xff\xfe"}'))
        assert await c.wait_closed() == 1007
        c.close()
    finally:
        await srv.stop()


async def test_per_ip_cap_refuses_one_more_with_429_and_frees_the_slot_on_close() -> None:
    srv = await start_server("--limit-loopback", "--max-connections-per-ip", "3")
    try:
        held = [await Client.open(srv.port) for _ in range(3)]
        with pytest.raises(InvalidStatus) as info:
            await Client.open(srv.port)
        assert info.value.response.status_code == 429
        assert b"Too many connections from 127.0.0.1" in info.value.response.body
        await held.pop().close()
        for _ in range(100):  # the server counts the slot free once it sees the close
            try:
                held.append(await Client.open(srv.port))
                break
            except InvalidStatus:
                await asyncio.sleep(0.05)
        assert len(held) == 3
        for c in held:
            await c.close()
    finally:
        await srv.stop()


async def test_loopback_is_exempt_from_the_per_ip_cap_by_default() -> None:
    srv = await start_server("--max-connections-per-ip", "2")
    try:
        held = [await Client.open(srv.port) for _ in range(5)]
        assert len(held) == 5
    finally:
        await srv.stop()


async def test_total_cap_refuses_with_503() -> None:
    srv = await start_server("--max-connections", "3")
    try:
        _held = [await Client.open(srv.port) for _ in range(3)]
        with pytest.raises(InvalidStatus) as info:
            await Client.open(srv.port)
        assert info.value.response.status_code == 503
        assert b"full" in info.value.response.body
    finally:
        await srv.stop()


RecordProperty = Callable[[str, object], None]


@dataclass
class Flood:
    """One client floods while another talks at a normal pace and a third watches the room."""

    start: float = 0.0
    sent: int = 0  # before the flooder saw its connection closed
    closed_at: float = 0.0
    codes: list[str | None] = field(default_factory=list)  # of the frames the flooder got
    seen_from_flooder: int = 0
    sent_at: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # of the talker's messages

    @property
    def elapsed(self) -> float:
        return self.closed_at - self.start

    @property
    def allowed(self) -> float:
        return 20 + 5 * self.elapsed  # burst + rate * elapsed

    async def send_1000_in_a_second(self, flooder: Client) -> None:
        self.start = time.monotonic()
        try:
            for i in range(1000):
                await flooder.chat(f"flood {i}")
                self.sent += 1
                if i % 10 == 9:
                    await asyncio.sleep(max(0.0, self.start + (i + 1) / 1000 - time.monotonic()))
        except ConnectionClosed:
            pass

    async def read_flooder(self, flooder: Client) -> None:
        try:
            while True:
                self.codes.append((await flooder.recv(30)).get("code"))
        except ConnectionClosed as exc:
            self.closed_at = time.monotonic()
            assert exc.rcvd is not None and exc.rcvd.code == 1008

    async def talk(self, talker: Client) -> None:
        for i in range(10):  # one message every 0.1 s during the flood: well inside the limit
            self.sent_at[f"t{i}"] = time.monotonic()
            await talker.chat(f"t{i}")
            await asyncio.sleep(0.1)

    async def watch(self, watcher: Client) -> None:
        while True:
            try:
                f = await watcher.recv(30)
            except ConnectionClosed:
                return
            if f["type"] == "chat" and f["username"] == "Flooder":
                self.seen_from_flooder += 1
            elif f["type"] == "chat" and f["username"] == "Talker":
                self.latencies.append(time.monotonic() - self.sent_at[f["message"]])

    def record(self, record_property: RecordProperty) -> None:
        record_property("flood: messages the flooder sent before it saw the close", self.sent)
        record_property("flood: messages the room saw from the flooder", self.seen_from_flooder)
        record_property("flood: allowed (burst + rate x elapsed)", round(self.allowed, 1))
        record_property("flood: seconds until closed with 1008", round(self.elapsed, 2))
        record_property("flood: other client's latency max ms", round(max(self.latencies) * 1000, 1))
        record_property("flood: other client's latency median ms", round(sorted(self.latencies)[5] * 1000, 1))


async def _discard_until_closed(client: Client) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await client.recv(30)


async def test_flood_of_1000_messages_in_a_second_is_capped_warned_then_closed(
    record_property: RecordProperty,
) -> None:
    srv = await start_server()
    try:
        flooder = await logged_in(srv.port, "Flooder")
        watcher = await logged_in(srv.port, "Watcher")
        talker = await logged_in(srv.port, "Talker")
        flood = Flood()
        watching = asyncio.ensure_future(flood.watch(watcher))
        draining = asyncio.ensure_future(_discard_until_closed(talker))
        talking = asyncio.ensure_future(flood.talk(talker))
        reading = asyncio.ensure_future(flood.read_flooder(flooder))
        await flood.send_1000_in_a_second(flooder)
        await asyncio.wait_for(reading, TIMEOUT)
        await talking
        await asyncio.wait_for(_until(lambda: len(flood.latencies) == 10), TIMEOUT)
        assert "rate_limited" in flood.codes
        assert flood.seen_from_flooder <= flood.allowed + 1
        for c in (talker, watcher):  # the watcher keeps reading until its close completes
            await c.close()
        await watching
        await draining
        flood.record(record_property)
    finally:
        await srv.stop()


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.01)


async def test_slowloris_half_handshakes_and_nameless_connections_time_out(record_property) -> None:
    # Short timeouts (2 s instead of the default 10 s) keep the test fast.
    srv = await start_server("--handshake-timeout", "2", "--name-timeout", "2")
    try:
        half: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for _ in range(300):
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            w.write(handshake(srv.port)[:40])  # stops in the middle of the request headers
            half.append((r, w))
        nameless = [await RawClient.connect(srv.port) for _ in range(100)]
        assert all(c.status == 101 for c in nameless)
        t0 = time.monotonic()
        normal = await logged_in(srv.port, "Normal")
        connect_s = time.monotonic() - t0
        await normal.chat("still here")
        assert (await normal.expect("chat"))["message"] == "still here"

        async def dropped(r: asyncio.StreamReader) -> bool:
            while await asyncio.wait_for(r.read(65536), 15):
                pass
            return True

        t1 = time.monotonic()
        assert all(await asyncio.gather(*(dropped(r) for r, _ in half)))
        codes = await asyncio.gather(*(c.wait_closed(15) for c in nameless))
        closed_s = time.monotonic() - t1
        assert codes == [1008] * 100
        # they never answer the close: dropped after the closing handshake timeout
        await asyncio.wait_for(_until(lambda: srv.total == 1 and len(srv.hub.sessions) == 1), TIMEOUT)
        record_property("slowloris: seconds for a normal client to connect and log in", round(connect_s, 3))
        record_property("slowloris: seconds until all 400 were closed", round(closed_s, 2))
        for _, w in half:
            w.close()
        for c in nameless:
            c.close()
    finally:
        await srv.stop()


async def test_a_reader_behind_a_small_socket_buffer_gets_a_history_larger_than_the_cap() -> None:
    """A long history after a reconnect may not fit in the socket at once; the reader is not dropped."""
    srv = await start_server("--rate", "1000", "--burst", "1000", "--max-pending-bytes", "65536")
    try:
        a = await logged_in(srv.port, "Alice")
        for i in range(100):
            await a.chat("y" * 3000, client_msg_id=f"m{i}")
        for _ in range(100):
            await a.expect("ack")
        b = await RawClient.connect(srv.port)
        newest = max(srv.conns)
        # Emulate a real network's small send window: loopback would take it all at once.
        srv.conns[newest].transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 16384
        )
        epoch = srv.hub.rooms["general"].epoch
        b.send({"type": "set_username", "username": "Bob", "resume": {"general": {"epoch": epoch, "seq": 0}}})
        await a.chat("while Bob reads his history")  # arrives while Bob is behind: still not dropped
        while (f := await b.recv_json())["type"] != "history":
            pass
        assert len(f["messages"]) == 100
        while (f := await b.recv_json())["type"] != "chat":
            pass
        assert f["message"] == "while Bob reads his history"
        b.close()
    finally:
        await srv.stop()


async def test_keepalive_drops_a_silent_client_and_keeps_one_that_answers_pings() -> None:
    interval = 1.0  # --ping-interval: 1 s instead of 20 s keeps the test short
    srv = await start_server("--ping-interval", str(interval))
    try:
        silent = await RawClient.connect(srv.port)  # never answers a ping
        silent.send({"type": "set_username", "username": "Silent"})
        assert (await silent.recv_json())["type"] == "username_accepted"
        alive = await logged_in(srv.port, "Alive")  # websockets answers pings by itself
        # Silent for two sweeps (the second sweep can come up to a second late: the timer ticks
        # once a second), with generous slack for a loaded machine; the default would be 40 s.
        within = 2 * interval + 1 + 10
        closed = await asyncio.wait_for(silent.wait_closed(), within)
        assert closed is None  # dropped, not closed politely: it is gone
        await alive.chat("still here")
        assert (await alive.expect("chat"))["message"] == "still here"
        await asyncio.wait_for(_until(lambda: set(srv.hub.by_key) == {"alive"}), TIMEOUT)
        silent.close()
        await alive.close()
    finally:
        await srv.stop()
