"""10,000 random and malformed frames from several clients against a server in a subprocess.

The rate limits are raised (--rate/--burst/--control-rate/--control-burst 100000) so the fuzzers
are not simply closed for flooding after a few dozen frames and every frame reaches the decoder
and the hub. Frames that must end a connection (invalid UTF-8, oversized, reserved opcodes,
unmasked) are sent on purpose; the fuzzer then reconnects. The server must log nothing at
ERROR, keep answering /healthz, keep two ordinary clients chatting, and keep its memory bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import string
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import pytest
from rawws import RawClient, frame
from support import Client, ServerProcess
from websockets.exceptions import ConnectionClosed

SEED = 6
FRAMES = 10_000
WORKERS = 5
TYPES = ["set_username", "chat", "private", "get_users", "list_rooms", "join", "leave", "fetch_history"]
FIELDS = ["username", "message", "room", "rooms", "resume", "session_token", "client_msg_id", "to", "epoch"]
FIELDS += ["seq", "before_seq", "limit"]
FATAL = {"bad_utf8", "oversize", "bad_opcode", "unmasked", "bad_continuation"}


def odd_value(rng: random.Random) -> object:
    return rng.choice(
        [
            None,
            True,
            -1,
            2**64,
            10**30,
            1.5e300,
            "",
            " ",
            "x" * rng.randint(1, 5000),
            [1, "a", None],
            {"epoch": 1, "seq": "x"},
            {"general": {"epoch": "e", "seq": -5}},
            ["general"] * 60,
            "#Dev",
            "../../etc",
            "\u202eevil",
            "Al\u200bice",
            "\u0410lice",
            rng.choice(["general", "dev", "random"]),
        ]
    )


def name(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + " _-.éßЖж名前\u0430\u200b\u202e\U0001f600"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))


def valid_request(rng: random.Random) -> dict:
    kind = rng.choice(TYPES)
    room = rng.choice(["general", "dev", "random", "Dev", "#music", "no such room!", ""])
    if kind == "set_username":
        return {"type": kind, "username": name(rng), "rooms": rng.sample(["general", "dev", "x"], 2)}
    if kind == "chat":
        return {
            "type": kind,
            "message": "".join(rng.choices("abc <b>\x1b[31m\n", k=rng.randint(1, 50))),
            "room": room,
        }
    if kind == "private":
        return {"type": kind, "to": rng.choice(["Alice", "Bob", "nobody", name(rng)]), "message": "psst"}
    if kind == "fetch_history":
        return {"type": kind, "room": room, "before_seq": rng.randint(0, 100), "limit": rng.randint(-5, 200)}
    if kind == "join" and rng.random() < 0.5:
        return {"type": kind, "room": room, "epoch": "nope", "seq": rng.randint(0, 10**6)}
    return {"type": kind, "room": room}


def _fatal(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(sorted(FATAL))
    if kind == "bad_utf8":
        return kind, frame(b'{"type":"chat","message":"\xc3\x28"}')
    if kind == "oversize":
        return kind, frame(b"x" * (64 * 1024 + rng.randint(1, 1000)))
    if kind == "bad_opcode":
        return kind, frame(b"?", opcode=rng.choice([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]))
    if kind == "unmasked":
        return kind, bytes([0x81, 5]) + b"hello"
    return kind, frame(b"orphan", opcode=0x0)  # a continuation with nothing to continue


def _binary(rng: random.Random) -> bytes:
    return frame(rng.randbytes(rng.randint(0, 300)), opcode=0x2)


def _garbage_text(rng: random.Random) -> bytes:
    text = "".join(chr(rng.randint(1, 0x2FFFF)) for _ in range(rng.randint(0, 80)))
    text = text.encode("utf-8", "replace").decode("utf-8", "ignore")
    return frame(text.encode("utf-8", "surrogatepass"))


def _truncated(rng: random.Random) -> bytes:
    full = json.dumps(valid_request(rng))
    return frame(full[: rng.randint(0, len(full) - 1)].encode())


def _wrong_types(rng: random.Random) -> bytes:
    obj = {"type": rng.choice([*TYPES, 1, None, [], "", "x" * 100])}
    for field in rng.sample(FIELDS, rng.randint(0, 4)):
        obj[field] = odd_value(rng)
    return frame(json.dumps(obj).encode())


def _huge_number(rng: random.Random) -> bytes:
    digits = "9" * rng.randint(300, 6000)
    field = rng.choice(["before_seq", "limit", "seq", "message"])
    return frame(f'{{"type":"fetch_history","room":"general","before_seq":1,"{field}":{digits}}}'.encode())


def _deep(rng: random.Random) -> bytes:
    depth = rng.randint(100, 10_000)  # up to 60 KB: inside the 64 KiB frame limit
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    inner = opener * depth + "1" + closer * depth
    return frame(f'{{"type":"chat","message":{inner}}}'.encode())


def _surrogate(rng: random.Random) -> bytes:
    s = rng.choice(["\\ud800", "\\udfff", "a\\ud83d", "\\ud800\\ud800"])
    field = rng.choice(["message", "username", "room", "client_msg_id", "to"])
    kind = rng.choice(["chat", "set_username", "join", "private"])
    return frame(f'{{"type":"{kind}","{field}":"{s}","message":"m"}}'.encode())


def _control(rng: random.Random) -> bytes:
    payload = rng.randbytes(rng.randint(0, 125))
    return frame(payload, opcode=rng.choice([0x9, 0xA]))


def _fragmented(rng: random.Random) -> bytes:
    data = json.dumps(valid_request(rng)).encode()
    cut = rng.randint(0, len(data))
    return frame(data[:cut], opcode=0x1, fin=False) + frame(data[cut:], opcode=0x0)


def _valid_or_wrong(rng: random.Random) -> bytes:
    return frame(json.dumps(valid_request(rng)).encode())


# Cumulative bounds on one uniform draw: the mix (2 % fatal, 8 % binary, ...) and, with SEED, the
# exact frames depend on this order and on each builder drawing from rng in the same order.
MIX: list[tuple[float, str, Callable[[random.Random], bytes]]] = [
    (0.10, "binary", _binary),
    (0.20, "garbage_text", _garbage_text),
    (0.30, "truncated", _truncated),
    (0.42, "wrong_types", _wrong_types),
    (0.47, "huge_number", _huge_number),
    (0.52, "deep", _deep),
    (0.57, "surrogate", _surrogate),
    (0.62, "control", _control),
    (0.67, "fragmented", _fragmented),
]


def fuzz_frame(rng: random.Random) -> tuple[str, bytes]:
    """(kind, wire bytes) of one client frame."""
    r = rng.random()
    if r < 0.02:
        return _fatal(rng)
    for bound, kind, build in MIX:
        if r < bound:
            return kind, build(rng)
    return "valid_or_wrong", _valid_or_wrong(rng)


async def fuzzer(port: int, rng: random.Random, quota: int, stats: dict[str, int]) -> None:
    sent = 0
    while sent < quota:
        c = await RawClient.connect(port)
        assert c.status == 101
        stats["connections"] += 1

        async def drain(c: RawClient = c) -> bool:  # a fuzzer that stopped reading would be dropped
            """Read until the end (False) or the pong that answers the final ping (True)."""
            while True:
                op, data = await c.read_frame(30)
                if op in (-1, 8):
                    return False
                if op == 0xA and data == b"end of fuzz":
                    return True

        reader = asyncio.ensure_future(drain())
        while sent < quota and not reader.done():
            kind, data = fuzz_frame(rng)
            c.send_raw(data)
            sent += 1
            stats[kind] = stats.get(kind, 0) + 1
            if kind in FATAL:
                await asyncio.wait_for(reader, 15)  # the server closes this one
                break
            if sent % 10 == 0:
                await c.writer.drain()
                await asyncio.sleep(0)
        if sent == quota and not reader.done():
            c.send_raw(frame(b"end of fuzz", opcode=0x9))  # answered once all before it is handled
            if not await asyncio.wait_for(reader, 30):
                continue  # the connection ended under the last frames: nothing left to wait for
        reader.cancel()
        c.close()
    stats["frames"] += sent


def healthz(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
        return json.loads(resp.read())


RecordProperty = Callable[[str, object], None]


@dataclass
class FuzzRun:
    """What one fuzz run measured, for the report."""

    stats: dict[str, int]
    seconds: float
    rss_before: int
    rss_after: int
    chats_during: int  # sent by Alice while the fuzzers ran

    @property
    def growth_mib(self) -> float:
        return (self.rss_after - self.rss_before) / 2**20

    def record(self, record_property: RecordProperty) -> None:
        record_property("fuzz: frames sent", self.stats["frames"])
        record_property("fuzz: connections (reconnects after fatal frames)", self.stats["connections"])
        record_property(
            "fuzz: frames by kind",
            {k: v for k, v in sorted(self.stats.items()) if k not in ("frames", "connections")},
        )
        record_property("fuzz: seconds", round(self.seconds, 1))
        record_property(
            "fuzz: server RSS before/after MiB",
            f"{self.rss_before / 2**20:.1f} / {self.rss_after / 2**20:.1f}",
        )
        record_property("fuzz: server RSS growth MiB", round(self.growth_mib, 1))


async def _collect_chats(client: Client, sender: str, into: list[str]) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            f = await client.recv(60)
            if f.get("type") == "chat" and f.get("username") == sender:
                into.append(f["message"])


async def _discard_until_closed(client: Client) -> None:
    # the fuzzers' chats reach this client too, and the server drops a client that stops reading
    with contextlib.suppress(ConnectionClosed):
        while True:
            await client.recv(60)


async def _fuzz_while_alice_chats(port: int, proc: psutil.Process, alice: Client) -> FuzzRun:
    """Returns once every fuzzer's last frame has been handled by the server."""
    rss_before = proc.memory_info().rss
    stats = {"connections": 0, "frames": 0}
    t0 = time.monotonic()
    rngs = [random.Random(SEED * 100 + i) for i in range(WORKERS)]
    fuzzing = asyncio.gather(*(fuzzer(port, rng, FRAMES // WORKERS, stats) for rng in rngs))
    during = 0
    while not fuzzing.done():  # the server must keep serving an ordinary chat under the fuzz
        await alice.chat(f"during {during}")
        during += 1
        await asyncio.wait([fuzzing], timeout=0.2)
    await fuzzing
    seconds = time.monotonic() - t0
    return FuzzRun(stats, seconds, rss_before, proc.memory_info().rss, during)


def _logged_errors(srv: ServerProcess) -> list[str]:
    return [
        line
        for line in srv.stderr_text().splitlines()
        if any(w in line for w in (" ERROR ", " CRITICAL ", "Traceback"))
    ]


@pytest.mark.slow
async def test_10000_random_and_malformed_frames_break_nothing(record_property: RecordProperty) -> None:
    big = "100000"
    srv = ServerProcess(
        "--rate", big, "--burst", big, "--control-rate", big, "--control-burst", big
    ).wait_ready()
    try:
        proc = psutil.Process(srv.proc.pid)
        alice = await Client.open(srv.port, max_size=None)
        bob = await Client.open(srv.port, max_size=None)
        await alice.login("Alice")
        await bob.login("Bob")
        bob_got: list[str] = []
        readers = [
            asyncio.ensure_future(_collect_chats(bob, "Alice", bob_got)),
            asyncio.ensure_future(_discard_until_closed(alice)),
        ]
        run = await _fuzz_while_alice_chats(srv.port, proc, alice)
        assert run.stats["frames"] == FRAMES

        health = await asyncio.to_thread(healthz, srv.port)
        assert health["status"] == "ok"
        await alice.chat("after the fuzz")
        await asyncio.wait_for(_until(lambda: "after the fuzz" in bob_got), 10)
        assert bob_got == [f"during {i}" for i in range(run.chats_during)] + ["after the fuzz"]
        await alice.close()
        await bob.close()
        await asyncio.gather(*readers)

        run.record(record_property)
        assert run.growth_mib < 64
    finally:
        code = srv.stop()
    bad = _logged_errors(srv)
    assert not bad, "\n".join(bad[:20])
    assert code == 0


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.01)
