"""`--workers N`: N server processes on one port, one chat through Redis. I/O.

The process the user started becomes a supervisor: it starts N copies of itself with
`--workers 1 --reuse-port` (each binds the same port with SO_REUSEPORT and the kernel spreads
new connections over them), passes Ctrl+C and SIGTERM on to all of them, and restarts one that
dies (its users reconnect to the others meanwhile and resume). If the workers cannot start
(Redis unreachable, the port taken), it stops and exits with their status.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("wschat.workers")

LAUNCHER = Path(__file__).resolve().parent.parent / "chat-server.py"
QUICK_EXIT = 5.0  # a worker that dies this soon after starting, twice in a row, is not restarted


def worker_argv(argv: list[str]) -> list[str]:
    """`argv` for one worker: without `--workers`, with `--workers 1 --reuse-port`."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return [*out, "--workers", "1", "--reuse-port"]


def supervise(argv: list[str], n: int) -> int:
    """Run `n` workers until Ctrl+C or SIGTERM; returns the exit status."""
    command = [sys.executable, str(LAUNCHER), *worker_argv(argv)]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    procs = [subprocess.Popen(command) for _ in range(n)]
    started = [time.monotonic()] * n
    quick = [0] * n
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    status = 0
    while True:
        if stopping:
            for p in procs:
                p.wait()
            return status
        for i, p in enumerate(procs):
            code = p.poll()
            if code is None or stopping:
                continue
            quick[i] = quick[i] + 1 if time.monotonic() - started[i] < QUICK_EXIT else 0
            if quick[i] >= 2 or code == 2:  # it cannot start (its one sentence is on stderr)
                stop(signal.SIGTERM, None)
                status = code or 2
                break
            log.warning("worker %d (pid %d) exited with %s; starting another", i + 1, p.pid, code)
            procs[i] = subprocess.Popen(command)
            started[i] = time.monotonic()
        time.sleep(0.2)  # a supervisor's poll, not a synchronisation
