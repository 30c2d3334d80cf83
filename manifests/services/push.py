"""The push job: plan, copy, put, verify, record."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from registry import errors
from registry.assemble import (
    AssemblyInvalid,
    Plan,
    PushResult,
    SourceSpec,
    TagMoved,
    list_plan,
    list_push,
    list_verify,
    tag_current_digest,
)
from registry.mediatypes import parse_manifest

from .. import jobs
from ..models import Job, PushRecord, Registry
from . import queue, signatures
from .across import Across, SourceClients, source_registries, sources_foreign
from .inventory import InventoryClient
from .registries import registry_client

logger = logging.getLogger(__name__)


class PreviewStale(Exception):
    """The registry's content differs from what the preview was built from."""

    def __init__(self, preview: str, actual: str) -> None:
        super().__init__(
            f"the list built from the registry ({actual}) differs from the preview ({preview}): the inventory is "
            "out of date. Refresh the source repositories and preview again; nothing was pushed")


@dataclass(frozen=True)
class PushParams:
    """What a push job was asked to do, as its params hold it (push_submit writes them, push_params reads them)."""

    sources: list[SourceSpec]
    fmt: str
    annotations: dict[str, str]
    expect_digest: str | None
    preview_digest: str | None


def push_params(params: dict) -> PushParams:
    """A push job's params decoded: the sources back as SourceSpecs."""
    return PushParams(sources=[SourceSpec.from_json(s) for s in params.get("sources", [])],
                      fmt=params.get("format", "auto"), annotations=params.get("annotations") or {},
                      expect_digest=params.get("expect_digest"), preview_digest=params.get("preview_digest"))


# A queued push this recent takes the same push asked again; an older one has waited long enough to
# be asked again for a reason (its task lost with a broker that restarted).
PUSH_AGAIN_SECONDS = 60


def push_submit(*, registry: Registry, target: str, sources: list[SourceSpec], fmt: str,
                annotations: dict[str, str], expect_digest: str | None, user=None,
                preview_digest: str | None = None) -> Job:
    """Record a push job and send it to a worker once the transaction commits.

    The same push by the same user while the first is still queued or running (a double click, a
    POST the browser sent again) is that job: the list is put once, and moves its tag once in history.
    """
    params = json.loads(json.dumps({  # as the job row gives them back, to compare
        "sources": [s.to_json() for s in sources], "format": fmt, "annotations": annotations,
        "expect_digest": expect_digest, "preview_digest": preview_digest}))
    if not queue.queue_available():  # asked before the lock below: the broker may take seconds to answer
        raise queue.QueueUnavailable()
    now = timezone.now()
    with transaction.atomic():
        # One submission at a time per registry (SQLite takes its write lock here, at BEGIN IMMEDIATE).
        list(Registry.objects.select_for_update(no_key=True).filter(pk=registry.pk).values_list("pk", flat=True))
        # Alive: queued a moment ago, or running with a fresh lease (a job whose task was lost, or whose
        # worker died, does not swallow the push asked again).
        alive = Job.objects.filter(kind=Job.KIND_PUSH, registry=registry, target=target,
                                   created_by=user if user is not None and user.is_authenticated else None).filter(
            Q(status=Job.STATUS_QUEUED, created_at__gte=now - datetime.timedelta(seconds=PUSH_AGAIN_SECONDS))
            | Q(status=Job.STATUS_RUNNING,
                heartbeat_at__gte=now - datetime.timedelta(seconds=settings.JOB_LEASE_SECONDS)))
        for job in alive.order_by("pk"):
            if job.params == params:
                return job
        job = jobs.job_create(kind=Job.KIND_PUSH, registry=registry, target=target, user=user, params=params)
        jobs.job_send(job)  # job_submit's, but the queue was asked above
        return job


class _InventoryFirst:
    """Plan from the scanned inventory, asking the registry only for what it does not hold.

    The preview was computed from the inventory (builder, API), so planning
    from it costs no request and gives the very bytes previewed. A digest's
    content never changes; a tag read from the inventory may have moved since
    the scan, and the list then holds what the user previewed, by digest.
    A source the inventory does not hold (never scanned, or failed at the
    last scan) is read from the registry.
    """

    def __init__(self, registry: Registry, client) -> None:
        self._inventory = InventoryClient(registry)
        self._client = client

    def get_manifest(self, repository: str, reference: str):
        try:
            return self._inventory.get_manifest(repository, reference)
        except errors.ManifestUnknown:
            return self._client.get_manifest(repository, reference)

    def get_json_blob(self, repository: str, digest: str, **kwargs) -> dict:
        try:
            return self._inventory.get_json_blob(repository, digest)
        except errors.BlobUnknown:
            return self._client.get_json_blob(repository, digest, **kwargs)


def _inventory_refresh(client, registry: Registry, repository: str, tag: str, *, raw: bytes = b"",
                       media_type: str = "", digest: str = "") -> None:
    """Record the pushed tag at once, so the pages show it without waiting for a scan.

    From the bytes just put (no request) when given; children the inventory
    lacks are read from the registry.
    """
    from ..scan.repository import repository_scan, tag_record

    if raw:
        tag_record(client=client, registry=registry, repository=repository, tag=tag, raw=raw,
                   media_type=media_type, digest=digest)
        return
    repository_scan(client=client, registry=registry, name=repository, only_tags=[tag], concurrency=1)


def _record_put(*, job: Job, repository: str, tag: str, old_digest: str, new_digest: str, media_type: str,
                raw: bytes) -> PushRecord:
    """The history row of a tag move, written (committed) as soon as the registry accepted the PUT.

    One per job: an attempt delivered again after a crash keeps the first
    attempt's row, whose old digest is the one the tag really held.
    """
    existing = PushRecord.objects.filter(job=job).first()
    if existing is not None:
        return existing
    return PushRecord.objects.create(registry=job.registry, repository=repository, tag=tag, old_digest=old_digest,
                                     new_digest=new_digest, media_type=media_type, raw=raw, job=job,
                                     user=job.created_by)


def _record_check(record: PushRecord, *, verified: bool | None, error: str = "") -> None:
    record.verified, record.verify_error = verified, error
    PushRecord.objects.filter(pk=record.pk).update(verified=verified, verify_error=error)


def _after_put(*, client, job: Job, record: PushRecord, verify: Callable[[], None],
               carry: Callable[[], None] = lambda: None) -> None:
    """Read the list back, carry the children's referrers, then record it in the inventory.

    Each failure is noted on the record and fails the job. The tag has moved either way: the job keeps the digest, and its message says so.
    """
    moved = f"{record.repository}:{record.tag} now holds {record.new_digest} (recorded in its history)"
    try:
        verify()
    except Exception as exc:
        message, _ = jobs.job_error(exc)
        _record_check(record, verified=False, error=f"read-back failed: {message}")
        if not isinstance(exc, errors.RegistryError):
            logger.exception("job %s: the read-back of %s failed", job.pk, record.new_digest)
        raise jobs.JobFailed(f"{moved}, but reading it back failed: {message}", digest=record.new_digest,
                             result={"verified": False, "record": record.pk}) from exc
    _record_check(record, verified=True)
    try:
        carry()  # a referrer the registry refuses is reported in the progress, not raised
    except Exception as exc:
        logger.exception("job %s: carrying the children's referrers into %s failed", job.pk, record.repository)
        message, _ = jobs.job_error(exc)
        _record_check(record, verified=True, error=f"carrying the children's referrers failed: {message}")
        raise jobs.JobFailed(f"{moved} and reads back whole, but carrying its children's signatures, SBOMs and "
                             f"attestations failed: {message}", digest=record.new_digest,
                             result={"verified": True, "record": record.pk}) from exc
    try:
        _inventory_refresh(client, job.registry, record.repository, record.tag, raw=bytes(record.raw),
                           media_type=record.media_type, digest=record.new_digest)
    except Exception as exc:
        logger.exception("job %s: recording %s in the inventory failed", job.pk, record.new_digest)
        message, _ = jobs.job_error(exc)
        _record_check(record, verified=True, error=f"the inventory refresh failed: {message}")
        raise jobs.JobFailed(f"{moved} and reads back whole, but recording it in the inventory failed: {message}. "
                             "The next scan of the repository records it", digest=record.new_digest,
                             result={"verified": True, "record": record.pk}) from exc


def push_execute(job: Job, progress: jobs.JobProgress) -> None:
    """The runner of a push job (jobs.KINDS): plan, copy, put, verify, record."""
    across = Across(progress)
    try:
        _push_with(job, progress, across)
    finally:
        across.close()


def _plan_sources(job: Job, client, across: Across) -> tuple[Plan, list[SourceSpec], list[int | None]]:
    """Plan from the inventories (each source from its own registry's), with which sources live elsewhere."""
    params = push_params(job.params)
    sources = params.sources
    try:
        others, unknown = source_registries(registry=job.registry, specs=sources)
        if unknown:
            raise AssemblyInvalid(unknown)
        clients = SourceClients(_InventoryFirst(job.registry, client), {
            name: _InventoryFirst(row, across.client(row.pk)) for name, row in others.items()})
        plan = list_plan(client=clients.default, target=job.target, sources=sources, source_client=clients,
                         fmt=params.fmt, annotations=params.annotations)
    except AssemblyInvalid as exc:
        raise jobs.JobFailed(str(exc), result={"errors": exc.errors}) from None
    return plan, sources, sources_foreign(registry=job.registry, specs=sources, others=others)


def _push_with(job: Job, progress: jobs.JobProgress, across: Across) -> None:
    params = push_params(job.params)
    with registry_client(registry=job.registry) as client:
        progress({"event": "plan", "sources": len(params.sources)})
        plan, sources, foreign = _plan_sources(job, client, across)
        progress({"event": "planned", "digest": plan.digest, "media_type": plan.media_type,
                  "entries": len(plan.entries)})
        preview_digest = params.preview_digest
        if preview_digest and preview_digest != plan.digest:
            raise jobs.JobFailed(str(PreviewStale(preview_digest, plan.digest)), result={"preview_stale": True})
        repository, tag = plan.target.repository, plan.target.tag
        records: list[PushRecord] = []

        def on_put(put: PushResult) -> None:
            records.append(_record_put(job=job, repository=repository, tag=tag, old_digest=put.old_digest,
                                       new_digest=put.digest, media_type=put.media_type, raw=put.raw))

        verify_error: list[BaseException] = []
        present: set[str] | None = None
        try:
            if any(foreign):  # blobs cannot be mounted from another registry: streamed first, as a rule's
                present = set()
                if tag_current_digest(client=client, repository=repository, tag=tag) != plan.digest:
                    across.bring(target=client, plan=plan, foreign=foreign, repository=repository, present=present)
            result = list_push(client=client, plan=plan, expect_digest=params.expect_digest,
                               progress=progress, on_put=on_put, present=present)
        except TagMoved as exc:
            raise jobs.JobFailed(str(exc), result={"tag_moved": True, "expected": exc.expected,
                                                   "actual": exc.actual}) from None
        except Exception as exc:
            if not records:
                raise  # nothing was put: the tag has not moved
            verify_error.append(exc)  # the PUT went through; its read-back failed

        def verify() -> None:
            if verify_error:
                raise verify_error[0]
            if result.already_done:  # a redelivered push whose first run put the list: check it now
                list_verify(client=client, repository=repository, tag=tag, digest=result.digest)

        if not records:  # the tag already held this list (a redelivered task, or the same list pushed twice)
            on_put(result)
        record = records[0]
        carried: list[dict] = []
        local = [e for e in plan.entries if e.source_index >= len(foreign) or foreign[e.source_index] is None]

        def carry() -> None:  # each kept child's signatures, SBOMs and attestations go with it
            carried.extend(signatures.referrers_carry(client=client, registry=job.registry, entries=local,
                                                      target=repository, progress=progress))

        _after_put(client=client, job=job, record=record, verify=verify, carry=carry)
        counters = dict(client.counters)
    transfer = {"transfer": across.stats.as_dict()} if any(foreign) else {}
    with transaction.atomic():
        jobs.job_finish(job=job, progress=progress, digest=record.new_digest,
                        result={"media_type": record.media_type, "copied": result.copy.as_dict(),
                                "requests": counters, "old_digest": record.old_digest, "record": record.pk,
                                "verified": True, "referrers": carried, **transfer})
    logger.info("pushed %s as %s", job.target, record.new_digest)


def rollback_submit(*, record: PushRecord, user=None) -> Job:
    """Put a tag back to the list an earlier push made (after checking its children)."""
    return jobs.job_submit(kind=Job.KIND_ROLLBACK, registry=record.registry, user=user,
                           target=f"{record.repository}:{record.tag}", params={"record": record.pk})


def rollback_execute(job: Job, progress: jobs.JobProgress) -> None:
    """The runner of a rollback job (jobs.KINDS), on one worker at a time, like a push."""
    record = PushRecord.objects.filter(pk=job.params.get("record")).first()
    if record is None:
        raise jobs.JobFailed("that push record no longer exists")
    if job.registry is None:
        raise jobs.JobFailed("the registry was removed")
    raw = bytes(record.raw)
    with registry_client(registry=job.registry) as client:
        current = tag_current_digest(client=client, repository=record.repository, tag=record.tag)
        progress({"event": "check", "current": current})
        manifest = parse_manifest(raw, content_type=record.media_type, digest=record.new_digest)
        missing = [c.digest for c in manifest.children
                   if not client.manifest_exists(record.repository, c.digest)]
        if missing:
            raise jobs.JobFailed(f"cannot roll back: {len(missing)} child manifest(s) of {record.new_digest} "
                                 f"no longer exist in {record.repository}: {', '.join(missing)}",
                                 result={"missing": missing})
        digest = client.put_manifest(record.repository, record.tag, raw, record.media_type)
        moved = _record_put(job=job, repository=record.repository, tag=record.tag, old_digest=current,
                            new_digest=digest, media_type=record.media_type, raw=raw)
        _after_put(client=client, job=job, record=moved, verify=lambda: list_verify(
            client=client, repository=record.repository, tag=record.tag, digest=digest))
        progress({"event": "done", "digest": digest})
    jobs.job_finish(job=job, progress=progress, digest=digest,
                    result={"old_digest": moved.old_digest, "rolled_back_to": record.pk, "record": moved.pk,
                            "verified": True})
