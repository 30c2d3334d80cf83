"""The benchmark's goals table reads results as they come back from results.json (string keys)."""

from __future__ import annotations

import json

from bench.goals import goals_evaluate


def _results(p95_ms: float, statuses: dict[int, int]) -> dict:
    load = {"page": "jobs", "label": "jobs", "clients": 4, "p95_ms": p95_ms, "p50_ms": p95_ms / 2,
            "queries": 4, "statuses": statuses}
    return {"synthetic": {"databases": [{"database": "sqlite", "written": {"tags": 100_000}, "load": [load]}]}}


def _page_row(results: dict) -> dict:
    return next(row for row in goals_evaluate(results) if row["goal"].startswith("p95 under"))


def test_a_fast_page_of_200s_is_met_before_and_after_a_json_round_trip():
    results = _results(28.0, {200: 120})
    assert _page_row(results)["ok"] is True
    assert _page_row(json.loads(json.dumps(results)))["ok"] is True


def test_a_slow_page_or_an_error_status_is_not_met():
    assert _page_row(json.loads(json.dumps(_results(250.0, {200: 120}))))["ok"] is False
    assert _page_row(json.loads(json.dumps(_results(28.0, {200: 119, 500: 1}))))["ok"] is False
