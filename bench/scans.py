"""Scans through the user's path (scan_submit on Celery workers, fan-out), beside the floor."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from . import generate
from .common import (
    FLOOR_AGENT,
    OURS_AGENT,
    REGISTRY_NAME,
    Django,
    log,
    log_summary,
    postgres_django,
    self_cpu,
    tags_check,
)
from .floor import FloorState, floor_scan
from .registryd import Distribution
from .workers import workers_start


def workers_scan(django: Django, distribution: Distribution, workers: list) -> dict:
    """One whole-registry scan as the Refresh button starts it, timed from scan_submit until the job is
    done; CPU and peak memory are the workers' (main and pool processes)."""
    load = round(os.getloadavg()[0], 2)
    start, registry_cpu = distribution.mark(), distribution.cpu_seconds()
    worker_cpu = sum(w.cpu_seconds() for w in workers)
    result = django.run("enqueue", "--name", REGISTRY_NAME)
    result["registry_cpu_seconds"] = distribution.cpu_seconds() - registry_cpu
    result["cpu_seconds"] = sum(w.cpu_seconds() for w in workers) - worker_cpu
    result["loadavg_before"] = load
    result["peak_rss_mib"] = [round(w.peak_rss_mib(), 1) for w in workers]
    result["log"] = log_summary(distribution.count(start, agent=OURS_AGENT))
    if result["status"] != "succeeded":
        log(f"  scan {result['status']}: {result.get('error')}")
    return result


def workers_scan_checked(django: Django, distribution: Distribution, workers: list, plan: generate.Plan) -> dict:
    """workers_scan, its access log as "ours_log" and every tag's stored digest checked ("ours_check")."""
    result = workers_scan(django, distribution, workers)
    result["ours_log"] = result.pop("log")
    result["ours_check"] = tags_check(plan, django.run("tags", "--name", REGISTRY_NAME)["tags"])
    return result



def _phase(args: argparse.Namespace, plan: generate.Plan, distribution: Distribution, workers: list, *,
           name: str, kind: str, django: Django, state: FloorState) -> dict:
    """One scan measured twice: the floor (in this process), then ours (on the workers)."""
    entry: dict = {"name": name, "kind": kind, "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    start, cpu, registry_cpu = distribution.mark(), self_cpu(), distribution.cpu_seconds()
    result = floor_scan(distribution.url, concurrency=args.concurrency, state=state)
    entry["floor"] = {"seconds": result.seconds, "requests": result.requests, "total": result.total,
                      "tags": result.tags, "changed": result.changed, "errors": result.errors,
                      "cpu_seconds": self_cpu() - cpu,
                      "registry_cpu_seconds": distribution.cpu_seconds() - registry_cpu}
    entry["floor_log"] = log_summary(distribution.count(start, agent=FLOOR_AGENT))
    ours = workers_scan(django, distribution, workers)
    ours["total"] = sum(ours["requests"].values())
    entry["ours"] = ours
    entry["ours_log"] = ours.pop("log")
    entry["ours_check"] = tags_check(plan, django.run("tags", "--name", REGISTRY_NAME)["tags"])
    log(f"  {name}: ours {ours['seconds']:.2f}s {ours['total']} req, floor {result.seconds:.2f}s "
        f"{result.total} req: {ours['seconds'] / result.seconds:.2f}x; cpu {ours['cpu_seconds']:.1f} "
        f"vs {entry['floor']['cpu_seconds']:.1f}; check {entry['ours_check']['wrong_or_missing']} wrong")
    return entry


def _numbered(kind: str, index: int, count: int) -> str:
    return kind if count == 1 else f"{kind}#{index + 1}"


def scans_measure(args: argparse.Namespace, plan: generate.Plan, distribution: Distribution, template: Django,
                  work: Path) -> tuple[list[dict], Django]:
    """Cold, warm and moved scans; the scanned database is returned for the pages.

    Through the user's path: scan_submit -> one Celery worker (-c 1) fanning out one task per
    repository, each part with the registry's concurrency (4 requests in flight, as the floor).
    Floor then ours, for each run; cold runs each start from an empty database and an empty floor.
    """
    log("scans (Celery worker, fan-out)")
    scans = []
    main_db = template
    floor_state = FloorState()
    workers: list = []
    try:
        for index in range(args.repeat):
            main_db = template.copy(work / f"main{index}.sqlite3")
            for worker in workers:
                worker.stop(timeout=30)
            workers = workers_start(work / "workers", main_db.env, count=1, concurrency=1)
            floor_state = FloorState()
            scans.append(_phase(args, plan, distribution, workers, name=_numbered("cold", index, args.repeat),
                                kind="cold", django=main_db, state=floor_state))
        for index in range(args.repeat):
            scans.append(_phase(args, plan, distribution, workers, name=_numbered("warm", index, args.repeat),
                                kind="warm", django=main_db, state=floor_state))
        for index in range(args.moved_repeat):
            moves = generate.moves_plan(plan, seed=args.seed + 1000 * index, fraction=0.01)
            moved = generate.moves_apply(plan, moves, url=distribution.url, threads=args.push_threads)
            log(f"  moved {moved['moved']} tags in {moved['seconds']:.1f}s")
            entry = _phase(args, plan, distribution, workers, name=_numbered("moved", index, args.moved_repeat),
                           kind="moved", django=main_db, state=floor_state)
            scans.append({**entry, "moved": moved["moved"]})
    finally:
        for worker in workers:
            worker.stop(timeout=30)
    return scans, main_db


def scaleout_measure(args: argparse.Namespace, plan: generate.Plan, distribution: Distribution, cluster,
                     base_env: dict[str, str], work: Path) -> dict:
    """The same scans with 1, 2 and 4 workers of -c 1, on PostgreSQL."""
    log("scale-out (PostgreSQL)")
    scale: dict = {"worker_concurrency": 1, "runs": [], "database": "postgresql"}
    for count in args.worker_counts:
        django = postgres_django(cluster, f"scale{count}", base_env)
        django.run("setup", "--name", REGISTRY_NAME, "--url", distribution.url,
                   "--concurrency", str(args.concurrency))
        pool = workers_start(work / "workers", django.env, count=count, concurrency=1)
        try:
            for kind in ("cold", "warm"):
                run_result = workers_scan_checked(django, distribution, pool, plan)
                run_result.update({"name": f"{kind}, {count} worker{'s' if count > 1 else ''}",
                                   "kind": kind, "workers": count})
                scale["runs"].append(run_result)
                log(f"  {run_result['name']}: {run_result['seconds']:.2f}s, "
                    f"{sum(run_result['requests'].values())} req, worker cpu "
                    f"{run_result['cpu_seconds']:.1f}s, registry cpu {run_result['registry_cpu_seconds']:.1f}s")
        finally:
            for worker in pool:
                worker.stop(timeout=30)
    return scale
