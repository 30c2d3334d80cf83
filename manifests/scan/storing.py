"""Storing: what a scan learned, written in a handful of statements per repository.

Values longer than their columns are refused first, as the registry gave them
(columns_check): PostgreSQL would refuse the value and fail the whole
repository's transaction.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from django.db import connection, models, transaction
from django.db.models import Q

from registry import errors
from registry.mediatypes import Manifest
from registry.platform import Platform, platform_sort_key

from .. import selectors
from ..models import Manifest as ManifestRow
from ..models import ManifestChild, Registry, Repository, Tag, TagPlatform
from ..signals import TagMove, tags_moved

if TYPE_CHECKING:
    from . import fetching

def _too_long(value: str, model: type, field_name: str) -> int:
    """The column's length when `value` does not fit in it, else 0."""
    limit = model._meta.get_field(field_name).max_length
    return limit if len(value) > limit else 0


_PLATFORM_FIELDS = (("os", "os"), ("architecture", "architecture"), ("variant", "variant"),
                    ("os_version", "os.version"), ("platform", "normalized platform"))


def _platform_values(platform: Platform) -> dict[str, str]:
    return {"os": platform.os, "architecture": platform.architecture, "variant": platform.variant,
            "os_version": platform.os_version, "platform": platform.normalized}


def platform_fits(platform: Platform, model: type) -> bool:
    values = _platform_values(platform)
    return not any(_too_long(values[name], model, name) for name, _ in _PLATFORM_FIELDS)


def columns_check(manifest: Manifest) -> None:
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



def _manifest_row(learned: fetching.Learned) -> dict:
    manifest = learned.manifest
    platform = learned.platform
    return dict(
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


def manifests_store(learned: list[fetching.Learned]) -> None:
    """Store manifests (and the entries of indexes) in a few statements; safe beside another writer."""
    if not learned:
        return
    rows_insert(ManifestRow, [_manifest_row(item) for item in learned], ignore_conflicts=True)
    indexes = {item.manifest.digest: item.manifest for item in learned if item.manifest.is_index}
    if not indexes:
        return
    ids = dict(ManifestRow.objects.filter(digest__in=list(indexes)).values_list("digest", "pk"))
    rows_insert(ManifestChild, [
        dict(
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
    ], ignore_conflicts=True)


# Fields whose values the database takes as Python holds them; any other is prepared by its field.
_PLAIN_FIELDS = (models.CharField, models.TextField, models.IntegerField, models.BooleanField, models.ForeignKey)


def rows_insert(model: type[models.Model], rows: list[dict] | list[models.Model], *,
                ignore_conflicts: bool = False) -> None:
    """INSERT new rows of `model` through one `executemany` per 500: what `bulk_create` does, without
    compiling every value through the ORM's expressions (nor, for rows given as dicts of field attnames,
    making model instances), which cost a scan more than its writes. A field a dict leaves out takes its
    default. `ignore_conflicts`: a row that breaks a unique constraint is skipped (`ON CONFLICT DO
    NOTHING`, in SQLite and PostgreSQL alike)."""
    if not rows:
        return
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})" + (" ON CONFLICT DO NOTHING" if ignore_conflicts else ""))
    columns = [(f, f.attname, isinstance(f, _PLAIN_FIELDS), f.get_default()) for f in fields]
    with connection.cursor() as cursor:
        for batch in chunks(rows):
            values = [row if isinstance(row, dict) else row.__dict__ for row in batch]
            cursor.executemany(sql, [
                [value.get(name, default) if is_plain else
                 field.get_db_prep_save(value.get(name, default), connection)
                 for field, name, is_plain, default in columns]
                for value in values])


def chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def tags_apply(*, repository: Repository, fetches: list[fetching.TagFetch], now: datetime.datetime,
               missing: set[str]) -> None:
    """Record every fetched tag in a handful of statements; `missing`: child digests that answered 404.

    A tag whose fetch failed keeps what we knew and says what went wrong; an
    unchanged tag only gets its scan time.
    """
    # What the loop below reads of a stored tag; the fields it writes need not be loaded.
    existing = {tag.name: tag for names in chunks([f.name for f in fetches])
                for tag in Tag.objects.filter(repository=repository, name__in=names).only(
                    "pk", "repository_id", "name", "digest", "error")}
    unchanged_ids = [existing[f.name].pk for f in fetches
                     if f.unchanged and not f.error and f.name in existing and not existing[f.name].error]
    for ids in chunks(unchanged_ids):
        Tag.objects.filter(pk__in=ids).update(scanned_at=now)
    changed = [f for f in fetches if not f.error and not (f.name in existing and f.unchanged
                                                           and not existing[f.name].error)]
    changed_ids = {id(f) for f in changed}
    rows = {digest: row for digests in chunks(sorted({f.digest for f in changed}))
            for digest, row in ManifestRow.objects.defer("raw", "config").in_bulk(digests, field_name="digest").items()}
    summaries = selectors.manifest_summaries(list(rows.values()))
    to_create: list[Tag] = []
    to_update: list[Tag] = []
    failed: list[Tag] = []  # stored tags whose fetch failed: only their error and scan time change
    platform_rows: dict[str, list[tuple[str, str, str]]] = {}
    moves: list[TagMove] = []
    for fetch in fetches:
        tag = existing.get(fetch.name) or Tag(repository=repository, name=fetch.name)
        tag.scanned_at = now
        is_changed = id(fetch) in changed_ids
        row = rows.get(fetch.digest) if is_changed else None
        if fetch.error or (is_changed and row is None):
            tag.error = fetch.error or f"manifest {fetch.digest} was not stored"
            if tag.pk:
                failed.append(tag)
                continue
        elif is_changed:
            if tag.digest != row.digest:
                moves.append(TagMove(tag=fetch.name, old_digest=tag.digest, new_digest=row.digest))
            summary = summaries[row.digest]
            tag.digest, tag.media_type, tag.kind, tag.manifest = row.digest, row.media_type, row.kind, row
            tag.platforms = sorted({p for p, _, _ in summary.platforms}, key=platform_sort_key)
            tag.size, tag.created = summary.size, summary.created
            tag.missing = [d for d in summary.child_digests if d in missing]
            tag.error = ""
            platform_rows[fetch.name] = summary.platforms
        else:
            continue
        (to_update if tag.pk else to_create).append(tag)
    rows_insert(Tag, to_create)
    Tag.objects.bulk_update(to_update, ["scanned_at", "error", "digest", "media_type", "kind", "manifest",
                                        "platforms", "size", "created", "missing"], batch_size=500)
    Tag.objects.bulk_update(failed, ["scanned_at", "error"], batch_size=500)
    tag_ids = {name: pk for names in chunks(list(platform_rows))
               for name, pk in Tag.objects.filter(repository=repository, name__in=names).values_list("name", "pk")}
    for ids in chunks(list(tag_ids.values())):
        TagPlatform.objects.filter(tag_id__in=ids).delete()
    rows_insert(TagPlatform, [dict(tag_id=tag_ids[name], platform=p, os_version=v, digest=d)
                              for name, summary_platforms in platform_rows.items() for p, v, d in summary_platforms],
                ignore_conflicts=True)
    if moves:
        transaction.on_commit(lambda: tags_moved.send(sender=Repository, repository=repository, moves=moves))


def repository_aggregate(repository: Repository) -> None:
    tags = list(repository.tags.values_list("platforms", "kind"))
    platforms = {p for platform_list, _ in tags for p in platform_list}
    repository.platforms = sorted(platforms, key=platform_sort_key)
    repository.tag_count = len(tags)
    repository.list_count = sum(1 for _, kind in tags if kind == "index")
    repository.save(update_fields=["platforms", "tag_count", "list_count", "scanned_at", "error"])



def repository_write(*, registry: Registry, name: str, fetches: list[fetching.TagFetch], now: datetime.datetime,
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
        tags_apply(repository=repository, fetches=fetches, now=now, missing=missing)
        if listed is not None:
            # Not a tag another job recorded after our listing (it is newer than our list).
            repository.tags.exclude(name__in=listed).filter(
                Q(scanned_at__lt=now) | Q(scanned_at__isnull=True)).delete()
        repository.error, repository.scanned_at = note, now
        repository_aggregate(repository)
    return repository
