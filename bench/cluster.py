"""Cluster scenarios: server processes sharing one Redis (issue 13), measured like the others.

Each scenario starts a fresh `redis-server` (appendonly, `appendfsync always`: the promise of
SQLite's `--synchronous full`) on a free loopback port in the bench's temporary folder, one or
two `chat-server.py --redis` processes, and the load generator (`--port2` and `--split` put
clients on the second process). The servers are pinned to the server CPU; the generator and
Redis to the other (the generator leaves most of it idle in the durable run, 3 %; in the
fan-outs it takes 70 %, Redis 5 %): a deployment gives Redis a core of its own, not the
server's. The CPU each of them used during the generator's measured window is reported
(`--watch-pid`), as a share of a core and per message.

- `fanout`: 1,000 clients, 40 messages in flight, on one process with Redis (compare with the
  `fanout-40` run without Redis in the same report; target: at least 70 % of it), and split
  over two processes;
- `latency`: 20 msg/s from senders on one process to readers on the other (target: p99 within
  2x the single-process p99 of the same report);
- `durable`: acknowledged messages/s through Redis with 5,000 in flight (target: 30,000/s),
  repeated as the durable runs on SQLite are (the report shows the median); afterwards every
  acknowledged message must be in Redis.
"""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench import loadgen
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

    def command(self) -> str:
        return shlex.join(self.argv)

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


@dataclass
class ClusterRun:
    """One generator run against Redis and one or two servers."""

    res: loadgen.Result
    srv: Server
    cpu: dict[str, float]  # CPU seconds in the measured window, by process
    stored: int  # messages in Redis afterwards
    load: str
    busy: float | None
    shown: list[str]  # the command lines of Redis and the second server, for the report

    def record(self, bench: Bench, name: str, figures: dict[str, Any], ok: bool | None = None) -> Run:
        """`Bench._record`, with Redis's and the second server's commands before the first's."""
        out = bench._record(name, self.srv, self.res, figures, self.load, self.busy, ok)
        out.server_cmd = "\n".join([*self.shown, out.server_cmd])
        return out


def _run(bench: Bench, name: str, processes: int, mode: str, clients: int, gen: list[str]) -> ClusterRun:
    """Redis, `processes` servers, one generator run."""
    folder = bench.tmp / f"{name}-{len(bench.runs)}"
    with Redis(folder / "redis", bench.gen_cpu) as rds:
        srv, load, busy = bench._start("wschat", ["--redis", rds.url, "--db", ":memory:", *RAISED_LIMITS])
        second = Server(
            "wschat", ["--redis", rds.url, "--db", ":memory:", *RAISED_LIMITS], bench.server_cpu, folder
        )
        with srv:
            if processes == 2:
                second.__enter__()
            try:
                assert rds.proc is not None
                pids = {"redis": rds.proc.pid}
                if processes == 2:
                    pids["server 2"] = second.pid
                extra = ["--port2", str(second.port)] if processes == 2 else []
                extra += [a for pid in pids.values() for a in ("--watch-pid", str(pid))]
                res = bench._gen(srv, mode, clients, *gen, *extra, timeout=120)
            finally:
                second.__exit__()
        stored = rds.stored()
    cpu = {"server 1": res["server_cpu_s"], **dict(zip(pids, res["watched_cpu_s"], strict=True))}
    shown = [rds.command(), *([second.command()] if processes == 2 else [])]
    return ClusterRun(res, srv, cpu, stored, load, busy, shown)


def _figures_cpu(figures: dict[str, Any], cpu: dict[str, float], window: float, messages: int = 0) -> None:
    """Each process's share of a core in the measured window, and the servers' and Redis's CPU
    per message (what the estimate for more cores is made from; not for a paced load)."""
    for name, seconds in cpu.items():
        figures[f"{name} cpu"] = f"{seconds / window:.0%}"
    if not messages:
        return
    servers = sum(v for k, v in cpu.items() if k.startswith("server"))
    figures["server_us_per_msg"] = servers / messages * 1e6
    figures["redis_us_per_msg"] = cpu["redis"] / messages * 1e6


def fanout(bench: Bench, processes: int) -> Run:
    p = bench.plan
    senders, window = p.fanout_in_flight[0]
    gen = ["--senders", str(senders), "--window", str(window)]
    gen += ["--warmup", str(p.warmup), "--duration", str(p.fanout_secs), "--split", "alternate"]
    run = _run(bench, "cluster-fanout", processes, "fanout", p.fanout_clients, gen)
    res = run.res
    w = res["window_s"] or 1
    figures: dict[str, Any] = {
        "processes": processes,
        "in_flight": senders * window,
        "deliveries_per_s": res["window_deliveries"] / w,
        "messages_per_s": res["window_sent"] / w,
        "delivered_all": res["deliveries"] == res["expected_deliveries"],
        "gen_cpu": res["gen_cpu_s"] / w,
    }
    _figures_cpu(figures, run.cpu, w, res["window_sent"])
    return run.record(bench, f"cluster-fanout-{processes}p", figures)


def latency(bench: Bench) -> Run:
    p = bench.plan
    gen = ["--senders", "10", "--rate", str(p.latency_rate)]
    gen += ["--warmup", str(p.warmup), "--duration", str(p.latency_secs), "--split", "senders"]
    run = _run(bench, "cluster-latency", 2, "latency", p.latency_clients, gen)
    res = run.res
    w = res["window_s"] or 1
    lat = res.data.get("lat_ms", {})
    figures: dict[str, Any] = {
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "max_ms": lat.get("max"),
        "samples": res["latency_samples"],
        "gen_cpu": res["gen_cpu_s"] / w,
    }
    _figures_cpu(figures, run.cpu, w)
    return run.record(bench, "cluster-latency", figures)


def durable(bench: Bench) -> Run:
    p = bench.plan
    gen = ["--senders", str(p.durable_senders), "--window", str(p.durable_window)]
    gen += ["--warmup", str(p.warmup), "--duration", str(p.durable_secs)]
    run = _run(bench, "cluster-durable", 1, "durable", p.durable_senders, gen)
    res = run.res
    w = res["window_s"] or 1
    figures: dict[str, Any] = {
        "acks_per_s": res["window_acks"] / w,
        "in_flight": p.durable_senders * p.durable_window,
        "acked": res["acks"],
        "stored": run.stored,
        "gen_cpu": res["gen_cpu_s"] / w,
    }
    _figures_cpu(figures, run.cpu, w, res["window_acks"])
    ok = bool(res["ok"]) and run.stored >= res["acks"]
    return run.record(bench, "cluster-durable", figures, ok)


Row = tuple[str, str, str, str, str, str]


def _find(runs: list[Run], scenario: str) -> Run | None:
    return next((r for r in runs if r.scenario == scenario and r.server == "wschat"), None)


def _cpu(r: Run) -> str:
    f = r.figures
    return (
        f"; CPU per message: server {f['server_us_per_msg']:,.0f} µs, Redis {f['redis_us_per_msg']:,.0f} µs"
    )


def _fanout_rows(runs: list[Run], met: Callable[[bool], str]) -> list[Row]:
    out = []
    base, one, two = (
        _find(runs, "fanout-40"),
        _find(runs, "cluster-fanout-1p"),
        _find(runs, "cluster-fanout-2p"),
    )
    if one:
        rate = one.figures["deliveries_per_s"]
        alone = base.figures["deliveries_per_s"] if base else 0
        shown = f"{rate:,.0f}" + (f" ({rate / alone:.0%} of fanout-40)" if alone else "")
        target = f"≥ 70 % of fanout-40 ({alone * 0.7:,.0f})" if alone else "≥ 70 % of fanout-40 (not run)"
        what = "Fan-out through Redis, one process: deliveries/s, 1,000 clients, 40 in flight" + _cpu(one)
        out.append((what, target, shown, "–", "–", met(rate >= 0.7 * alone and one.ok) if alone else "–"))
    if two:
        what = "Fan-out through Redis, clients split over two processes: deliveries/s" + _cpu(two)
        out.append((what, "", f"{two.figures['deliveries_per_s']:,.0f}", "–", "–", ""))
    return out


def rows(runs: list[Run], quick: bool) -> list[Row]:
    """The report's summary rows for the cluster runs, each against the issue's target."""

    def met(ok: bool) -> str:
        return "(quick)" if quick else ("**yes**" if ok else "**no**")

    out = _fanout_rows(runs, met)
    lat = _find(runs, "cluster-latency")
    if lat:
        single = sorted(r.figures["p99_ms"] for r in runs if r.scenario == "latency" and r.server == "wschat")
        alone = single[(len(single) - 1) // 2] if single else 0
        p99 = lat.figures["p99_ms"]
        what = "Latency across processes (sender on one, readers on the other), 20 msg/s: p99 ms"
        target = "≤ 2× single-process p99 " + (f"({2 * alone:.1f})" if alone else "(not run)")
        out.append((what, target, f"{p99:.1f}", "–", "–", met(p99 <= 2 * alone and lat.ok) if alone else "–"))
    durs = sorted((r for r in runs if r.scenario == "cluster-durable"), key=lambda r: r.figures["acks_per_s"])
    if durs:
        dur = durs[(len(durs) - 1) // 2]  # the median run, as for durable on SQLite
        acks = dur.figures["acks_per_s"]
        what = "Durable through Redis (`appendfsync always`): acknowledged messages/s, "
        what += f"{dur.figures['in_flight']:,} in flight"
        what += (f" (median of {len(durs)} runs)" if len(durs) > 1 else "") + _cpu(dur)
        out.append((what, "≥ 30,000", f"{acks:,.0f}", "–", "–", met(acks >= 30_000 and dur.ok)))
    return out


def available() -> str:
    """Why the cluster scenarios cannot run here ("" if they can)."""
    return "" if shutil.which("redis-server") else "redis-server is not installed (bash test.sh installs it)"


def run_all(bench: Bench) -> list[Run]:
    why = available()
    if why:
        bench.log(f"  cluster scenarios skipped: {why}")
        return []
    runs = [fanout(bench, 1), fanout(bench, 2), latency(bench)]
    return runs + [durable(bench) for _ in range(bench.plan.durable_repeats)]
