"""Cluster scenarios: server processes sharing one Redis (issue 13), measured like the others.

Each scenario starts a fresh `redis-server` (appendonly, `appendfsync always`: the promise of
SQLite's `--synchronous full`) on a free loopback port in the bench's temporary folder, one or
two `chat-server.py --redis` processes, and the load generator (`--port2` and `--split` put
clients on the second process). Redis and the servers are pinned to the server CPU, the
generator to the other; the CPU each of them used during the whole run is reported (the
generator's window figure covers the first server only).

- `fanout`: 1,000 clients, 40 messages in flight, on one process with Redis (compare with the
  `fanout-40` run without Redis in the same report; target: at least 70 % of it), and split
  over two processes;
- `latency`: 20 msg/s from senders on one process to readers on the other (target: p99 within
  2x the single-process p99 of the same report);
- `durable`: acknowledged messages/s through Redis with 5,000 in flight (target: 30,000/s);
  afterwards every acknowledged message must be in Redis.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.machine import pin
from bench.scenarios import RAISED_LIMITS, Bench, Run, Server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A redis-server for one scenario; a context manager."""

    def __init__(self, folder: Path, cpu: int | None) -> None:
        self.folder = folder
        self.port = _free_port()
        self.argv = [
            *pin(cpu), "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(folder), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> Redis:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "redis.log").open("wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        for _ in range(300):  # until it answers (it logs "Ready" at the same moment)
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.02)
        client.close()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def stored(self) -> int:
        """Messages in every room's stream."""
        client = redis.Redis.from_url(self.url)
        try:
            return sum(client.xlen(k) for k in client.scan_iter("wschat:room:*:stream"))
        finally:
            client.close()


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            out[name] = 0.0
    return out


def _run(bench: Bench, name: str, processes: int, mode: str, clients: int, gen: list[str]) -> tuple[Any, ...]:
    """Redis, `processes` servers, one generator run; (result, servers, cpu by process, wall, load)."""
    folder = bench.tmp / f"{name}-{len(bench.runs)}"
    with Redis(folder / "redis", bench.server_cpu) as rds:
        srv, load, busy = bench._start("wschat", ["--redis", rds.url, "--db", ":memory:", *RAISED_LIMITS])
        second = Server(
            "wschat", ["--redis", rds.url, "--db", ":memory:", *RAISED_LIMITS], bench.server_cpu, folder
        )
        with srv:
            if processes == 2:
                second.__enter__()
            try:
                assert rds.proc is not None
                pids = {"redis": rds.proc.pid, "server 1": srv.pid}
                if processes == 2:
                    pids["server 2"] = second.pid
                extra = ["--port2", str(second.port)] if processes == 2 else []
                before, t0 = _cpu(pids), time.monotonic()
                res = bench._gen(srv, mode, clients, *gen, *extra, timeout=120)
                wall = time.monotonic() - t0
                after = _cpu(pids)
            finally:
                second.__exit__()
        stored = rds.stored()
    cpu = {k: (after[k] - before[k]) / wall for k in pids}
    return res, srv, cpu, stored, load, busy


def _figures_cpu(figures: dict[str, Any], cpu: dict[str, float]) -> None:
    for name, share in cpu.items():
        figures[f"{name} cpu (whole run)"] = f"{share:.0%}"


def fanout(bench: Bench, processes: int) -> Run:
    p = bench.plan
    senders, window = p.fanout_in_flight[0]
    gen = ["--senders", str(senders), "--window", str(window)]
    gen += ["--warmup", str(p.warmup), "--duration", str(p.fanout_secs), "--split", "alternate"]
    res, srv, cpu, _, load, busy = _run(bench, "cluster-fanout", processes, "fanout", p.fanout_clients, gen)
    w = res["window_s"] or 1
    figures: dict[str, Any] = {
        "processes": processes,
        "in_flight": senders * window,
        "deliveries_per_s": res["window_deliveries"] / w,
        "messages_per_s": res["window_sent"] / w,
        "delivered_all": res["deliveries"] == res["expected_deliveries"],
        "gen_cpu": res["gen_cpu_s"] / w,
    }
    _figures_cpu(figures, cpu)
    return bench._record(f"cluster-fanout-{processes}p", srv, res, figures, load, busy)


def latency(bench: Bench) -> Run:
    p = bench.plan
    gen = ["--senders", "10", "--rate", str(p.latency_rate)]
    gen += ["--warmup", str(p.warmup), "--duration", str(p.latency_secs), "--split", "senders"]
    res, srv, cpu, _, load, busy = _run(bench, "cluster-latency", 2, "latency", p.latency_clients, gen)
    w = res["window_s"] or 1
    lat = res.data.get("lat_ms", {})
    figures: dict[str, Any] = {
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "max_ms": lat.get("max"),
        "samples": res["latency_samples"],
        "gen_cpu": res["gen_cpu_s"] / w,
    }
    _figures_cpu(figures, cpu)
    return bench._record("cluster-latency", srv, res, figures, load, busy)


def durable(bench: Bench) -> Run:
    p = bench.plan
    gen = ["--senders", str(p.durable_senders), "--window", str(p.durable_window)]
    gen += ["--warmup", str(p.warmup), "--duration", str(p.durable_secs)]
    res, srv, cpu, stored, load, busy = _run(bench, "cluster-durable", 1, "durable", p.durable_senders, gen)
    w = res["window_s"] or 1
    figures: dict[str, Any] = {
        "acks_per_s": res["window_acks"] / w,
        "in_flight": p.durable_senders * p.durable_window,
        "acked": res["acks"],
        "stored": stored,
        "gen_cpu": res["gen_cpu_s"] / w,
    }
    _figures_cpu(figures, cpu)
    ok = bool(res["ok"]) and stored >= res["acks"]
    return bench._record("cluster-durable", srv, res, figures, load, busy, ok)


def available() -> str:
    """Why the cluster scenarios cannot run here ("" if they can)."""
    return "" if shutil.which("redis-server") else "redis-server is not installed (bash test.sh installs it)"


def run_all(bench: Bench) -> list[Run]:
    why = available()
    if why:
        bench.log(f"  cluster scenarios skipped: {why}")
        return []
    return [fanout(bench, 1), fanout(bench, 2), latency(bench), durable(bench)]
