"""Fault injection in CI: a bounded run (20 kills, four of each operation) and a small concurrency check.
The full run is `engramdb bench faults --kills 200` (figures in docs/reliability.md)."""

from __future__ import annotations

from engramdb.bench import faults


def test_twenty_kills_lose_and_tear_nothing(tmp_path):
    report = faults.run(20, workdir=str(tmp_path), seed=7, max_delay=1.0)
    assert report["kills_by_op"] == {op: 4 for op in faults.OPS}
    assert report["reported_ids"] > 0, "the workers must have written before being killed"
    assert report["problems"] == {k: 0 for k in report["problems"]}, report


def test_four_writers_two_searchers(tmp_path):
    report = faults.concurrency(writers=4, searchers=2, writes=25, workdir=str(tmp_path))
    assert report["writer_exit_codes"] == [0, 0, 0, 0]
    assert report["stored"] == 100 and report["lost"] == 0 and report["duplicated"] == 0
    assert report["searches"] > 0 and report["search_errors"] == 0
