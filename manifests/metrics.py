"""GET /metrics: the dashboard's figures in Prometheus' text format, behind METRICS_TOKEN.

Web servers and Celery workers are separate processes (often separate
containers), so nothing is counted in one process's memory:

- scans, job counts, durations and failures, queue depth and inventory
  sizes are computed from the database (and Redis) at scrape time, by a
  collector: correct however many processes ran the jobs;
- registry requests are counted as they happen, by a response hook on each
  RegistryClient's session (installed by `registry_client`), and sent to a
  Redis hash that every process shares once a second and when the client
  closes; a failing Redis never fails a request.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis.backoff import NoBackoff
from redis.retry import Retry

from .models import Job, Manifest, Registry, Repository, Tag

logger = logging.getLogger(__name__)

REQUESTS_KEY = "manifest-dashboard:metrics:registry-requests"
# Job durations, in seconds: from a registry check to a whole-registry scan.
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
# kombu's Redis transport keeps one list per priority step of a queue.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")

_redis: redis.Redis | None = None
# After a failure to count, counting pauses this long: a dead Redis costs a
# scan nothing but one failed connection now and then.
_PAUSE_SECONDS = 10.0
_paused_until = 0.0


def _redis_client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5,
                                      retry=Retry(NoBackoff(), 0))
    return _redis


# -- registry requests, counted where they happen ------------------------------

_KINDS = (
    (re.compile(r"^/v2/?$"), "ping"),
    (re.compile(r"^/v2/_catalog$"), "catalog"),
    (re.compile(r"^/v2/.+/tags/list$"), "tags"),
    (re.compile(r"^/v2/.+/manifests/[^/]+$"), "manifest"),
    (re.compile(r"^/v2/.+/referrers/[^/]+$"), "referrers"),
    (re.compile(r"^/v2/.+/blobs/uploads/.*$"), "blob_upload"),
    (re.compile(r"^/v2/.+/blobs/[^/]+$"), "blob"),
)


def request_kind(*, path: str) -> str:
    """What a request to the registry asked for, from its path ("token" for anything outside /v2/)."""
    for pattern, kind in _KINDS:
        if pattern.match(path):
            return kind
    return "other" if path.startswith("/v2/") else "token"


_pending: Counter[str] = Counter()  # counted here, not yet in Redis
_pending_lock = threading.Lock()
_flushed_at = 0.0
# Counts reach Redis at most this long after the request (and when the client closes): one round
# trip a second, not one per registry request.
FLUSH_SECONDS = 1.0
os.register_at_fork(after_in_child=_pending.clear)  # a forked worker counts its own requests only


def registry_request_count(*, registry: str, method: str, kind: str, status: int) -> None:
    """Add one to the shared count of registry requests; never raises."""
    with _pending_lock:
        _pending["\t".join((registry, method, kind, str(status)))] += 1
        due = time.monotonic() - _flushed_at >= FLUSH_SECONDS
    if due:
        registry_requests_flush()


def registry_requests_flush() -> None:
    """Send the counts not yet in Redis, in one round trip; never raises (counts it cannot send are dropped)."""
    global _paused_until, _flushed_at
    with _pending_lock:
        counts = dict(_pending)
        _pending.clear()
        _flushed_at = time.monotonic()
    if not counts or time.monotonic() < _paused_until:
        return
    try:
        pipeline = _redis_client().pipeline(transaction=False)
        for field, count in counts.items():
            pipeline.hincrby(REQUESTS_KEY, field, count)
        pipeline.execute()
    except (redis.RedisError, OSError) as exc:
        _paused_until = time.monotonic() + _PAUSE_SECONDS
        logger.debug("registry requests not counted: %s", type(exc).__name__)


def response_hook_for(*, registry: str):
    """A requests response hook counting each response (redirects and token fetches included)."""
    from urllib.parse import urlsplit

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        # Only the path: a URL's query may hold a token realm's parameters.
        kind = request_kind(path=urlsplit(request.url).path)
        registry_request_count(registry=registry, method=request.method, kind=kind, status=response.status_code)

    return hook


# -- figures from the database, at scrape time ---------------------------------


class DashboardCollector:
    def collect(self):
        yield from self._jobs()
        yield from self._queue()
        yield from self._inventory()
        yield from self._registry_requests()

    def _jobs(self):
        jobs = CounterMetricFamily("mdb_jobs", "Jobs by kind and final or current status.",
                                   labels=["kind", "status"])
        scans = CounterMetricFamily("mdb_scans", "Scan jobs by status.", labels=["status"])
        failures = CounterMetricFamily("mdb_job_failures", "Jobs that failed, by kind.", labels=["kind"])
        for row in Job.objects.values("kind", "status").annotate(n=Count("pk")).order_by("kind", "status"):
            jobs.add_metric([row["kind"], row["status"]], row["n"])
            if row["kind"] == Job.KIND_SCAN:
                scans.add_metric([row["status"]], row["n"])
            if row["status"] == Job.STATUS_FAILED:
                failures.add_metric([row["kind"]], row["n"])
        yield from (jobs, scans, failures)

        finished = Job.objects.filter(started_at__isnull=False, finished_at__isnull=False).annotate(
            duration=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()))
        aggregates = {f"le_{i}": Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
                      for i, bound in enumerate(DURATION_BUCKETS)}
        durations = HistogramMetricFamily("mdb_job_duration_seconds", "Time from a job's start to its end, by kind.",
                                          labels=["kind"])
        for row in finished.values("kind").annotate(total=Count("pk"), seconds=Sum("duration"),
                                                    **aggregates).order_by("kind"):
            buckets = [(str(float(bound)), row[f"le_{i}"]) for i, bound in enumerate(DURATION_BUCKETS)]
            buckets.append(("+Inf", row["total"]))
            seconds = row["seconds"]
            total_seconds = seconds.total_seconds() if isinstance(seconds, timedelta) else (seconds or 0) / 1e6
            durations.add_metric([row["kind"]], buckets, total_seconds)
        yield durations

        last_scan = GaugeMetricFamily("mdb_registry_last_scan_timestamp_seconds",
                                      "When each registry's last scan finished.", labels=["registry"])
        for name, at in Registry.objects.filter(last_scan_at__isnull=False).values_list("name", "last_scan_at"):
            last_scan.add_metric([name], at.timestamp())
        yield last_scan

    def _queue(self):
        depth = GaugeMetricFamily("mdb_queue_depth", "Tasks waiting in the broker's queue.", labels=["queue"])
        waiting = GaugeMetricFamily("mdb_jobs_waiting", "Jobs not finished yet, by status.", labels=["status"])
        up = GaugeMetricFamily("mdb_queue_up", "1 when the broker (Redis) answered this scrape.")
        try:
            client = _redis_client()
            depth.add_metric(["celery"], sum(client.llen("celery" + s) for s in _PRIORITY_SUFFIXES))
            up.add_metric([], 1)
        except (redis.RedisError, OSError):
            up.add_metric([], 0)
        counts = dict(Job.objects.filter(status__in=[Job.STATUS_QUEUED, Job.STATUS_RUNNING])
                      .values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
        for status in (Job.STATUS_QUEUED, Job.STATUS_RUNNING):
            waiting.add_metric([status], counts.get(status, 0))
        yield depth
        yield waiting
        yield up

    def _inventory(self):
        repositories = GaugeMetricFamily("mdb_inventory_repositories", "Repositories known, per registry.",
                                         labels=["registry"])
        tags = GaugeMetricFamily("mdb_inventory_tags", "Tags known, per registry.", labels=["registry"])
        names = dict(Registry.objects.values_list("pk", "name"))
        repo_counts = dict(Repository.objects.values_list("registry").annotate(n=Count("pk"))
                           .values_list("registry", "n"))
        tag_counts = dict(Tag.objects.values_list("repository__registry").annotate(n=Count("pk"))
                          .values_list("repository__registry", "n"))
        for pk, name in sorted(names.items(), key=lambda item: item[1]):
            repositories.add_metric([name], repo_counts.get(pk, 0))
            tags.add_metric([name], tag_counts.get(pk, 0))
        registries = GaugeMetricFamily("mdb_inventory_registries", "Registries configured.")
        registries.add_metric([], len(names))
        manifests = GaugeMetricFamily("mdb_inventory_manifests", "Manifests stored (images and lists).")
        manifests.add_metric([], Manifest.objects.count())
        yield from (registries, repositories, tags, manifests)

    def _registry_requests(self):
        family = CounterMetricFamily("mdb_registry_requests", "Requests to registries, by kind and status.",
                                     labels=["registry", "method", "kind", "status"])
        try:
            counts = _redis_client().hgetall(REQUESTS_KEY)
        except (redis.RedisError, OSError):
            counts = {}
        for field, value in sorted(counts.items()):
            labels = field.decode(errors="replace").split("\t")
            if len(labels) == 4:
                family.add_metric(labels, int(value))
        yield family


def _authorized(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus scrapes with `authorization: {credentials: METRICS_TOKEN}` (a bearer token)."""
    if not settings.METRICS_TOKEN:
        return HttpResponse("metrics are off: set METRICS_TOKEN\n", status=404, content_type="text/plain")
    if not _authorized(request):
        response = HttpResponse("a bearer token is required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DashboardCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
