"""Test helpers: a real server in this process or in a subprocess, and a JSON chat client.

Everything here talks to real sockets on 127.0.0.1; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from websockets.asyncio.client import ClientConnection, connect

from wschat.server import ChatServer, parse_args

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0


def server_args(*extra: str, db: str = ":memory:") -> list[str]:
    return ["--host", "127.0.0.1", "--port", "0", "--db", db, *extra]


async def start_server(*extra: str, db: str = ":memory:") -> ChatServer:
    """A real server in this event loop on an ephemeral port."""
    server = ChatServer(parse_args(server_args(*extra, db=db)))
    await server.start()
    return server


class Client:
    """A websockets client speaking the chat's JSON; keeps every frame it received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.backlog: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, port: int, path: str = "/", **kwargs: Any) -> Client:
        # No bound on websockets' queue of unread frames: with one (16 by default) it stops
        # reading the socket while the queue is full, and a test client that has not looked at
        # everything it was sent then waited 10 s (close_timeout) for the server's close frame
        # behind them. The clients that must stop reading are raw sockets (rawws.RawClient).
        kwargs.setdefault("max_queue", None)
        ws = await connect(f"ws://127.0.0.1:{port}{path}", open_timeout=TIMEOUT, **kwargs)
        return cls(ws)

    async def send(self, obj: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        if self.backlog:
            return self.backlog.pop(0)
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame = json.loads(raw)
        self.seen.append(frame)
        return frame

    async def expect(self, type_: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The next frame of `type_` whose fields match; frames skipped on the way stay queued."""
        skipped: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise TimeoutError(f"no {type_} {fields} within {timeout}s; got {skipped[-5:]}")
                frame = await self.recv(left)
                if frame.get("type") == type_ and all(frame.get(k) == v for k, v in fields.items()):
                    return frame
                skipped.append(frame)
        finally:
            self.backlog[:0] = skipped

    async def login(self, name: str, **extra: Any) -> dict[str, Any]:
        await self.send({"type": "set_username", "username": name, **extra})
        accepted = await self.expect("username_accepted")
        for room in accepted["rooms"]:
            await self.expect("history", room=room)
        return accepted

    async def chat(self, text: str, **extra: Any) -> None:
        await self.send({"type": "chat", "message": text, **extra})

    def drain(self) -> list[dict[str, Any]]:
        out, self.backlog = self.backlog, []
        return out

    async def close(self) -> None:
        await self.ws.close()


async def logged_in(port: int, name: str, **extra: Any) -> Client:
    c = await Client.open(port)
    await c.login(name, **extra)
    return c


class ServerProcess:
    """`python chat-server.py` in a subprocess; reads the port from its start-up banner.

    Every instance is registered in `running`; the `no_leaked_servers` fixture kills whatever a
    test left behind, so a failing test cannot leave a server running.
    """

    running: ClassVar[set[ServerProcess]] = set()

    def __init__(
        self,
        *args: str,
        db: str = ":memory:",
        port: int = 0,
        env: dict[str, str] | None = None,
        open_files: int | None = None,
    ) -> None:
        """`open_files`: the process's hard and soft limit on open descriptors (RLIMIT_NOFILE)."""
        argv = ["--host", "127.0.0.1", "--port", str(port), "--db", db, *args]

        def limit() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "chat-server.py"), *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            preexec_fn=limit if open_files is not None else None,
        )
        self.banner: list[str] = []
        self.port = 0
        # stderr is read all along: a full pipe would block the server's logging
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        ServerProcess.running.add(self)

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        self.log.extend(self.proc.stderr)

    def stderr_text(self) -> str:
        """Everything the server wrote to stderr; complete once the process has ended."""
        if self.proc.poll() is not None:
            self._reader.join(TIMEOUT)
        return "".join(self.log)

    def wait_ready(self, timeout: float = 3 * TIMEOUT) -> ServerProcess:
        # With a load average of 15 on two cores (every helper's suite at once) three processes
        # starting together took over 10 s to print a banner. Most of a start's CPU was Python
        # compiling every module from source (PYTHONDONTWRITEBYTECODE) and importing redis-py
        # without --redis: 0.39 s of CPU to the banner; 0.23 s since conftest keeps bytecode and
        # redis is imported with --redis only. The bound only decides how soon a start that
        # hangs fails, so it stays generous: a passing start never waits for it.
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while not self.port:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                err = self.stderr_text()
                raise RuntimeError(f"server did not start: {self.banner} {err}")
            if sel.select(0.2):
                line = self.proc.stdout.readline()
                self.banner.append(line.rstrip("\n"))
                if m := re.match(r"Starting WebSocket chat server on wss?://[^ ]*:(\d+)", line):
                    self.port = int(m.group(1))
        # the banner ends with a sentence after its second rule
        while self.banner.count("=" * 50) < 2:
            self.banner.append(self.proc.stdout.readline().rstrip("\n"))
        self.banner.append(self.proc.stdout.readline().rstrip("\n"))
        return self

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    async def astop(self, timeout: float = TIMEOUT) -> int:
        """stop() without blocking the event loop, so this process's clients can answer the close."""
        return await asyncio.to_thread(self.stop, timeout)

    def stop(self, timeout: float = TIMEOUT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            tail = "\n".join(self.stderr_text().splitlines()[-15:])
            why = f"the server did not stop within {timeout} s of SIGTERM; its log ends:\n{tail}"
            raise AssertionError(why) from None
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
