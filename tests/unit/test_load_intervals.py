"""Per-second latency percentiles of a load run (what the report plots), against the
cumulative ones locust keeps: a spike in the middle shows where it happened."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from loadtest import intervals, report


def test_nearest_rank_percentiles() -> None:
    """p50/p99 of 1..100 are 50 and 99; of one value, that value; of none, NaN."""
    ordered = [float(v) for v in range(1, 101)]
    assert intervals.percentile(ordered, 0.5) == 50
    assert intervals.percentile(ordered, 0.99) == 99
    assert intervals.percentile([7.0], 0.99) == 7
    assert math.isnan(intervals.percentile([], 0.5))


def _spiky_run(start: float) -> intervals.IntervalLatencies:
    """Ten seconds of 5 ms answers, 100 a second, but 250 ms ones through seconds 4 and 5."""
    run = intervals.IntervalLatencies(start)
    for second in range(10):
        for i in range(100):
            slow = second in (4, 5) and i % 10 == 0
            run.add(start + second + i / 100, 250.0 if slow else 5.0)
    return run


def test_a_spike_shows_in_its_own_seconds_only() -> None:
    """The p99 of seconds 4 and 5 is the spike's, every other second's is 5 ms; the peak is
    inside the spike, and a response before the start counts into second 0."""
    run = _spiky_run(1_000.0)
    run.add(999.5, 5.0)
    rows = run.intervals()
    assert [row.second for row in rows] == list(range(10))
    assert rows[0].count == 101
    assert [row.p99 for row in rows] == [5, 5, 5, 5, 250, 250, 5, 5, 5, 5]
    assert all(row.p50 == 5 for row in rows)
    top = intervals.peak(rows)
    assert top is not None
    assert top.second == 4
    assert intervals.peak([]) is None


def test_the_written_series_reads_back_and_the_report_uses_it(tmp_path: Path) -> None:
    """latency.csv round-trips; the plot is drawn from it, and report.md names the second
    with the highest p99 (a cumulative series would have put it nowhere)."""
    _spiky_run(0.0).write(tmp_path / "latency.csv")
    rows = intervals.read(tmp_path / "latency.csv")
    assert [row.p99 for row in rows][3:7] == [5, 250, 250, 5]
    # Cumulative p99 as locust reports it: it never returns to 5 ms after the spike.
    cumulative, seen = [], []
    for row in rows:
        seen += [250.0] * (row.count // 10 if row.p99 == 250 else 0)
        seen += [5.0] * (row.count - (row.count // 10 if row.p99 == 250 else 0))
        cumulative.append(intervals.percentile(sorted(seen), 0.99))
    assert cumulative[-1] == 250
    _locust_csvs(tmp_path)
    made = report.plot(tmp_path, window=(4.0, 6.0))
    assert tmp_path / "latency.png" in made
    assert (tmp_path / "latency.png").stat().st_size > 0
    summary = report.summarize(tmp_path, report.Gate(p99_budget_ms=1_000))
    text = report.write_markdown(tmp_path, summary, "spike").read_text()
    assert "Highest p99 of any second: 250.0 ms, 4 s into the run" in text


def _locust_csvs(out: Path) -> None:
    columns = ["Type", "Name", "Request Count", "Failure Count", "Requests/s"]
    columns += ["50%", "95%", "99%"]
    with (out / "locust_stats.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerow(["GET", "GET cdn", "1000", "0", "100", "5", "5", "250"])
        writer.writerow(["", "Aggregated", "1000", "0", "100", "5", "5", "250"])


@pytest.mark.parametrize("text", ["", "second,count,p50,p95,p99,max\n"])
def test_an_empty_series_falls_back_to_locusts_history(tmp_path: Path, text: str) -> None:
    """Without per-second rows the plot draws locust's cumulative history instead."""
    if text:
        (tmp_path / "latency.csv").write_text(text)
    with (tmp_path / "locust_stats_history.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Timestamp", "Name", "50%", "95%", "99%", "Requests/s"])
        for second in range(3):
            writer.writerow([100 + second, "Aggregated", "5", "6", "7", "50"])
    assert report.plot(tmp_path) == [tmp_path / "latency.png"]
