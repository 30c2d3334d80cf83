"""The push job: plan, copy, put, verify, record."""

from __future__ import annotations

import logging

from django.db import transaction

from registry import errors
from registry.mediatypes import parse_manifest
from registry.reference import Reference

from ..models import Job, PushRecord, Registry
from . import jobs, queue, signatures
from .assemble import AssemblyInvalid, SourceSpec, TagMoved, list_plan, list_push, list_verify, tag_current_digest
from .registries import registry_client

logger = logging.getLogger(__name__)


class PreviewStale(Exception):
    """The registry's content differs from what the preview was built from."""

    def __init__(self, preview: str, actual: str) -> None:
        super().__init__(
            f"the list built from the registry ({actual}) differs from the preview ({preview}): the inventory is "
            "out of date. Refresh the source repositories and preview again; nothing was pushed")


def push_job_create(*, registry: Registry, target: str, sources: list[SourceSpec], fmt: str,
                    annotations: dict[str, str], expect_digest: str | None, user=None,
                    preview_digest: str | None = None) -> Job:
    """Record a push job and enqueue it once the transaction commits."""
    from ..tasks import push_run

    if not queue.queue_available():
        raise queue.QueueUnavailable()
    job = jobs.job_create(
        kind=Job.KIND_PUSH, registry=registry, target=target, user=user,
        params={"sources": [s.to_json() for s in sources], "format": fmt, "annotations": annotations,
                "expect_digest": expect_digest, "preview_digest": preview_digest},
    )
    queue.job_enqueue(task=push_run, job=job)
    return job


def _inventory_refresh(client, registry: Registry, repository: str, tag: str) -> None:
    """Record the pushed tag at once, so the pages show it without waiting for a scan."""
    from .scan import repository_scan

    repository_scan(client=client, registry=registry, name=repository, only_tags=[tag], concurrency=1)


def push_job_run(*, job_id: int) -> None:
    """Run a push job to its end, on one worker at a time (jobs.JobBusy otherwise).

    Registry and input errors fail the job, never the worker.
    """
    begun = jobs.job_begin(job_id=job_id, exclusive=True)
    if begun is None:
        return
    job, progress = begun
    with jobs.job_lease(job):
        _push(job, progress)


def _push(job: Job, progress: jobs.JobProgress) -> None:
    params = job.params
    try:
        with registry_client(registry=job.registry) as client:
            sources = [SourceSpec.from_json(s) for s in params.get("sources", [])]
            progress({"event": "plan", "sources": len(sources)})
            plan = list_plan(client=client, target=job.target, sources=sources,
                             fmt=params.get("format", "auto"), annotations=params.get("annotations") or {})
            progress({"event": "planned", "digest": plan.digest, "media_type": plan.media_type,
                      "entries": len(plan.entries)})
            preview_digest = params.get("preview_digest")
            if preview_digest and preview_digest != plan.digest:
                raise PreviewStale(preview_digest, plan.digest)
            result = list_push(client=client, plan=plan, expect_digest=params.get("expect_digest"),
                               progress=progress)
            carried = signatures.referrers_carry(client=client, registry=job.registry, entries=plan.entries,
                                                 target=plan.target.repository, progress=progress)
            counters = dict(client.counters)
            _inventory_refresh(client, job.registry, plan.target.repository, plan.target.tag)
    except AssemblyInvalid as exc:
        jobs.job_finish(job=job, progress=progress, error=str(exc), result={"errors": exc.errors})
        return
    except PreviewStale as exc:
        jobs.job_finish(job=job, progress=progress, error=str(exc), result={"preview_stale": True})
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
                        result={"media_type": result.media_type, "copied": result.copy.as_dict(),
                                "requests": counters, "old_digest": result.old_digest, "referrers": carried})
    logger.info("pushed %s as %s", job.target, result.digest)


def rollback_job_create(*, record: PushRecord, user=None) -> Job:
    """Put a tag back to the list an earlier push made (after checking its children)."""
    if not queue.queue_available():
        raise queue.QueueUnavailable()
    job = jobs.job_create(kind=Job.KIND_ROLLBACK, registry=record.registry, user=user,
                          target=f"{record.repository}:{record.tag}", params={"record": record.pk})
    from ..tasks import rollback_run

    queue.job_enqueue(task=rollback_run, job=job)
    return job


def rollback_job_run(*, job_id: int) -> None:
    """Run a rollback job, on one worker at a time, like a push."""
    job = jobs.job_start(job_id=job_id, exclusive=True)
    if job is None:
        return
    with jobs.job_lease(job):
        _rollback(job)


def _rollback(job: Job) -> None:
    progress = jobs.JobProgress(job)
    record = PushRecord.objects.filter(pk=job.params.get("record")).first()
    if record is None:
        jobs.job_finish(job=job, progress=progress, error="that push record no longer exists")
        return
    raw = bytes(record.raw)
    try:
        with registry_client(registry=job.registry) as client:
            current = tag_current_digest(client=client, repository=record.repository, tag=record.tag)
            progress({"event": "check", "current": current})
            manifest = parse_manifest(raw, content_type=record.media_type, digest=record.new_digest)
            missing = [c.digest for c in manifest.children
                       if not client.manifest_exists(record.repository, c.digest)]
            if missing:
                jobs.job_finish(job=job, progress=progress, result={"missing": missing},
                                error=f"cannot roll back: {len(missing)} child manifest(s) of {record.new_digest} "
                                      f"no longer exist in {record.repository}: {', '.join(missing)}")
                return
            digest = client.put_manifest(record.repository, record.tag, raw, record.media_type)
            list_verify(client=client, repository=record.repository, tag=record.tag, digest=digest)
            progress({"event": "done", "digest": digest})
            _inventory_refresh(client, job.registry, record.repository, record.tag)
    except errors.RegistryError as exc:
        jobs.job_finish(job=job, progress=progress, error=f"registry error: {exc}", result={"code": exc.code})
        return
    with transaction.atomic():
        PushRecord.objects.create(registry=job.registry, repository=record.repository, tag=record.tag,
                                  old_digest=current, new_digest=digest, media_type=record.media_type, raw=raw,
                                  job=job, user=job.created_by)
        jobs.job_finish(job=job, progress=progress, digest=digest, result={"old_digest": current,
                                                                            "rolled_back_to": record.pk})
