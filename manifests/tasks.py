"""Celery tasks: thin wrappers that take ids and call one service."""

from __future__ import annotations

from celery import shared_task

from .services import push


@shared_task(acks_late=True, reject_on_worker_lost=True)
def push_run(job_id: int) -> None:
    push.push_job_run(job_id=job_id)
