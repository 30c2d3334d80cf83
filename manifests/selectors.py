"""The read side: what the stored inventory says, for pages, the API and the scan.

One walk of a stored index (nested indexes followed), one rebuild of an image
config from the columns a scan kept, one answer to "what does this tag hold
now" from the database (registry.assemble's tag_current_digest asks the
registry), and the registry list's rows.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, Min, Subquery

from registry.mediatypes import KIND_INDEX
from registry.platform import Platform, platform_sort_key
from registry.reference import Reference

from .models import Manifest as ManifestRow
from .models import ManifestChild, Registry, Repository, Tag

MAX_DEPTH = 4  # nested indexes deeper than this are not followed

# Marks a config rebuilt from a row's columns: not worth storing as the config.
CONFIG_PARTIAL = "\x00partial"


# -- indexes ------------------------------------------------------------------------


@dataclass
class IndexEntry:
    """One entry of a stored index: its descriptor, the stored manifest it names (if any), and, for a
    nested index that is followed, its own entries."""

    child: ManifestChild
    row: ManifestRow | None
    nested: list[IndexEntry] | None = None


def index_entries(index: ManifestRow, *, depth: int = 0) -> list[IndexEntry]:
    """The entries of a stored index in order, nested indexes followed up to MAX_DEPTH."""
    return _entries_load({index.pk: index}, depth)[index.pk]


def _entries_load(indexes: dict[int, ManifestRow], depth: int) -> dict[int, list[IndexEntry]]:
    """The entries of several stored indexes, by pk: two queries (per 500) per level of nesting."""
    pks = list(indexes)
    children = [child for start in range(0, len(pks), 500)
                for child in ManifestChild.objects.filter(parent_id__in=pks[start:start + 500])]
    digests = list(dict.fromkeys(child.digest for child in children))
    stored = {row.digest: row for start in range(0, len(digests), 500)
              for row in ManifestRow.objects.filter(digest__in=digests[start:start + 500]).only(
                  "digest", "kind", "size", "created", "artifact_type")}
    entries: dict[int, list[IndexEntry]] = {pk: [] for pk in pks}
    followed: list[IndexEntry] = []
    for child in children:
        entry = IndexEntry(child=child, row=stored.get(child.digest))
        entries[child.parent_id].append(entry)
        if not child.is_attestation and entry.row is not None and entry.row.kind == KIND_INDEX and depth < MAX_DEPTH:
            followed.append(entry)
    if followed:
        nested = _entries_load({entry.row.pk: entry.row for entry in followed}, depth + 1)
        for entry in followed:
            entry.nested = nested[entry.row.pk]
    return entries


@dataclass
class Summary:
    platforms: list[tuple[str, str, str]]  # (normalized, os_version, digest)
    size: int
    created: datetime.datetime | None
    child_digests: list[str] = field(default_factory=list)


def manifest_summary(row: ManifestRow) -> Summary:
    """Platforms, total size and newest creation time of a stored manifest."""
    return manifest_summaries([row])[row.digest]


def manifest_summaries(rows: list[ManifestRow]) -> dict[str, Summary]:
    """manifest_summary of each stored manifest, by digest, in a few queries for any number of them."""
    summaries: dict[str, Summary] = {}
    indexes: dict[int, ManifestRow] = {}
    for row in rows:
        if row.kind == KIND_INDEX:
            indexes[row.pk] = row
        else:
            platforms = [(row.platform, row.os_version, row.digest)] if row.platform else []
            summaries[row.digest] = Summary(platforms, row.size, row.created)
    if indexes:
        for pk, entries in _entries_load(indexes, 0).items():
            summaries[indexes[pk].digest] = _entries_summary(entries)
    return summaries


def _entries_summary(entries: list[IndexEntry]) -> Summary:
    platforms: list[tuple[str, str, str]] = []
    size, created = 0, None
    child_digests = [entry.child.digest for entry in entries]
    for entry in entries:
        child, child_row = entry.child, entry.row
        if child.is_attestation:
            continue
        if entry.nested is not None:
            nested = _entries_summary(entry.nested)
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


# -- configs ------------------------------------------------------------------------


def config_stored(row) -> dict:
    """An image config as far as the scan kept it (the platform fields), from the manifest row it came with."""
    return Platform(os=row.os, architecture=row.architecture, variant=row.variant, os_version=row.os_version,
                    os_features=tuple(row.os_features or ())).to_json()


def configs_known(*, digests: list[str]) -> dict[str, dict]:
    """Configs as the scan knows them, by digest, from stored manifests that use them (the first
    stored of each): whole when stored, else rebuilt from the row's columns (marked CONFIG_PARTIAL).
    A digest no stored manifest uses is left out. A few queries for any number of digests."""
    known: dict[str, dict] = {}
    digests = list(dict.fromkeys(digests))
    for start in range(0, len(digests), 500):
        # The first row of each config (every attestation shares one config: never load them all).
        firsts = (ManifestRow.objects.filter(config_digest__in=digests[start:start + 500])
                  .values("config_digest").annotate(first=Min("pk")).values("first"))
        for row in ManifestRow.objects.filter(pk__in=Subquery(firsts)).only(
                "config_digest", "os", "architecture", "variant", "os_version", "os_features", "created", "config"):
            known[row.config_digest] = _config_known(row)
    return known


def _config_known(row: ManifestRow) -> dict:
    if isinstance(row.config, dict):
        return row.config
    config = {**config_stored(row), CONFIG_PARTIAL: True}
    if row.created:
        config["created"] = row.created.isoformat()
    return config


# -- tags and registries ------------------------------------------------------------


def tag_digest(*, registry: Registry, reference: str) -> str:
    """What the inventory says `repository:tag` holds ("" for a new tag)."""
    ref = Reference.parse(reference, allow_host=False)
    tag = Tag.objects.filter(repository__registry=registry, repository__name=ref.repository, name=ref.tag).first()
    return tag.digest if tag else ""


def registry_rows() -> list[dict]:
    """The registry list's rows: each registry with its repository and tag counts and its platforms."""
    registries = Registry.objects.annotate(
        repository_total=Count("repositories", distinct=True),
    ).order_by("name")
    # Tags counted per repository with COUNT(*): an index-only scan of tag.repository_id, without the join
    # to repositories (on PostgreSQL a parallel scan of the whole tag table); summed per registry here.
    per_repository = dict(Tag.objects.values_list("repository_id").annotate(n=Count("*")).values_list(
        "repository_id", "n").order_by())
    tag_totals: dict[int, int] = {}
    platforms: dict[int, set[str]] = {}
    for repository_id, registry_id, repo_platforms in Repository.objects.values_list("id", "registry_id",
                                                                                     "platforms"):
        platforms.setdefault(registry_id, set()).update(repo_platforms)
        tag_totals[registry_id] = tag_totals.get(registry_id, 0) + per_repository.get(repository_id, 0)
    return [
        {"registry": r, "tags": tag_totals.get(r.pk, 0),
         "platforms": sorted(platforms.get(r.pk, ()), key=platform_sort_key)}
        for r in registries
    ]
