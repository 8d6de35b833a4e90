"""A client that stops reading must not hold up the others nor grow the server's memory.

The server runs in a subprocess so its RSS can be measured. Rate and size limits are raised so
one sender can broadcast 3,000 1 KiB and 200 64 KiB messages; it paces itself on the slowest of
the 20 readers (at most a few messages ahead), so a reader is never behind by more than the
pending-output cap and only the stalled client is.

How soon the stalled client goes is bounded by the server's own settings, not by a wall-clock
figure: it is surely behind once more has been broadcast than the cap and the kernel's socket
buffers can hold (`FILL_BYTES`), and from then on it must go within --slow-client-grace plus the
one-second check, with generous slack for a loaded machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from rawws import RawClient, text
from support import Client, ServerProcess
from websockets.exceptions import ConnectionClosed

READERS = 20
SMALL, BIG = 3000, 200
CAP = 1 << 20  # --max-pending-bytes
GRACE = 1.0  # --slow-client-grace: a client behind for longer is dropped (checked every second)
SLACK = 10.0  # a loaded machine's scheduling delays, generously


def _send_buffer_max() -> int:
    """The most a kernel socket send buffer may grow to (autotuning): the server's, here."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 << 20  # Linux's default


# Broadcast beyond this, the stalled client's backlog in the server is over the cap whatever the
# kernel buffers hold: the server's send buffer, the client's receive buffer (4 KiB, doubled by
# the kernel) and a 64 KiB message of margin.
FILL_BYTES = CAP + _send_buffer_max() + 2 * 65536


def users_online(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
        return json.loads(resp.read())["users"]


class PeakRss:
    """Samples a process's RSS in a thread, from `start()` to `stop()`."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.samples: list[int] = []
        self.before = 0  # until start(): stop() in a `finally` may come first
        self.running = False
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while self.running:
            self.samples.append(self.proc.memory_info().rss)
            time.sleep(0.02)

    def start(self) -> None:
        self.before = self.proc.memory_info().rss
        self.running = True
        self.thread.start()

    def stop(self) -> float:
        """Peak growth in MiB."""
        if self.running:
            self.running = False
            self.thread.join()
        return (max(self.samples, default=self.before) - self.before) / 2**20


async def _mute(port: int, name: str) -> RawClient:
    """A client that logs in, reads its history, and never reads again."""
    c = await RawClient.connect(port, rcvbuf=4096)
    c.send({"type": "set_username", "username": name})
    while (await c.recv_json())["type"] != "history":
        pass
    c.writer.transport.pause_reading()
    return c


RecordProperty = Callable[[str, object], None]


@dataclass
class Received:
    """The Sender's messages one reader got."""

    seqs: list[int] = field(default_factory=list)
    chars: int = 0


async def _read_from_sender(reader: Client, into: Received) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            f = await reader.recv(60)
            if f.get("type") == "chat" and f.get("username") == "Sender":
                into.seqs.append(f["seq"])
                into.chars += len(f["message"])


async def _discard_until_closed(client: Client) -> None:  # the sender gets its own messages back
    with contextlib.suppress(ConnectionClosed):
        while True:
            await client.recv(60)


async def _broadcast_paced(sender: Client, plan: list[str], received: list[Received]) -> float:
    """Returns once every reader has every message: when more than FILL_BYTES had been sent."""
    sent, filled_at = 0, 0.0
    for k, kind in enumerate(plan, start=1):
        ahead = 2 if kind == "b" else 16
        while min(len(r.seqs) for r in received) < k - ahead:  # pace on the slowest reader
            await asyncio.sleep(0.001)
        size = 65536 if kind == "b" else 1024
        await sender.chat(("B" if kind == "b" else "s") * size)
        sent += size
        if not filled_at and sent > FILL_BYTES:
            filled_at = time.monotonic()
    while min(len(r.seqs) for r in received) < len(plan):
        await asyncio.sleep(0.01)
    return filled_at


def _dropped(log: list[str]) -> bool:
    return any("dropping 127.0.0.1" in line and "stopped reading" in line for line in log)


async def _when_dropped(log: list[str]) -> float:
    """When the server logged that it dropped the stalled client (its log is read by a thread)."""
    while not _dropped(log):
        await asyncio.sleep(0.02)
    return time.monotonic()


@pytest.mark.slow
async def test_a_stalled_client_is_dropped_while_20_readers_miss_nothing(
    record_property: RecordProperty,
) -> None:
    srv = ServerProcess(
        *("--rate", "100000", "--burst", "100000", "--max-message-chars", "70000"),
        *("--max-frame-bytes", "131072", "--max-messages-per-room", "100"),
        *("--max-pending-bytes", str(CAP), "--slow-client-grace", str(GRACE)),
        *("--ping-interval", "0"),  # no keepalive: only falling behind can drop the stalled client
    ).wait_ready()
    log = srv.log
    rss = PeakRss(srv.proc.pid)
    try:
        sender = await Client.open(srv.port)
        await sender.login("Sender")
        readers = [await Client.open(srv.port) for _ in range(READERS)]
        for i, r in enumerate(readers):
            await r.login(f"Reader{i}")
        stalled = await _mute(srv.port, "Stalled")
        assert users_online(srv.port) == READERS + 2

        received = [Received() for _ in readers]
        reading = [
            asyncio.ensure_future(_read_from_sender(r, got)) for r, got in zip(readers, received, strict=True)
        ]
        reading.append(asyncio.ensure_future(_discard_until_closed(sender)))
        plan = ["b" if k % 16 == 15 else "s" for k in range(SMALL + BIG)]  # 3,000 small, 200 big
        assert plan.count("b") == BIG
        assert SMALL * 1024 + BIG * 65536 > FILL_BYTES  # the broadcast surely puts it behind
        rss.start()
        t0 = time.monotonic()
        watching = asyncio.ensure_future(_when_dropped(log))
        filled_at = await _broadcast_paced(sender, plan, received)
        broadcast_s = time.monotonic() - t0
        # the bound: behind by filled_at at the latest, then the grace and the once-a-second check
        deadline = filled_at + GRACE + 1 + SLACK
        try:
            dropped_at = await asyncio.wait_for(watching, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            pytest.fail(f"the stalled client was not dropped within {GRACE + 1 + SLACK} s of falling behind")
        assert users_online(srv.port) == READERS + 1
        peak_growth = rss.stop()
        rss_after = rss.proc.memory_info().rss

        first = received[0].seqs[0]
        for got in received:  # every reader got every message, in order, nothing twice
            assert got.seqs == list(range(first, first + len(plan)))
        assert [got.chars for got in received] == [SMALL * 1024 + BIG * 65536] * READERS
        assert _dropped(log)
        drop_s = dropped_at - t0
        record_property(
            "slow consumer: broadcast seconds (3,000 x 1 KiB + 200 x 64 KiB to 20)", round(broadcast_s, 2)
        )
        record_property("slow consumer: stalled client dropped after s", round(drop_s, 2))
        record_property("slow consumer: surely behind after s", round(filled_at - t0, 2))
        record_property(
            "slow consumer: server RSS before/peak/after MiB",
            f"{rss.before / 2**20:.1f} / {max(rss.samples) / 2**20:.1f} / {rss_after / 2**20:.1f}",
        )
        record_property("slow consumer: server peak RSS growth MiB", round(peak_growth, 1))
        assert peak_growth < 50
        await sender.close()
        for r in readers:
            await r.close()
        await asyncio.gather(*reading)
        stalled.close()
    finally:
        rss.stop()
        srv.stop()


def connections(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
        return json.loads(resp.read())["connections"]


FLOODERS, ASKS, MESSAGE_CHARS = 10, 30, 24_000


async def _fill_room(port: int) -> tuple[Client, int]:
    """A client that wrote 100 messages of MESSAGE_CHARS characters; the last seq."""
    filler = await Client.open(port)
    await filler.login("Filler")
    for i in range(100):
        await filler.chat("w" * MESSAGE_CHARS, client_msg_id=f"f{i}")
    last = 0
    for _ in range(100):
        last = (await filler.expect("ack"))["seq"]
    return filler, last


@pytest.mark.slow
@pytest.mark.parametrize(
    "where",
    [
        pytest.param((), id="pages-from-memory"),
        # 1 MiB of history memory cannot hold 100 messages of 24 KB: every page is a database read,
        # answered later, so the hold must last until the read comes back, not only the write
        pytest.param(("--history-memory", "1"), id="pages-from-the-database"),
    ],
)
async def test_history_requests_from_clients_that_never_read_are_answered_one_at_a_time(
    record_property: RecordProperty, where: tuple[str, ...]
) -> None:
    """30 fetch_history (100 messages of 24 KB each) in one packet from each of 10 clients that
    never read: the old server built every answer at once, one 70 MB write per client."""
    srv = ServerProcess(
        *("--rate", "1000", "--burst", "1000", "--max-message-chars", str(MESSAGE_CHARS)),
        *("--ping-interval", "1"),  # bounds how long the old server kept them (two sweeps: 2 s)
        *where,
    ).wait_ready()
    rss = PeakRss(srv.proc.pid)
    try:
        filler, last = await _fill_room(srv.port)
        bystander = await Client.open(srv.port)
        await bystander.login("Bystander")
        flooders = [await _mute(srv.port, f"Mute{i}") for i in range(FLOODERS)]
        rss.start()
        ask = {"type": "fetch_history", "room": "general", "before_seq": last + 1, "limit": 100}
        for c in flooders:
            c.send_raw(b"".join(text(ask) for _ in range(ASKS)))  # one write: one packet
        t0 = time.monotonic()
        await bystander.chat("are you there?")
        assert (await bystander.expect("chat", 10.0, message="are you there?"))["username"] == "Bystander"
        round_trip_s = time.monotonic() - t0
        for _ in range(1200):  # bounded: every flooder is dropped within a minute
            if connections(srv.port) == 2:
                break
            await asyncio.sleep(0.05)
        peak_growth = rss.stop()
        assert connections(srv.port) == 2  # only Filler and Bystander are left
        record_property("never-reading clients: server peak RSS growth MiB", round(peak_growth, 1))
        record_property("never-reading clients: bystander round trip s", round(round_trip_s, 3))
        # one answer is 2.4 MB; the old server held all 30 of each client's: about 700 MB
        assert peak_growth < 150
        assert "Traceback" not in srv.stderr_text()
        for c in flooders:
            c.close()
        await filler.close()
        await bystander.close()
    finally:
        rss.stop()
        srv.stop()
