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
import os
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from registry import RegistryClient, errors
from registry.mediatypes import KIND_IMAGE, Manifest, parse_manifest
from registry.platform import Platform, platform_sort_key
from registry.reference import validate_repository, validate_tag

from ..models import Job, ListCheck, ManifestChild, Registry, Repository, ScanPart, Tag, TagPlatform
from ..models import Manifest as ManifestRow
from ..signals import TagMove, tags_moved
from . import events, history, jobs, queue, signatures
from .fetched import ScanShare
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
    config: dict | None = None  # an image's config, kept for its page


@dataclass
class TagFetch:
    name: str
    digest: str = ""
    unchanged: bool = False
    learned: dict[str, Learned] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    error: str = ""


class _Known:
    """What is stored or being fetched, shared by the fetching threads.

    A digest is looked up in the database the first time a thread meets it
    (the inventory may hold millions; none is loaded whole), then remembered.
    The children of a repository's lists are looked up together, in one query.
    """

    def __init__(self, share: ScanShare | None = None) -> None:
        self._digests: set[str] = set()
        self._configs: dict[str, dict] = {}
        self._pending: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        # The scan job's other parts (other repositories, other processes): what they fetched.
        self.share = share

    def manifest(self, digest: str, fetch) -> Manifest:
        """A claimed manifest by digest: from another part of the scan that fetched it, else fetched."""
        if self.share is None:
            return fetch()
        return self.share.manifest(digest, fetch)

    def published(self, manifest: Manifest) -> None:
        """A manifest read by tag, for the other parts that meet its digest."""
        if self.share is not None:
            self.share.manifest_publish(manifest)

    def claim_many(self, digests: list[str]) -> list[str]:
        """Those of `digests` this caller should fetch, in order: not stored, and nobody else is fetching them."""
        with self._lock:
            fresh = [d for d in dict.fromkeys(digests) if d not in self._digests]
        if not fresh:
            return []
        stored = {digest for chunk in _chunks(fresh)
                  for digest in ManifestRow.objects.filter(digest__in=chunk).values_list("digest", flat=True)}
        mine: list[str] = []
        with self._lock:
            for digest in fresh:
                if digest in self._digests:
                    continue
                self._digests.add(digest)
                if digest not in stored:
                    mine.append(digest)
        return mine

    def claim(self, digest: str) -> bool:
        return bool(self.claim_many([digest]))

    def config(self, digest: str, fetch) -> dict:
        """A config by digest, read once however many manifests share it (every attestation shares `{}`)."""
        while True:
            with self._lock:
                if digest in self._configs:
                    return self._configs[digest]
                waiting = self._pending.get(digest)
                if waiting is None:
                    self._pending[digest] = threading.Event()
                    break
            waiting.wait(timeout=60)
        try:
            config = _stored_config(digest)
            if config is None:
                config = self.share.config(digest, fetch) if self.share is not None else fetch()
            with self._lock:
                self._configs[digest] = config
            return config
        finally:
            with self._lock:
                self._pending.pop(digest).set()


# Configs up to this size are stored whole for the image's page (most are a few KiB).
CONFIG_KEEP_MAX = 256 * 1024
_PARTIAL = "\x00partial"  # marks a config rebuilt from a row's columns: not worth storing as the config


def _stored_config(digest: str) -> dict | None:
    """A config as far as the scan keeps it, from a stored manifest that uses it."""
    row = ManifestRow.objects.filter(config_digest=digest).values(
        "os", "architecture", "variant", "os_version", "os_features", "created", "config").first()
    if row is None:
        return None
    if isinstance(row["config"], dict):
        return row["config"]
    config: dict = {"os": row["os"], "architecture": row["architecture"], _PARTIAL: True}
    if row["variant"]:
        config["variant"] = row["variant"]
    if row["os_version"]:
        config["os.version"] = row["os_version"]
    if row["os_features"]:
        config["os.features"] = row["os_features"]
    if row["created"]:
        config["created"] = row["created"].isoformat()
    return config


_CONFIG_KEPT = ("os", "architecture", "variant", "os.version", "os.features", "created")


def _config_kept(config: dict, *, size: int) -> dict:
    """What a scan keeps of an image config (held in memory, and shared between parts): the whole
    config when it is small enough to store for the image's page, else the fields the scan uses."""
    if 0 <= size <= CONFIG_KEEP_MAX:
        return config
    return {key: config[key] for key in _CONFIG_KEPT if key in config}


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def _fetch_pool(workers: int) -> ThreadPoolExecutor:
    """This process's fetching threads, kept between repositories: a fan-out worker scans one
    repository after another, and starting threads for each costs more than its requests on a
    busy machine."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid() or _pool._max_workers < workers:
            _pool = ThreadPoolExecutor(max_workers=max(workers, 4), thread_name_prefix="scan-fetch")
            _pool_pid = os.getpid()
        return _pool


def _thread_map(function, items: list, workers: int) -> list:
    """`map` over `workers` threads, each closing its database connection when done."""
    from django.db import connections

    results: list = [None] * len(items)
    lock = threading.Lock()
    next_index = 0

    def work() -> None:
        nonlocal next_index
        try:
            while True:
                with lock:
                    if next_index >= len(items):
                        return
                    index = next_index
                    next_index += 1
                results[index] = function(items[index])
        finally:
            connections.close_all()

    count = max(1, min(workers, len(items)))
    if count == 1:
        for index, item in enumerate(items):
            results[index] = function(item)
        return results
    pool = _fetch_pool(count)
    for future in [pool.submit(work) for _ in range(count)]:
        future.result()
    return results


def _too_long(value: str, model: type, field_name: str) -> int:
    """The column's length when `value` does not fit in it, else 0."""
    limit = model._meta.get_field(field_name).max_length
    return limit if len(value) > limit else 0


_PLATFORM_FIELDS = (("os", "os"), ("architecture", "architecture"), ("variant", "variant"),
                    ("os_version", "os.version"), ("platform", "normalized platform"))


def _platform_values(platform: Platform) -> dict[str, str]:
    return {"os": platform.os, "architecture": platform.architecture, "variant": platform.variant,
            "os_version": platform.os_version, "platform": platform.normalized}


def _platform_fits(platform: Platform, model: type) -> bool:
    values = _platform_values(platform)
    return not any(_too_long(values[name], model, name) for name, _ in _PLATFORM_FIELDS)


def _check_fits(manifest: Manifest) -> None:
    """Refuse values longer than their columns, as the registry gave them.

    No real digest, media type or platform comes near these lengths; PostgreSQL
    would refuse the value and fail the whole repository's transaction.
    """
    checks: list[tuple[str, str, type, str]] = []
    if manifest.config is not None:
        checks.append(("config has a digest", manifest.config.digest, ManifestRow, "config_digest"))
        checks.append(("config has a mediaType", manifest.config.media_type, ManifestRow, "artifact_type"))
    checks.append(("the manifest has an artifactType", manifest.artifact_type, ManifestRow, "artifact_type"))
    for position, child in enumerate(manifest.children):
        where = f"manifests[{position}]"
        checks += [(f"{where} has a digest", child.digest, ManifestChild, "digest"),
                   (f"{where} has a mediaType", child.media_type, ManifestChild, "media_type"),
                   (f"{where} has an artifactType", child.artifact_type, ManifestChild, "artifact_type")]
        if child.platform is not None:
            values = _platform_values(child.platform)
            checks += [(f"{where} has a platform {label}", values[name], ManifestChild, name)
                       for name, label in _PLATFORM_FIELDS]
    for what, value, model, field_name in checks:
        if limit := _too_long(value, model, field_name):
            raise errors.ManifestInvalid(f"{what} longer than {limit} characters")
    for position, child in enumerate(manifest.children):
        if child.platform is not None and (problem := child.platform.grammar_problem()):
            raise errors.ManifestInvalid(f"manifests[{position}]: platform {problem}")


def _created(value: object) -> datetime.datetime | None:
    """A config's creation time; None for one that is no date ("2024-13-45") or none a database holds."""
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            return None
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=datetime.UTC)
        return parsed.astimezone(datetime.UTC)  # year 1 at +14:00 overflows here, not in the database
    except (ValueError, OverflowError):
        return None


def _learn(client: RegistryClient, repository: str, manifest: Manifest, known: _Known, fetch: TagFetch,
           depth: int = 0, deferred: list[tuple[TagFetch, Manifest]] | None = None) -> None:
    """Fetch the config of an image, or the unknown children of an index.

    With `deferred`, an index's children wait there for a second pass, after
    every tag of the repository is read: a child that is also tagged
    (`1.4-arm64`) is then known from its tag, not fetched again by digest.
    """
    _check_fits(manifest)
    learned = Learned(manifest=manifest)
    fetch.learned[manifest.digest] = learned
    if manifest.kind == KIND_IMAGE and manifest.config is not None:
        config = known.config(manifest.config.digest,
                              lambda: _config_kept(client.get_json_blob(repository, manifest.config.digest),
                                                   size=manifest.config.size))
        try:
            learned.platform = Platform.from_json(config)
        except ValueError:
            learned.platform = None
        if learned.platform is not None and not _platform_fits(learned.platform, ManifestRow):
            learned.platform = None  # as for any platform that is not one: the image is kept, without it
        if learned.platform is not None and (problem := learned.platform.grammar_problem()):
            # Refused, as in an index: a value that is no token would reach pages and CSV headers.
            raise errors.ManifestInvalid(f"config: platform {problem}")
        learned.created = _created(config.get("created"))
        learned.blob_size = sum(blob.size for blob in manifest.blobs)
        if manifest.config.size <= CONFIG_KEEP_MAX and not config.get(_PARTIAL):
            learned.config = config
    elif manifest.is_index and depth < MAX_DEPTH:
        if deferred is not None:
            deferred.append((fetch, manifest))
            return
        _learn_children(client, repository, manifest, known, fetch, depth)


def _learn_children(client: RegistryClient, repository: str, manifest: Manifest, known: _Known, fetch: TagFetch,
                    depth: int) -> None:
    for digest in known.claim_many([child.digest for child in manifest.children]):
        _learn_child(client, repository, digest, known, fetch, depth + 1)


def _learn_child(client: RegistryClient, repository: str, digest: str, known: _Known, fetch: TagFetch,
                 depth: int) -> None:
    """GET one claimed child and learn it; one that answers 404 is recorded as missing."""
    try:
        manifest = known.manifest(digest, lambda: client.get_manifest(repository, digest))
    except errors.NotFound:
        fetch.missing.append(digest)
        return
    _learn(client, repository, manifest, known, fetch, depth)


@contextmanager
def _tag_errors(fetch: TagFetch, repository: str) -> Iterator[None]:
    """Record a registry error on the tag; never raise one (the scan goes on with the other tags)."""
    try:
        yield
    except errors.RegistryError as exc:
        fetch.error = str(exc)
    except Exception as exc:
        # What a hostile registry serves must cost one tag at most, even when it finds a bug here.
        logger.exception("reading %s:%s failed", repository, fetch.name)
        fetch.error = f"internal error reading this tag: {type(exc).__name__}"
    if fetch.error:
        # Store nothing of a tag that failed half-way: an index kept without the child that failed
        # its check would be "known" on the next scan, and the error forgotten.
        fetch.learned.clear()


def tag_fetch(client: RegistryClient, repository: str, tag: str, *, stored_digest: str, known: _Known,
              deferred: list[tuple[TagFetch, Manifest]] | None = None) -> TagFetch:
    """Registry I/O for one tag; never raises a registry error (it is recorded)."""
    fetch = TagFetch(name=tag)
    with _tag_errors(fetch, repository):
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
        known.published(manifest)
        # The tag may have moved again between the HEAD and the GET: claim what we got.
        if (claimed and manifest.digest == head.digest) or known.claim(manifest.digest):
            _learn(client, repository, manifest, known, fetch, deferred=deferred)
    return fetch


def child_fetch(client: RegistryClient, repository: str, digest: str, fetch: TagFetch, known: _Known) -> None:
    """The second pass: one child of a list that `fetch` read, claimed for it."""
    if fetch.error:
        return
    with _tag_errors(fetch, repository):
        _learn_child(client, repository, digest, known, fetch, 1)


def _grammar_split(names: list[str], validate) -> tuple[list[str], dict[str, str]]:
    """Names that follow the grammar, and why each other one does not.

    A name that breaks it is never requested (`../..` would leave /v2/) nor
    stored (no page could link to it, no column may fit it).
    """
    valid: list[str] = []
    invalid: dict[str, str] = {}
    for name in names:
        try:
            valid.append(validate(name))
        except errors.InvalidReference as exc:
            invalid[name] = str(exc)
    return valid, invalid


def _skipped_note(skipped: dict[str, str]) -> str:
    if not skipped:
        return ""
    return f"the catalog lists {len(skipped)} names that break the repository grammar, skipped: {_shown(skipped)}"


def _shown(names, *, limit: int = 5) -> str:
    """A few names for a message, each cut short."""
    names = list(names)
    shown = ", ".join(repr(n if len(n) <= 40 else n[:40] + "…") for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# -- writing what was learned ------------------------------------------------


def _manifest_row(learned: Learned) -> ManifestRow:
    manifest = learned.manifest
    platform = learned.platform
    return ManifestRow(
        digest=manifest.digest, media_type=manifest.media_type, kind=manifest.kind, raw=manifest.raw,
        size=manifest.size + learned.blob_size,
        config_digest=manifest.config.digest if manifest.config else "",
        artifact_type=manifest.artifact_type or (
            manifest.config.media_type if manifest.kind == "artifact" and manifest.config else ""),
        os=platform.os if platform else "", architecture=platform.architecture if platform else "",
        variant=platform.variant if platform else "", os_version=platform.os_version if platform else "",
        os_features=list(platform.os_features) if platform else [],
        platform=platform.normalized if platform and not platform.is_unknown else "",
        created=learned.created, config=learned.config,
    )


def manifests_store(learned: list[Learned]) -> None:
    """Store manifests (and the entries of indexes) in a few statements; safe beside another writer."""
    if not learned:
        return
    ManifestRow.objects.bulk_create([_manifest_row(item) for item in learned], ignore_conflicts=True,
                                    batch_size=500)
    indexes = {item.manifest.digest: item.manifest for item in learned if item.manifest.is_index}
    if not indexes:
        return
    ids = dict(ManifestRow.objects.filter(digest__in=list(indexes)).values_list("digest", "pk"))
    ManifestChild.objects.bulk_create([
        ManifestChild(
            parent_id=ids[digest], position=position, digest=child.digest, media_type=child.media_type,
            size=child.size,
            os=child.platform.os if child.platform else "",
            architecture=child.platform.architecture if child.platform else "",
            variant=child.platform.variant if child.platform else "",
            os_version=child.platform.os_version if child.platform else "",
            os_features=list(child.platform.os_features) if child.platform else [],
            platform=child.platform.normalized if child.platform and not child.platform.is_unknown else "",
            annotations=child.annotations, artifact_type=child.artifact_type,
            is_attestation=child.is_attestation, subject=child.attestation_subject,
        )
        for digest, manifest in indexes.items()
        for position, child in enumerate(manifest.children)
    ], ignore_conflicts=True, batch_size=500)


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


def _chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def tags_apply(repository: Repository, fetches: list[TagFetch], now: datetime.datetime, missing: set[str]) -> None:
    """Record every fetched tag in a handful of statements; `missing`: child digests that answered 404.

    A tag whose fetch failed keeps what we knew and says what went wrong; an
    unchanged tag only gets its scan time.
    """
    existing = {tag.name: tag for names in _chunks([f.name for f in fetches])
                for tag in Tag.objects.filter(repository=repository, name__in=names)}
    unchanged_ids = [existing[f.name].pk for f in fetches
                     if f.unchanged and not f.error and f.name in existing and not existing[f.name].error]
    for ids in _chunks(unchanged_ids):
        Tag.objects.filter(pk__in=ids).update(scanned_at=now)
    changed = [f for f in fetches if not f.error and not (f.name in existing and f.unchanged
                                                           and not existing[f.name].error)]
    changed_ids = {id(f) for f in changed}
    rows = {digest: row for digests in _chunks(sorted({f.digest for f in changed}))
            for digest, row in ManifestRow.objects.in_bulk(digests, field_name="digest").items()}
    summaries: dict[str, Summary] = {}
    to_create: list[Tag] = []
    to_update: list[Tag] = []
    platform_rows: dict[str, list[tuple[str, str, str]]] = {}
    moves: list[TagMove] = []
    for fetch in fetches:
        tag = existing.get(fetch.name) or Tag(repository=repository, name=fetch.name)
        tag.scanned_at = now
        is_changed = id(fetch) in changed_ids
        row = rows.get(fetch.digest) if is_changed else None
        if fetch.error or (is_changed and row is None):
            tag.error = fetch.error or f"manifest {fetch.digest} was not stored"
        elif is_changed:
            if tag.digest != row.digest:
                moves.append(TagMove(tag=fetch.name, old_digest=tag.digest, new_digest=row.digest))
            summary = summaries.get(row.digest) or summaries.setdefault(row.digest, manifest_summary(row))
            tag.digest, tag.media_type, tag.kind, tag.manifest = row.digest, row.media_type, row.kind, row
            tag.platforms = sorted({p for p, _, _ in summary.platforms}, key=platform_sort_key)
            tag.size, tag.created = summary.size, summary.created
            tag.missing = [d for d in summary.child_digests if d in missing]
            tag.error = ""
            platform_rows[fetch.name] = summary.platforms
        else:
            continue
        (to_update if tag.pk else to_create).append(tag)
    Tag.objects.bulk_create(to_create, batch_size=500)
    Tag.objects.bulk_update(to_update, ["scanned_at", "error", "digest", "media_type", "kind", "manifest",
                                        "platforms", "size", "created", "missing"], batch_size=500)
    tag_ids = {name: pk for names in _chunks(list(platform_rows))
               for name, pk in Tag.objects.filter(repository=repository, name__in=names).values_list("name", "pk")}
    for ids in _chunks(list(tag_ids.values())):
        TagPlatform.objects.filter(tag_id__in=ids).delete()
    TagPlatform.objects.bulk_create(
        [TagPlatform(tag_id=tag_ids[name], platform=p, os_version=v, digest=d)
         for name, summary_platforms in platform_rows.items() for p, v, d in summary_platforms],
        ignore_conflicts=True, batch_size=500)
    if moves:
        transaction.on_commit(lambda: tags_moved.send(sender=Repository, repository=repository, moves=moves))


def repository_aggregate(repository: Repository) -> None:
    tags = list(repository.tags.values_list("platforms", "kind"))
    platforms = {p for platform_list, _ in tags for p in platform_list}
    repository.platforms = sorted(platforms, key=platform_sort_key)
    repository.tag_count = len(tags)
    repository.list_count = sum(1 for _, kind in tags if kind == "index")
    repository.save(update_fields=["platforms", "tag_count", "list_count", "scanned_at", "error"])


def repository_scan(*, client: RegistryClient, registry: Registry, name: str, only_tags: list[str] | None = None,
                    concurrency: int = 4, verify_children: bool = False, share: ScanShare | None = None) -> dict:
    """Scan one repository's tags (or only `only_tags`); returns counts.

    `verify_children` also checks that every child of the lists these tags
    hold is still in the repository (children_verify).
    """
    try:
        validate_repository(name)
    except errors.InvalidReference as exc:
        return {"tags": 0, "errors": 1, "note": str(exc)}
    # Rows are made only from what the registry answered, never before asking:
    # a repository it does not know, or a tag asked for by name that it did
    # not serve, leaves no row.
    repository = Repository.objects.filter(registry=registry, name=name).first()
    now = timezone.now()
    try:
        listed = only_tags if only_tags is not None else list(client.tags(name))
    except errors.RegistryError as exc:
        if isinstance(exc, errors.NameUnknown) and only_tags is None:
            if repository is not None:
                repository.delete()
            return {"tags": 0, "errors": 0, "deleted": True}
        if repository is None and only_tags is None:
            # The registry answered for this name with something other than
            # "unknown" (a loop, a 5xx): the repository's row carries the error.
            repository, _ = Repository.objects.get_or_create(registry=registry, name=name)
        if repository is not None:
            repository.error, repository.scanned_at = str(exc), now
            repository.save(update_fields=["error", "scanned_at"])
        return {"tags": 0, "errors": 1, "note": str(exc)}
    names, invalid = _grammar_split(listed, validate_tag)
    note = f"skipped {len(invalid)} tag names that break the grammar: {_shown(invalid)}" if invalid else ""
    stored = dict(repository.tags.values_list("name", "digest")) if repository is not None else {}
    known = _Known(share)
    deferred: list[tuple[TagFetch, Manifest]] = []
    fetches = _thread_map(lambda tag: tag_fetch(client, name, tag, stored_digest=stored.get(tag, ""), known=known,
                                                deferred=deferred), names, concurrency)
    # The second pass, one work item per child (a repository's lists share many),
    # claimed with one query; each child is fetched for the first tag that met it.
    owners: dict[str, TagFetch] = {}
    for fetch, manifest in deferred:
        for child in manifest.children:
            owners.setdefault(child.digest, fetch)
    _thread_map(lambda digest: child_fetch(client, name, digest, owners[digest], known),
                known.claim_many(list(owners)), concurrency)
    missing = {digest for fetch in fetches for digest in fetch.missing}
    errors_unstored: list[TagFetch] = []
    if only_tags is not None:
        # Tags asked for by name, not listed by the registry: one that failed
        # and is not stored yet was never confirmed to exist.
        errors_unstored = [f for f in fetches if f.error and f.name not in stored]
        fetches = [f for f in fetches if not (f.error and f.name not in stored)]
        names = [f.name for f in fetches]
        if repository is None and not fetches:
            return {"tags": 0, "errors": len(errors_unstored),
                    "note": "; ".join(f.error for f in errors_unstored[:3])}
    repository = _repository_write(registry=registry, name=name, fetches=fetches, now=now, missing=missing,
                                   note=note, listed=names if only_tags is None else None)
    counts = {"tags": len(names), "errors": sum(1 for f in fetches if f.error) + len(errors_unstored),
              "changed": sum(1 for f in fetches if not f.unchanged and not f.error)}
    if invalid:
        counts.update(skipped=len(invalid), note=note)
    fetched = {digest for fetch in fetches if not fetch.error for digest in fetch.learned}
    if verify_children:
        counts.update(children_verify(client=client, repository=repository, names=names, present=fetched,
                                      concurrency=concurrency))
    elif only_tags is None:
        counts.update(children_check_due(client=client, repository=repository, present=fetched,
                                         concurrency=concurrency))
    signatures.scan_referrers(client=client, repository=repository, new_digests=fetched)
    return counts


def _repository_write(*, registry: Registry, name: str, fetches: list[TagFetch], now: datetime.datetime,
                      missing: set[str], note: str, listed: list[str] | None) -> Repository:
    """Store what was fetched for some tags of one repository; `listed`: the whole tag list, whose
    other tags are gone."""
    with transaction.atomic():
        # One writer per repository at a time (scans and push refreshes run on
        # several workers): the aggregate below then counts what committed
        # before us, and is not overwritten by a writer that could not see our
        # tags. The row may have gone meanwhile (a scan with an older catalog):
        # what we just fetched says it exists.
        repository, _ = Repository.objects.select_for_update().get_or_create(registry=registry, name=name)
        # Manifests first: tags sharing a digest learned it through one fetch only.
        manifests_store([learned for fetch in fetches for learned in fetch.learned.values()])
        tags_apply(repository, fetches, now, missing)
        if listed is not None:
            # Not a tag another job recorded after our listing (it is newer than our list).
            repository.tags.exclude(name__in=listed).filter(
                Q(scanned_at__lt=now) | Q(scanned_at__isnull=True)).delete()
        repository.error, repository.scanned_at = note, now
        repository_aggregate(repository)
    return repository


def tag_record(*, client: RegistryClient, registry: Registry, repository: str, tag: str, raw: bytes,
               media_type: str, digest: str) -> None:
    """Record a tag this app has just put, from the bytes it put: no request for what the
    inventory holds (the children and configs of a list assembled from scanned images).

    What it lacks is fetched as a scan would; an error raises (the caller says the
    inventory could not be updated, and the next scan records the tag).
    """
    validate_repository(repository)
    validate_tag(tag)
    manifest = parse_manifest(raw, content_type=media_type, digest=digest)
    known = _Known()
    fetch = TagFetch(name=tag, digest=manifest.digest)
    if known.claim(manifest.digest):
        _learn(client, repository, manifest, known, fetch)
    _repository_write(registry=registry, name=repository, fetches=[fetch], now=timezone.now(),
                      missing=set(fetch.missing), note="", listed=None)


def children_check_due(*, client: RegistryClient, repository: Repository, present: set[str],
                       concurrency: int = 4) -> dict:
    """Check the children of the lists not checked for CHILDREN_CHECK_SECONDS (oldest first, at most
    CHILDREN_CHECK_LISTS lists per repository and scan), so a child deleted under a list is noticed by
    the periodic scans.

    A list seen for the first time counts as checked now: its children were
    just fetched, or are known from the inventory. Nothing is requested while
    every list was checked recently, so a re-scan stays at one HEAD per tag.
    """
    now = timezone.now()
    lists = dict(repository.tags.filter(kind="index", error="", manifest__isnull=False).values_list("name", "digest"))
    digests = set(lists.values())
    checked = dict(ListCheck.objects.filter(repository=repository).values_list("digest", "checked_at"))
    ListCheck.objects.filter(repository=repository).exclude(digest__in=digests).delete()
    ListCheck.objects.bulk_create([ListCheck(repository=repository, digest=digest, checked_at=now)
                                   for digest in digests - set(checked)], ignore_conflicts=True)
    cutoff = now - datetime.timedelta(seconds=settings.CHILDREN_CHECK_SECONDS)
    due = sorted((at, digest) for digest, at in checked.items() if digest in digests and at < cutoff)
    due_digests = {digest for _, digest in due[:settings.CHILDREN_CHECK_LISTS]}
    if not due_digests:
        return {}
    return children_verify(client=client, repository=repository, present=present, concurrency=concurrency,
                           names=[name for name, digest in lists.items() if digest in due_digests])


def _child_present(client: RegistryClient, repository: str, digest: str) -> bool | None:
    """Whether the repository serves this manifest; None when the registry would not say."""
    try:
        return client.manifest_exists(repository, digest)
    except errors.RegistryError:
        return None


def children_verify(*, client: RegistryClient, repository: Repository, names: list[str], present: set[str],
                    concurrency: int = 4) -> dict:
    """Check that the children of the lists these tags hold are still in the repository.

    A scan learns a list's children once (its digest never changes), but a
    child can be deleted under it later, by a clean-up of "untagged"
    manifests. One HEAD per distinct child, none for a child this scan has
    just fetched (`present`); each tag records the children that answered 404.
    """
    tags = [tag for chunk in _chunks(names)
            for tag in repository.tags.filter(name__in=chunk, kind="index", error="").select_related("manifest")]
    summaries: dict[str, list[str]] = {}
    for tag in tags:
        if tag.manifest is not None and tag.manifest.digest not in summaries:
            summaries[tag.manifest.digest] = manifest_summary(tag.manifest).child_digests
    to_check = sorted({digest for digests in summaries.values() for digest in digests} - present)
    answers = _thread_map(lambda digest: _child_present(client, repository.name, digest), to_check, concurrency)
    missing = {digest for digest, answer in zip(to_check, answers, strict=True) if answer is False}
    before = {tag.pk: set(tag.missing) for tag in tags}
    for tag in tags:
        tag.missing = [d for d in summaries.get(tag.manifest.digest if tag.manifest else "", []) if d in missing]
    Tag.objects.bulk_update(tags, ["missing"], batch_size=500)
    events.children_missing_record(repository=repository, tags=tags, before=before)
    _lists_checked(repository, list(summaries), timezone.now())
    return {"children_checked": len(to_check), "children_missing": len(missing),
            "children_unchecked": sum(1 for answer in answers if answer is None)}


def _lists_checked(repository: Repository, digests: list[str], at: datetime.datetime) -> None:
    for chunk in _chunks(digests):
        ListCheck.objects.filter(repository=repository, digest__in=chunk).update(checked_at=at)
        ListCheck.objects.bulk_create([ListCheck(repository=repository, digest=d, checked_at=at) for d in chunk],
                                      ignore_conflicts=True)


def registry_repositories(*, client: RegistryClient, registry: Registry) -> list[str]:
    """The catalog, or the watch list for registries that serve none (Docker Hub, GHCR)."""
    if registry.watch_list:
        return registry.watch_list
    return list(client.catalog())


def scan_enqueue(*, registry: Registry, repository: str = "", tags: list[str] | None = None, user=None,
                 verify_children: bool = False) -> Job:
    """Queue a scan of a registry, a repository or some tags; `verify_children`
    (a repository or its tags) also checks the children of their lists."""
    from ..tasks import scan_run

    tags = tags if repository else None  # tags are named within a repository: without one, the registry
    target = registry.name + (f"/{repository}" if repository else "") + (f":{','.join(tags)}" if tags else "")
    if not queue.queue_available():
        raise queue.QueueUnavailable()
    job = jobs.job_create(kind=Job.KIND_SCAN, registry=registry, target=target, user=user,
                          params={"repository": repository, "tags": tags,
                                  "verify": bool(verify_children and repository)})
    queue.job_enqueue(task=scan_run, job=job)
    return job


_TOTALS = ("tags", "errors", "changed", "children_checked", "children_missing", "children_unchecked")


def scan_job_run(*, job_id: int, worker: str = "") -> None:
    """Run a scan job to its end in this process (tests, the benchmark, a machine without a worker).

    The same code the workers run: a repository or some tags in one go; a
    whole registry listed, then one part per repository (scan_part_run), here
    one after another instead of one task each.
    """
    scan_job_fanout(job_id=job_id, worker=worker, inline=True)


def _scan_repository(job: Job, progress: jobs.JobProgress) -> None:
    """A scan of one repository, or of some of its tags."""
    registry = job.registry
    repository, tags = job.params.get("repository") or "", job.params.get("tags")
    totals = {"repositories": 0, "tags": 0, "errors": 0, "changed": 0}
    error = ""
    try:
        with registry_client(registry=registry) as client:
            counts = repository_scan(client=client, registry=registry, name=repository, only_tags=tags,
                                     concurrency=registry.concurrency,
                                     verify_children=bool(job.params.get("verify")))
            totals["repositories"] = 1
            for key in _TOTALS:
                if key in counts:
                    totals[key] = totals.get(key, 0) + counts[key]
            progress({"event": "repository", "name": repository, **counts})
            totals["requests"] = dict(client.counters)
    except Exception as exc:
        if not isinstance(exc, errors.RegistryError | jobs.CredentialsUndecryptable):
            logger.exception("scan job %s crashed", job.pk)
        error, _ = jobs.job_error(exc)
    if repository and not tags and not error:
        history.scan_snapshot(job=job, repository=repository)
    jobs.job_finish(job=job, progress=progress, error=error, result=totals)


# -- a registry scan split into one task per repository ------------------------


def scan_job_fanout(*, job_id: int, worker: str = "", inline: bool = False) -> None:
    """The worker's entry point for a scan job.

    A whole-registry scan lists the repositories, then enqueues one task per
    repository, so that adding workers (on other machines, same Redis and
    database) shortens it; the last repository to finish closes the job.
    Repository and tag scans run here and now. `inline` runs the parts here,
    one after another (scan_job_run).
    """
    job = Job.objects.select_related("registry").filter(pk=job_id).first()
    if job is None or job.is_done:
        return
    if job.params.get("repository") or job.registry is None:
        jobs.job_run(job_id=job_id, runner=_scan_repository, worker=worker)
        return
    if job.params.get("names") is not None:
        # Redelivered after the fan-out: the repository tasks are queued already.
        return
    jobs.job_run(job_id=job_id, runner=lambda job, progress: _scan_fanout(job, progress, inline=inline),
                 worker=worker)
    if inline:
        job = Job.objects.get(pk=job_id)
        for name in job.params.get("names") or ():
            scan_part_run(job_id=job_id, name=name, share=False)


def _scan_fanout(job: Job, progress: jobs.JobProgress, *, inline: bool = False) -> object:
    registry = job.registry
    try:
        with registry_client(registry=registry) as client:
            names = registry_repositories(client=client, registry=registry)
            listing_requests = dict(client.counters)
    except Exception as exc:
        message = str(exc) if isinstance(exc, errors.RegistryError) else jobs.job_error(exc)[0]
        error = f"cannot list repositories: {message}"
        Registry.objects.filter(pk=registry.pk).update(last_scan_at=timezone.now(), last_scan_error=error)
        raise jobs.JobFailed(error, result={"repositories": 0, "tags": 0, "errors": 0}) from exc
    from ..tasks import scan_repository_run

    names, skipped = _grammar_split(names, validate_repository)
    at = timezone.now().isoformat(timespec="milliseconds")
    job.params = {**job.params, "names": names, "started": timezone.now().isoformat(),
                  "share": secrets.token_hex(8)}
    job.result = {"listing_requests": listing_requests, "skipped": skipped}
    job.steps = [*job.steps, *({"at": at, "event": "skipped", "name": name, "note": reason}
                               for name, reason in skipped.items()),
                 {"at": at, "event": "fanout", "name": registry.name, "repositories": len(names)}]
    job.save(update_fields=["params", "result", "steps"])
    progress.steps = list(job.steps)
    if not names:
        _scan_close(job)
        return None
    if not inline:
        for name in names:
            scan_repository_run.delay(job.pk, name)
    return jobs.CONTINUES  # the last repository task closes the job


def scan_part_run(*, job_id: int, name: str, share: bool = True) -> None:
    """One repository of a fanned-out scan; idempotent. `share`: with the parts running
    at the same time (fetched.py); parts run one after another need not."""
    job = Job.objects.select_related("registry").filter(pk=job_id).first()
    if job is None or job.is_done or job.registry is None:
        return
    if ScanPart.objects.filter(job=job, repository=name).exists():
        return
    registry = job.registry
    share = (ScanShare.for_job(job_id, job.params["share"])
             if share and job.params.get("share") and len(job.params.get("names") or ()) > 1 else None)
    try:
        with registry_client(registry=registry) as client:
            counts = repository_scan(client=client, registry=registry, name=name, concurrency=registry.concurrency,
                                     share=share)
            counts["requests"] = dict(client.counters)
            if share is not None and share.hits:
                counts["shared_hits"] = share.hits
    except Exception as exc:  # one repository's failure must not stall the whole job
        if not isinstance(exc, errors.RegistryError | jobs.CredentialsUndecryptable):
            logger.exception("scan of %s in job %s crashed", name, job_id)
        counts = {"tags": 0, "errors": 1, "crash": type(exc).__name__, "note": jobs.job_error(exc)[0]}
    finally:
        if share is not None:
            share.close()
    try:
        _, created = ScanPart.objects.get_or_create(job=job, repository=name, defaults={"counts": counts})
        if created and ScanPart.objects.filter(job=job).count() >= len(job.params.get("names") or ()):
            with transaction.atomic():
                job = Job.objects.select_for_update().get(pk=job_id)
                if not job.is_done:
                    _scan_close(job)
    except Exception as exc:
        # The part cannot be counted (or the job closed): the job would wait for it forever.
        logger.exception("recording %s of scan job %s failed", name, job_id)
        jobs.job_fail(job=Job.objects.get(pk=job_id), progress=None, exc=jobs.JobFailed(
            f"recording the scan of {name} failed: {jobs.job_error(exc)[0]}"))


def _scan_close(job: Job) -> None:
    """Sum the parts, forget repositories gone from the catalog, finish the job."""
    names = job.params.get("names") or []
    skipped = job.result.get("skipped") or {}
    totals: dict = {"repositories": 0, "tags": 0, "errors": 0, "changed": 0, "skipped": len(skipped),
                    "requests": dict(job.result.get("listing_requests") or {})}
    progress = jobs.JobProgress(job)
    for part in ScanPart.objects.filter(job=job).order_by("finished_at", "pk"):
        progress.steps.append({"at": part.finished_at.isoformat(timespec="milliseconds"), "event": "repository",
                               "name": part.repository, **{k: v for k, v in part.counts.items()
                                                           if k not in ("requests", "shared_hits")}})
        totals["repositories"] += 1
        for key in ("tags", "errors", "changed"):
            totals[key] += part.counts.get(key, 0)
        for key in ("children_checked", "children_missing", "children_unchecked"):
            if key in part.counts:
                totals[key] = totals.get(key, 0) + part.counts[key]
        if part.counts.get("shared_hits"):
            totals["shared_hits"] = totals.get("shared_hits", 0) + part.counts["shared_hits"]
        for kind, count in (part.counts.get("requests") or {}).items():
            totals["requests"][kind] = totals["requests"].get(kind, 0) + count
    started = parse_datetime(job.params.get("started") or "") or job.started_at
    Repository.objects.filter(registry=job.registry, scanned_at__lt=started).exclude(name__in=names).delete()
    Registry.objects.filter(pk=job.registry_id).update(last_scan_at=timezone.now(),
                                                       last_scan_error=_skipped_note(skipped))
    history.scan_snapshot(job=job)
    jobs.job_finish(job=job, progress=progress, result=totals)


def manifest_raw_parse(row: ManifestRow) -> Manifest:
    return parse_manifest(bytes(row.raw), digest=row.digest)
