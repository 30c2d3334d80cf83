"""Jobs: the database row a page polls while a worker does registry I/O."""

from __future__ import annotations

import time

from django.db import transaction
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


def job_start(*, job_id: int) -> Job | None:
    """Mark a job running; None when it has already finished (a redelivered task)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_done:
            return None
        job.status = Job.STATUS_RUNNING
        job.attempts += 1
        job.started_at = job.started_at or timezone.now()
        if job.attempts > 1:
            job.steps = [*job.steps, {"at": timezone.now().isoformat(timespec="milliseconds"),
                                      "event": "retry", "attempt": job.attempts}]
        job.save(update_fields=["status", "attempts", "started_at", "steps"])
        return job


def job_begin(*, job_id: int) -> tuple[Job, JobProgress] | None:
    """Start a job that works on its registry.

    None when there is nothing to do: the job is done already (a redelivered
    task), or its registry was removed (which fails the job).
    """
    job = job_start(job_id=job_id)
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
