"""Promotion: copy a list (all platforms or some, with the attestations of what is kept) to another registry.

When every platform is kept the list's bytes are put unchanged, so its digest
is the same in both registries (what a signature or a deployment pinned by
digest relies on). When some are dropped, the list is rewritten with the kept
entries exactly as they were, and the new digest is known before the push.
Blobs cannot be mounted across registries: they are streamed in chunks
(registry.upload).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from django.db import transaction

from registry import errors
from registry.assemble import TagMoved, tag_current_digest
from registry.errors import InvalidPlatform, InvalidReference
from registry.mediatypes import Manifest, parse_manifest, sha256_digest
from registry.platform import Platform
from registry.reference import Reference, validate_repository, validate_tag
from registry.upload import DEFAULT_CHUNK_SIZE, TransferStats, manifest_transfer

from .. import jobs
from ..models import Job, PushRecord, Registry, Tag
from .registries import registry_client

logger = logging.getLogger(__name__)

KIND_PROMOTE = Job.KIND_PROMOTE


class PromotionInvalid(Exception):
    def __init__(self, errors_by_field: dict[str, list[str]]) -> None:
        self.errors = errors_by_field
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors_by_field.items()))


@dataclass
class PromotionPlan:
    source_repository: str
    source_reference: str
    original_digest: str
    raw: bytes
    media_type: str
    digest: str
    kept: list[str] = field(default_factory=list)  # platforms kept ("" entries: attestations not counted)
    dropped: list[str] = field(default_factory=list)
    attestations: int = 0
    children: list[str] = field(default_factory=list)  # digests of the kept entries

    @property
    def digest_unchanged(self) -> bool:
        return self.digest == self.original_digest

    def as_json(self) -> dict:
        return {"digest": self.digest, "original_digest": self.original_digest,
                "digest_unchanged": self.digest_unchanged, "kept": self.kept, "dropped": self.dropped,
                "attestations": self.attestations}


def promotion_select(*, manifest: Manifest, repository: str, reference: str,
                     platforms: list[str] | None) -> PromotionPlan:
    """The list to put in the other registry: the same bytes, or the kept entries of `manifest`."""
    if not manifest.is_index:
        if platforms:
            raise PromotionInvalid({"platforms": ["the source is a single image: copy it whole"]})
        return PromotionPlan(repository, reference, manifest.digest, manifest.raw, manifest.media_type,
                             manifest.digest, children=[manifest.digest])
    wanted = None
    if platforms:
        try:
            wanted = {Platform.parse(p).normalized for p in platforms}
        except InvalidPlatform as exc:
            raise PromotionInvalid({"platforms": [str(exc)]}) from None
    images = [c for c in manifest.children if not c.is_attestation]
    offered = {c.platform.normalized for c in images if c.platform is not None}
    if wanted is not None and (unknown := sorted(wanted - offered)):
        raise PromotionInvalid({"platforms": [f"{reference} has no {', '.join(unknown)}: it offers "
                                              f"{', '.join(sorted(offered))}"]})
    kept_images = [c for c in images if wanted is None or (c.platform and c.platform.normalized in wanted)]
    if not kept_images:
        raise PromotionInvalid({"platforms": ["keep at least one platform"]})
    kept_digests = {c.digest for c in kept_images}
    kept_attestations = [c for c in manifest.children if c.is_attestation and c.attestation_subject in kept_digests]
    plan = PromotionPlan(repository, reference, manifest.digest, manifest.raw, manifest.media_type,
                         manifest.digest,
                         kept=[c.platform.normalized for c in kept_images if c.platform is not None],
                         dropped=sorted(offered - {c.platform.normalized for c in kept_images if c.platform}),
                         attestations=len(kept_attestations))
    keep = kept_digests | {c.digest for c in kept_attestations}
    plan.children = [c.digest for c in manifest.children if c.digest in keep]
    if len(keep) == len(manifest.children):
        return plan  # every entry kept: the very bytes, the same digest
    data = json.loads(manifest.raw)
    # The kept entries exactly as the source wrote them, in its order; the rest of the index as it was.
    data["manifests"] = [entry for entry in data.get("manifests", []) if entry.get("digest") in keep]
    plan.raw = json.dumps(data, indent=2).encode()
    plan.digest = sha256_digest(plan.raw)
    return plan


def _target_check(target: str) -> Reference:
    ref = Reference.parse(target, allow_host=False)
    validate_repository(ref.repository)
    if ref.digest or not ref.tag:
        raise InvalidReference("the target must be repository:tag")
    validate_tag(ref.tag)
    return ref


def promotion_preview(*, source: Registry | None, reference: str, target_registry: Registry | None, target: str,
                      platforms: list[str] | None) -> PromotionPlan:
    """From the inventory alone: what would be pushed, and its digest. Raises PromotionInvalid."""
    problems: dict[str, list[str]] = {}
    if source is None:
        problems["from.registry"] = ["choose the registry to promote from"]
    if target_registry is None:
        problems["to.registry"] = ["choose the registry to promote to"]
    try:
        _target_check(target)
    except InvalidReference as exc:
        problems["to.target"] = [str(exc)]
    row = None
    try:
        ref = Reference.parse(reference, allow_host=False)
        if not ref.tag or ref.digest:
            raise InvalidReference("give the source as repository:tag")
    except InvalidReference as exc:
        problems["from.reference"] = [str(exc)]
    else:
        if source is not None:
            row = Tag.objects.select_related("manifest").filter(
                repository__registry=source, repository__name=ref.repository, name=ref.tag).first()
            if row is None or row.manifest is None:
                problems["from.reference"] = [f"{reference} is not in the inventory of {source.name}: scan it first"]
    if source is not None and target_registry is not None and source.pk == target_registry.pk:
        problems["to.registry"] = ["promote to another registry (within one, use the builder)"]
    if problems:
        raise PromotionInvalid(problems)
    manifest = parse_manifest(bytes(row.manifest.raw), content_type=row.manifest.media_type, digest=row.digest)
    return promotion_select(manifest=manifest, repository=ref.repository, reference=reference,
                            platforms=platforms)


def promotion_submit(*, source: Registry, reference: str, target_registry: Registry, target: str,
                     platforms: list[str] | None, expect_digest: str | None, plan_digest: str, user=None) -> Job:
    return jobs.job_submit(kind=KIND_PROMOTE, registry=target_registry, target=target, user=user,
                           params={"from_registry": source.pk, "reference": reference, "platforms": platforms,
                                   "expect_digest": expect_digest, "plan_digest": plan_digest})


def promotion_execute(job: Job, progress: jobs.JobProgress) -> None:
    """The runner of a promote job: copy the kept entries across, put the list, record it; never raises."""
    params = job.params
    source = Registry.objects.filter(pk=params.get("from_registry")).first()
    if source is None:
        jobs.job_finish(job=job, progress=progress, error="the source registry was removed")
        return
    stats = TransferStats()
    chunk_size = int(params.get("chunk_size") or DEFAULT_CHUNK_SIZE)
    try:
        ref = Reference.parse(params["reference"], allow_host=False)
        target = _target_check(job.target)
        with registry_client(registry=source) as src, registry_client(registry=job.registry) as dst:
            manifest = src.get_manifest(ref.repository, ref.tag)
            plan = promotion_select(manifest=manifest, repository=ref.repository, reference=params["reference"],
                                    platforms=params.get("platforms"))
            progress({"event": "planned", "digest": plan.digest, "digest_unchanged": plan.digest_unchanged})
            if params.get("plan_digest") and params["plan_digest"] != plan.digest:
                raise PromotionInvalid({"from.reference": [
                    f"{params['reference']} changed since the preview ({plan.digest} now): preview again"]})
            current = tag_current_digest(client=dst, repository=target.repository, tag=target.tag)
            progress({"event": "check", "current": current})
            expect = params.get("expect_digest")
            if current != plan.digest and expect is not None and current != expect:
                raise TagMoved(expect, current)

            def report(event: dict) -> None:
                if event["event"] == "upload":
                    event = {**event, "moved": stats.bytes_moved}
                progress(event)

            if current != plan.digest:
                children = [c for c in manifest.children if c.digest in plan.children] if manifest.is_index else []
                for child in children:
                    child_manifest = src.get_manifest(ref.repository, child.digest)
                    manifest_transfer(source=src, source_repository=ref.repository, target=dst,
                                      target_repository=target.repository, manifest=child_manifest,
                                      chunk_size=chunk_size, stats=stats, progress=report)
                if not manifest.is_index:
                    manifest_transfer(source=src, source_repository=ref.repository, target=dst,
                                      target_repository=target.repository, manifest=manifest,
                                      chunk_size=chunk_size, stats=stats, progress=report)
                digest = dst.put_manifest(target.repository, target.tag, plan.raw, plan.media_type)
                if digest != plan.digest:
                    raise errors.DigestMismatch(f"{job.target} was stored as {digest}, not {plan.digest}")
            progress({"event": "done", "digest": plan.digest, **stats.as_dict()})
            from ..scan.repository import repository_scan

            repository_scan(client=dst, registry=job.registry, name=target.repository, only_tags=[target.tag],
                            concurrency=1)
    except PromotionInvalid as exc:
        jobs.job_finish(job=job, progress=progress, error=str(exc), result={"errors": exc.errors})
        return
    except TagMoved as exc:
        jobs.job_finish(job=job, progress=progress, error=str(exc),
                        result={"tag_moved": True, "expected": exc.expected, "actual": exc.actual})
        return
    except (errors.RegistryError, InvalidReference) as exc:
        jobs.job_finish(job=job, progress=progress, error=f"registry error: {exc}",
                        result={"transfer": stats.as_dict()})
        return
    except Exception:
        logger.exception("promotion job %s crashed", job.pk)
        jobs.job_finish(job=job, progress=progress, error="internal error: see the worker log")
        return
    with transaction.atomic():
        if current != plan.digest:
            PushRecord.objects.create(registry=job.registry, repository=target.repository, tag=target.tag,
                                      old_digest=current, new_digest=plan.digest, media_type=plan.media_type,
                                      raw=plan.raw, job=job, user=job.created_by)
        jobs.job_finish(job=job, progress=progress, digest=plan.digest, result={
            **plan.as_json(), "old_digest": current, "transfer": stats.as_dict(),
            "already_there": current == plan.digest})
