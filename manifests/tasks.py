"""Celery tasks: thin wrappers that take ids and call one service.

Each passes its worker's name (`name@host`), which the job row keeps. Every
job runs in `job_run` (manifests/jobs.py sends it by name); acknowledgement
late and rejection on a lost worker come from the settings (CELERY_TASK_*).
"""

from __future__ import annotations

from celery import shared_task

from . import jobs
from .scan import fanout
from .services import notify


@shared_task(bind=True)
def job_run(self, job_id: int) -> None:
    try:
        jobs.job_run(job_id=job_id, worker=self.request.hostname or "")
    except jobs.JobBusy as busy:  # delivered again while its first run is alive: look again later
        raise self.retry(countdown=busy.retry_in, max_retries=None) from None


@shared_task
def scan_part_run(job_id: int, names: list[str] | str) -> None:
    """Some repositories of a fanned-out scan (one name, from before parts held several)."""
    fanout.scan_part_run(job_id=job_id, names=names, behind=True)


@shared_task
def registries_rescan() -> None:
    """Beat: re-scan every registry."""
    from .models import Registry

    for registry in Registry.objects.all():
        fanout.scan_submit(registry=registry)


@shared_task(bind=True)
def delivery_send(self, delivery_id: int) -> None:
    """Send one notification; the service bounds the attempts (NOTIFY_MAX_ATTEMPTS) and records each."""
    try:
        notify.delivery_send(delivery_id=delivery_id)
    except notify.DeliveryRetry as retry:  # this attempt failed and another is due: come back after the backoff
        raise self.retry(countdown=retry.retry_in, max_retries=None) from None
