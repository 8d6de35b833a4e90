"""Smoke test of the benchmark's load generator against real servers: it connects, logs in,
sends, and counts every delivery (no timing assertions: this is not a performance test)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from bench import loadgen
from bench.scenarios import RAISED_LIMITS, Server

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler to build the generator"
)


def generate(server: Server, *args: str) -> loadgen.Result:
    return loadgen.run(
        [
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--server-pid",
            str(server.pid),
            "--timeout",
            "20",
            *args,
        ],
        timeout=40,
    )


def test_fanout_delivers_every_message_to_every_client_in_room_order(tmp_path: Path) -> None:
    with Server("wschat", ["--db", ":memory:", *RAISED_LIMITS], None, tmp_path) as server:
        res = generate(server, "--mode", "fanout", "--clients", "30", "--senders", "3", "--window", "2",
                       "--warmup", "0.2", "--duration", "1", "--watch-pid", str(server.pid))  # fmt: skip
    assert res["logged"] == 30
    assert res["sent"] > 0
    assert res["deliveries"] == res["expected_deliveries"] == res["sent"] * 30
    assert res["order_errors"] == 0 and res["error_frames"] == 0
    assert res["window_deliveries"] > 0 and res["gen_cpu_s"] >= 0 and res["server_cpu_s"] >= 0
    # a watched process's CPU over the same window (the cluster runs watch Redis and server 2)
    [watched] = res["watched_cpu_s"]
    assert abs(watched - res["server_cpu_s"]) <= 0.02  # read a moment apart, in clock ticks
    assert res["ok"] is True and res.returncode == 0


def test_latency_mode_measures_every_delivery_from_the_time_carried_in_the_message(tmp_path: Path) -> None:
    with Server("wschat", ["--db", ":memory:", *RAISED_LIMITS], None, tmp_path) as server:
        res = generate(server, "--mode", "latency", "--clients", "20", "--senders", "2", "--rate", "20",
                       "--warmup", "0.2", "--duration", "1")  # fmt: skip
    assert res["ok"] is True
    assert res["latency_samples"] > 0 and res["latency_samples"] % 20 == 0
    lat = res["lat_ms"]
    assert 0 <= lat["p50"] <= lat["p99"] <= lat["max"]


def test_durable_sends_are_acknowledged_and_stored(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with Server("wschat", ["--db", str(db), *RAISED_LIMITS], None, tmp_path) as server:
        res = generate(server, "--mode", "durable", "--clients", "5", "--senders", "5", "--window", "4",
                       "--warmup", "0.2", "--duration", "1")  # fmt: skip
    assert res["ok"] is True
    assert res["acks"] == res["sent"] > 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == res["acks"]


def test_join_storm_waits_until_every_client_has_seen_everyone(tmp_path: Path) -> None:
    with Server("wschat", ["--db", ":memory:", "--large-room", "10"], None, tmp_path) as server:
        res = generate(server, "--mode", "join", "--clients", "40")
    assert res["ok"] is True
    assert res["logged"] == 40
    assert res["converged_s"] >= res["login_s"] > 0
    assert res["bytes_in"] > 40 * 100


def test_idle_mode_pauses_after_connecting_and_after_logging_in(tmp_path: Path) -> None:
    with Server("wschat", ["--db", ":memory:"], None, tmp_path) as server:
        res = generate(server, "--mode", "idle", "--clients", "25")
    assert [e["event"] for e in res.events] == ["open", "logged"]
    assert res.events[0]["open"] == 25 and res.events[1]["logged"] == 25
    assert res.events[1]["server_rss_kib"] > 0
    assert res["ok"] is True


def test_generator_understands_the_seed_style_server(tmp_path: Path) -> None:
    with Server("seed", [], None, tmp_path) as server:
        res = generate(server, "--mode", "fanout", "--clients", "20", "--senders", "2", "--window", "2",
                       "--warmup", "0.2", "--duration", "1")  # fmt: skip
    assert res["logged"] == 20
    assert res["deliveries"] == res["expected_deliveries"] == res["sent"] * 20 > 0
    assert res["ok"] is True


def test_the_typing_storm_row_says_whether_members_got_at_most_one_frame_a_second() -> None:
    from bench import report
    from bench.scenarios import QUICK, Run

    run = Run("typing-storm", "wschat", {"clients": 200, "typing_frames_per_member_per_s": 0.5,
              "most_in_one_second": 1}, "", "", "", None, True)  # fmt: skip
    (row,) = report._typing_rows([run], quick=False)
    assert row[2] == "0.50 (1)" and row[5] == "**yes**"
    run.figures["most_in_one_second"] = 2
    assert report._typing_rows([run], quick=False)[0][5] == "**no**"
    assert report._typing_rows([], quick=False) == [] and QUICK.typing_clients == 200
