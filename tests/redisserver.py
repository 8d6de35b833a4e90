"""A real `redis-server` for the cluster tests: an ephemeral port, a temporary folder, an AOF.

`RedisServer(folder).start()` runs Debian's redis-server on 127.0.0.1 with `appendonly yes`
(and `appendfsync always`, the setting that promises what SQLite's `synchronous full` does),
and returns once it logs that it accepts connections. `kill()` is `kill -9`; `start()` again
reopens the same AOF on the same port, as an operator restarting Redis would. `pause()` and
`resume()` are SIGSTOP and SIGCONT. Every instance is registered so that a failing test
cannot leave one running (the `redis` fixture in conftest.py stops it).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import ClassVar

READY = "Ready to accept connections"
TIMEOUT = 10.0


def free_port() -> int:
    """A port nothing listens on now (the kernel's choice for a socket bound to port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer:
    running: ClassVar[set[RedisServer]] = set()

    def __init__(self, folder: Path, *, fsync: str = "always") -> None:
        self.folder = folder
        self.fsync = fsync
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: list[str] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (or restart on the same port and AOF); returns once Redis accepts connections."""
        for _ in range(5):  # the port was free a moment ago; another process may have taken it
            self.port = self.port or free_port()
            if self._launch():
                RedisServer.running.add(self)
                return self
            if "Address already in use" not in "".join(self.log):
                break
            self.port = 0
        raise RuntimeError("redis-server did not start: " + "".join(self.log[-20:]))

    def _launch(self) -> bool:
        argv = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.folder),
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--save", "",
            "--logfile", "",
            "--daemonize", "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + TIMEOUT
        seen = b""  # raw reads: a buffered readline would hide lines from the selector
        try:
            while time.monotonic() < deadline:
                if not sel.select(0.5):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:  # it exited
                    self.log.append(seen.decode(errors="replace"))
                    self.proc.wait()
                    return False
                seen += chunk
                if READY.encode() in seen:
                    self.log.append(seen.decode(errors="replace"))
                    _drain(self.proc, self.log)  # keep reading its log: a full pipe would block it
                    return True
        finally:
            sel.close()
        self.log.append(seen.decode(errors="replace"))
        self.proc.kill()
        self.proc.wait()
        return False

    def kill(self) -> None:
        """kill -9: what it had not written to the AOF is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
                self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        RedisServer.running.discard(self)


def _drain(proc: subprocess.Popen[bytes], log: list[str]) -> None:
    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line.decode(errors="replace"))

    threading.Thread(target=read, daemon=True).start()
