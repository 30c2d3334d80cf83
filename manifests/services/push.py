"""The push job: plan, copy, put, verify, record."""

from __future__ import annotations

import logging

from django.db import transaction

from registry import errors
from registry.reference import Reference

from ..models import Job, PushRecord, Registry
from . import jobs, queue
from .assemble import AssemblyInvalid, SourceSpec, TagMoved, list_plan, list_push
from .registries import registry_client

logger = logging.getLogger(__name__)


def push_job_create(*, registry: Registry, target: str, sources: list[SourceSpec], fmt: str,
                    annotations: dict[str, str], expect_digest: str | None, user=None) -> Job:
    """Record a push job and enqueue it once the transaction commits."""
    from ..tasks import push_run

    if not queue.queue_available():
        raise queue.QueueUnavailable()
    job = jobs.job_create(
        kind=Job.KIND_PUSH, registry=registry, target=target, user=user,
        params={"sources": [s.to_json() for s in sources], "format": fmt, "annotations": annotations,
                "expect_digest": expect_digest},
    )
    queue.job_enqueue(task=push_run, job=job)
    return job


def push_job_run(*, job_id: int) -> None:
    """Run a push job to its end. Registry and input errors fail the job, never the worker."""
    job = jobs.job_start(job_id=job_id)
    if job is None:
        return
    progress = jobs.JobProgress(job)
    params = job.params
    try:
        with registry_client(registry=job.registry) as client:
            sources = [SourceSpec.from_json(s) for s in params.get("sources", [])]
            progress({"event": "plan", "sources": len(sources)})
            plan = list_plan(client=client, target=job.target, sources=sources,
                             fmt=params.get("format", "auto"), annotations=params.get("annotations") or {})
            progress({"event": "planned", "digest": plan.digest, "media_type": plan.media_type,
                      "entries": len(plan.entries)})
            result = list_push(client=client, plan=plan, expect_digest=params.get("expect_digest"),
                               progress=progress)
            counters = dict(client.counters)
    except AssemblyInvalid as exc:
        jobs.job_finish(job=job, progress=progress, error=str(exc), result={"errors": exc.errors})
        return
    except TagMoved as exc:
        jobs.job_finish(job=job, progress=progress, error=str(exc),
                        result={"tag_moved": True, "expected": exc.expected, "actual": exc.actual})
        return
    except errors.RegistryError as exc:
        jobs.job_finish(job=job, progress=progress, error=f"registry error: {exc}",
                        result={"code": exc.code})
        return
    except Exception:
        # A bug must fail the job visibly, not leave it "running" forever.
        logger.exception("push job %s crashed", job.pk)
        jobs.job_finish(job=job, progress=progress, error="internal error: see the worker log")
        return
    ref = Reference.parse(job.target, allow_host=False)
    with transaction.atomic():
        if not result.already_done or not PushRecord.objects.filter(job=job).exists():
            PushRecord.objects.create(
                registry=job.registry, repository=ref.repository, tag=ref.tag, old_digest=result.old_digest,
                new_digest=result.digest, media_type=result.media_type, raw=result.raw, job=job,
                user=job.created_by)
        jobs.job_finish(job=job, progress=progress, digest=result.digest,
                        result={"media_type": result.media_type, "copy": result.copy.as_dict(),
                                "requests": counters, "old_digest": result.old_digest})
    logger.info("pushed %s as %s", job.target, result.digest)
