"""Jobs: the database row a page polls while a worker does registry I/O."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ..models import Job

# Write progress at most this often; the final state is always written.
_FLUSH_SECONDS = 0.3


class JobProgress:
    """Collects a job's steps and writes them to its row, throttled."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.steps: list[dict] = list(job.steps or [])
        self._last_flush = 0.0

    def __call__(self, event: dict) -> None:
        self.steps.append({"at": timezone.now().isoformat(timespec="milliseconds"), **event})
        if time.monotonic() - self._last_flush >= _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        Job.objects.filter(pk=self.job.pk).update(steps=self.steps)
        self._last_flush = time.monotonic()


def job_create(*, kind: str, registry, target: str, params: dict, user=None) -> Job:
    """Create a queued job; the caller enqueues its task with transaction.on_commit."""
    return Job.objects.create(kind=kind, registry=registry, target=target, params=params,
                              created_by=user if user and user.is_authenticated else None)


class JobBusy(Exception):
    """Another worker is running this job now: the task should come back later."""

    def __init__(self, job_id: int, retry_in: float) -> None:
        super().__init__(f"job {job_id} is running on another worker")
        self.retry_in = retry_in


def _lease_seconds() -> float:
    return float(settings.JOB_LEASE_SECONDS)


def job_start(*, job_id: int, exclusive: bool = False) -> Job | None:
    """Mark a job running; None when it has already finished (a redelivered task).

    An `exclusive` job (a push, a rollback) runs on one worker at a time: a
    task delivered again while the first run still holds the lease (the broker
    redelivers a task that outlives its visibility timeout) raises JobBusy
    instead of running beside it. A lease whose heartbeat stopped (the worker
    died) is taken over.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_done:
            return None
        now = timezone.now()
        lease = timedelta(seconds=_lease_seconds())
        if (exclusive and job.status == Job.STATUS_RUNNING and job.heartbeat_at is not None
                and now - job.heartbeat_at < lease):
            raise JobBusy(job_id, retry_in=_lease_seconds())
        job.status = Job.STATUS_RUNNING
        job.attempts += 1
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        if job.attempts > 1:
            job.steps = [*job.steps, {"at": now.isoformat(timespec="milliseconds"),
                                      "event": "retry", "attempt": job.attempts}]
        job.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "steps"])
        return job


@contextmanager
def job_lease(job: Job) -> Iterator[None]:
    """Keep the job's heartbeat fresh while the body runs, from a thread of its own
    (a single blob can take minutes to stream, with no progress event meanwhile)."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(_lease_seconds() / 4):
                Job.objects.filter(pk=job.pk, status=Job.STATUS_RUNNING).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"job-{job.pk}-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def job_begin(*, job_id: int, exclusive: bool = False) -> tuple[Job, JobProgress] | None:
    """Start a job that works on its registry.

    None when there is nothing to do: the job is done already (a redelivered
    task), or its registry was removed (which fails the job).
    """
    job = job_start(job_id=job_id, exclusive=exclusive)
    if job is None:
        return None
    progress = JobProgress(job)
    if job.registry is None:
        job_finish(job=job, progress=progress, error="the registry was removed")
        return None
    return job, progress


def job_finish(*, job: Job, progress: JobProgress | None, error: str = "", digest: str = "",
               result: dict | None = None) -> None:
    job.status = Job.STATUS_FAILED if error else Job.STATUS_SUCCEEDED
    job.error = error
    job.digest = digest or job.digest
    job.result = result or {}
    job.finished_at = timezone.now()
    if progress is not None:
        job.steps = progress.steps
    job.save(update_fields=["status", "error", "digest", "result", "finished_at", "steps"])
