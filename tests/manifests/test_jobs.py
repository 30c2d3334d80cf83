"""The job engine: every job ends, with a message, whatever its runner meets; an attempt ends only what it owns."""

from __future__ import annotations

import datetime
import logging
import time

import pytest
from cryptography.fernet import Fernet
from django.db import OperationalError
from django.utils import timezone

from manifests import jobs
from manifests.models import Job, PushRecord, Registry
from manifests.scan.fanout import scan_submit
from manifests.services.push import push_submit, rollback_submit
from manifests.services.registries import registry_check_submit
from registry.assemble import SourceSpec
from registry.images import image_push
from registry.platform import Platform

UNDECRYPTABLE = "the registry's stored credentials cannot be decrypted with the configured keys"


@pytest.mark.django_db(transaction=True)
def test_undecryptable_credentials_fail_check_scan_push_and_rollback_jobs_on_the_worker(registry_basic,
                                                                                         celery_worker, wait_job):
    """CREDENTIALS_KEY rotated without keeping the old key: the stored secret was
    encrypted with a key the worker no longer has. Every kind of job ends failed
    and says why, instead of staying "running"."""
    with registry_basic.client() as client:
        pushed = image_push(client, repository="rotated/app", tag="v1", platform=Platform("linux", "amd64"))
        raw = client.get_manifest("rotated/app", pushed.digest).raw
    _, password = registry_basic.credentials()
    registry = Registry.objects.create(
        name="rotated", url=registry_basic.url, insecure=True, auth=Registry.AUTH_BASIC, username="admin",
        secret_encrypted=Fernet(Fernet.generate_key()).encrypt(password.encode()).decode())
    record = PushRecord.objects.create(registry=registry, repository="rotated/app", tag="v1", new_digest=pushed.digest,
                                       media_type=pushed.media_type, raw=raw)

    started = [
        registry_check_submit(registry=registry),
        scan_submit(registry=registry),  # the whole registry: the fan-out
        scan_submit(registry=registry, repository="rotated/app"),
        rollback_submit(record=record),
        push_submit(registry=registry, target="rotated/list:v1", sources=[SourceSpec("rotated/app:v1")],
                    fmt="auto", annotations={}, expect_digest=None),
    ]
    for job in started:
        job = wait_job(job.pk)
        assert job.status == Job.STATUS_FAILED, (job.kind, job.target, job.error)
        assert UNDECRYPTABLE in job.error and "CREDENTIALS_KEYS" in job.error, (job.kind, job.error)
        assert job.finished_at is not None and job.worker.startswith("w1@"), job.worker
    registry.refresh_from_db()
    assert UNDECRYPTABLE in registry.last_scan_error
    assert PushRecord.objects.count() == 1  # nothing was put
    assert password not in celery_worker.log()


@pytest.mark.django_db
def test_an_attempt_whose_lease_was_taken_over_does_not_overwrite_the_new_owners_result(settings):
    """A worker stalls past its lease (a long pause, a partition); the task is
    delivered again and a second attempt takes the job over and finishes it.
    When the first attempt wakes up, its heartbeat, progress and end are refused."""
    registry = Registry.objects.create(name="lease", url="http://127.0.0.1:9", insecure=True)
    job = jobs.job_create(kind=Job.KIND_PUSH, registry=registry, target="lease/app:v1", params={})
    first = jobs.job_start(job_id=job.pk, exclusive=True, worker="w1@host")
    first_progress = jobs.JobProgress(first)
    with pytest.raises(jobs.JobBusy):  # its lease is fresh: nobody may run beside it
        jobs.job_start(job_id=job.pk, exclusive=True, worker="w2@host")
    stale = timezone.now() - datetime.timedelta(seconds=2 * settings.JOB_LEASE_SECONDS)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=stale)  # the first worker stopped beating

    second = jobs.job_start(job_id=job.pk, exclusive=True, worker="w2@host")
    assert second is not None and second.attempts == 2
    assert jobs.job_finish(job=second, progress=jobs.JobProgress(second), digest="sha256:" + "2" * 64,
                           result={"by": "second"})

    first_progress({"event": "late"})
    first_progress.flush()
    assert jobs._heartbeat_write(first) == 0
    assert not jobs.job_finish(job=first, progress=first_progress, error="the first attempt's late failure")
    job.refresh_from_db()
    assert (job.status, job.error, job.result, job.digest) == (Job.STATUS_SUCCEEDED, "", {"by": "second"},
                                                               "sha256:" + "2" * 64)
    assert job.worker == "w2@host" and not any(step.get("event") == "late" for step in job.steps)


@pytest.mark.django_db(transaction=True)
def test_the_lease_heartbeat_survives_a_database_error(settings, monkeypatch, caplog):
    """The database refuses two heartbeat writes; the thread logs, keeps beating and the lease stays fresh.

    The failure is injected at the write (a narrow error path): a real database
    outage would also take down the test's own connection.
    """
    settings.JOB_LEASE_SECONDS = 0.4  # a beat every 0.1 s
    registry = Registry.objects.create(name="beat", url="http://127.0.0.1:9", insecure=True)
    job = jobs.job_start(job_id=jobs.job_create(kind=Job.KIND_CHECK, registry=registry, target="beat",
                                                params={}).pk)
    write = jobs._heartbeat_write
    calls: list[str] = []

    def flaky_write(job: Job) -> int:
        calls.append("beat")
        if len(calls) <= 2:
            raise OperationalError("server closed the connection unexpectedly")
        return write(job)

    monkeypatch.setattr(jobs, "_heartbeat_write", flaky_write)
    before = Job.objects.get(pk=job.pk).heartbeat_at
    with caplog.at_level(logging.WARNING, logger="manifests.jobs"), jobs.job_lease(job):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
                len(calls) > 3 and Job.objects.get(pk=job.pk).heartbeat_at > before):
            time.sleep(0.05)
    assert len(calls) > 3, calls
    assert Job.objects.get(pk=job.pk).heartbeat_at > before
    assert caplog.text.count("the heartbeat could not be written") == 2


@pytest.mark.django_db
def test_a_database_error_in_a_runner_fails_the_job_with_a_message(monkeypatch):
    """Any exception a runner meets ends its job failed; the error is injected at
    the registry client's creation (a narrow error path) because a database
    error cannot be produced on demand inside the runner otherwise."""
    from manifests.services import registries

    registry = Registry.objects.create(name="dberr", url="http://127.0.0.1:9", insecure=True)
    job = jobs.job_create(kind=Job.KIND_CHECK, registry=registry, target="dberr", params={})

    def broken(**kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(registries, "registry_client", broken)
    jobs.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.STATUS_FAILED
    assert job.error == "database error (OperationalError): see the worker log"
