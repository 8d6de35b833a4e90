"""A chat client for the cluster tests that behaves like the real clients on a reconnect.

It keeps an outbox (sent, not yet acknowledged, by `client_msg_id`), its session token and
its position in each room; after a lost connection it connects to whichever process it is
given, takes its session over with the token, resumes every room from its position and
resends its outbox. It records every chat message it was shown, in order, so a test can check
for gaps and duplicates, and every acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

TIMEOUT = 10.0


class ResumingClient:
    def __init__(self, name: str, rooms: tuple[str, ...] = ("general",)) -> None:
        self.name = name
        self.rooms = rooms
        self.ws: ClientConnection | None = None
        self.token = ""
        self.positions: dict[str, dict[str, Any]] = {}  # room -> {"epoch", "seq"}
        self.shown: dict[str, list[dict[str, Any]]] = {r: [] for r in rooms}  # chat frames, in order
        self.outbox: dict[str, tuple[str, str]] = {}  # client_msg_id -> (room, text)
        self.acks: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.problems: list[str] = []  # gaps and duplicates it was shown
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()
        self.reader: asyncio.Task | None = None
        self.sessions = 0
        self.port = 0
        self.resends: set[asyncio.Task] = set()

    async def connect(self, port: int) -> None:
        """Connect (again) through `port`, take the session over, resume, resend the outbox."""
        await self.drop()
        self.ready.clear()
        self.ws = await connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT)
        self.port = port
        hello: dict[str, Any] = {"type": "set_username", "username": self.name, "rooms": list(self.rooms)}
        if self.token:
            hello["session_token"] = self.token
        if self.positions:
            hello["resume"] = self.positions
        await self.ws.send(json.dumps(hello))
        self.reader = asyncio.ensure_future(self._read(self.ws))
        await asyncio.wait_for(self.ready.wait(), TIMEOUT)
        for cmid, (room, text) in list(self.outbox.items()):
            await self._send_chat(room, text, cmid)

    async def reconnect(self, ports: list[int], attempts: int = 50) -> None:
        """Try each port in turn (a process may be down) until one takes the session."""
        for i in range(attempts):
            port = ports[i % len(ports)]
            with contextlib.suppress(OSError, InvalidHandshake, TimeoutError, ConnectionClosed):
                await self.connect(port)
                return
            await asyncio.sleep(0.05 * min(i, 10))  # a reconnect backoff, as the clients have
        raise AssertionError(f"{self.name} could not reconnect through {ports}")

    async def drop(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
            self.reader = None
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)
            self.ws = None

    @property
    def connected(self) -> bool:
        return self.ws is not None and self.reader is not None and not self.reader.done()

    async def say(self, cmid: str, text: str, room: str = "general") -> None:
        """Put a message in the outbox and send it if connected (else it goes on reconnect)."""
        self.outbox[cmid] = (room, text)
        if self.connected:
            with contextlib.suppress(ConnectionClosed):
                await self._send_chat(room, text, cmid)

    async def _send_chat(self, room: str, text: str, cmid: str) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps({"type": "chat", "room": room, "message": text, "client_msg_id": cmid}))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self._frame(json.loads(raw))
                self.changed.set()
        self.changed.set()

    def _frame(self, f: dict[str, Any]) -> None:
        kind = f.get("type")
        if kind == "username_accepted":
            self.token = f["session_token"]
            self.sessions += 1
        elif kind == "history" and f["mode"] in ("recent", "resume"):
            room = f["room"]
            if f.get("epoch_changed"):
                self.problems.append(f"{self.name}: epoch changed in #{room}")
            pos = self.positions.get(room)
            if pos is None or pos["epoch"] != f["epoch"]:
                self.positions[room] = {"epoch": f["epoch"], "seq": 0}
            if f["mode"] == "resume" and f.get("skipped"):
                self.problems.append(f"{self.name}: {f['skipped']} skipped in #{room}")
            for m in f["messages"]:
                self._chat(m, from_history=f["mode"] == "recent")
            if set(self.positions) >= set(self.rooms):
                self.ready.set()
        elif kind == "chat":
            self._chat(f, from_history=False)
        elif kind == "ack":
            self.acks.append(f)
            self.outbox.pop(f["client_msg_id"], None)
        elif kind == "error" and f.get("code") == "store_failed" and f.get("client_msg_id"):
            self.refused.append(f)
            asyncio.get_running_loop().call_later(0.2, self._resend, f["client_msg_id"])

    def _resend(self, cmid: str) -> None:
        if cmid in self.outbox and self.connected:
            room, text = self.outbox[cmid]
            task = asyncio.ensure_future(self._quiet_send(room, text, cmid))
            self.resends.add(task)
            task.add_done_callback(self.resends.discard)

    async def _quiet_send(self, room: str, text: str, cmid: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._send_chat(room, text, cmid)

    def _chat(self, m: dict[str, Any], *, from_history: bool) -> None:
        room = m["room"]
        pos = self.positions.setdefault(room, {"epoch": "", "seq": 0})
        seq = m["seq"]
        if seq <= pos["seq"]:
            if not from_history:
                self.problems.append(f"{self.name}: #{room} seq {seq} again after {pos['seq']}")
            return
        if pos["seq"] and seq != pos["seq"] + 1:
            self.problems.append(f"{self.name}: #{room} gap {pos['seq']} -> {seq}")
        pos["seq"] = seq
        self.shown[room].append(m)

    async def until(self, condition: Any, timeout: float = 30.0) -> None:
        """Wait until `condition()` holds, checking each time a frame arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"{self.name}: condition not met; outbox {len(self.outbox)}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))


async def all_until(clients: list[ResumingClient], condition: Any, timeout: float = 60.0) -> None:
    await asyncio.gather(*(c.until(lambda c=c: condition(c), timeout) for c in clients))
