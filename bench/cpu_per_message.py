"""Server CPU per message for a fixed load: the A/B measure of the cluster work (issue 13).

Throughput on this shared two-core machine swings with the other jobs; the CPU time a server
process spends per message moves much less. For each checkout given (a directory with
chat-server.py: the current one, or an older commit extracted with `git archive`), one run
starts a fresh redis-server (appendfsync always), the server (`--redis`; `local:` in front of
the directory for the same server on a memory store without Redis, `sqlite:` on a SQLite file
with `--synchronous full` as `python -m bench`'s own scenarios run it), and the compiled load
generator for a bounded load, and prints one JSON line: messages, server and Redis CPU per
message (µs) over the generator's measured window (`--watch-pid`: the clients' log-ins before
it are no part of it), the rate, and with `--syscalls` the servers' system calls per message
over the whole run (`perf stat`: sends, receives, event-loop waits). Checkouts are
interleaved `--runs` times; the medians come last.

`--pin` pins the servers to one CPU and the generator and Redis to the other, as `python -m
bench` does: then the rate is what the bench would see, while unpinned runs measure the CPU
cost alone.

    python -m bench.cpu_per_message --mode durable --runs 5 /tmp/old . local:.
    python -m bench.cpu_per_message --mode fanout --pin --runs 5 . sqlite:.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import loadgen
from bench.cluster import Redis
from bench.machine import cpus, pin

LOADS = {
    "durable": ["--clients", "100", "--senders", "100", "--window", "50"],
    "fanout": ["--clients", "1000", "--senders", "10", "--window", "4", "--split", "alternate"],
}
DURATION = ["--warmup", "1", "--duration", "5"]  # as python -m bench's FULL plan


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SYSCALLS = ("sendto", "recvfrom", "epoll_wait", "write")


def _perf(pids: list[int]) -> subprocess.Popen[str] | None:
    """`perf stat` counting the servers' system calls until it is interrupted (None without perf)."""
    if not shutil.which("perf"):
        return None
    events = ",".join(f"syscalls:sys_enter_{c}" for c in SYSCALLS)
    argv = ["perf", "stat", "-x", ",", "-e", events, "-p", ",".join(map(str, pids))]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _counted(perf: subprocess.Popen[str] | None) -> dict[str, int]:
    if perf is None:
        return {}
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate(timeout=30)
    out = {}
    for line in err.splitlines():
        value, _, event, *_ = [*line.split(","), "", "", ""]
        if value.isdigit() and event.startswith("syscalls:sys_enter_"):
            out[event.removeprefix("syscalls:sys_enter_")] = int(value)
    return out


def _server_argv(tree: str, port: int, url: str, folder: Path) -> tuple[Path, list[str]]:
    """Where and how to start one server of `tree` (`local:`, `sqlite:` or a Redis tree)."""
    kind, _, rest = tree.rpartition(":")
    argv = [sys.executable, "chat-server.py", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--rate", "1000000", "--burst", "1000000"]
    if kind == "sqlite":
        argv += ["--db", str(folder / f"{port}.db"), "--synchronous", "full"]
    else:
        argv += ["--db", ":memory:"] + ([] if kind == "local" else ["--redis", url])
    return Path(rest).resolve(), argv


def one_run(
    tree: str, mode: str, processes: int, folder: Path, pinned: bool = False, syscalls: bool = False
) -> dict:
    server_cpu, gen_cpu = cpus() if pinned else (None, None)
    with Redis(folder, gen_cpu) as rds:
        servers = []
        for _ in range(processes):
            port = _port()
            path, argv = _server_argv(tree, port, rds.url, folder)
            argv = [*pin(server_cpu), *argv]
            proc = subprocess.Popen(argv, cwd=path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers.append((proc, port))
        try:
            for _, port in servers:
                for _ in range(500):  # until it listens
                    try:
                        socket.create_connection(("127.0.0.1", port)).close()
                        break
                    except OSError:
                        time.sleep(0.02)
            assert rds.proc is not None
            pids = [p.pid for p, _ in servers] + [rds.proc.pid]
            args = ["--mode", mode, *LOADS[mode], *DURATION]
            args += ["--host", "127.0.0.1", "--port", str(servers[0][1]), "--timeout", "120"]
            if processes == 2:
                args += ["--port2", str(servers[1][1])]
            args += [a for pid in pids for a in ("--watch-pid", str(pid))]  # CPU over the window
            perf = _perf(pids[:-1]) if syscalls else None
            res = loadgen.run(args, prefix=pin(gen_cpu), timeout=150)
            calls = _counted(perf)
        finally:
            for proc, _ in servers:
                proc.terminate()
            for proc, _ in servers:
                proc.wait(20)
    # the measured window only: the clients' log-ins and joins before it are not messages
    n = (res["window_acks"] if mode == "durable" else res["window_sent"]) or 1
    used = res["watched_cpu_s"]
    window = res["window_s"] or 1
    rate = (res["window_acks"] if mode == "durable" else res["window_deliveries"]) / window
    sent = res["sent"] or 1  # system calls are counted over the whole run
    return {
        "tree": tree, "mode": mode, "processes": processes, "messages": n,
        "server_us": round(sum(used[:-1]) / n * 1e6, 1), "redis_us": round(used[-1] / n * 1e6, 1),
        **{c: round(k / sent, 2) for c, k in calls.items()},
        "rate": round(rate), "ok": bool(res["ok"]), "pinned": pinned,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "trees", nargs="+", help="checkouts; local:DIR (memory) or sqlite:DIR runs DIR without Redis"
    )
    ap.add_argument("--mode", choices=sorted(LOADS), default="durable")
    ap.add_argument("--processes", type=int, choices=(1, 2), default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pin", action="store_true", help="pin as python -m bench does (rates comparable to it)")
    ap.add_argument("--syscalls", action="store_true", help="count the servers' system calls (perf stat)")
    opts = ap.parse_args()
    loadgen.build()
    results: dict[str, list[dict]] = {t: [] for t in opts.trees}
    with tempfile.TemporaryDirectory(prefix="wschat-cpu-") as tmp:
        for i in range(opts.runs):
            for tree in opts.trees:
                folder = Path(tmp) / f"{i}-{len(results[tree])}"
                r = one_run(tree, opts.mode, opts.processes, folder, opts.pin, opts.syscalls)
                results[tree].append(r)
                print(json.dumps(r), flush=True)
    for tree, runs in results.items():
        server = statistics.median(r["server_us"] for r in runs)
        rds = statistics.median(r["redis_us"] for r in runs)
        rate = statistics.median(r["rate"] for r in runs)
        counted = [c for c in SYSCALLS if c in runs[0]]
        calls = "".join(f", {c} {statistics.median(r[c] for r in runs):.1f}" for c in counted)
        print(
            f"median {tree}: server {server:.1f} µs, Redis {rds:.1f} µs per message{calls};"
            f" rate {rate:,.0f}/s ({len(runs)} runs)"
        )


if __name__ == "__main__":
    main()
