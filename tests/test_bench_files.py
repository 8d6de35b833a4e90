"""Smoke test of the file-sharing benchmark against a real server (no timing assertions)."""

from __future__ import annotations

from pathlib import Path

from bench import files
from bench.scenarios import Server


def test_the_files_scenario_uploads_and_reads_every_download_whole(tmp_path: Path) -> None:
    args = ["--db", ":memory:", "--media-dir", str(tmp_path / "f")]
    with Server("wschat", args, None, tmp_path) as server:
        figures = files.run(server.port, server.pid, mb=1, clients=2, parallel=3, timeout=60)
    assert figures["downloads_complete"] is True
    assert figures["upload_mb_s_one"] > 0 and figures["upload_mb_s_many"] > 0
    assert figures["downloads"] == 3 and figures["gen_cpu_s"] >= 0
