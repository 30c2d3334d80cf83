"""Celery tasks: thin wrappers that take ids and call one service.

Each passes its worker's name (`name@host`), which the job row keeps.
"""

from __future__ import annotations

from celery import shared_task

from .services import push
from .services.jobs import JobBusy


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def push_run(self, job_id: int) -> None:
    try:
        push.push_job_run(job_id=job_id, worker=self.request.hostname or "")
    except JobBusy as busy:  # delivered again while its first run is alive: look again later
        raise self.retry(countdown=busy.retry_in, max_retries=None) from None


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def scan_run(self, job_id: int) -> None:
    from .services import scan

    scan.scan_job_fanout(job_id=job_id, worker=self.request.hostname or "")


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
        push.rollback_job_run(job_id=job_id, worker=self.request.hostname or "")
    except JobBusy as busy:
        raise self.retry(countdown=busy.retry_in, max_retries=None) from None


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def check_run(self, job_id: int) -> None:
    from .services import registries

    registries.registry_check_run(job_id=job_id, worker=self.request.hostname or "")


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def rule_apply_run(self, job_id: int) -> None:
    from .services import rules

    try:
        rules.rule_apply_job_run(job_id=job_id, worker=self.request.hostname or "")
    except JobBusy as busy:
        raise self.retry(countdown=busy.retry_in, max_retries=None) from None


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def promotion_run(self, job_id: int) -> None:
    from .services import promote

    try:
        promote.promotion_job_run(job_id=job_id, worker=self.request.hostname or "")
    except JobBusy as busy:
        raise self.retry(countdown=busy.retry_in, max_retries=None) from None


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def deliver_run(self, delivery_id: int) -> None:
    """Send one notification; the service bounds the attempts (NOTIFY_MAX_ATTEMPTS) and records each."""
    from .services import notify

    try:
        notify.delivery_send(delivery_id=delivery_id)
    except notify.DeliveryRetry as retry:  # this attempt failed and another is due: come back after the backoff
        raise self.retry(countdown=retry.retry_in, max_retries=None) from None
