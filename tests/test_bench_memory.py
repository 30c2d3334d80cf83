"""The benchmark's memory goal: met only by a cold scan of 100,000 tags peaking under 150 MB (10^6 bytes),
with every tag stored; and the resident set along the scan read apart by the parts done."""

from __future__ import annotations

import json

from bench.goals import goals_evaluate
from bench.memory import _timeline


def _results(*, tags: int, peak_mib: float, wrong: int = 0) -> dict:
    scan = {"peak_rss_mib": [peak_mib], "seconds": 300.0, "status": "succeeded",
            "ours_check": {"expected": tags, "stored": tags, "wrong_or_missing": wrong, "extra": 0}}
    return {"memory": {"big_tags": 10_000, "scan": scan,
                       "generation": {"plan": {"tags": tags, "repositories": 901}}}}


def _memory_row(results: dict) -> dict:
    return next(row for row in goals_evaluate(json.loads(json.dumps(results)))
                if row["goal"].startswith("Worker peak memory"))


def test_a_peak_under_150_mb_at_100000_tags_with_every_tag_stored_is_met():
    row = _memory_row(_results(tags=100_000, peak_mib=120.0))
    assert row["ok"] is True
    assert "120 MiB (126 MB) at 100,000 tags in 901 repositories, the largest of 10,000" in row["measured"]


def test_150_mib_is_over_150_mb_a_wrong_tag_fails_and_fewer_tags_give_no_verdict():
    assert _memory_row(_results(tags=100_000, peak_mib=145.0))["ok"] is False  # 152 MB
    assert _memory_row(_results(tags=100_000, peak_mib=120.0, wrong=1))["ok"] is False
    assert _memory_row(_results(tags=3_000, peak_mib=90.0))["ok"] is None
    assert _memory_row({})["ok"] is None  # --skip-memory
    assert _memory_row({"memory": {"error": "RuntimeError: boom"}})["ok"] is None


def test_the_timeline_reads_the_copies_apart_from_the_largest_repository():
    # (seconds, parts done, MiB): 100 copies first, then the largest repository (done == 100), then the rest.
    samples = [(0.5, -1, 70.0), (1.0, 0, 80.0), (2.0, 5, 82.0), (3.0, 50, 83.0), (4.0, 99, 83.5),
               (5.0, 100, 120.0), (6.0, 100, 130.0), (7.0, 101, 131.0)]
    line = _timeline(samples, 100)
    assert line == {"copies_tenth_mib": 82.0, "copies_end_mib": 83.5, "copies_max_mib": 83.5,
                    "big_max_mib": 130.0, "max_mib": 131.0, "samples": 8}
