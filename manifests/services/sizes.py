"""Sizes as a client downloads them: per platform, shared between platforms, unique per repository.

A platform's download is its config plus its layers, compressed, as the
manifest's own bytes give their sizes (a client never downloads every
platform of a list, so a list's "total" is not what anyone pulls). The
uncompressed size is not stated by OCI or Docker image configs (they list
diff_ids, not sizes), and nothing is invented in its place: it is None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from registry.platform import platform_sort_key

from ..models import Manifest, Repository, Tag, TagPlatform

UNCOMPRESSED_NOTE = "image configs state no uncompressed size"


@dataclass
class PlatformSize:
    platform: str
    os_version: str
    digest: str
    compressed: int | None  # None: the manifest is not stored (not scanned yet)
    blobs: dict[str, int] = field(default_factory=dict)
    uncompressed: int | None = None


@dataclass
class TagSizes:
    platforms: list[PlatformSize]
    shared: int  # bytes of blobs that two or more platforms have in common (counted once)
    unique_total: int  # every blob of every platform, each counted once

    def for_platform(self, platform: str) -> PlatformSize | None:
        return next((p for p in self.platforms if p.platform == platform), None)


def manifest_blobs(raw: bytes) -> dict[str, int]:
    """{digest: size} of an image manifest's config and layers, read from its stored bytes."""
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    descriptors = [data.get("config")] + list(data.get("layers") or [])
    blobs: dict[str, int] = {}
    for item in descriptors:
        if isinstance(item, dict) and isinstance(item.get("digest"), str) and isinstance(item.get("size"), int) \
                and not isinstance(item.get("size"), bool) and item["size"] >= 0:
            blobs[item["digest"]] = item["size"]
    return blobs


def _blobs_by_digest(digests: set[str]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    ordered = sorted(digests)
    for start in range(0, len(ordered), 500):
        for digest, raw in Manifest.objects.filter(digest__in=ordered[start:start + 500], kind="image").values_list(
                "digest", "raw"):
            found[digest] = manifest_blobs(bytes(raw))
    return found


def _sizes(rows: list[tuple[str, str, str]]) -> TagSizes:
    blobs = _blobs_by_digest({digest for _, _, digest in rows})
    platforms = []
    for platform, os_version, digest in sorted(rows, key=lambda r: (platform_sort_key(r[0]), r[1])):
        found = blobs.get(digest)
        platforms.append(PlatformSize(platform=platform, os_version=os_version, digest=digest,
                                      compressed=sum(found.values()) if found is not None else None,
                                      blobs=found or {}))
    seen: dict[str, int] = {}
    users: dict[str, set[str]] = {}
    for entry in platforms:
        for blob, size in entry.blobs.items():
            seen[blob] = size
            users.setdefault(blob, set()).add(entry.digest)
    shared = sum(seen[blob] for blob, digests in users.items() if len(digests) > 1)
    return TagSizes(platforms=platforms, shared=shared, unique_total=sum(seen.values()))


def tag_sizes(*, tag: Tag) -> TagSizes:
    """Per platform of a tag (an image, or each platform of a list)."""
    rows = list(TagPlatform.objects.filter(tag=tag).values_list("platform", "os_version", "digest"))
    if not rows and tag.manifest_id and tag.kind == "image":
        rows = [("", "", tag.digest)]  # an image without a platform still downloads its blobs
    return _sizes(rows)


def repository_unique_bytes(*, repository: Repository) -> int:
    """The bytes a repository's tags reference, each blob counted once however many tags share it."""
    # One query whatever the number of tags: the digests as a subquery, not an IN list read first and sent
    # back in chunks (one more query per 500 distinct platform manifests).
    digests = TagPlatform.objects.filter(tag__repository=repository).values("digest")
    seen: dict[str, int] = {}
    for raw in Manifest.objects.filter(digest__in=digests, kind="image").values_list("raw", flat=True):
        seen.update(manifest_blobs(bytes(raw)))
    return sum(seen.values())


def coverage_sizes(*, rows: list) -> dict[tuple[str, str, str], dict[str, int | None]]:
    """{(registry, repository, tag): {platform: compressed bytes}} for the rows of a coverage export.

    The rows may come from several registries (the export across all of them).
    """
    wanted = {(row.registry, row.repository, row.tag) for row in rows}
    found: dict[tuple[str, str, str], dict[str, str]] = {}
    for registry in sorted({key[0] for key in wanted}):
        repositories = sorted({repository for name, repository, _ in wanted if name == registry})
        for start in range(0, len(repositories), 500):
            for repository, tag, platform, digest in TagPlatform.objects.filter(
                    tag__repository__registry__name=registry,
                    tag__repository__name__in=repositories[start:start + 500]).values_list(
                    "tag__repository__name", "tag__name", "platform", "digest"):
                if (registry, repository, tag) in wanted:
                    found.setdefault((registry, repository, tag), {})[platform] = digest
    blobs = _blobs_by_digest({digest for platforms in found.values() for digest in platforms.values()})
    return {key: {platform: sum(blobs[digest].values()) if digest in blobs else None
                  for platform, digest in platforms.items()}
            for key, platforms in found.items()}
