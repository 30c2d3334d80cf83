"""Celery tasks: thin wrappers that take ids and call one service."""

from __future__ import annotations

from celery import shared_task

from .services import notify, push
from .services.jobs import JobBusy


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def push_run(self, job_id: int) -> None:
    try:
        push.push_job_run(job_id=job_id)
    except JobBusy as busy:  # delivered again while its first run is alive: look again later
        raise self.retry(countdown=busy.retry_in, max_retries=None) from None


@shared_task(acks_late=True, reject_on_worker_lost=True)
def scan_run(job_id: int) -> None:
    from .services import scan

    scan.scan_job_fanout(job_id=job_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def scan_repository_run(job_id: int, name: str) -> None:
    from .services import scan

    scan.scan_part_run(job_id=job_id, name=name)


@shared_task
def registries_rescan() -> None:
    """Beat: re-scan every registry."""
    from .models import Registry
    from .services import scan

    for registry in Registry.objects.all():
        scan.scan_enqueue(registry=registry)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def rollback_run(self, job_id: int) -> None:
    try:
        push.rollback_job_run(job_id=job_id)
    except JobBusy as busy:
        raise self.retry(countdown=busy.retry_in, max_retries=None) from None


@shared_task(acks_late=True, reject_on_worker_lost=True)
def check_run(job_id: int) -> None:
    from .services import registries

    registries.registry_check_run(job_id=job_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(notify.DeliveryRetry,),
             retry_backoff=2, retry_backoff_max=300, retry_jitter=True, max_retries=None)
def deliver_run(delivery_id: int) -> None:
    """Send one notification; the service bounds the attempts (NOTIFY_MAX_ATTEMPTS) and records each."""
    notify.delivery_send(delivery_id=delivery_id)
