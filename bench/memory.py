"""A worker's peak memory during a cold scan of a 100,000-tag registry, through the user's path.

A registry of its own: the generator's content pushed through the API (R
repositories of T tags and one repository of --memory-big-tags, the largest:
a part holds one repository, so the peak follows it), then copies of the
pushed R repositories under `archive/<k>/` until the registry holds
--memory-tags tags. A copy is the repository's folder in Distribution's
storage (link files naming digests), copied under another name: what pushing
the same manifests and tags there would write, without the one PUT per tag
that would cost minutes here. It lives on tmpfs where there is one (a
100,000-tag registry is about a million directories).

Then one cold scan as the Refresh button starts it (bench.scans.workers_scan:
scan_submit, one Celery worker of -c 1 fanning out parts of up to 8 repositories),
with the pool process's resident set sampled meanwhile beside the number of
parts done, so that growth across parts (a leak) shows apart from the peak
of the largest repository. The copies sort before the largest repository
(`archive/` < `bench/`), so they are scanned first.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from . import generate
from .common import REGISTRY_NAME, Django, log, machine_info
from .registryd import Distribution
from .scans import workers_scan_checked
from .workers import workers_start

COPY_PREFIX = "archive"
SAMPLE_SECONDS = 0.5


def _folder(work: Path) -> Path:
    """tmpfs when the machine has one: directories there cost no disk blocks and no journal."""
    shm = Path("/dev/shm")
    if shm.is_dir():
        with contextlib.suppress(OSError):
            return Path(tempfile.mkdtemp(prefix="manifest-bench-memory-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="memory-", dir=work))


def _layout(args: argparse.Namespace) -> tuple[int, int]:
    """(repositories of --memory-repo-tags beside the largest, of which pushed through the API)."""
    repos = max(1, (args.memory_tags - args.memory_big_tags) // args.memory_repo_tags)
    return repos, min(repos, args.memory_pushed)


def _registry_build(args: argparse.Namespace, distribution: Distribution) -> tuple[generate.Plan, dict]:
    """Push the plan, copy its repositories up to the size asked; the full plan and what it cost."""
    repos, pushed = _layout(args)
    started = time.monotonic()
    plan = generate.plan_build(repos=pushed, tags=args.memory_repo_tags, seed=args.seed,
                               big_tags=args.memory_big_tags)
    log(f"  pushing {plan.total_tags:,} tags in {len(plan.repositories)} repositories "
        f"({args.memory_big_tags:,} in {generate.BIG_REPOSITORY})")
    push = generate.plan_push(plan, url=distribution.url, threads=args.push_threads, log=log)
    sources = [r for r in plan.repositories if r.name != generate.BIG_REPOSITORY]
    copy_started = time.monotonic()
    copies = []
    for index in range(repos - pushed):
        source = sources[index % len(sources)]
        name = f"{COPY_PREFIX}/{index // len(sources):02d}/{source.name}"
        distribution.repository_copy(source.name, name)
        copies.append(generate.RepoPlan(name=name, manifests=source.manifests, taggable=source.taggable,
                                        tags=dict(source.tags), mirror_of=source.name))
    copy_seconds = time.monotonic() - copy_started
    full = generate.Plan(seed=plan.seed, repos=repos, tags_per_repo=args.memory_repo_tags,
                         big_tags=args.memory_big_tags, repositories=plan.repositories + copies,
                         base_layers=plan.base_layers)
    generation = {"pushed_tags": plan.total_tags, "pushed_repositories": len(plan.repositories),
                  "push_seconds": push["seconds"], "push_requests": push["requests_total"],
                  "copied_repositories": len(copies), "copy_seconds": copy_seconds,
                  "seconds": time.monotonic() - started, "plan": full.describe()}
    log(f"  pushed in {push['seconds']:.0f}s, {len(copies)} copies in {copy_seconds:.0f}s: "
        f"{full.total_tags:,} tags in {len(full.repositories):,} repositories")
    return full, generation


class _Sampler:
    """The pool processes' resident set (VmRSS) and the parts done, every SAMPLE_SECONDS."""

    def __init__(self, workers: list, db: Path) -> None:
        self.pids = [pid for w in workers for pid in w.processes()[1:]]
        self.db = db
        self.samples: list[tuple[float, int, float]] = []  # (seconds, parts done, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss_mib(self) -> float:
        peak = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
        return peak

    def _parts(self, connection: sqlite3.Connection) -> int:
        try:
            return connection.execute("SELECT count(*) FROM manifests_scanpart").fetchone()[0]
        except sqlite3.Error:
            return -1

    def _run(self) -> None:
        started = time.monotonic()
        connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1.0)
        try:
            while not self._stop.wait(SAMPLE_SECONDS):
                self.samples.append((round(time.monotonic() - started, 1), self._parts(connection),
                                     round(self._rss_mib(), 1)))
        finally:
            connection.close()

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _timeline(samples: list[tuple[float, int, float]], copies: int) -> dict:
    """The pool process's resident set along the scan. The copies are scanned first (`archive/` sorts
    first), then the largest repository: flat from a tenth of the copies to their end means nothing
    is kept from one part to the next; the largest repository's part makes the peak."""
    def last(values: list[float]) -> float | None:
        return values[-1] if values else None

    during = {"tenth": [m for _, done, m in samples if 0 <= done < max(1, copies // 10)],
              "copies": [m for _, done, m in samples if 0 <= done < copies],
              "big": [m for _, done, m in samples if done == copies]}
    return {"copies_tenth_mib": last(during["tenth"]), "copies_end_mib": last(during["copies"]),
            "copies_max_mib": max(during["copies"], default=None), "big_max_mib": max(during["big"], default=None),
            "max_mib": max((m for _, _, m in samples), default=None), "samples": len(samples)}


def _stop(workers: list, distribution: Distribution) -> None:
    for worker in workers:
        worker.stop(timeout=30)
    distribution.stop()


def memory_measure(args: argparse.Namespace, template: Django, work: Path) -> dict:
    """Build the registry, scan it cold once through the fan-out; the figures, the registry removed."""
    log(f"memory: a cold scan of {args.memory_tags:,} tags on one worker")
    folder = _folder(work)
    distribution = Distribution(folder / "registry")
    result: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": machine_info()["commit"],
                    "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                    "folder_on": "tmpfs" if str(folder).startswith("/dev/shm") else "disk",
                    "repo_tags": args.memory_repo_tags, "big_tags": args.memory_big_tags}
    workers: list = []
    try:
        distribution.start()
        plan, result["generation"] = _registry_build(args, distribution)
        django = template.copy(work / "memory.sqlite3")
        django.run("setup", "--name", REGISTRY_NAME, "--url", distribution.url,
                   "--concurrency", str(args.concurrency))
        workers = workers_start(work / "workers", django.env, count=1, concurrency=1)
        with _Sampler(workers, django.db) as sampler:
            scan = workers_scan_checked(django, distribution, workers, plan)
        scan["timeline"] = _timeline(sampler.samples, result["generation"]["copied_repositories"])
        scan["samples"] = sampler.samples[:: -(-len(sampler.samples) // 200) or 1]  # 200 at most, for the plot
        result["scan"] = scan
        result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        log(f"  cold scan {scan['seconds']:.0f}s, peak {max(scan['peak_rss_mib']):.0f} MiB: {scan['timeline']}")
    finally:
        _stop(workers, distribution)
        shutil.rmtree(folder, ignore_errors=True)  # about a million directories
    return result
