"""Server CPU per message for a fixed load: the A/B measure of the cluster work (issue 13).

Throughput on this shared two-core machine swings with the other jobs; the CPU time a server
process spends per message moves much less. For each checkout given (a directory with
chat-server.py: the current one, or an older commit extracted with `git archive`), one run
starts a fresh redis-server (appendfsync always), the server (`--redis`, or `local:` in front
of the directory for the same server without Redis), and the compiled load generator for a
bounded load, and prints one JSON line: messages, server and Redis CPU per message (µs), and
the rate. Checkouts are interleaved `--runs` times; the medians come last.

    python -m bench.cpu_per_message --mode durable --runs 5 /tmp/old . local:.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import loadgen
from bench.cluster import Redis

LOADS = {
    "durable": ["--clients", "100", "--senders", "100", "--window", "50"],
    "fanout": ["--clients", "1000", "--senders", "10", "--window", "4", "--split", "alternate"],
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu(pids: list[int]) -> list[float]:
    return [sum(psutil.Process(p).cpu_times()[:2]) for p in pids]


def one_run(tree: str, mode: str, processes: int, folder: Path) -> dict:
    local = tree.startswith("local:")
    path = Path(tree.removeprefix("local:")).resolve()
    with Redis(folder, None) as rds:
        servers = []
        for _ in range(processes):
            port = _port()
            argv = [sys.executable, "chat-server.py", "--host", "127.0.0.1", "--port", str(port)]
            argv += ["--db", ":memory:", "--rate", "1000000", "--burst", "1000000"]
            argv += [] if local else ["--redis", rds.url]
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
            args = ["--mode", mode, *LOADS[mode], "--warmup", "1", "--duration", "4"]
            args += ["--host", "127.0.0.1", "--port", str(servers[0][1]), "--timeout", "120"]
            if processes == 2:
                args += ["--port2", str(servers[1][1])]
            before = _cpu(pids)
            res = loadgen.run(args, timeout=150)
            after = _cpu(pids)
        finally:
            for proc, _ in servers:
                proc.terminate()
            for proc, _ in servers:
                proc.wait(20)
    n = res["acks"] if mode == "durable" else res["window_sent"] or 1
    used = [a - b for a, b in zip(after, before, strict=True)]
    window = res["window_s"] or 1
    rate = (res["window_acks"] if mode == "durable" else res["window_deliveries"]) / window
    return {
        "tree": tree, "mode": mode, "processes": processes, "messages": n,
        "server_us": round(sum(used[:-1]) / n * 1e6, 1), "redis_us": round(used[-1] / n * 1e6, 1),
        "rate": round(rate), "ok": bool(res["ok"]),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trees", nargs="+", help="checkouts to compare; local:DIR runs DIR without Redis")
    ap.add_argument("--mode", choices=sorted(LOADS), default="durable")
    ap.add_argument("--processes", type=int, choices=(1, 2), default=1)
    ap.add_argument("--runs", type=int, default=5)
    opts = ap.parse_args()
    loadgen.build()
    results: dict[str, list[dict]] = {t: [] for t in opts.trees}
    with tempfile.TemporaryDirectory(prefix="wschat-cpu-") as tmp:
        for i in range(opts.runs):
            for tree in opts.trees:
                r = one_run(tree, opts.mode, opts.processes, Path(tmp) / f"{i}-{len(results[tree])}")
                results[tree].append(r)
                print(json.dumps(r), flush=True)
    for tree, runs in results.items():
        server = statistics.median(r["server_us"] for r in runs)
        rds = statistics.median(r["redis_us"] for r in runs)
        print(f"median {tree}: server {server:.1f} µs, Redis {rds:.1f} µs per message ({len(runs)} runs)")


if __name__ == "__main__":
    main()
