"""Scanning: learn what a registry holds, at the protocol's request floor.

Content addressed by digest never changes, so a manifest (and what its
config told us) is fetched once and stored forever. Only tag -> digest needs
refreshing: on a re-scan that is one HEAD per tag, and a GET only for a digest
not yet known. A first sight of a tag is one GET (its digest comes in the
answer's header), plus one GET per unknown child manifest and config.

Registry I/O runs in threads (the registry's concurrency setting); the
database is written from the calling thread only.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from registry import RegistryClient, errors
from registry.mediatypes import KIND_IMAGE, Manifest, parse_manifest
from registry.platform import Platform, platform_sort_key

from ..models import Job, ManifestChild, Registry, Repository, Tag, TagPlatform
from ..models import Manifest as ManifestRow
from . import jobs, queue
from .registries import registry_client

logger = logging.getLogger(__name__)

MAX_DEPTH = 4  # nested indexes deeper than this are not followed


@dataclass
class Learned:
    """A manifest fetched in this scan, with what its config told us."""

    manifest: Manifest
    platform: Platform | None = None
    created: datetime.datetime | None = None
    blob_size: int = 0  # config plus layers


@dataclass
class TagFetch:
    name: str
    digest: str = ""
    unchanged: bool = False
    learned: dict[str, Learned] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    error: str = ""


class _Known:
    """Digests already stored, shared by the fetching threads."""

    def __init__(self, digests: Iterable[str]) -> None:
        self._digests = set(digests)
        self._lock = threading.Lock()

    def claim(self, digest: str) -> bool:
        """True if this caller should fetch `digest` (nobody has it yet)."""
        with self._lock:
            if digest in self._digests:
                return False
            self._digests.add(digest)
            return True


def _learn(client: RegistryClient, repository: str, manifest: Manifest, known: _Known, fetch: TagFetch,
           depth: int = 0) -> None:
    """Fetch the config of an image, or the unknown children of an index."""
    learned = Learned(manifest=manifest)
    fetch.learned[manifest.digest] = learned
    if manifest.kind == KIND_IMAGE and manifest.config is not None:
        config = client.get_json_blob(repository, manifest.config.digest)
        try:
            learned.platform = Platform.from_json(config)
        except ValueError:
            learned.platform = None
        created = config.get("created")
        learned.created = parse_datetime(created) if isinstance(created, str) else None
        learned.blob_size = sum(blob.size for blob in manifest.blobs)
    elif manifest.is_index and depth < MAX_DEPTH:
        for child in manifest.children:
            if not known.claim(child.digest):
                continue
            try:
                child_manifest = client.get_manifest(repository, child.digest)
            except errors.NotFound:
                fetch.missing.append(child.digest)
                continue
            _learn(client, repository, child_manifest, known, fetch, depth + 1)


def tag_fetch(client: RegistryClient, repository: str, tag: str, *, stored_digest: str, known: _Known) -> TagFetch:
    """Registry I/O for one tag; never raises a registry error (it is recorded)."""
    fetch = TagFetch(name=tag)
    try:
        claimed = False
        if stored_digest:
            head = client.head_manifest(repository, tag)
            if head.digest == stored_digest:
                fetch.digest, fetch.unchanged = stored_digest, True
                return fetch
            if head.digest:
                claimed = known.claim(head.digest)
                if not claimed:  # stored already, or another tag is fetching it
                    fetch.digest = head.digest
                    return fetch
        manifest = client.get_manifest(repository, tag)
        fetch.digest = manifest.digest
        # The tag may have moved again between the HEAD and the GET: claim what we got.
        if (claimed and manifest.digest == head.digest) or known.claim(manifest.digest):
            _learn(client, repository, manifest, known, fetch)
    except errors.RegistryError as exc:
        fetch.error = str(exc)
    return fetch


# -- writing what was learned ------------------------------------------------


def _store_manifest(learned: Learned) -> ManifestRow:
    manifest = learned.manifest
    platform = learned.platform
    row, created = ManifestRow.objects.get_or_create(
        digest=manifest.digest,
        defaults={
            "media_type": manifest.media_type, "kind": manifest.kind, "raw": manifest.raw,
            "size": manifest.size + learned.blob_size,
            "config_digest": manifest.config.digest if manifest.config else "",
            "artifact_type": manifest.artifact_type or (
                manifest.config.media_type if manifest.kind == "artifact" and manifest.config else ""),
            "os": platform.os if platform else "", "architecture": platform.architecture if platform else "",
            "variant": platform.variant if platform else "", "os_version": platform.os_version if platform else "",
            "os_features": list(platform.os_features) if platform else [],
            "platform": platform.normalized if platform and not platform.is_unknown else "",
            "created": learned.created,
        },
    )
    if created and manifest.is_index:
        ManifestChild.objects.bulk_create([
            ManifestChild(
                parent=row, position=position, digest=child.digest, media_type=child.media_type, size=child.size,
                os=child.platform.os if child.platform else "",
                architecture=child.platform.architecture if child.platform else "",
                variant=child.platform.variant if child.platform else "",
                os_version=child.platform.os_version if child.platform else "",
                os_features=list(child.platform.os_features) if child.platform else [],
                platform=child.platform.normalized if child.platform and not child.platform.is_unknown else "",
                annotations=child.annotations, artifact_type=child.artifact_type,
                is_attestation=child.is_attestation, subject=child.attestation_subject,
            )
            for position, child in enumerate(manifest.children)
        ])
    return row


@dataclass
class Summary:
    platforms: list[tuple[str, str, str]]  # (normalized, os_version, digest)
    size: int
    created: datetime.datetime | None
    child_digests: list[str] = field(default_factory=list)


def manifest_summary(row: ManifestRow, *, depth: int = 0) -> Summary:
    """Platforms, total size and newest creation time of a stored manifest."""
    if row.kind != "index":
        platforms = [(row.platform, row.os_version, row.digest)] if row.platform else []
        return Summary(platforms, row.size, row.created)
    children = list(row.children.all())
    stored = {m.digest: m for m in ManifestRow.objects.filter(digest__in=[c.digest for c in children])}
    platforms: list[tuple[str, str, str]] = []
    size, created = 0, None
    child_digests = [child.digest for child in children]
    for child in children:
        if child.is_attestation:
            continue
        child_row = stored.get(child.digest)
        if child_row is not None and child_row.kind == "index" and depth < MAX_DEPTH:
            nested = manifest_summary(child_row, depth=depth + 1)
            platforms += nested.platforms
            size += nested.size
            child_digests += nested.child_digests
            created = max(filter(None, [created, nested.created]), default=None)
            continue
        if child.platform:
            platforms.append((child.platform, child.os_version, child.digest))
        if child_row is not None:
            size += child_row.size
            created = max(filter(None, [created, child_row.created]), default=None)
    return Summary(platforms, size, created, child_digests)


def _apply(repository: Repository, fetch: TagFetch, now: datetime.datetime, missing: set[str]) -> None:
    """Record one tag from what was fetched; `missing` holds the child digests that answered 404."""
    tag, _ = Tag.objects.get_or_create(repository=repository, name=fetch.name)
    tag.scanned_at = now
    if fetch.error:
        # Keep what we knew; say what went wrong.
        tag.error = fetch.error
        tag.save(update_fields=["scanned_at", "error"])
        return
    if fetch.unchanged and not tag.error:
        tag.save(update_fields=["scanned_at"])
        return
    row = ManifestRow.objects.filter(digest=fetch.digest).first()
    if row is None:
        tag.error = f"manifest {fetch.digest} was not stored"
        tag.save(update_fields=["scanned_at", "error"])
        return
    summary = manifest_summary(row)
    tag.digest, tag.media_type, tag.kind, tag.manifest = row.digest, row.media_type, row.kind, row
    tag.platforms = sorted({p for p, _, _ in summary.platforms}, key=platform_sort_key)
    tag.size, tag.created = summary.size, summary.created
    tag.missing = [d for d in summary.child_digests if d in missing]
    tag.error = ""
    tag.save()
    TagPlatform.objects.filter(tag=tag).delete()
    TagPlatform.objects.bulk_create(
        [TagPlatform(tag=tag, platform=p, os_version=v, digest=d) for p, v, d in summary.platforms],
        ignore_conflicts=True)


def repository_aggregate(repository: Repository) -> None:
    tags = list(repository.tags.values_list("platforms", "kind"))
    platforms = {p for platform_list, _ in tags for p in platform_list}
    repository.platforms = sorted(platforms, key=platform_sort_key)
    repository.tag_count = len(tags)
    repository.list_count = sum(1 for _, kind in tags if kind == "index")
    repository.save(update_fields=["platforms", "tag_count", "list_count", "scanned_at", "error"])


def repository_scan(*, client: RegistryClient, registry: Registry, name: str, only_tags: list[str] | None = None,
                    concurrency: int = 4) -> dict:
    """Scan one repository's tags (or only `only_tags`); returns counts."""
    repository, _ = Repository.objects.get_or_create(registry=registry, name=name)
    now = timezone.now()
    try:
        names = only_tags if only_tags is not None else list(client.tags(name))
    except errors.RegistryError as exc:
        if isinstance(exc, errors.NameUnknown) and only_tags is None:
            repository.delete()
            return {"tags": 0, "errors": 0, "deleted": True}
        repository.error, repository.scanned_at = str(exc), now
        repository.save(update_fields=["error", "scanned_at"])
        return {"tags": 0, "errors": 1}
    stored = dict(repository.tags.values_list("name", "digest"))
    known = _Known(ManifestRow.objects.values_list("digest", flat=True))
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        fetches = list(pool.map(
            lambda tag: tag_fetch(client, name, tag, stored_digest=stored.get(tag, ""), known=known), names))
    missing = {digest for fetch in fetches for digest in fetch.missing}
    with transaction.atomic():
        # Manifests first: tags sharing a digest learned it through one fetch only.
        for fetch in fetches:
            for learned in fetch.learned.values():
                _store_manifest(learned)
        for fetch in fetches:
            _apply(repository, fetch, now, missing)
        if only_tags is None:
            repository.tags.exclude(name__in=names).delete()
        repository.error, repository.scanned_at = "", now
        repository_aggregate(repository)
    return {"tags": len(names), "errors": sum(1 for f in fetches if f.error),
            "changed": sum(1 for f in fetches if not f.unchanged and not f.error)}


def registry_repositories(*, client: RegistryClient, registry: Registry) -> list[str]:
    """The catalog, or the watch list for registries that serve none (Docker Hub, GHCR)."""
    if registry.watch_list:
        return registry.watch_list
    return list(client.catalog())


def scan_enqueue(*, registry: Registry, repository: str = "", tags: list[str] | None = None, user=None) -> Job:
    from ..tasks import scan_run

    target = registry.name + (f"/{repository}" if repository else "") + (f":{','.join(tags)}" if tags else "")
    if not queue.queue_available():
        raise queue.QueueUnavailable()
    job = jobs.job_create(kind=Job.KIND_SCAN, registry=registry, target=target, user=user,
                          params={"repository": repository, "tags": tags})
    queue.job_enqueue(task=scan_run, job=job)
    return job


def scan_job_run(*, job_id: int) -> None:
    job = jobs.job_start(job_id=job_id)
    if job is None:
        return
    progress = jobs.JobProgress(job)
    registry = job.registry
    if registry is None:
        jobs.job_finish(job=job, progress=progress, error="the registry was removed")
        return
    repository, tags = job.params.get("repository") or "", job.params.get("tags")
    totals = {"repositories": 0, "tags": 0, "errors": 0, "changed": 0}
    error = ""
    try:
        with registry_client(registry=registry) as client:
            try:
                names = [repository] if repository else registry_repositories(client=client, registry=registry)
            except errors.RegistryError as exc:
                error = f"cannot list repositories: {exc}"
                names = []
            for name in names:
                counts = repository_scan(client=client, registry=registry, name=name, only_tags=tags,
                                         concurrency=registry.concurrency)
                totals["repositories"] += 1
                for key in ("tags", "errors", "changed"):
                    totals[key] += counts.get(key, 0)
                progress({"event": "repository", "name": name, **counts})
            if not repository and not error:
                Repository.objects.filter(registry=registry).exclude(name__in=names).delete()
            totals["requests"] = dict(client.counters)
    except Exception as exc:
        logger.exception("scan job %s crashed", job.pk)
        error = f"internal error: {type(exc).__name__}"
    if not repository and not tags:
        Registry.objects.filter(pk=registry.pk).update(last_scan_at=timezone.now(), last_scan_error=error)
    jobs.job_finish(job=job, progress=progress, error=error, result=totals)


def manifest_raw_parse(row: ManifestRow) -> Manifest:
    return parse_manifest(bytes(row.raw), digest=row.digest)
