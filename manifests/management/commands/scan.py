from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from manifests.models import Job, Registry
from manifests.scan.fanout import scan_submit


class Command(BaseCommand):
    help = "Enqueue a scan of a registry (or one repository) on the Celery worker."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="registry name")
        parser.add_argument("--repository", default="")
        parser.add_argument("--verify-children", action="store_true",
                            help="with --repository: also HEAD every child of its lists (a clean-up may have "
                                 "deleted some)")
        parser.add_argument("--wait", action="store_true", help="wait for the scan and print a summary")
        parser.add_argument("--timeout", type=float, default=3600)

    def handle(self, *args, name: str, repository: str, wait: bool, timeout: float, verify_children: bool,
               **options) -> None:
        registry = Registry.objects.filter(name=name).first()
        if registry is None:
            raise CommandError(f"no registry named {name!r}")
        if verify_children and not repository:
            raise CommandError("--verify-children needs --repository")
        try:
            job = scan_submit(registry=registry, repository=repository, verify_children=verify_children)
        except Exception as exc:  # kombu raises its own OperationalError when Redis is down
            raise CommandError(f"cannot enqueue the scan (is Redis running?): {exc}") from None
        self.stdout.write(f"scan job {job.pk} queued for {job.target}")
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while not job.is_done:
            if time.monotonic() > deadline:
                raise CommandError(f"scan job {job.pk} not done after {timeout:g}s (is a worker running?)")
            time.sleep(0.5)
            job = Job.objects.get(pk=job.pk)
        result = job.result or {}
        self.stdout.write(f"repositories: {result.get('repositories', 0)}  tags: {result.get('tags', 0)}  "
                          f"changed: {result.get('changed', 0)}  errors: {result.get('errors', 0)}")
        if "children_checked" in result:
            self.stdout.write(f"children checked: {result['children_checked']}  missing: "
                              f"{result['children_missing']}  unchecked: {result['children_unchecked']}")
        for kind, count in sorted((result.get("requests") or {}).items()):
            self.stdout.write(f"  {kind}: {count}")
        if job.status == Job.STATUS_FAILED:
            raise CommandError(f"scan failed: {job.error}")
        if result.get("errors"):
            raise CommandError(f"scan finished with {result['errors']} tag errors")
