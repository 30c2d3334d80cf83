"""Django work for the benchmark, one command per subprocess.

Each command runs in its own interpreter so DATABASE_URL is set before
`django.setup()`, and so a scan's peak memory (ru_maxrss) is its own. The
last line on stdout is the command's JSON result.

    python -m bench.inproc setup   --name bench --url http://127.0.0.1:P [--watch a,b] [--concurrency 4]
    python -m bench.inproc scan    --name bench [--concurrency 8] [--per-repository a,b,c]
    python -m bench.inproc tags    --name bench
    python -m bench.inproc queries --urls-json '[...]'
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _close_db() -> None:
    """Checkpoint the WAL so the file can be copied as one, then close."""
    from django.db import connection

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


class _SqlMeter:
    """Counts and times every statement the calling thread's connection runs."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.count += 1


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
    from django.db import connection

    from manifests.models import Job, Registry
    from manifests.services import jobs
    from manifests.services.scan import scan_job_run

    registry = Registry.objects.get(name=args.name)
    if args.concurrency and registry.concurrency != args.concurrency:
        registry.concurrency = args.concurrency
        registry.save(update_fields=["concurrency"])
    targets = args.per_repository.split(",") if args.per_repository else [""]
    baseline = _maxrss_mib()
    meter = _SqlMeter()
    requests: dict[str, int] = {}
    totals = {"repositories": 0, "tags": 0, "errors": 0, "changed": 0}
    failures: list[str] = []
    started = time.monotonic()
    with connection.execute_wrapper(meter):
        for target in targets:
            job = jobs.job_create(kind=Job.KIND_SCAN, registry=registry, target=registry.name,
                                  params={"repository": target, "tags": None})
            scan_job_run(job_id=job.pk)
            job.refresh_from_db()
            if job.status != Job.STATUS_SUCCEEDED:
                failures.append(f"{target or registry.name}: {job.status} {job.error}")
            for key, value in (job.result.get("requests") or {}).items():
                requests[key] = requests.get(key, 0) + value
            for key in totals:
                totals[key] += job.result.get(key, 0)
    seconds = time.monotonic() - started
    return {"seconds": seconds, "requests": requests, "totals": totals, "failures": failures,
            "concurrency": registry.concurrency, "jobs": len(targets),
            "maxrss_mib": _maxrss_mib(), "baseline_rss_mib": baseline,
            "sql_queries": meter.count, "sql_seconds": meter.seconds}


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
    scan.add_argument("--per-repository", default="", help="comma separated: one job per repository")
    tags = sub.add_parser("tags")
    tags.add_argument("--name", required=True)
    queries = sub.add_parser("queries")
    queries.add_argument("--urls-json", required=True)
    queries.add_argument("--keep-sql", action="store_true")
    args = parser.parse_args(argv)
    _setup()
    result = {"setup": cmd_setup, "scan": cmd_scan, "tags": cmd_tags, "queries": cmd_queries}[args.command](args)
    _close_db()
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
