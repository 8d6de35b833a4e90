"""`python -m bench`: run every scenario, write docs/BENCHMARKS.md (and the raw figures as JSON).

`python -m bench --quick` is a smoke run with small sizes; it writes bench/results/quick.md
instead, leaving docs/BENCHMARKS.md alone. `--only NAME` runs one kind of scenario and writes
bench/results/only.md (bench/results/ is not tracked by git).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench import cluster, loadgen, report
from bench.machine import loadavg
from bench.scenarios import FULL, QUICK, Bench

ROOT = Path(__file__).resolve().parent.parent
ONLY = ("fanout", "latency", "join", "idle", "durable", "page", "typing", "files", "cluster")


def report_path(quick: bool, partial: bool, out: Path | None) -> Path:
    """Where the report goes: only a full run of every scenario replaces docs/BENCHMARKS.md."""
    if out:
        return out
    if quick or partial:
        return ROOT / "bench" / "results" / ("quick.md" if quick else "only.md")
    return ROOT / "docs" / "BENCHMARKS.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and short windows: a smoke run")
    ap.add_argument("--only", choices=ONLY, action="append", help="run only these scenarios (repeatable)")
    ap.add_argument("--out", type=Path, help="the report (default: docs/BENCHMARKS.md for a full run)")
    ap.add_argument(
        "--settle",
        type=float,
        help="before each run, wait up to this many seconds for the machine to be quiet "
        "(default: 30, or 0 with --quick)",
    )
    args = ap.parse_args(argv)
    if sys.platform != "linux":
        print("The benchmark needs Linux (epoll, /proc).", file=sys.stderr)
        return 2
    try:
        loadgen.build()
    except loadgen.BuildError as exc:
        print(exc, file=sys.stderr)
        return 2
    plan = QUICK if args.quick else FULL
    out = report_path(args.quick, bool(args.only), args.out)
    settle = args.settle if args.settle is not None else (0.0 if args.quick else 30.0)
    bench = Bench(plan, log=lambda s: print(s, flush=True), settle=settle)
    started = time.time()
    load_start = loadavg()
    print(f"load average at the start: {load_start}", flush=True)
    try:
        if args.only:
            steps = {
                "fanout": lambda: (
                    [bench.fanout(k, *plan.fanout_in_flight[0]) for k in ("wschat", "seed")]
                    + [bench.fanout("wschat", s, w) for s, w in plan.fanout_in_flight[1:]]
                ),
                "latency": lambda: [
                    bench.latency(k) for _ in range(plan.latency_repeats) for k in ("wschat", "seed")
                ],
                "join": lambda: (
                    [bench.join("wschat", n) for n in plan.join_sizes]
                    + [bench.join("seed", n) for n in plan.seed_join_sizes]
                ),
                "idle": lambda: [bench.idle(k) for k in ("wschat", "seed")],
                "durable": lambda: [
                    bench.durable(s) for s in ("full", "normal") for _ in range(plan.durable_repeats)
                ],
                "page": lambda: [bench.page()],
                "typing": lambda: [bench.typing()],
                "files": lambda: [bench.files()],
                "cluster": lambda: cluster.run_all(bench),
            }
            for name in ONLY:
                if name in args.only:
                    steps[name]()
        else:
            bench.all()
            cluster.run_all(bench)
    finally:
        bench.close()
    elapsed = time.time() - started
    info = report.machine(bench.server_cpu, bench.gen_cpu)
    command = "python -m bench" + (" --quick" if args.quick else "")
    if args.only:
        command += "".join(f" --only {o}" for o in args.only)
    text = report.render(bench.runs, plan, args.quick, info, started, elapsed, load_start, loadavg(), command)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    report.save_json(bench.runs, ROOT / "bench" / "results" / f"{stamp}.json", info)
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}", flush=True)
    return 0 if all(r.ok for r in bench.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
