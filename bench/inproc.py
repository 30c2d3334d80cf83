"""Django work for the benchmark, one command per subprocess.

Each command runs in its own interpreter so DATABASE_URL is set before
`django.setup()`. The last line on stdout is the command's JSON result.

    python -m bench.inproc setup   --name bench --url http://127.0.0.1:P [--watch a,b] [--concurrency 4]
    python -m bench.inproc scan    --name bench [--concurrency 8]
    python -m bench.inproc enqueue --name bench     (needs Celery workers on the same Redis)
    python -m bench.inproc tags    --name bench
    python -m bench.inproc queries --urls-json '[...]'
    python -m bench.inproc inventory --name synth --repos 1000 --tags 100 [--seed 1] [--rule-tags 1000]
                                     [--second-repos 100]

`scan` runs the scan job inline (jobs.job_run(inline=True)): the parts users' workers run, here one after
another (used to set up a small second registry, never measured as ours).
`inventory` writes a synthetic inventory straight to the database, through
the scan's own writers, from a generated plan (no registry involved).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _close_db() -> None:
    """Checkpoint the WAL so the file can be copied as one, then close."""
    from django.db import connection

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


BENCH_USER, BENCH_PASSWORD = "bench", "bench-password-not-secret"


def cmd_setup(args: argparse.Namespace) -> dict:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from manifests.models import Registry

    Registry.objects.update_or_create(name=args.name, defaults={
        "url": args.url, "insecure": True, "concurrency": args.concurrency,
        "watch": "\n".join(args.watch.split(",")) if args.watch else ""})
    user_model = get_user_model()
    if not user_model.objects.filter(username=BENCH_USER).exists():
        user_model.objects.create_superuser(BENCH_USER, "bench@example.invalid", BENCH_PASSWORD)
    import sqlite3

    import django

    return {"django": django.get_version(), "sqlite": sqlite3.sqlite_version}


def cmd_scan(args: argparse.Namespace) -> dict:
    """A whole-registry scan run to its end in this process (not measured: it sets up a second registry)."""
    from manifests import jobs
    from manifests.models import Job, Registry

    registry = Registry.objects.get(name=args.name)
    if args.concurrency and registry.concurrency != args.concurrency:
        registry.concurrency = args.concurrency
        registry.save(update_fields=["concurrency"])
    started = time.monotonic()
    job = jobs.job_create(kind=Job.KIND_SCAN, registry=registry, target=registry.name,
                          params={"repository": "", "tags": None})
    jobs.job_run(job_id=job.pk, inline=True)
    seconds = time.monotonic() - started
    job.refresh_from_db()
    return {"seconds": seconds, "requests": job.result.get("requests") or {},
            "totals": {k: job.result.get(k, 0) for k in ("repositories", "tags", "errors", "changed")},
            "failures": [] if job.status == Job.STATUS_SUCCEEDED else [f"{job.status}: {job.error}"]}


def cmd_enqueue(args: argparse.Namespace) -> dict:
    """A whole-registry scan as the Refresh button starts it (scan_submit), timed until the job is done."""
    from manifests.models import Registry, ScanPart
    from manifests.scan.fanout import scan_submit

    registry = Registry.objects.get(name=args.name)
    started = time.monotonic()
    job = scan_submit(registry=registry)
    deadline = started + args.timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_done:
            break
        time.sleep(0.1)
    seconds = time.monotonic() - started
    parts = ScanPart.objects.filter(job=job).count()
    return {"seconds": seconds, "status": job.status, "error": job.error, "requests": job.result.get("requests", {}),
            "totals": {k: job.result.get(k, 0) for k in ("repositories", "tags", "errors", "changed")},
            "parts": parts, "job_seconds": (job.finished_at - job.created_at).total_seconds()
            if job.finished_at else None}


def _plan_write(*, registry, repositories, configs: dict[str, bytes], now, cache: dict) -> None:
    """Each repository of a plan stored as a scan stores it: one transaction per repository, through
    `storing.repository_write`; `cache` keeps what a manifest taught across repositories and plans."""
    import json as json_module

    from manifests.scan import fetching, storing
    from registry.mediatypes import parse_manifest
    from registry.platform import Platform

    def learned(manifest) -> fetching.Learned:
        if manifest.digest in cache:
            return cache[manifest.digest]
        parsed = parse_manifest(manifest.raw, content_type=manifest.media_type, digest=manifest.digest)
        item = fetching.Learned(manifest=parsed)
        if manifest.kind == "image":
            config = json_module.loads(configs[manifest.blobs[0]])
            item.platform = Platform.from_json(config)
            item.created = fetching.config_created(config.get("created"))
            item.blob_size = sum(blob.size for blob in parsed.blobs)
        cache[manifest.digest] = item
        return item

    for repo in repositories:
        pool = {m.digest: learned(m) for m in repo.manifests}
        fetches = []
        first = True
        for tag, digest in repo.tags.items():
            fetch = fetching.TagFetch(name=tag, digest=digest)
            if first:  # the whole pool once per repository: tags_apply reads the rows back
                fetch.learned = pool
                first = False
            fetches.append(fetch)
        storing.repository_write(registry=registry, name=repo.name, fetches=fetches, now=now, missing=set(),
                                 note="", listed=None)


def _rule_write(*, registry) -> int:
    """The rule over bench.synthetic's two per-arch source repositories: its page is a dry run of every tag."""
    from bench import synthetic
    from manifests.models import Rule, RuleSource

    rule, _ = Rule.objects.update_or_create(name=synthetic.RULE_NAME, defaults={
        "registry": registry, "target": synthetic.RULE_TARGET, "automatic": False})
    rule.sources.all().delete()
    RuleSource.objects.bulk_create([RuleSource(rule=rule, position=i, repository=name, tag="{tag}")
                                    for i, (name, _) in enumerate(synthetic.RULE_SOURCES)])
    return rule.pk


def cmd_inventory(args: argparse.Namespace) -> dict:
    """R x T tags from bench.generate's plan, stored as a scan would store them, without a registry; beside
    them (bench.synthetic) a rule's two per-arch sources of --rule-tags tags and a second registry of
    --second-repos repositories."""
    from django.utils import timezone

    from bench import generate, synthetic
    from manifests.models import Registry

    started = time.monotonic()
    plan = generate.plan_build(repos=args.repos, tags=args.tags, seed=args.seed, big_tags=0)
    second = (generate.plan_build(repos=args.second_repos, tags=args.tags, seed=args.seed + 1, big_tags=0)
              if args.second_repos else None)
    second_repositories = second.repositories if second else []
    rule_sources = synthetic.rule_sources_plan(args.rule_tags) if args.rule_tags else []
    plan_seconds = time.monotonic() - started
    registry, _ = Registry.objects.update_or_create(name=args.name, defaults={
        "url": "http://127.0.0.1:9", "insecure": True})
    configs: dict[str, bytes] = {}
    for repo in plan.repositories + second_repositories + rule_sources:
        configs.update(repo.blobs)
    now = timezone.now()
    cache: dict = {}
    write_started = time.monotonic()
    _plan_write(registry=registry, repositories=plan.repositories + rule_sources, configs=configs, now=now,
                cache=cache)
    if second_repositories:
        other, _ = Registry.objects.update_or_create(name=synthetic.SECOND_REGISTRY, defaults={
            "url": "http://127.0.0.1:9", "insecure": True})
        _plan_write(registry=other, repositories=second_repositories, configs=configs, now=now, cache=cache)
    rule = _rule_write(registry=registry) if rule_sources else None
    target = next(((r.name, t) for r in plan.repositories for t, d in sorted(r.tags.items())
                   if b"attestation-manifest" in r.manifest(d).raw), (plan.repositories[0].name, "latest"))
    return {"repositories": len(plan.repositories), "tags": plan.total_tags, "plan_seconds": plan_seconds,
            "detail": {"repository": target[0], "tag": target[1]},
            "write_seconds": time.monotonic() - write_started, "manifests": len(cache),
            "names": [r.name for r in plan.repositories[:3]],
            "rule": {"id": rule, "tags": args.rule_tags, "sources": [r.name for r in rule_sources]},
            "second": {"registry": synthetic.SECOND_REGISTRY, "repositories": len(second_repositories),
                       "tags": second.total_tags if second else 0},
            "all_tags": plan.total_tags + (second.total_tags if second else 0)
            + sum(len(r.tags) for r in rule_sources)}


def cmd_tags(args: argparse.Namespace) -> dict:
    from manifests.models import Manifest, Repository, Tag

    tags = Tag.objects.filter(repository__registry__name=args.name)
    return {
        "repositories": Repository.objects.filter(registry__name=args.name).count(),
        "manifests": Manifest.objects.count(),
        "tag_errors": tags.exclude(error="").count(),
        "tags": {f"{repo}:{name}": digest for repo, name, digest in tags.values_list("repository__name", "name",
                                                                                     "digest")},
    }


def cmd_queries(args: argparse.Namespace) -> dict:
    """Queries and time per page through the test client, logged in as the bench superuser."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(get_user_model().objects.get(username=BENCH_USER))
    results = []
    for item in json.loads(args.urls_json):
        client.get(item["url"])  # warm caches (templates, platform parsing), not counted
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(item["url"])
            seconds = time.perf_counter() - started
        results.append({**item, "status": response.status_code, "queries": len(captured.captured_queries),
                        "seconds": seconds, "bytes": len(response.content),
                        "sql": [q["sql"][:300] for q in captured.captured_queries] if args.keep_sql else []})
    return {"pages": results}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inproc")
    sub = parser.add_subparsers(dest="command", required=True)
    setup = sub.add_parser("setup")
    setup.add_argument("--name", required=True)
    setup.add_argument("--url", required=True)
    setup.add_argument("--watch", default="")
    setup.add_argument("--concurrency", type=int, default=4)
    scan = sub.add_parser("scan")
    scan.add_argument("--name", required=True)
    scan.add_argument("--concurrency", type=int, default=0)
    enqueue = sub.add_parser("enqueue")
    enqueue.add_argument("--name", required=True)
    enqueue.add_argument("--timeout", type=float, default=3600)
    tags = sub.add_parser("tags")
    tags.add_argument("--name", required=True)
    queries = sub.add_parser("queries")
    queries.add_argument("--urls-json", required=True)
    queries.add_argument("--keep-sql", action="store_true")
    inventory = sub.add_parser("inventory")
    inventory.add_argument("--name", required=True)
    inventory.add_argument("--repos", type=int, default=1000)
    inventory.add_argument("--tags", type=int, default=100)
    inventory.add_argument("--seed", type=int, default=1)
    inventory.add_argument("--rule-tags", type=int, default=1000)
    inventory.add_argument("--second-repos", type=int, default=100)
    args = parser.parse_args(argv)
    _setup()
    commands = {"setup": cmd_setup, "scan": cmd_scan, "enqueue": cmd_enqueue, "tags": cmd_tags, "queries": cmd_queries,
                "inventory": cmd_inventory}
    result = commands[args.command](args)
    _close_db()
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
