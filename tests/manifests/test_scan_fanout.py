"""A registry scan is split into one task per repository, so more workers finish it sooner."""

from __future__ import annotations

import datetime
import logging

import pytest
from django.utils import timezone

from manifests.management.commands.seed_demo import seed
from manifests.models import Job, Registry, Repository, ScanPart, Tag
from manifests.scan.fanout import scan_part_run, scan_submit
from registry.images import image_push
from registry.platform import Platform
from tests.harness.secrets import assert_never_logged


@pytest.mark.django_db(transaction=True)
def test_a_registry_scan_fans_out_per_repository_on_the_worker(fresh_registry, celery_worker, wait_job):
    running = fresh_registry("anonymous")
    with running.client() as client:
        seed(client)
        repositories = sorted(client.catalog())
    registry = Registry.objects.create(name="fan", url=running.url, insecure=True)
    # Known from an earlier scan, since deleted from the registry.
    Repository.objects.create(registry=registry, name="gone/from-catalog",
                              scanned_at=timezone.now() - datetime.timedelta(days=1))
    job = wait_job(scan_submit(registry=registry).pk)
    assert job.status == Job.STATUS_SUCCEEDED, job.error
    assert sorted(job.params["names"]) == repositories
    assert sorted(ScanPart.objects.filter(job=job).values_list("repository", flat=True)) == repositories
    assert job.result["repositories"] == len(repositories)
    assert job.result["tags"] == Tag.objects.filter(repository__registry=registry).count() == 12
    assert job.result["requests"]["GET catalog"] == 1
    assert not Repository.objects.filter(name="gone/from-catalog").exists()
    registry.refresh_from_db()
    assert registry.last_scan_at is not None and registry.last_scan_error == ""

    again = wait_job(scan_submit(registry=registry).pk)
    assert again.result["requests"].get("HEAD manifest") == 12
    assert "GET manifest" not in again.result["requests"]


@pytest.mark.django_db
def test_a_redelivered_repository_task_counts_once(fresh_registry):
    running = fresh_registry("anonymous")
    with running.client() as client:
        seed(client)
    registry = Registry.objects.create(name="fan", url=running.url, insecure=True)
    job = Job.objects.create(kind="scan", registry=registry, target="fan", status="running",
                             params={"names": ["demo/cli", "demo/tools"], "started": "2026-01-01T00:00:00+00:00"},
                             result={"listing_requests": {"GET catalog": 1}})
    scan_part_run(job_id=job.pk, names="demo/cli")
    scan_part_run(job_id=job.pk, names="demo/cli")  # the same task delivered twice
    job.refresh_from_db()
    assert not job.is_done and ScanPart.objects.filter(job=job).count() == 1
    scan_part_run(job_id=job.pk, names="demo/tools")
    job.refresh_from_db()
    assert job.status == "succeeded" and job.result["repositories"] == 2
    assert job.result["tags"] == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["basic", "token"])
def test_a_scan_on_the_worker_never_logs_the_registry_credentials(fresh_registry, celery_worker, wait_job, caplog,
                                                                  mode):
    caplog.set_level(logging.DEBUG)
    running = fresh_registry(mode)
    with running.client() as client:
        image_push(client, repository="logged/app", tag="v1", platform=Platform("linux", "amd64"))
    username, password = running.credentials()
    registry = Registry(name=f"logged-{mode}", url=running.url, insecure=True, auth=Registry.AUTH_BASIC,
                        username=username)
    registry.set_secret(password)
    registry.save()
    job = wait_job(scan_submit(registry=registry).pk)
    assert job.status == Job.STATUS_SUCCEEDED and job.result["tags"] == 1, job.error
    assert job.worker.startswith("w1@")
    # The worker's log (INFO, as it runs) and this process's, at any level.
    assert_never_logged(running, celery_worker.log(), caplog.text, also=(registry.secret_encrypted,))


@pytest.mark.django_db
def test_a_repository_part_that_cannot_be_recorded_fails_the_scan_instead_of_leaving_it_running(
        registry_anonymous, monkeypatch):
    """The last part's close meets a database error: the job ends failed, with a
    message, instead of waiting forever for a part that was never counted. The
    error is injected at the close (a narrow error path no real database gives on demand)."""
    from django.db import OperationalError

    from manifests.scan import fanout

    with registry_anonymous.client() as client:
        image_push(client, repository="close/app", tag="v1", platform=Platform("linux", "amd64"))
    registry = Registry.objects.create(name="close", url=registry_anonymous.url, insecure=True)
    job = Job.objects.create(kind="scan", registry=registry, target="close", status="running", attempts=1,
                             params={"names": ["close/app"], "started": "2026-01-01T00:00:00+00:00"})

    def close_fails(job: Job) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(fanout, "_scan_close", close_fails)
    scan_part_run(job_id=job.pk, names="close/app")
    job.refresh_from_db()
    assert job.status == Job.STATUS_FAILED
    assert job.error == "recording the scan of close/app failed: database error (OperationalError): see the worker log"


@pytest.mark.django_db(transaction=True)
def test_parts_scanning_side_by_side_fetch_a_digest_shared_by_repositories_once(fresh_registry, celery_worker,
                                                                                 wait_job):
    """Two repositories holding the same images (a mirror): their parts run at once on the worker's
    two processes, through a registry slowed down so that they overlap; each config and each child
    is fetched by one of them, the other reads what it fetched."""
    from tests.harness.content import mirrors_push
    from tests.harness.throttle import ThrottledProxy

    running = fresh_registry("anonymous")
    platforms = [Platform("linux", "amd64"), Platform("linux", "arm64"), Platform("linux", "386"),
                 Platform("linux", "ppc64le")]
    with running.client() as client:
        mirrors_push(client, ("share/a", "share/b"), platforms, label="shared")
    proxy = ThrottledProxy(running.port, bytes_per_second=24 * 1024).start()
    try:
        registry = Registry.objects.create(name="share", url=proxy.url, insecure=True)
        job = wait_job(scan_submit(registry=registry).pk, timeout=120)
    finally:
        proxy.stop()
    assert job.status == Job.STATUS_SUCCEEDED, job.error
    assert job.result["tags"] == 10
    requests = job.result["requests"]
    # Every tag read by tag in its repository (10); the two children and the six configs once each.
    assert requests["GET manifest"] == 10 + 2, requests
    assert requests["GET blob"] == 6, requests
    assert Tag.objects.get(repository__name="share/b", name="multi").platforms == ["linux/amd64", "linux/arm64"]


@pytest.mark.django_db
def test_a_worker_keeps_one_client_per_registry_between_parts_and_counts_each_part_on_its_own(fresh_registry):
    """Parts scanned one after another reuse the thread's client (its connections and the registry's
    challenge); each part's counts are its own; a changed secret makes a new client, with the new
    credentials."""
    from manifests.services.registries import registry_client_kept

    running = fresh_registry("token")
    with running.client() as client:
        for repository in ("kept/a", "kept/b"):
            image_push(client, repository=repository, tag="v1", platform=Platform("linux", "amd64"))
    username, password = running.credentials()
    registry = Registry(name="kept", url=running.url, insecure=True, auth=Registry.AUTH_TOKEN, username=username)
    registry.set_secret(password)
    registry.save()
    job = Job.objects.create(kind="scan", registry=registry, target="kept", status="running",
                             params={"names": ["kept/a", "kept/b"], "started": "2026-01-01T00:00:00+00:00"},
                             result={"listing_requests": {}})
    with registry_client_kept(registry=registry) as first:
        pass
    scan_part_run(job_id=job.pk, names="kept/a")
    scan_part_run(job_id=job.pk, names="kept/b")
    counts = dict(ScanPart.objects.filter(job=job).values_list("repository", "counts"))
    # Each part: its tag list and its tag, after one token for its own repository's scope.
    # The first part's client meets the registry's challenge (a 401, then the tag list again with a token);
    # the second part's, kept, knows it: it asks a token for its own repository first, and no 401.
    assert counts["kept/a"]["requests"] == {"GET tags": 2, "GET token": 1, "GET manifest": 1, "GET blob": 1}
    assert counts["kept/b"]["requests"] == {"GET token": 1, "GET tags": 1, "GET manifest": 1, "GET blob": 1}
    with registry_client_kept(registry=registry) as again:
        assert again is first and sum(again.counters.values()) == 0
    registry.set_secret("another password")
    registry.save()
    with registry_client_kept(registry=registry) as changed:
        assert changed is not first and changed._password == "another password"
