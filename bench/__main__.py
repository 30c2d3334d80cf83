"""python -m bench [--repos R --tags T --seed S --out bench/results] [--quick]

One run, one registry:

1. generate: start Docker Distribution on loopback (access log on), push
   R x T tags plus one repository of --big-tags tags, from the seed;
2. scans, each measured as ours (scan_job_run in a subprocess on a fresh
   SQLite file) and as the floor (bench/floor.py), with the access log read
   between marks: cold, warm (nothing changed), after 1% of tags moved;
3. scale-out: cold and warm scans through the production path (scan_enqueue,
   Celery fan-out of one task per repository) with one worker and with two,
   and the in-process scan with concurrency 8;
4. pages: queries per page in-process at two sizes, then latency under load
   against gunicorn -w 2 on the scanned database;
5. bench/results/: results.json, results.md, scan.png, pages.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as platform_module
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.harness.services import stop_process

from . import generate, report
from .floor import FloorState, floor_scan
from .inproc import BENCH_PASSWORD, BENCH_USER
from .pages import gunicorn_start, login, page_load, redis_start
from .registryd import Distribution
from .workers import workers_start

ROOT = Path(__file__).resolve().parents[1]
OURS_AGENT = "manifest-dashboard/"
FLOOR_AGENT = "bench-floor/"
REGISTRY_NAME = "bench"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Django:
    """Runs bench.inproc commands in subprocesses against one SQLite file."""

    def __init__(self, db: Path, base_env: dict[str, str]) -> None:
        self.db = db
        self.env = {**os.environ, **base_env, "DATABASE_URL": f"sqlite:///{db}"}

    def run(self, *args: str) -> dict:
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "bench.inproc", *args], cwd=ROOT, env=self.env,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"bench.inproc {args[0]} failed ({out.returncode}):\n{out.stderr[-4000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["process_seconds"] = time.monotonic() - started
        return result

    def copy(self, path: Path) -> Django:
        shutil.copyfile(self.db, path)
        return Django(path, {k: v for k, v in self.env.items() if k != "DATABASE_URL"})


def _tags_check(plan: generate.Plan, stored: dict[str, str]) -> dict:
    expected = {f"{r.name}:{t}": d for r in plan.repositories for t, d in r.tags.items()}
    wrong = [k for k, d in expected.items() if stored.get(k) not in (d,)]
    extra = [k for k in stored if k not in expected]
    return {"expected": len(expected), "stored": len(stored), "wrong_or_missing": len(wrong), "extra": len(extra),
            "examples": (wrong + extra)[:5]}


def _log_summary(count) -> dict:
    return {"requests": dict(count.kinds), "total": count.total, "statuses": dict(count.statuses),
            "repeated_digest_gets": dict(count.repeated_digest_gets), "repeated_examples": count.repeated_examples,
            "repeated_top": count.repeated_by_digest.most_common(5),
            "repeated_distinct": len(count.repeated_by_digest)}


def _cpu() -> float:
    """This process's CPU time: the floor runs in it, and nothing else does meanwhile."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", ".", ":!bench"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "kernel": platform_module.release(),
            "python": platform_module.python_version(), "loadavg_at_start": [round(x, 2) for x in load],
            "commit": commit + ("+dirty" if dirty else "")}


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="manifest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"meta": {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "seed": args.seed, "repos": args.repos,
        "tags": args.tags, "big_tags": args.big_tags, "concurrency": args.concurrency, "quick": args.quick,
        "clients": args.clients, "machine": machine_info(), "work": str(work)}}
    log(f"work folder {work}")
    distribution = Distribution(work / "registry")
    redis_process = None
    try:
        distribution.start()
        results["meta"]["distribution"] = distribution.version()
        redis_process, redis_port = redis_start(work / "redis")
        base_env = {"DJANGO_SETTINGS_MODULE": "config.settings", "SECRET_KEY": secrets.token_urlsafe(40),
                    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver", "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                    "LOG_LEVEL": "WARNING", "DEBUG": "false", "PYTHONDONTWRITEBYTECODE": "1"}

        # 1. generate
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
        results["generation"] = {"plan": description, "push": pushed}
        log(f"  generated in {pushed['seconds']:.1f}s ({pushed['requests_total']} requests)")

        # Django databases: one migrated template, copied fresh for each series.
        template = Django(work / "template.sqlite3", base_env)
        versions = template.run("setup", "--name", REGISTRY_NAME, "--url", distribution.url,
                                "--concurrency", str(args.concurrency))
        results["meta"].update(versions)

        # 2. scans: floor then ours, for each run, on the same registry. Cold runs each start from an
        # empty database and an empty floor; the last cold run's database is the one re-scanned and served.
        scans = []

        def phase(name: str, kind: str, django: Django, state: FloorState | None, **scan_args: str) -> dict:
            entry: dict = {"name": name, "kind": kind, "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
            if state is not None:
                start, cpu, registry_cpu = distribution.mark(), _cpu(), distribution.cpu_seconds()
                result = floor_scan(distribution.url, concurrency=args.concurrency, state=state)
                entry["floor"] = {"seconds": result.seconds, "requests": result.requests, "total": result.total,
                                  "tags": result.tags, "changed": result.changed, "errors": result.errors,
                                  "cpu_seconds": _cpu() - cpu,
                                  "registry_cpu_seconds": distribution.cpu_seconds() - registry_cpu}
                entry["floor_log"] = _log_summary(distribution.count(start, agent=FLOOR_AGENT))
            start, registry_cpu = distribution.mark(), distribution.cpu_seconds()
            extra = [f"--{k.replace('_', '-')}={v}" for k, v in scan_args.items()]
            ours = django.run("scan", "--name", REGISTRY_NAME, *extra)
            ours["total"] = sum(ours["requests"].values())
            # Read before the `tags` check, which does not touch the registry anyway.
            ours["registry_cpu_seconds"] = distribution.cpu_seconds() - registry_cpu
            entry["ours"] = ours
            entry["ours_log"] = _log_summary(distribution.count(start, agent=OURS_AGENT))
            entry["ours_check"] = _tags_check(plan, django.run("tags", "--name", REGISTRY_NAME)["tags"])
            ratio = f"{ours['seconds'] / entry['floor']['seconds']:.2f}x floor" if state is not None else ""
            log(f"  {name}: ours {ours['seconds']:.2f}s {ours['total']} req {ratio}; "
                f"check {entry['ours_check']['wrong_or_missing']} wrong")
            return entry

        def numbered(kind: str, index: int, count: int) -> str:
            return kind if count == 1 else f"{kind}#{index + 1}"

        log("scans")
        for index in range(args.cold_repeat):
            main_db = template.copy(work / f"main{index}.sqlite3")
            floor_state = FloorState()
            scans.append(phase(numbered("cold", index, args.cold_repeat), "cold", main_db, floor_state))
        for index in range(args.repeat):
            scans.append(phase(numbered("warm", index, args.repeat), "warm", main_db, floor_state))
        for index in range(args.repeat):
            moves = generate.moves_plan(plan, seed=args.seed + 1000 * index, fraction=0.01)
            moved = generate.moves_apply(plan, moves, url=distribution.url, threads=args.push_threads)
            log(f"  moved {moved['moved']} tags in {moved['seconds']:.1f}s")
            entry = phase(numbered("moved", index, args.repeat), "moved", main_db, floor_state)
            scans.append({**entry, "moved": moved["moved"]})
        results["scans"] = scans

        # 3. scale-out: the production path (scan_enqueue -> Celery, one task per repository) with one
        # worker and with two, and the in-process scan with concurrency 8.
        if not args.skip_scaleout:
            log("scale-out")
            scale: dict = {"worker_concurrency": 1, "runs": []}
            c8 = template.copy(work / "c8.sqlite3")
            scale["concurrency8_cold"] = phase("cold c8", "cold", c8, None, concurrency="8")
            scale["concurrency8_warm"] = phase("warm c8", "warm", c8, None, concurrency="8")
            databases = {count: template.copy(work / f"workers{count}.sqlite3") for count in (1, 2)}
            for kind in ("cold", "warm"):
                for count, django in databases.items():
                    scale["runs"].append(workers_phase(kind, count, django, distribution, plan, work))
            results["scaleout"] = scale

        # 4. pages
        if not args.skip_pages:
            results["pages"] = pages_measure(args, plan, main_db, work, base_env, registry_url=distribution.url)
    finally:
        distribution.stop()
        if redis_process is not None:
            stop_process(redis_process)
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return results


def workers_phase(kind: str, count: int, django: Django, distribution: Distribution, plan: generate.Plan,
                  work: Path) -> dict:
    """One whole-registry scan through Celery, timed from scan_enqueue until the job is done."""
    workers = workers_start(work / "workers", django.env, count=count, concurrency=1)
    try:
        load = round(os.getloadavg()[0], 2)
        start, registry_cpu = distribution.mark(), distribution.cpu_seconds()
        worker_cpu = sum(w.cpu_seconds() for w in workers)
        result = django.run("enqueue", "--name", REGISTRY_NAME)
        result["registry_cpu_seconds"] = distribution.cpu_seconds() - registry_cpu
        result["worker_cpu_seconds"] = sum(w.cpu_seconds() for w in workers) - worker_cpu
        result["loadavg_before"] = load
        result["peak_rss_mib"] = [round(w.peak_rss_mib(), 1) for w in workers]
    finally:
        for worker in workers:
            worker.stop()
    result.update({"name": f"{kind}, {count} worker{'s' if count > 1 else ''}", "kind": kind, "workers": count,
                   "ours_log": _log_summary(distribution.count(start, agent=OURS_AGENT)),
                   "ours_check": _tags_check(plan, django.run("tags", "--name", REGISTRY_NAME)["tags"])})
    log(f"  {result['name']}: {result['seconds']:.2f}s, {result['parts']} parts, {result['status']}, "
        f"{sum(result['requests'].values())} req, check {result['ours_check']['wrong_or_missing']} wrong")
    return result


def _page_targets(plan: generate.Plan) -> dict[str, str]:
    big = next(r for r in plan.repositories if r.name == generate.BIG_REPOSITORY)
    counts: dict[str, int] = {}
    for digest in big.tags.values():
        counts[digest] = counts.get(digest, 0) + 1
    attested = [m for m in big.taggable if m.kind == "index" and b"attestation-manifest" in m.raw]
    chosen = max(attested or big.taggable, key=lambda m: counts.get(m.digest, 0))
    tag = sorted(t for t, d in big.tags.items() if d == chosen.digest)[0]
    small = next(r for r in plan.repositories if not r.mirror_of and r.name != generate.BIG_REPOSITORY)
    single = next((t for t, d in sorted(small.tags.items()) if small.manifest(d).kind == "image"),
                  sorted(small.tags)[0])
    return {"big": big.name, "big_tag": tag, "small": small.name, "small_tag": single}


def pages_measure(args: argparse.Namespace, plan: generate.Plan, main_db: Django, work: Path,
                  base_env: dict[str, str], *, registry_url: str) -> dict:
    log("pages")
    targets = _page_targets(plan)
    reg = REGISTRY_NAME
    big_tags = len(next(r for r in plan.repositories if r.name == targets["big"]).tags)
    pages = [
        ("repositories", f"/registries/{reg}/", "repositories list"),
        ("tag list", f"/registries/{reg}/r/{targets['big']}/", f"tag list, {big_tags} tags"),
        ("tag detail", f"/registries/{reg}/r/{targets['big']}/t/{targets['big_tag']}", "tag detail, attested index"),
        ("coverage", f"/coverage?registry={reg}", "coverage matrix"),
    ]
    # Queries per page at two sizes, on a copy so the small registry does not touch the measured database.
    small_names = [r.name for r in plan.repositories if r.name != generate.BIG_REPOSITORY][:10]
    copy = main_db.copy(work / "queries.sqlite3")
    copy.run("setup", "--name", "bench-small", "--url", registry_url,
             "--watch", ",".join(small_names), "--concurrency", str(args.concurrency))
    copy.run("scan", "--name", "bench-small")
    all_repos = len(plan.repositories)
    urls = [
        {"page": "repositories", "size": f"{len(small_names)} repositories", "url": "/registries/bench-small/"},
        {"page": "repositories", "size": f"{all_repos} repositories", "url": f"/registries/{reg}/"},
        {"page": "repositories", "size": f"{all_repos} repositories, page 2", "url": f"/registries/{reg}/?page=2"},
        {"page": "tag list", "size": f"{len(next(r for r in plan.repositories if r.name == targets['small']).tags)} tags",
         "url": f"/registries/{reg}/r/{targets['small']}/"},
        {"page": "tag list", "size": f"{big_tags} tags",
         "url": f"/registries/{reg}/r/{targets['big']}/"},
        {"page": "tag list", "size": f"{big_tags} tags, last page",
         "url": f"/registries/{reg}/r/{targets['big']}/?page={-(-big_tags // 200)}"},
        {"page": "tag detail", "size": "single image", "url": f"/registries/{reg}/r/{targets['small']}/t/{targets['small_tag']}"},
        {"page": "tag detail", "size": "attested index, most aliases",
         "url": f"/registries/{reg}/r/{targets['big']}/t/{targets['big_tag']}"},
        {"page": "coverage", "size": f"{len(small_names)} repositories", "url": "/coverage?registry=bench-small"},
        {"page": "coverage", "size": f"{all_repos} repositories", "url": f"/coverage?registry={reg}"},
        {"page": "coverage", "size": f"{all_repos} repositories, page 2", "url": f"/coverage?registry={reg}&page=2"},
    ]
    queries = copy.run("queries", "--urls-json", json.dumps(urls), "--keep-sql")["pages"]
    for item in queries:
        log(f"  queries {item['page']} ({item['size']}): {item['queries']} in {1000 * item['seconds']:.0f} ms"
            f" [{item['status']}]")

    env = {**base_env, "DATABASE_URL": f"sqlite:///{main_db.db}", "ALLOWED_HOSTS": "127.0.0.1"}
    server = gunicorn_start(work, env, workers=2)
    load = []
    try:
        session = login(server.url, BENCH_USER, BENCH_PASSWORD)
        cookies = session.cookies.get_dict()
        for clients in sorted({1, args.clients}):
            for key, path, label in pages:
                result = page_load(server.url, cookies, path=path, clients=clients,
                                   requests_total=args.page_requests, max_seconds=args.page_seconds)
                result.update({"page": key, "label": label, "loadavg_before": round(os.getloadavg()[0], 2)})
                load.append(result)
                log(f"  {key} x{clients}: p50 {result['p50_ms']:.0f} ms p95 {result['p95_ms']:.0f} ms "
                    f"({result['requests']} req, {result['statuses']})")
    finally:
        server.stop()
    return {"targets": targets, "queries": queries, "load": load, "workers": 2}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--tags", type=int, default=100, help="tags per repository")
    parser.add_argument("--big-tags", type=int, default=1000, help="tags of the extra repository for the tag list page")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--quick", action="store_true", help="10 x 20 and a 200-tag repository: a smoke run")
    parser.add_argument("--concurrency", type=int, default=4, help="the registry's concurrency setting (scan threads)")
    parser.add_argument("--push-threads", type=int, default=8)
    parser.add_argument("--cold-repeat", type=int, default=2, help="cold scans (each on an empty database)")
    parser.add_argument("--repeat", type=int, default=3, help="warm re-scans, and moved re-scans (1%% more each)")
    parser.add_argument("--clients", type=int, default=4, help="load generator threads (also measured with 1)")
    parser.add_argument("--page-requests", type=int, default=200, help="requests per page and client level")
    parser.add_argument("--page-seconds", type=float, default=60.0, help="time bound per page and client level")
    parser.add_argument("--skip-scaleout", action="store_true")
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--work", default="", help="folder for the registry and databases (kept); default a temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the temp work folder")
    args = parser.parse_args(argv)
    if args.cold_repeat < 1:
        parser.error("--cold-repeat must be at least 1: the re-scans and pages need a scanned database")
    if args.big_tags < 1 and not args.skip_pages:
        parser.error("the tag list page is measured on the --big-tags repository: give it tags, or --skip-pages")
    if args.quick:
        args.repos, args.tags, args.big_tags = 10, 20, 200
        args.page_requests, args.page_seconds = min(args.page_requests, 40), min(args.page_seconds, 15.0)
    started = time.monotonic()
    results = run(args)
    results["meta"]["total_seconds"] = time.monotonic() - started
    results["meta"]["commit_at_end"] = machine_info()["commit"]
    out = Path(args.out)
    report.write(results, out)
    log(f"wrote {out / 'results.md'}, results.json, scan.png, pages.png in {results['meta']['total_seconds']:.0f}s")


if __name__ == "__main__":
    main()
