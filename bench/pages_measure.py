"""Pages: queries per page and latency against gunicorn, on the scanned database and a synthetic inventory."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from . import generate
from .common import REGISTRY_NAME, Django, log, postgres_django
from .inproc import BENCH_PASSWORD, BENCH_USER
from .pages import gunicorn_start, login, page_load


def synthetic_measure(args: argparse.Namespace, work: Path, base_env: dict[str, str], cluster) -> dict:
    """A synthetic inventory of R x T tags written straight to the database (no registry), on SQLite and
    on PostgreSQL; queries per page and latency with `clients` threads against gunicorn."""
    out: dict = {"repos": args.synthetic_repos, "tags": args.synthetic_tags, "databases": []}
    for database in ("sqlite", "postgresql"):
        log(f"synthetic inventory, {database}")
        if database == "sqlite":
            django = Django(work / "synthetic.sqlite3", base_env)
        else:
            django = postgres_django(cluster, "synthetic", base_env)
        django.run("setup", "--name", REGISTRY_NAME, "--url", "http://127.0.0.1:9")
        # Beside the R x T tags: a second registry of a tenth as many repositories (the matrix across
        # registries) and a rule over two per-arch sources of 1,000 tags each (its dry run; 100 with --quick).
        written = django.run("inventory", "--name", "synth", "--repos", str(args.synthetic_repos),
                             "--tags", str(args.synthetic_tags), "--seed", str(args.seed),
                             "--second-repos", str(max(2, args.synthetic_repos // 10)),
                             "--rule-tags", "100" if args.quick else "1000")
        log(f"  wrote {written['tags']:,} tags in {written['repositories']} repositories, and "
            f"{written['all_tags'] - written['tags']:,} more (a second registry, a rule's sources), in "
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
            ("search", "/build/candidates?registry=synth&q=matches-nothing", "builder candidate search, no match"),
            ("jobs", "/jobs/", "jobs"),
            *_synthetic_extra_pages(written),
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
                    f"({result['requests']} req, {result['statuses']}, {counted['queries']} queries; first "
                    f"{result['first_ms']:.0f} ms)")
        finally:
            server.stop()
        out["databases"].append({"database": database, "written": written, "load": load})
    return out


def _synthetic_extra_pages(written: dict) -> list[tuple[str, str, str]]:
    """The pages of what bench.synthetic adds: the matrix across both registries, and the rule's dry run."""
    second = written.get("second") or {}
    pages = []
    if second.get("repositories"):
        every = f"all registries ({written['repositories'] + second['repositories']:,} repositories)"
        pages += [("coverage, all registries", "/coverage?registry=%2A", f"coverage matrix, {every}"),
                  ("coverage, all registries", "/coverage?registry=%2A&newest=5",
                   "coverage matrix, all registries, newest=5")]
    rule = written.get("rule") or {}
    if rule.get("id"):
        pages.append(("rule dry run", f"/rules/{rule['id']}/", f"a rule's dry run of {rule['tags']:,} tags"))
    return pages


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
