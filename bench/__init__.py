"""The wschat benchmark suite: `python -m bench` runs every scenario and writes docs/BENCHMARKS.md.

bench/loadgen.c is the compiled load generator, bench/seed_server.py the seed-style yardstick,
bench/scenarios.py the scenarios, bench/report.py the report. A benchmark, never a timed test.
"""
