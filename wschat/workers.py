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

from wschat.cli import StartupError, parse_args, server_tls
from wschat.mdns import Announcement, announce

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


def launcher() -> str:
    """The script this server runs as: chat-server.py in a checkout, else (installed by pip) the
    wschat-server command this process was started as."""
    return str(LAUNCHER) if LAUNCHER.exists() else sys.argv[0]


def supervise(argv: list[str], n: int) -> int:
    """Run `n` workers until Ctrl+C or SIGTERM; returns the exit status.

    The workers do not announce themselves on the LAN (`--no-mdns`): this process announces the
    port once for all of them (wschat.mdns), so each host is listed once.
    """
    command = [sys.executable, launcher(), *worker_argv(argv), "--no-mdns"]
    commands = [command, *([[*command, "--no-qr"]] * (n - 1))]  # one QR code in the output is enough
    announcement = _announce(argv)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    procs = [subprocess.Popen(commands[i]) for i in range(n)]
    started = [time.monotonic()] * n
    quick = [0] * n
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    status = 0
    while True:
        if stopping:
            for p in procs:
                p.wait()
            if announcement is not None:
                announcement.stop()
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
            procs[i] = subprocess.Popen(commands[i])
            started[i] = time.monotonic()
        time.sleep(0.2)  # a supervisor's poll, not a synchronisation


def _announce(argv: list[str]) -> Announcement | None:
    """The supervisor's announcement of the workers' port (the TLS certificate made first if
    --self-signed asks for one, so the workers find it and the announcement names it)."""
    opts = parse_args(argv)
    if opts.no_mdns:
        return None
    try:
        tls, fingerprint, _ = server_tls(opts)
    except StartupError:
        return None  # the workers say why in one sentence, and stop
    dual_stack = opts.host == "::"  # as the workers' sockets are on Linux
    return announce(opts, opts.port, tls=tls is not None, fingerprint=fingerprint, dual_stack=dual_stack)
