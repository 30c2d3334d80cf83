"""python -m bench [--repos R --tags T --seed S --out bench/results] [--quick]

One run, one registry, through the path users run:

1. generate: start Docker Distribution on loopback (access log on), push
   R x T tags plus one repository of --big-tags tags, from the seed;
2. scans: cold (each on an empty database), warm (nothing changed) and after
   1% of tags moved, each measured as ours (scan_submit on a Celery worker
   that fans out one task per repository, as `manage.py scan --wait` runs it)
   and as the floor (bench/floor.py), the access log read between marks;
3. tools: `docker manifest inspect` and `skopeo inspect --raw` per tag, on a
   sample of tags, with the same concurrency;
4. scale-out: the same scans with 1, 2 and 4 workers on PostgreSQL;
5. pages: queries per page and latency against gunicorn, on the scanned
   database and on a synthetic 100,000-tag inventory (SQLite, PostgreSQL);
6. bench/results/: results.json, results.md, scan.png, tools.png, pages.png.
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

from tests.harness.postgres import postgres_start
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


def _children_cpu() -> float:
    """CPU time of this process's finished children (the CLI tools, each one process per tag)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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

        # 2. scans through the user's path: scan_submit -> one Celery worker (-c 1) fanning out one task
        # per repository, each part with the registry's concurrency (4 requests in flight, as the floor).
        # Floor then ours, for each run; cold runs each start from an empty database and an empty floor.
        log("scans (Celery worker, fan-out)")
        scans = []
        main_db = template
        floor_state = FloorState()
        workers: list = []

        def phase(name: str, kind: str, django: Django, state: FloorState) -> dict:
            entry: dict = {"name": name, "kind": kind, "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
            start, cpu, registry_cpu = distribution.mark(), _cpu(), distribution.cpu_seconds()
            result = floor_scan(distribution.url, concurrency=args.concurrency, state=state)
            entry["floor"] = {"seconds": result.seconds, "requests": result.requests, "total": result.total,
                              "tags": result.tags, "changed": result.changed, "errors": result.errors,
                              "cpu_seconds": _cpu() - cpu,
                              "registry_cpu_seconds": distribution.cpu_seconds() - registry_cpu}
            entry["floor_log"] = _log_summary(distribution.count(start, agent=FLOOR_AGENT))
            ours = workers_scan(django, distribution, workers)
            ours["total"] = sum(ours["requests"].values())
            entry["ours"] = ours
            entry["ours_log"] = ours.pop("log")
            entry["ours_check"] = _tags_check(plan, django.run("tags", "--name", REGISTRY_NAME)["tags"])
            log(f"  {name}: ours {ours['seconds']:.2f}s {ours['total']} req, floor {result.seconds:.2f}s "
                f"{result.total} req: {ours['seconds'] / result.seconds:.2f}x; cpu {ours['cpu_seconds']:.1f} "
                f"vs {entry['floor']['cpu_seconds']:.1f}; check {entry['ours_check']['wrong_or_missing']} wrong")
            return entry

        def numbered(kind: str, index: int, count: int) -> str:
            return kind if count == 1 else f"{kind}#{index + 1}"

        try:
            for index in range(args.repeat):
                main_db = template.copy(work / f"main{index}.sqlite3")
                for worker in workers:
                    worker.stop()
                workers = workers_start(work / "workers", main_db.env, count=1, concurrency=1)
                floor_state = FloorState()
                scans.append(phase(numbered("cold", index, args.repeat), "cold", main_db, floor_state))
            for index in range(args.repeat):
                scans.append(phase(numbered("warm", index, args.repeat), "warm", main_db, floor_state))
            for index in range(args.moved_repeat):
                moves = generate.moves_plan(plan, seed=args.seed + 1000 * index, fraction=0.01)
                moved = generate.moves_apply(plan, moves, url=distribution.url, threads=args.push_threads)
                log(f"  moved {moved['moved']} tags in {moved['seconds']:.1f}s")
                entry = phase(numbered("moved", index, args.moved_repeat), "moved", main_db, floor_state)
                scans.append({**entry, "moved": moved["moved"]})
        finally:
            for worker in workers:
                worker.stop()
        results["scans"] = scans

        # 3. what people use instead: one CLI process per tag, same concurrency, on a sample of tags.
        if not args.skip_tools:
            results["tools"] = tools_measure(args, plan, distribution)

        # 4. scale-out on PostgreSQL: 1, 2 and 4 workers of -c 1.
        if not args.skip_scaleout or not args.skip_pages:
            cluster = postgres_start()
        if not args.skip_scaleout:
            log("scale-out (PostgreSQL)")
            scale: dict = {"worker_concurrency": 1, "runs": [], "database": "postgresql"}
            for count in args.worker_counts:
                django = _postgres_django(cluster, f"scale{count}", base_env)
                django.run("setup", "--name", REGISTRY_NAME, "--url", distribution.url,
                           "--concurrency", str(args.concurrency))
                pool = workers_start(work / "workers", django.env, count=count, concurrency=1)
                try:
                    for kind in ("cold", "warm"):
                        run_result = workers_scan(django, distribution, pool)
                        run_result.update({"name": f"{kind}, {count} worker{'s' if count > 1 else ''}",
                                           "kind": kind, "workers": count,
                                           "ours_log": run_result.pop("log"),
                                           "ours_check": _tags_check(plan, django.run(
                                               "tags", "--name", REGISTRY_NAME)["tags"])})
                        scale["runs"].append(run_result)
                        log(f"  {run_result['name']}: {run_result['seconds']:.2f}s, "
                            f"{sum(run_result['requests'].values())} req, worker cpu "
                            f"{run_result['cpu_seconds']:.1f}s, registry cpu {run_result['registry_cpu_seconds']:.1f}s")
                finally:
                    for worker in pool:
                        worker.stop()
            results["scaleout"] = scale

        # 5. pages: the scanned registry, then a synthetic 100,000-tag inventory on SQLite and PostgreSQL.
        if not args.skip_pages:
            results["pages"] = pages_measure(args, plan, main_db, work, base_env, registry_url=distribution.url)
            results["synthetic"] = synthetic_measure(args, work, base_env, cluster)
    finally:
        distribution.stop()
        if redis_process is not None:
            stop_process(redis_process)
        if cluster is not None:
            cluster.stop()
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return results


def _postgres_django(cluster, database: str, base_env: dict[str, str]) -> Django:
    cluster._create_database(database)
    django = Django.__new__(Django)
    django.db = None
    django.env = {**os.environ, **base_env, "DATABASE_URL": cluster.url(database)}
    return django


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
    result["log"] = _log_summary(distribution.count(start, agent=OURS_AGENT))
    if result["status"] != "succeeded":
        log(f"  scan {result['status']}: {result.get('error')}")
    return result


TOOLS = {
    # What a script does to know a tag's platforms with each tool: read the manifest; for a single image
    # (whose manifest names no platform), read it again with the config.
    "docker manifest inspect": (["docker", "manifest", "inspect", "--insecure"],
                                ["docker", "manifest", "inspect", "--insecure", "--verbose"]),
    "skopeo inspect --raw": (["skopeo", "inspect", "--raw", "--tls-verify=false"],
                             ["skopeo", "inspect", "--raw", "--config", "--tls-verify=false"]),
}


def tools_measure(args: argparse.Namespace, plan: generate.Plan, distribution: Distribution) -> dict:
    """`docker manifest inspect` and `skopeo inspect --raw` per tag over one random sample of tags,
    with the scan's concurrency; each CLI call is its own process with no cache, so the cost per tag
    does not depend on the others and scales to every tag linearly."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    log("tools")
    pairs = [(r, t) for r in plan.repositories for t in sorted(r.tags)]
    sample = random.Random(f"tools {args.seed}").sample(pairs, min(args.tool_tags, len(pairs)))
    host = distribution.url.split("://", 1)[1]
    env = {**os.environ, "DOCKER_CONFIG": str(Path(tempfile.mkdtemp(prefix="bench-docker-")))}
    runs: list[dict] = []
    for tool, (first, image) in TOOLS.items():
        if shutil.which(first[0]) is None:
            runs.append({"tool": tool, "error": f"{first[0]} is not installed"})
            continue
        def one(pair, first=first, image=image) -> int:
            repo, tag = pair
            ref = f"{host}/{repo.name}:{tag}" if first[0] == "docker" else f"docker://{host}/{repo.name}:{tag}"
            failures = 0
            for argv in ([first] + ([image] if repo.manifest(repo.tags[tag]).kind == "image" else [])):
                done = subprocess.run([*argv, ref], capture_output=True, env=env, timeout=120)
                failures += done.returncode != 0
            return failures

        for index in range(args.repeat):
            load = round(os.getloadavg()[0], 2)
            start, cpu, registry_cpu = distribution.mark(), _children_cpu(), distribution.cpu_seconds()
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                failures = sum(pool.map(one, sample))
            seconds = time.monotonic() - started
            count = distribution.count(start)
            entry = {"tool": tool, "run": index + 1, "tags": len(sample), "seconds": seconds,
                     "cpu_seconds": _children_cpu() - cpu, "registry_cpu_seconds": distribution.cpu_seconds() - registry_cpu,
                     "requests": dict(count.kinds), "total": count.total, "failures": failures,
                     "loadavg_before": load}
            runs.append(entry)
            log(f"  {tool} #{index + 1}: {len(sample)} tags in {seconds:.1f}s, {count.total} requests, "
                f"{failures} failures")
    return {"sample": len(sample), "total_tags": len(pairs), "concurrency": args.concurrency, "runs": runs}


def synthetic_measure(args: argparse.Namespace, work: Path, base_env: dict[str, str], cluster) -> dict:
    """A synthetic inventory of R x T tags written straight to the database (no registry), on SQLite and
    on PostgreSQL; queries per page and latency with `clients` threads against gunicorn."""
    out: dict = {"repos": args.synthetic_repos, "tags": args.synthetic_tags, "databases": []}
    for database in ("sqlite", "postgresql"):
        log(f"synthetic inventory, {database}")
        if database == "sqlite":
            django = Django(work / "synthetic.sqlite3", base_env)
        else:
            django = _postgres_django(cluster, "synthetic", base_env)
        django.run("setup", "--name", REGISTRY_NAME, "--url", "http://127.0.0.1:9")
        written = django.run("inventory", "--name", "synth", "--repos", str(args.synthetic_repos),
                             "--tags", str(args.synthetic_tags), "--seed", str(args.seed))
        log(f"  wrote {written['tags']:,} tags in {written['repositories']} repositories in "
            f"{written['write_seconds']:.1f}s")
        repo, tag = written["detail"]["repository"], written["detail"]["tag"]
        word = repo.rsplit("-", 1)[-1][:2]
        pages = [
            ("registries", "/", "registries (home)"),
            ("repositories", "/registries/synth/", f"repositories, {written['repositories']}"),
            ("repositories", "/registries/synth/?page=5", "repositories, page 5"),
            ("search", f"/registries/synth/?q=svc-{word}", "repository search box"),
            ("tag list", f"/registries/synth/r/{repo}/", f"tag list, {args.synthetic_tags} tags"),
            ("search", f"/registries/synth/r/{repo}/?q=1.", "tag search box"),
            ("tag detail", f"/registries/synth/r/{repo}/t/{tag}", "tag detail, attested index"),
            ("coverage", "/coverage?registry=synth", "coverage matrix"),
            ("coverage", "/coverage?registry=synth&page=5", "coverage matrix, page 5"),
            ("search", f"/coverage?registry=synth&q=svc-{word}", "coverage search box"),
            ("search", f"/build/candidates?registry=synth&q=svc-{word}", "builder candidate search"),
            ("jobs", "/jobs/", "jobs"),
        ]
        queries = django.run("queries", "--urls-json", json.dumps(
            [{"page": key, "size": label, "url": path} for key, path, label in pages]))["pages"]
        env = {**base_env, "DATABASE_URL": django.env["DATABASE_URL"], "ALLOWED_HOSTS": "127.0.0.1"}
        server = gunicorn_start(work, env, workers=2)
        load = []
        try:
            session = login(server.url, BENCH_USER, BENCH_PASSWORD)
            cookies = session.cookies.get_dict()
            for (key, path, label), counted in zip(pages, queries, strict=True):
                result = page_load(server.url, cookies, path=path, clients=args.clients,
                                   requests_total=args.page_requests, max_seconds=args.page_seconds)
                result.update({"page": key, "label": label, "queries": counted["queries"],
                               "loadavg_before": round(os.getloadavg()[0], 2)})
                load.append(result)
                log(f"  {label} x{args.clients}: p50 {result['p50_ms']:.0f} ms p95 {result['p95_ms']:.0f} ms "
                    f"({result['requests']} req, {result['statuses']}, {counted['queries']} queries)")
        finally:
            server.stop()
        out["databases"].append({"database": database, "written": written, "load": load})
    return out


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
        for clients in (args.clients,):
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
