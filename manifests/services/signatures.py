"""Signatures, SBOMs and attestations attached to the manifests of a repository.

Read after each repository scan from what the scan stored: the referrers tag
schema (`sha256-<hex>` holding an index of referrers) and cosign's tags
(`sha256-<hex>.sig`, `.att`, `.sbom`) are ordinary tags of the listing, so
reading them costs no request of its own. With REFERRERS_API on, a scan also
asks the OCI 1.1 referrers API about the manifests it saw for the first time
(and stops asking at the first 404: the registry does not serve it).
A signature present before and gone now records a signature_lost event.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from registry import errors
from registry.referrers import (
    UNKNOWN,
    classify,
    index_referrers,
    manifest_classify,
    referrer_copy,
    referrers_get,
    tag_subject,
)

from ..models import Event, Manifest, ManifestChild, Referrer, Repository, Tag, TagPlatform
from .coverage import REFERRER_TAG_REGEX

logger = logging.getLogger(__name__)


def _from_tags(repository: Repository) -> list[Referrer]:
    tags = list(repository.tags.filter(name__regex=REFERRER_TAG_REGEX).select_related("manifest"))
    found: list[Referrer] = []
    index_ids = [tag.manifest_id for tag in tags if tag.manifest and tag.manifest.kind == "index"]
    children: dict[int, list[ManifestChild]] = {}
    for child in ManifestChild.objects.filter(parent_id__in=index_ids):
        children.setdefault(child.parent_id, []).append(child)
    stored = {row.digest: bytes(row.raw) for row in Manifest.objects.filter(
        digest__in=[c.digest for group in children.values() for c in group]).only("digest", "raw")}
    for tag in tags:
        subject, suffix = tag_subject(tag.name)
        if tag.manifest is None:
            continue
        if suffix:
            found.append(Referrer(repository=repository, subject=subject, digest=tag.digest, tag=tag.name,
                                  source="cosign-tag", media_type=tag.media_type,
                                  artifact_type=tag.manifest.artifact_type,
                                  kind=manifest_classify(bytes(tag.manifest.raw), cosign_suffix=suffix)))
            continue
        for entry in index_referrers(bytes(tag.manifest.raw)):
            raw = stored.get(entry.digest)
            kind = manifest_classify(raw, annotations=entry.annotations) if raw is not None else classify(
                artifact_type=entry.artifact_type, annotations=entry.annotations)
            found.append(Referrer(repository=repository, subject=subject, digest=entry.digest, tag=tag.name,
                                  source="tag-schema", media_type=entry.media_type,
                                  artifact_type=entry.artifact_type, kind=kind))
    return found


def _from_api(client, repository: Repository, subjects: list[str]) -> tuple[list[Referrer], set[str]]:
    found: list[Referrer] = []
    asked: set[str] = set()
    for subject in subjects:
        try:
            answer = referrers_get(client, repository.name, subject)
        except errors.RegistryError as exc:
            logger.info("referrers of %s@%s: %s", repository, subject, exc)
            continue
        if answer is None:
            break  # not served here: the tag schema is all there is
        asked.add(subject)
        for entry in answer:
            found.append(Referrer(
                repository=repository, subject=subject, digest=entry.digest, source="referrers-api",
                media_type=entry.media_type, artifact_type=entry.artifact_type,
                kind=classify(artifact_type=entry.artifact_type, annotations=entry.annotations)))
    return found, asked


_REFERRER_FIELDS = ("subject", "digest", "kind", "media_type", "artifact_type", "source", "tag")


def _rows_same(repository: Repository, referrers: list[Referrer]) -> bool:
    """Whether the repository's referrer rows already say exactly this (one query)."""
    stored = set(Referrer.objects.filter(repository=repository).values_list(*_REFERRER_FIELDS))
    return stored == {tuple(getattr(r, name) for name in _REFERRER_FIELDS) for r in referrers}


def referrers_refresh(*, repository: Repository, client=None, api_subjects: list[str] = ()) -> dict:
    """Replace the repository's referrer rows with what its tags (and, for `api_subjects`, the API) say."""
    found = _from_tags(repository)
    asked: set[str] = set()
    if client is not None and api_subjects:
        from_api, asked = _from_api(client, repository, list(api_subjects))
        found += from_api
    unique = {(r.subject, r.digest): r for r in found}
    if not asked and _rows_same(repository, list(unique.values())):
        return {"referrers": len(unique)}  # a re-scan that changed nothing writes nothing
    with transaction.atomic():
        before = set(Referrer.objects.filter(repository=repository).exclude(kind=UNKNOWN).values_list(
            "subject", "kind"))
        # API rows of subjects not asked this time stay as they were.
        Referrer.objects.filter(repository=repository).exclude(source="referrers-api").delete()
        Referrer.objects.filter(repository=repository, source="referrers-api", subject__in=asked).delete()
        Referrer.objects.bulk_create(list(unique.values()), ignore_conflicts=True, batch_size=500)
        after = set(Referrer.objects.filter(repository=repository).exclude(kind=UNKNOWN).values_list(
            "subject", "kind"))
    lost: dict[str, list[str]] = {}
    for subject, kind in sorted(before - after):
        lost.setdefault(subject, []).append(kind)
    if lost:
        _signatures_lost(repository, lost)
    return {"referrers": len(unique)}


def _signatures_lost(repository: Repository, lost: dict[str, list[str]]) -> None:
    """signature_lost for each tag whose platform (or own manifest) had a signature or attestation that is gone."""
    from .events import event_record

    for name, platform, digest in TagPlatform.objects.filter(
            tag__repository=repository, digest__in=list(lost)).values_list("tag__name", "platform", "digest"):
        event_record(kind=Event.SIGNATURE_LOST, registry=repository.registry, repository=repository.name, tag=name,
                     new_digest=digest, platforms=[platform] if platform else [],
                     detail=f"{repository.name}:{name}: {', '.join(lost[digest])} of {platform or digest} gone")


def scan_referrers(*, client, repository: Repository, new_digests: set[str]) -> dict:
    """The scan's hook: never fails the scan that calls it."""
    try:
        subjects: list[str] = []
        if settings.REFERRERS_API and new_digests:
            subjects = sorted(set(TagPlatform.objects.filter(tag__repository=repository, digest__in=new_digests)
                                  .values_list("digest", flat=True))
                              | set(Tag.objects.filter(repository=repository, digest__in=new_digests)
                                    .exclude(name__regex=REFERRER_TAG_REGEX).values_list("digest", flat=True)))
        return referrers_refresh(repository=repository, client=client, api_subjects=subjects)
    except Exception:
        logger.exception("reading the referrers of %s failed", repository)
        return {}


def signed_platforms(*, repository: Repository, digests: list[str]) -> dict[str, list[Referrer]]:
    """{subject digest: its referrers} for these digests."""
    attached: dict[str, list[Referrer]] = {}
    for row in Referrer.objects.filter(repository=repository, subject__in=digests):
        attached.setdefault(row.subject, []).append(row)
    return attached


def referrers_carry(*, client, registry, entries, target: str, progress=lambda event: None) -> list[dict]:
    """Copy into `target` what is attached to each kept child in its source repository.

    Read from the inventory (the source repositories' Referrer rows), so a
    child with nothing attached costs no request. `cosign verify target@<child>`
    then finds the child's signature in the target repository too.
    """
    carried: list[dict] = []
    sources = {(entry.source_repository, entry.descriptor.digest) for entry in entries
               if entry.source_repository != target}
    for source, subject in sorted(sources):
        rows = list(Referrer.objects.filter(repository__registry=registry, repository__name=source,
                                            subject=subject))
        done: set[str] = set()
        for row in rows:
            reference = row.tag or row.digest
            if reference in done:
                continue
            done.add(reference)
            try:
                referrer_copy(client, source=source, target=target, reference=reference, tag=row.tag)
            except errors.RegistryError as exc:
                progress({"event": "referrer", "subject": subject, "kind": row.kind, "error": str(exc)})
                continue
            item = {"subject": subject, "kind": row.kind, "tag": row.tag, "digest": row.digest, "from": source}
            carried.append(item)
            progress({"event": "referrer", **item})
    return carried


def referrers_to_carry(*, registry, entries, target: str) -> list[Referrer]:
    """For a preview: what `referrers_carry` would copy."""
    rows: list[Referrer] = []
    for entry in entries:
        if entry.source_repository != target:
            rows += Referrer.objects.filter(repository__registry=registry, repository__name=entry.source_repository,
                                            subject=entry.descriptor.digest).select_related("repository")
    return rows
