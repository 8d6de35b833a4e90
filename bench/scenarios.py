"""The benchmark scenarios: start a server, drive it with the load generator, collect figures.

Each scenario starts a fresh server process (the real `chat-server.py` with its normal options,
or the seed-style yardstick `bench/seed_server.py`) on an ephemeral loopback port, pinned to one
CPU with `taskset` when there are two or more; the generator runs pinned to another. Rate limits
are raised with the server's documented flags (`--rate`, `--burst`), never by a code path that
exists only for the benchmark. Every run is bounded in time by the generator's `--timeout` and a
watchdog; all traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import files, loadgen, page
from bench.machine import busy_fraction, cpus, loadavg, pin, rss_kib

ROOT = Path(__file__).resolve().parent.parent
RAISED_LIMITS = ["--rate", "1000000", "--burst", "1000000"]  # documented flags, not a bench path
BANNER = re.compile(r"Starting WebSocket chat server on ws://[^ ]*:(\d+)")


@dataclass(frozen=True)
class Plan:
    """How big and how long each scenario is: `FULL` for the report, `QUICK` for a smoke run."""

    fanout_clients: int
    fanout_in_flight: tuple[tuple[int, int], ...]  # (senders, window); the first is the headline
    fanout_secs: float
    latency_clients: int
    latency_rate: float
    latency_secs: float
    join_sizes: tuple[int, ...]
    seed_join_sizes: tuple[int, ...]
    idle_clients: int
    durable_senders: int
    durable_window: int
    durable_secs: float
    durable_repeats: int = 1  # the report shows the median run
    latency_repeats: int = 1  # the report shows the median run (by p99)
    warmup: float = 1.0
    page_messages: int = 10_000  # the web page in Chromium under a flood (bench/page.py)
    page_senders: int = 10
    files_mb: int = 25  # file sharing (bench/files.py): the file's size, uploads and downloads
    files_clients: int = 10
    files_downloads: int = 20
    typing_clients: int = 1000  # a typing storm: everyone in one room types at once
    typing_secs: float = 6.0


FULL = Plan(
    fanout_clients=1000,
    fanout_in_flight=((10, 4), (1, 1), (10, 1), (20, 10)),
    fanout_secs=5.0,
    latency_clients=1000,
    latency_rate=20.0,
    latency_secs=10.0,
    join_sizes=(1000, 10_000),
    seed_join_sizes=(1000,),
    idle_clients=10_000,
    durable_senders=100,
    durable_window=50,
    durable_secs=5.0,
    durable_repeats=3,
    latency_repeats=3,
)

QUICK = Plan(
    fanout_clients=200,
    fanout_in_flight=((10, 4),),
    fanout_secs=1.5,
    latency_clients=200,
    latency_rate=20.0,
    latency_secs=2.0,
    join_sizes=(200, 1000),
    seed_join_sizes=(200,),
    idle_clients=1000,
    durable_senders=20,
    durable_window=20,
    durable_secs=1.5,
    warmup=0.5,
    page_messages=2000,
    page_senders=4,
    files_mb=4,
    files_downloads=5,
    typing_clients=200,
    typing_secs=2.0,
)


# ------------------------------------------------------------------ servers


class Server:
    """One server process on 127.0.0.1 with an ephemeral port; a context manager."""

    def __init__(self, kind: str, extra: list[str], cpu: int | None, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        if kind == "wschat":
            script = ["chat-server.py", "--host", "127.0.0.1", "--port", "0", *extra]
        else:
            script = ["bench/seed_server.py", "--host", "127.0.0.1", "--port", "0", *extra]
        self.argv = [*pin(cpu), sys.executable, *script]
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = workdir / f"{kind}-server.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> str:
        return shlex.join(["python" if a == sys.executable else a for a in self.argv])

    def __enter__(self) -> Server:
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + 30
        while not self.port:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"{self.kind} server did not start; see {self.log_path}")
            if m := BANNER.search(self.log_path.read_text()):
                self.port = int(m.group(1))
            else:
                time.sleep(0.05)  # polling a file: there is no event to wait for
        time.sleep(0.3)  # let start-up settle before the baseline memory figure
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------ one measurement


@dataclass
class Run:
    """One scenario against one server: the figures and how they were obtained."""

    scenario: str
    server: str
    figures: dict[str, Any]
    server_cmd: str
    loadgen_cmd: str
    loadavg_before: str
    busy_before: float | None
    ok: bool
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


class Bench:
    """Runs scenarios in one temporary folder; collects `Run`s."""

    def __init__(self, plan: Plan, log: Callable[[str], None] = print, settle: float = 0.0) -> None:
        self.plan = plan
        self.settle = settle
        self.log = log
        self.server_cpu, self.gen_cpu = cpus()
        self.tmp = Path(tempfile.mkdtemp(prefix="wschat-bench-"))
        self.runs: list[Run] = []

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _gen(self, server: Server, mode: str, clients: int, *extra: str, timeout: float) -> loadgen.Result:
        args = ["--mode", mode, "--host", "127.0.0.1", "--port", str(server.port), "--clients", str(clients)]
        args += ["--server-pid", str(server.pid), "--timeout", str(timeout), *extra]
        if clients > 2000:  # several loopback source addresses keep clear of port exhaustion
            args += ["--srcs", "8"]
        return loadgen.run(args, prefix=pin(self.gen_cpu), timeout=timeout + 30)

    def _record(
        self,
        scenario: str,
        server: Server,
        res: loadgen.Result,
        figures: dict[str, Any],
        load: str,
        busy: float | None,
        ok: bool | None = None,
    ) -> Run:
        run = Run(
            scenario,
            server.kind,
            figures,
            server.command(),
            shlex.join(["bench/build/loadgen" if a == str(loadgen.BINARY) else a for a in res.argv]),
            load,
            busy,
            bool(res["ok"]) if ok is None else ok,
            raw=res.data | {"events": res.events},
        )
        if res.stderr.strip():
            run.notes.append(res.stderr.strip().splitlines()[-1][:200])
        self.runs.append(run)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in figures.items())
        self.log(f"  {scenario} [{server.kind}] ok={run.ok} {shown} (load {load})")
        return run

    def _start(self, kind: str, extra: list[str]) -> tuple[Server, str, float | None]:
        # On a shared machine, wait (bounded by `settle` seconds) for other jobs to leave the
        # cores alone: below 15 % busy over a second, which our own idle processes stay under.
        busy = busy_fraction()
        deadline = time.monotonic() + self.settle
        while busy is not None and busy > 0.15 and time.monotonic() < deadline:
            busy = busy_fraction()
        load = loadavg()
        return Server(kind, extra, self.server_cpu, self.tmp), load, busy

    def _wschat_args(self, name: str, *extra: str, db: str | None = None) -> list[str]:
        return ["--db", db or str(self.tmp / f"{name}.db"), *extra]

    # -- scenarios

    def fanout(self, kind: str, senders: int, window: int) -> Run:
        p = self.plan
        extra = self._wschat_args(f"fanout-{senders}x{window}", *RAISED_LIMITS) if kind == "wschat" else []
        srv, load, busy = self._start(kind, extra)
        with srv:
            res = self._gen(
                srv, "fanout", p.fanout_clients, "--senders", str(senders), "--window", str(window),
                "--warmup", str(p.warmup), "--duration", str(p.fanout_secs),
                timeout=120,
            )  # fmt: skip
        w = res["window_s"] or 1
        figures = {
            "in_flight": senders * window,
            "deliveries_per_s": res["window_deliveries"] / w,
            "messages_per_s": res["window_sent"] / w,
            "server_cpu": res["server_cpu_s"] / w,
            "gen_cpu": res["gen_cpu_s"] / w,
            "delivered_all": res["deliveries"] == res["expected_deliveries"],
        }
        return self._record(f"fanout-{senders * window}", srv, res, figures, load, busy)

    def latency(self, kind: str) -> Run:
        p = self.plan
        extra = self._wschat_args("latency", *RAISED_LIMITS) if kind == "wschat" else []
        srv, load, busy = self._start(kind, extra)
        with srv:
            res = self._gen(
                srv, "latency", p.latency_clients, "--senders", "10", "--rate", str(p.latency_rate),
                "--warmup", str(p.warmup), "--duration", str(p.latency_secs),
                timeout=120,
            )  # fmt: skip
        w = res["window_s"] or 1
        lat = res.data.get("lat_ms", {})
        figures = {
            "p50_ms": lat.get("p50"),
            "p90_ms": lat.get("p90"),
            "p99_ms": lat.get("p99"),
            "max_ms": lat.get("max"),
            "samples": res["latency_samples"],
            "server_cpu": res["server_cpu_s"] / w,
            "gen_cpu": res["gen_cpu_s"] / w,
        }
        return self._record("latency", srv, res, figures, load, busy)

    def join(self, kind: str, clients: int) -> Run:
        extra = self._wschat_args(f"join-{clients}") if kind == "wschat" else []
        srv, load, busy = self._start(kind, extra)
        timeout = 180 if kind == "seed" else 120
        with srv:
            res = self._gen(srv, "join", clients, "--concurrency", "1000", timeout=timeout)
        figures = {
            "accepted_s": res["login_s"],
            "presence_s": res["converged_s"],
            "bytes_sent": res["bytes_in"],
            "bytes_per_join": res["bytes_in"] / clients,
            "server_cpu_s": res["server_cpu_setup_s"],
            "gen_cpu_s": res["gen_cpu_setup_s"],
        }
        return self._record(f"join-{clients}", srv, res, figures, load, busy)

    def idle(self, kind: str) -> Run:
        clients = self.plan.idle_clients
        extra = self._wschat_args("idle") if kind == "wschat" else []
        srv, load, busy = self._start(kind, extra)
        with srv:
            base = rss_kib(srv.pid)
            # the seed-style server would turn 10,000 logins into a join storm: connections only
            login = [] if kind == "wschat" else ["--no-login"]
            res = self._gen(srv, "idle", clients, "--concurrency", "1000", *login, timeout=120)
        opened = res.events[0] if res.events else {}
        figures: dict[str, Any] = {
            "accept_s": opened.get("accept_s"),
            "kib_per_conn": (opened.get("server_rss_kib", base) - base) / clients,
            "base_rss_mib": base / 1024,
        }
        if len(res.events) > 1 and res.events[1]["logged"]:
            figures["kib_per_user"] = (res.events[1]["server_rss_kib"] - base) / clients
            figures["login_s"] = res.events[1]["login_s"]
        figures["server_cpu_s"] = res["server_cpu_setup_s"]  # accepting (and logging in) everyone
        figures["gen_cpu_s"] = res["gen_cpu_setup_s"]
        return self._record(f"idle-{clients}", srv, res, figures, load, busy)

    def durable(self, synchronous: str) -> Run:
        p = self.plan
        db = self.tmp / f"durable-{synchronous}-{len(self.runs)}.db"  # a fresh database each run
        extra = self._wschat_args("durable", "--synchronous", synchronous, *RAISED_LIMITS, db=str(db))
        srv, load, busy = self._start("wschat", extra)
        with srv:
            res = self._gen(
                srv, "durable", p.durable_senders, "--senders", str(p.durable_senders),
                "--window", str(p.durable_window), "--warmup", str(p.warmup),
                "--duration", str(p.durable_secs), timeout=120,
            )  # fmt: skip
        # the server has stopped: every acknowledged message must be in the database
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        w = res["window_s"] or 1
        figures = {
            "synchronous": synchronous,
            "acks_per_s": res["window_acks"] / w,
            "in_flight": p.durable_senders * p.durable_window,
            "acked": res["acks"],
            "stored": stored,
            "server_cpu": res["server_cpu_s"] / w,
            "gen_cpu": res["gen_cpu_s"] / w,
        }
        ok = bool(res["ok"]) and stored >= res["acks"]
        return self._record(f"durable-{synchronous}", srv, res, figures, load, busy, ok)

    def page(self) -> Run:
        """The web page in Chromium under a flood; the page, not the server, is measured."""
        p = self.plan
        srv, load, busy = self._start("wschat", self._wschat_args("page", *RAISED_LIMITS))
        why = page.available()
        figures: dict[str, Any] = {"messages": p.page_messages}
        notes = [why] if why else []
        with srv:
            if not why:
                try:
                    figures = page.run(srv.port, p.page_messages, p.page_senders)
                except (TimeoutError, RuntimeError, OSError) as exc:  # a hung or failed browser
                    notes.append(f"{type(exc).__name__}: {exc}"[:200])
        ok = not notes and figures.get("most_nodes", 0) > 0
        command = f"bench/page.py: Chromium + {p.page_senders} senders, {p.page_messages:,} messages"
        run = Run("page-flood", "wschat", figures, srv.command(), command, load, busy, ok, notes)
        self.runs.append(run)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in figures.items())
        self.log(f"  page-flood [wschat] ok={ok} {shown} (load {load}) {' '.join(notes)}")
        return run

    def files(self) -> Run:
        """File sharing: upload MB/s (one client, several) and memory of parallel downloads."""
        p = self.plan
        extra = self._wschat_args(
            "files", "--media-dir", str(self.tmp / "files"), "--daily-upload-mb", "100000"
        )
        srv, load, busy = self._start("wschat", extra)
        figures: dict[str, Any] = {}
        notes: list[str] = []
        with srv:
            try:
                figures = files.run(
                    srv.port, srv.pid, mb=p.files_mb, clients=p.files_clients, parallel=p.files_downloads
                )
            except (TimeoutError, RuntimeError, OSError) as exc:
                notes.append(f"{type(exc).__name__}: {exc}"[:200])
        ok = not notes and bool(figures.get("downloads_complete"))
        command = (
            f"bench/files.py: {p.files_mb} MB, {p.files_clients} uploaders, {p.files_downloads} downloads"
        )
        run = Run("files", "wschat", figures, srv.command(), command, load, busy, ok, notes)
        self.runs.append(run)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in figures.items())
        self.log(f"  files [wschat] ok={ok} {shown} (load {load}) {' '.join(notes)}")
        return run

    def typing(self) -> Run:
        """A typing storm: every client in `general` says it types, all at once, again every 3 s
        (as clients are asked to); each member should get at most one `typing` frame a second."""
        p = self.plan
        srv, load, busy = self._start("wschat", self._wschat_args("typing"))
        with srv:
            res = self._gen(
                srv, "typing", p.typing_clients, "--warmup", str(p.warmup), "--duration", str(p.typing_secs),
                timeout=120,
            )  # fmt: skip
        w = res["window_s"] or 1
        members = max(1, res["open"])
        figures = {
            "clients": p.typing_clients,
            "typing_frames_per_member_per_s": res["typing_frames"] / members / w,
            "most_in_one_second": res["typing_max_per_member_s"],
            "typing_sent_per_s": res["window_sent"] / w,
            "server_cpu": res["server_cpu_s"] / w,
            "gen_cpu": res["gen_cpu_s"] / w,
        }
        ok = bool(res["ok"]) and res["typing_max_per_member_s"] <= 1
        return self._record("typing-storm", srv, res, figures, load, busy, ok)

    def all(self) -> list[Run]:
        p = self.plan
        self.log(f"pinning: server on CPU {self.server_cpu}, generator on CPU {self.gen_cpu}")
        senders, window = p.fanout_in_flight[0]
        for kind in ("wschat", "seed"):
            self.fanout(kind, senders, window)
        for senders, window in p.fanout_in_flight[1:]:
            self.fanout("wschat", senders, window)
        for _ in range(p.latency_repeats):
            for kind in ("wschat", "seed"):
                self.latency(kind)
        for n in p.join_sizes:
            self.join("wschat", n)
        for n in p.seed_join_sizes:
            self.join("seed", n)
        for kind in ("wschat", "seed"):
            self.idle(kind)
        for sync in ("full", "normal"):
            for _ in range(p.durable_repeats):
                self.durable(sync)
        self.page()
        self.files()
        self.typing()
        return self.runs


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)
