"""The benchmark's web-page scenario against a real server and Chromium (a smoke test: it counts,
it does not time), and the rules for where reports go and what a quick report claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import page, report
from bench.__main__ import ROOT, report_path
from bench.scenarios import QUICK, RAISED_LIMITS, Run, Server


@pytest.mark.browser
def test_page_flood_sees_every_message_shown_with_a_bounded_number_of_nodes(tmp_path: Path) -> None:
    if why := page.available():
        pytest.fail(why)
    with Server("wschat", ["--db", ":memory:", *RAISED_LIMITS], None, tmp_path) as server:
        figures = page.run(server.port, 600, 3, timeout=120)
    assert figures["messages"] == 600
    assert 0 < figures["most_nodes"] <= 300  # the page's window, whatever the history
    assert figures["rendered_per_s"] > 0 and figures["shown_all_s"] > 0
    assert figures["slowest_answer_s"] >= 0


def test_only_a_full_run_replaces_the_published_report(tmp_path: Path) -> None:
    assert report_path(False, False, None) == ROOT / "docs" / "BENCHMARKS.md"
    assert report_path(True, False, None) == ROOT / "bench" / "results" / "quick.md"
    assert report_path(False, True, None) == ROOT / "bench" / "results" / "only.md"
    assert report_path(True, True, tmp_path / "x.md") == tmp_path / "x.md"


def _fanout(server: str, rate: float) -> Run:
    figures = {"deliveries_per_s": rate, "in_flight": 40}
    return Run("fanout-40", server, figures, "cmd", "gen", "0.1", 0.1, True)


def test_a_quick_report_says_its_figures_are_no_results_and_compares_nothing() -> None:
    runs = [_fanout("wschat", 50_000.0), _fanout("seed", 100_000.0)]  # wschat "behind" at smoke sizes
    text = report.render(runs, QUICK, True, {}, 0.0, 60.0, "0", "0", "python -m bench --quick")
    assert "its figures are not results" in text
    row = next(line for line in text.splitlines() if line.startswith("| Saturated fan-out"))
    assert row.split(" | ")[4] == "(quick)"  # no "0.5×" for a reader to take at face value
    full = report.render(runs, QUICK, False, {}, 0.0, 60.0, "0", "0", "python -m bench")
    assert "0.5×" in full
