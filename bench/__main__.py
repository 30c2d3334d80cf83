"""python -m bench [--repos R --tags T --seed S --out bench/results] [--quick]

One run, one registry, through the path users run:

1. generate: start Docker Distribution on loopback (access log on), push
   R x T tags plus one repository of --big-tags tags, from the seed;
2. scans: cold (each on an empty database), warm (nothing changed) and after
   1% of tags moved, each measured as ours (scan_submit on a Celery worker
   that fans out parts of up to 8 repositories, as `manage.py scan --wait` runs it)
   and as the floor (bench/floor.py), the access log read between marks;
3. tools: `docker manifest inspect` and `skopeo inspect --raw` per tag, on a
   sample of tags, with the same concurrency;
4. scale-out: the same scans with 1, 2 and 4 workers on PostgreSQL;
5. pages: queries per page and latency against gunicorn, on the scanned
   database and on a synthetic 100,000-tag inventory (SQLite, PostgreSQL);
6. memory: a worker's peak memory during a cold scan of a registry of its own
   with --memory-tags tags (bench/memory.py);
7. bench/results/: results.json, results.md, scan.png, tools.png, pages.png.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from manifests.stack.ports import free_port
from manifests.stack.postgres import PostgresCluster, postgres_start
from manifests.stack.processes import stop_process
from manifests.stack.redis import redis_start

from . import generate, report
from .common import REGISTRY_NAME, ROOT, Django, log, machine_info
from .memory import memory_measure
from .pages_measure import pages_measure, synthetic_measure
from .registryd import Distribution
from .scans import scaleout_measure, scans_measure
from .tools import tools_measure


def _generate(args: argparse.Namespace, distribution: Distribution) -> tuple[generate.Plan, dict]:
    """Push the seeded plan to the registry."""
    log(f"planning {args.repos} x {args.tags} tags + {args.big_tags} in {generate.BIG_REPOSITORY}, seed {args.seed}")
    started = time.monotonic()
    plan = generate.plan_build(repos=args.repos, tags=args.tags, seed=args.seed, big_tags=args.big_tags)
    plan_seconds = time.monotonic() - started
    description = plan.describe()
    log(f"  {description}")
    mark = distribution.mark()
    pushed = generate.plan_push(plan, url=distribution.url, threads=args.push_threads, log=log)
    pushed["plan_seconds"] = plan_seconds
    pushed["log_total"] = distribution.count(mark).total
    log(f"  generated in {pushed['seconds']:.1f}s ({pushed['requests_total']} requests)")
    return plan, {"plan": description, "push": pushed}


def _measure(args: argparse.Namespace, results: dict, work: Path, distribution: Distribution,
             redis_port: int) -> PostgresCluster | None:
    """Phases 1 to 6 into `results`; the PostgreSQL cluster it started, if any, for the caller to stop."""
    base_env = {"DJANGO_SETTINGS_MODULE": "config.settings", "SECRET_KEY": secrets.token_urlsafe(40),
                "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver", "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "LOG_LEVEL": "WARNING", "DEBUG": "false", "PYTHONDONTWRITEBYTECODE": "1"}
    plan, results["generation"] = _generate(args, distribution)
    # Django databases: one migrated template, copied fresh for each series.
    template = Django(work / "template.sqlite3", base_env)
    versions = template.run("setup", "--name", REGISTRY_NAME, "--url", distribution.url,
                            "--concurrency", str(args.concurrency))
    results["meta"].update(versions)
    results["scans"], main_db = scans_measure(args, plan, distribution, template, work)
    if not args.skip_tools:
        results["tools"] = tools_measure(args, plan, distribution)
    cluster = None
    if not args.skip_scaleout or not args.skip_pages:
        cluster = postgres_start()
    if not args.skip_scaleout:
        results["scaleout"] = scaleout_measure(args, plan, distribution, cluster, base_env, work)
    if not args.skip_pages:
        results["pages"] = pages_measure(args, plan, main_db, work, base_env, registry_url=distribution.url)
        results["synthetic"] = synthetic_measure(args, work, base_env, cluster)
    if not args.skip_memory:
        _memory(args, results, template, work)
    return cluster


def _memory(args: argparse.Namespace, results: dict, template: Django, work: Path) -> None:
    """The memory phase; its failure is reported, not the end of the run."""
    try:
        results["memory"] = memory_measure(args, template, work)
    except Exception as exc:  # the other phases' figures are still worth writing
        log(f"memory phase failed: {exc!r}")
        results["memory"] = {"error": f"{type(exc).__name__}: {str(exc)[-2000:]}"}


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="manifest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"meta": {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "seed": args.seed, "repos": args.repos,
        "tags": args.tags, "big_tags": args.big_tags, "concurrency": args.concurrency, "quick": args.quick,
        "clients": args.clients, "machine": machine_info(), "work": str(work), "repeat": args.repeat}}
    log(f"work folder {work}")
    distribution = Distribution(work / "registry")
    redis_process = None
    cluster = None
    try:
        distribution.start()
        results["meta"]["distribution"] = distribution.version()
        # A private Redis, so the pages' queue check (a PING, cached 3 s) answers as in production.
        redis_port = free_port()
        redis_process = redis_start(work / "redis", redis_port)
        cluster = _measure(args, results, work, distribution, redis_port)
    finally:
        distribution.stop()
        if redis_process is not None:
            stop_process(redis_process)
        if cluster is not None:
            cluster.stop()
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--tags", type=int, default=100, help="tags per repository")
    parser.add_argument("--big-tags", type=int, default=1000, help="tags of the extra repository for the tag list page")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each: a smoke run for development")
    parser.add_argument("--concurrency", type=int, default=4, help="the registry's concurrency setting (scan threads)")
    parser.add_argument("--push-threads", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="cold scans (each on an empty database), warm "
                                                             "re-scans and runs of each tool")
    parser.add_argument("--moved-repeat", type=int, default=1, help="re-scans after 1%% of tags moved")
    parser.add_argument("--tool-tags", type=int, default=600, help="tags sampled for the CLI tools")
    parser.add_argument("--worker-counts", default="1,2,4", help="scale-out: workers (-c 1 each) on PostgreSQL")
    parser.add_argument("--synthetic-repos", type=int, default=1000)
    parser.add_argument("--synthetic-tags", type=int, default=100, help="tags per synthetic repository")
    parser.add_argument("--clients", type=int, default=4, help="load generator threads")
    parser.add_argument("--page-requests", type=int, default=120, help="requests per page")
    parser.add_argument("--page-seconds", type=float, default=20.0, help="time bound per page")
    parser.add_argument("--skip-tools", action="store_true")
    parser.add_argument("--skip-scaleout", action="store_true")
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-tags", type=int, default=100_000, help="memory phase: tags of its registry")
    parser.add_argument("--memory-big-tags", type=int, default=10_000, help="memory phase: its largest repository")
    parser.add_argument("--memory-repo-tags", type=int, default=100, help="memory phase: tags of the others")
    parser.add_argument("--memory-pushed", type=int, default=100,
                        help="memory phase: repositories pushed through the API; the rest are copies of them")
    parser.add_argument("--work", default="", help="folder for the registry and databases (kept); default a temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the temp work folder")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1: the re-scans and pages need a scanned database")
    if args.big_tags < 1 and not args.skip_pages:
        parser.error("the tag list page is measured on the --big-tags repository: give it tags, or --skip-pages")
    if args.quick:
        args.repos, args.tags, args.big_tags, args.repeat = 10, 20, 200, 1
        args.tool_tags, args.synthetic_repos, args.synthetic_tags = 20, 20, 50
        args.worker_counts = "1,2"
        args.memory_tags, args.memory_big_tags, args.memory_repo_tags, args.memory_pushed = 3000, 1000, 20, 10
        args.page_requests, args.page_seconds = min(args.page_requests, 30), min(args.page_seconds, 10.0)
    args.worker_counts = [int(n) for n in str(args.worker_counts).split(",") if n.strip()]
    started = time.monotonic()
    results = run(args)
    results["meta"]["total_seconds"] = time.monotonic() - started
    results["meta"]["commit_at_end"] = machine_info()["commit"]
    results["meta"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    report.write(results, out)
    log(f"wrote {out / 'results.md'}, results.json, scan.png, pages.png in {results['meta']['total_seconds']:.0f}s")


if __name__ == "__main__":
    main()
