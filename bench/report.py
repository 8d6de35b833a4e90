"""Turn a list of `Run`s into docs/BENCHMARKS.md: the summary table, the machine, the commands.

The figures are generated; the analysis at the end (where the time goes, what limits a missed
target) is hand-written in bench/ANALYSIS.md from profiles and copied in verbatim.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import cluster, files
from bench.scenarios import Plan, Run

HERE = Path(__file__).resolve().parent


def machine(server_cpu: int | None, gen_cpu: int | None) -> dict[str, str]:
    import websockets

    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        memory = f"{int(mem) / 1024 / 1024:.0f} GiB"
    except (OSError, IndexError, ValueError):
        memory = "?"
    try:
        cc = subprocess.run(["cc", "--version"], capture_output=True, text=True, check=False).stdout
        compiler = cc.splitlines()[0] if cc else "?"
    except OSError:
        compiler = "?"
    pinning = (
        f"server on CPU {server_cpu}, load generator (and Redis in the cluster runs) on CPU {gen_cpu}"
        if server_cpu is not None
        else "none (taskset missing or a single CPU): figures are not comparable"
    )
    return {
        "CPU": f"{model}, {os.cpu_count()} cores",
        "Memory": memory,
        "Kernel": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "websockets": websockets.__version__,
        "C compiler": compiler,
        "Pinning": pinning,
    }


def _num(v: Any, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _ratio(a: float | None, b: float | None, inverse: bool = False) -> str:
    if not a or not b:
        return "–"
    r = b / a if inverse else a / b
    return f"{r:,.1f}×"


def _find(runs: Iterable[Run], scenario: str, server: str) -> Run | None:
    return next((r for r in runs if r.scenario == scenario and r.server == server), None)


def _median(runs: Iterable[Run], scenario: str, server: str, key: str) -> tuple[Run | None, int]:
    """The median run of a repeated scenario (by `key`), and how many runs there were."""
    found = sorted(
        (r for r in runs if r.scenario == scenario and r.server == server), key=lambda r: r.figures[key]
    )
    return (found[(len(found) - 1) // 2] if found else None), len(found)


def _met(ok: bool | None, quick: bool) -> str:
    if quick:
        return "(quick)"
    return "–" if ok is None else ("**yes**" if ok else "**no**")


def summary(runs: list[Run], plan: Plan, quick: bool) -> list[str]:
    rows: list[tuple[str, str, str, str, str, str]] = []
    s, w = plan.fanout_in_flight[0]
    n = plan.fanout_clients
    ws, sd = _find(runs, f"fanout-{s * w}", "wschat"), _find(runs, f"fanout-{s * w}", "seed")
    if ws:
        a = ws.figures["deliveries_per_s"]
        b = sd.figures["deliveries_per_s"] if sd else None
        rows.append(
            (
                f"Saturated fan-out: deliveries/s, {n:,} clients, {s} senders × {w} in flight",
                "≥ 1,000,000",
                _num(a),
                _num(b),
                _ratio(a, b),
                _met(a >= 1_000_000 and ws.ok, quick),
            )
        )
    (ws, n), (sd, _) = (
        _median(runs, "latency", "wschat", "p99_ms"),
        _median(runs, "latency", "seed", "p99_ms"),
    )
    if ws:

        def lat(r: Run | None) -> str:
            if r is None:
                return "–"
            p50, p90, p99, top = (_num(r.figures[k], 1) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))
            return f"{p50} / {p90} / **{p99}** / {top}"

        p99 = ws.figures["p99_ms"]
        rows.append(
            (
                f"Latency at {plan.latency_rate:g} msg/s to {plan.latency_clients:,} clients: "
                "p50 / p90 / p99 / max, ms" + (f" (median of {n} runs by p99)" if n > 1 else ""),
                "p99 ≤ 20",
                lat(ws),
                lat(sd),
                _ratio(p99, sd.figures["p99_ms"] if sd else None, inverse=True) + " (p99)",
                _met(p99 is not None and p99 <= 20 and ws.ok, quick),
            )
        )
    for size in plan.join_sizes:
        ws, sd = _find(runs, f"join-{size}", "wschat"), _find(runs, f"join-{size}", "seed")
        if not ws:
            continue
        a = ws.figures["presence_s"]
        b = sd.figures["presence_s"] if sd else None
        target = "≤ 10" if size >= 10_000 else ""
        rows.append(
            (
                f"Join storm, {size:,} clients: s until every name is accepted and every client "
                f"has seen all {size:,} (names accepted at)",
                target,
                f"{_num(a, 2)} ({_num(ws.figures['accepted_s'], 2)})",
                f"{_num(b, 2)} ({_num(sd.figures['accepted_s'], 2)})" if sd else "not run (O(N³) bytes)",
                _ratio(a, b, inverse=True),
                _met(a <= 10 and ws.ok, quick) if target else "",
            )
        )
        a = ws.figures["bytes_sent"]
        b = sd.figures["bytes_sent"] if sd else None
        rows.append(
            (
                f"Join storm, {size:,} clients: bytes sent by the server (per join)",
                "per join does not grow" if size >= 10_000 else "",
                f"{_num(a)} ({_num(ws.figures['bytes_per_join'])})",
                f"{_num(b)} ({_num(sd.figures['bytes_per_join'])})" if sd else "–",
                _ratio(a, b, inverse=True),
                _presence_flat(runs, plan, quick) if size >= 10_000 else "",
            )
        )
    ws, sd = (
        _find(runs, f"idle-{plan.idle_clients}", "wschat"),
        _find(runs, f"idle-{plan.idle_clients}", "seed"),
    )
    if ws:
        per_conn = ws.figures["kib_per_conn"]
        per_user = ws.figures.get("kib_per_user")
        worst = max(per_conn, per_user or 0)
        rows.append(
            (
                f"Idle, {plan.idle_clients:,} connections: server memory per connection, KiB "
                "(after choosing a name)",
                "≤ 12 KB",
                f"{_num(per_conn, 1)} ({_num(per_user, 1)})",
                _num(sd.figures["kib_per_conn"], 1) if sd else "–",
                _ratio(per_conn, sd.figures["kib_per_conn"] if sd else None, inverse=True),
                _met(worst * 1024 <= 12_000 and ws.ok, quick),
            )
        )
        a = ws.figures["accept_s"]
        b = sd.figures["accept_s"] if sd else None
        rows.append(
            (
                f"Idle, {plan.idle_clients:,} connections: s until all are accepted",
                "≤ 5",
                _num(a, 2),
                _num(b, 2),
                _ratio(a, b, inverse=True),
                _met(a is not None and a <= 5 and ws.ok, quick),
            )
        )
    for sync in ("full", "normal"):
        r, n = _median(runs, f"durable-{sync}", "wschat", "acks_per_s")
        if not r:
            continue
        a = r.figures["acks_per_s"]
        rows.append(
            (
                f"Durable store (SQLite, `--synchronous {sync}`): acknowledged messages/s, "
                f"{r.figures['in_flight']:,} in flight" + (f" (median of {n} runs)" if n > 1 else ""),
                "≥ 50,000" if sync == "full" else "",
                _num(a),
                "no store, no acks",
                "–",
                _met(a >= 50_000 and r.ok, quick) if sync == "full" else "",
            )
        )
    rows += _page_rows(runs)
    rows += files.rows(_find(runs, "files", "wschat"))
    rows += _typing_rows(runs, quick)
    rows += cluster.rows(runs, quick)
    if quick:  # at smoke-run sizes a comparison says nothing (see the note above the table)
        rows = [(a, b, c, d, "(quick)" if e not in ("", "–") else e, f) for a, b, c, d, e, f in rows]
    out = [
        "| scenario | target | wschat | seed-style | wschat vs seed | target met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _typing_rows(runs: list[Run], quick: bool) -> list[tuple[str, str, str, str, str, str]]:
    r = _find(runs, "typing-storm", "wschat")
    if r is None:
        return []
    f = r.figures
    what = (
        f"Typing storm, {f['clients']:,} clients typing at once in one room: `typing` frames per member "
        "per second (most in any one second)"
    )
    shown = f"{_num(f['typing_frames_per_member_per_s'], 2)} ({f['most_in_one_second']})"
    return [(what, "≤ 1", shown, "no typing", "–", _met(f["most_in_one_second"] <= 1 and r.ok, quick))]


def _page_rows(runs: list[Run]) -> list[tuple[str, str, str, str, str, str]]:
    r = _find(runs, "page-flood", "wschat")
    if r is None:
        return []
    f = r.figures
    if f.get("rendered_per_s") is None:
        what = f"Web page in Chromium under a flood of {f['messages']:,} messages"
        return [(what, "", "not run: " + "; ".join(r.notes), "–", "–", "")]
    shown = (
        f"{_num(f['rendered_per_s'])} ({_num(f['first_quarter_per_s'])} / {_num(f['last_quarter_per_s'])}); "
        f"{_num(f['slowest_answer_s'], 2)} s; {_num(f['most_nodes'])}"
    )
    return [
        (
            f"Web page in Chromium under a flood of {f['messages']:,} messages: messages/s it takes in and "
            "shows (first / last quarter); slowest answer to a script; most message nodes on the page",
            "",
            shown,
            "–",
            "–",
            "",
        )
    ]


def _presence_flat(runs: list[Run], plan: Plan, quick: bool) -> str:
    sizes = sorted(plan.join_sizes)
    small, big = _find(runs, f"join-{sizes[0]}", "wschat"), _find(runs, f"join-{sizes[-1]}", "wschat")
    if not small or not big or small is big:
        return ""
    flat = big.figures["bytes_per_join"] <= 1.1 * small.figures["bytes_per_join"]
    return _met(flat, quick)


def details(runs: list[Run]) -> list[str]:
    out = [
        "| run | server | ok | figures | server CPU | generator CPU | load avg before | busy before |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        f = dict(r.figures)
        cpu_s = f.pop("server_cpu", None)
        cpu_g = f.pop("gen_cpu", None)
        scpu = f"{cpu_s:.0%} of a core" if cpu_s is not None else _seconds(f.pop("server_cpu_s", None))
        gcpu = f"{cpu_g:.0%} of a core" if cpu_g is not None else _seconds(f.pop("gen_cpu_s", None))
        shown = "; ".join(f"{k} {_fmt(v)}" for k, v in f.items())
        busy = "?" if r.busy_before is None else f"{r.busy_before:.0%}"
        ok = "yes" if r.ok else "**NO**"
        cells = (r.scenario, r.server, ok, shown, scpu, gcpu, r.loadavg_before, busy)
        out.append("| " + " | ".join(cells) + " |")
    return out


def _seconds(v: float | None) -> str:
    return "–" if v is None or v < 0 else f"{v:,.2f} s"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"
    return _num(v)


def render(
    runs: list[Run],
    plan: Plan,
    quick: bool,
    info: dict[str, str],
    started: float,
    elapsed: float,
    load_start: str,
    load_end: str,
    command: str,
) -> str:
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started))
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` on {when} in {elapsed / 60:.1f} minutes; do not edit by hand "
        "(the analysis at the end comes from bench/ANALYSIS.md).",
        "",
    ]
    if quick:
        lines += [
            "**Quick smoke run: smaller sizes and shorter windows than the targets assume. It checks "
            "that every scenario runs; its figures are not results. At these sizes fixed costs "
            "(start-up, the one-second presence batch, a few slow samples) dominate, so wschat can even "
            "look slower than the seed-style server (a 200-client join, the latency p99): the "
            "comparisons are left out. Only the full run, `python -m bench`, compares.**",
            "",
        ]
    lines += ["## Summary", ""]
    lines += summary(runs, plan, quick)
    failed = [r for r in runs if not r.ok]
    lines += [""]
    if failed:
        names = ", ".join(f"{r.scenario} [{r.server}]" for r in failed)
        lines += [f"**Runs that did not complete cleanly:** {names} (see Details).", ""]
    lines += [
        '"seed-style" is bench/seed_server.py: the seed project\'s design (await each send in turn, '
        "the full user list to everyone on every join) on the same websockets version, measured in "
        "the same run with the same load generator. Ratios are wschat's advantage (higher is better "
        "for wschat).",
        "",
        "## Machine",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [f"- Load average (1, 5, 15 min) at the start: {load_start}; at the end: {load_end}", ""]
    lines += [
        "The machine is shared: before each run the benchmark waits (up to 30 s) until both cores are "
        "less than 15 % busy, and each run lists the 1-minute load average and how busy the cores "
        "were (from /proc/stat, over one second) just before it started. The benchmark's own server "
        "and generator keep the load average near 1 while it runs.",
        "",
        "## What each scenario does",
        "",
        "- **Typing storm**: N clients log in to `general` and all send `typing` at once, again every "
        "3 s (as PROTOCOL.md asks of clients). Each member should get the merged list at most once a "
        "second: the row gives the average number of `typing` frames per member per second over the "
        "measured window, and the most any member got within one second.",
        "- **Saturated fan-out**: N clients log in to `general`; S of them send, each keeping W "
        "messages in flight (a message is in flight until the sender gets its own copy back), so "
        "S×W messages are always on their way. Deliveries/s counts chat frames received by all "
        "clients during the measured window (after a warm-up); afterwards the generator waits until "
        "every message has reached every client and checks the count (`delivered_all`).",
        "- **Latency**: open loop: 10 senders send the given rate in total on a clock, whatever comes "
        "back. Each message carries its send time (CLOCK_MONOTONIC, ns); latency is receive time minus "
        "send time, for every delivery to every client (so one message gives N samples).",
        "- **Join storm**: N clients connect (up to 1,000 handshakes at a time) and send `set_username` "
        "as soon as their handshake completes. Done when every client has `username_accepted` and has "
        "seen a `user_join` whose `online_users` is N (in a large room that is the batched notice, sent "
        "once a second). Bytes are everything the generator read from the server.",
        "- **Idle**: N clients connect and do nothing (the server's memory is read from /proc once all "
        "are connected), then choose names in `general` and idle again (memory read again). Memory per "
        "connection is (RSS − RSS before the first connection) / N; accept time is first connect to "
        "last completed handshake.",
        "- **Durable**: S clients, each alone in its own room, keep W messages with a `client_msg_id` in "
        "flight; the server acknowledges each only after it is committed to SQLite (WAL). Acks/s over "
        "the measured window; after the server stops, the database must hold every acknowledged "
        "message (`stored` ≥ `acked`).",
        "- Chat texts are "
        "60 characters (a client frame of about 100 bytes; the server's chat frame is about 220 bytes). "
        "The server gets raised rate limits by its documented flags `--rate`/`--burst`; everything else "
        "is its defaults (SQLite store with `--synchronous full` in a temporary folder).",
        "- The load generator (bench/loadgen.c, built with `cc -O2`) is one thread with epoll; its own "
        "CPU use (getrusage) and the server's (/proc/PID/stat, all threads) over the same window are "
        "in Details: the generator must not be the bottleneck.",
        "",
        "## Details",
        "",
    ]
    lines += details(runs)
    lines += ["", "## Commands", "", "Run from the repository root; ports were ephemeral.", "", "```"]
    for r in runs:
        lines += [f"# {r.scenario} [{r.server}]", r.server_cmd, r.loadgen_cmd, ""]
    lines[-1:] = ["```", ""]
    analysis = HERE / "ANALYSIS.md"
    if analysis.exists() and not quick:
        lines += [analysis.read_text().rstrip(), ""]
    return "\n".join(lines)


def save_json(runs: list[Run], path: Path, info: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "machine": info,
        "runs": [
            {
                "scenario": r.scenario,
                "server": r.server,
                "ok": r.ok,
                "figures": r.figures,
                "server_cmd": r.server_cmd,
                "loadgen_cmd": r.loadgen_cmd,
                "loadavg_before": r.loadavg_before,
                "busy_before": r.busy_before,
                "notes": r.notes,
                "loadgen": r.raw,
            }
            for r in runs
        ],
    }
    path.write_text(json.dumps(data, indent=1))
