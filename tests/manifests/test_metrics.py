"""GET /metrics: Prometheus' format, its own token, figures true across processes.

Scans, jobs and pushes run on the real worker (another process); the figures
the web process serves come from the database and from the Redis hash the
worker's registry requests are counted in.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from manifests.models import Job, Registry
from manifests.scan.fanout import scan_submit
from manifests.services.registries import registry_check_submit
from registry.images import image_push
from registry.platform import Platform

TOKEN = "metrics-test-token-0123456789"


def _scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_metrics_are_off_without_a_token_and_refuse_a_wrong_one(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_metrics_count_what_the_worker_did(client, settings, fresh_registry, celery_worker, wait_job):
    settings.METRICS_TOKEN = TOKEN
    running = fresh_registry("token")
    with running.client() as registry_client:
        image_push(registry_client, repository="metrics/app", tag="v1", platform=Platform("linux", "amd64"))
        image_push(registry_client, repository="metrics/app", tag="v2", platform=Platform("linux", "arm64", "v8"))
    user, password = running.credentials()
    registry = Registry(name="metered", url=running.url, insecure=True, auth=Registry.AUTH_TOKEN, username=user)
    registry.set_secret(password)
    registry.save()

    scan = wait_job(scan_submit(registry=registry).pk)
    assert scan.status == Job.STATUS_SUCCEEDED, scan.error
    running.stop()  # a check of a registry that is gone fails
    check = wait_job(registry_check_submit(registry=registry).pk)
    assert check.status == Job.STATUS_FAILED

    samples = _scrape(client)
    assert _value(samples, "mdb_scans_total", status="succeeded") >= 1
    assert _value(samples, "mdb_jobs_total", kind="check", status="failed") >= 1
    assert _value(samples, "mdb_job_failures_total", kind="check") >= 1
    assert _value(samples, "mdb_job_duration_seconds_count", kind="scan") >= 1
    assert _value(samples, "mdb_job_duration_seconds_bucket", kind="scan", le="+Inf") >= 1
    assert _value(samples, "mdb_inventory_repositories", registry="metered") == 1
    assert _value(samples, "mdb_inventory_tags", registry="metered") == 2
    assert _value(samples, "mdb_inventory_registries") >= 1
    assert _value(samples, "mdb_queue_up") == 1
    assert ("mdb_queue_depth", (("queue", "celery"),)) in samples
    # Counted on the worker, by kind and status: the token dance, the catalog, the tags.
    requests = {labels: value for (name, labels), value in samples.items()
                if name == "mdb_registry_requests_total" and ("registry", "metered") in labels}
    kinds = {dict(labels)["kind"] for labels in requests}
    assert {"token", "catalog", "tags", "manifest"} <= kinds, requests
    assert _value(samples, "mdb_registry_requests_total", registry="metered", method="GET", kind="catalog",
                  status="401") >= 1
    assert _value(samples, "mdb_registry_requests_total", registry="metered", method="GET", kind="catalog",
                  status="200") >= 1
    assert _value(samples, "mdb_registry_last_scan_timestamp_seconds", registry="metered") > 0
