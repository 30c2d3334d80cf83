"""A rule's inventory, loaded in bulk: the rows of its source repositories, read in a few queries."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from registry import errors
from registry.mediatypes import Manifest, parse_manifest

from ..models import Manifest as ManifestRow
from ..models import ManifestChild, Registry, Tag
from ..selectors import config_stored
from .labels import config_labels, configs_load, contributed_digest


@dataclass(frozen=True, slots=True)
class _TagRow:
    name: str
    digest: str
    kind: str
    manifest: str  # the stored manifest's digest, "" when the scan could not read it
    error: str
    stamp: tuple = ()  # (manifest row id, scanned at): changes whenever a scan writes the tag


@dataclass(frozen=True, slots=True)
class _ManifestRow:
    digest: str
    media_type: str
    raw: bytes
    config_digest: str
    os: str
    architecture: str
    variant: str
    os_version: str
    os_features: list


@dataclass(frozen=True, slots=True)
class TargetRow:
    digest: str
    before: dict  # {"platform os_version": digest}, as the builder's diff reads it


class BulkInventory:
    """The part of RegistryClient that `list_plan` uses, answered from rows loaded once.

    The per-request InventoryClient asks the database for each manifest; a rule
    plans hundreds of lists, so the rows of its source repositories are read in
    two queries up front (plain tuples, no model instances) and every plan is
    computed from memory.
    """

    def __init__(self, *, registry: Registry, repositories: list[str], tag_names: set[str] | None,
                 elsewhere: dict[int, list[str]] | None = None) -> None:
        """`repositories` of `registry`, and the `elsewhere` ones: {registry id: repository names}
        (a repository name stands for one registry only in a rule)."""
        self.counters: dict[str, int] = {}
        where = Q(repository__registry=registry, repository__name__in=repositories)
        for registry_id, names in (elsewhere or {}).items():
            where |= Q(repository__registry_id=registry_id, repository__name__in=names)
        repositories = repositories + [name for names in (elsewhere or {}).values() for name in names]
        tags = Tag.objects.filter(where)
        if tag_names is not None:
            tags = tags.filter(name__in=sorted(tag_names))
        self.tags: dict[str, dict[str, _TagRow]] = {name: {} for name in repositories}
        self._in_repository: dict[str, set[str]] = {name: set() for name in repositories}
        indexes: list[tuple[str, str]] = []
        for repository, name, digest, kind, manifest, error, manifest_id, scanned_at in tags.values_list(
                "repository__name", "name", "digest", "kind", "manifest__digest", "error", "manifest_id",
                "scanned_at"):
            self.tags[repository][name] = _TagRow(name, digest, kind, manifest or "", error,
                                                  (manifest_id, scanned_at))
            if manifest:
                self._in_repository[repository].add(manifest)
                if kind == "index":
                    indexes.append((repository, manifest))
        self._tags_query, self._indexes = tags, indexes
        self._loaded = False
        self._manifests: dict[str, _ManifestRow] = {}
        self._parsed: dict[str, Manifest] = {}
        self._configs: dict[str, _ManifestRow] = {}
        self._kept_configs: dict[str, dict] | None = None

    def _load(self) -> None:
        """The manifests of the tags and of their lists' children, read when a plan first needs one (a
        rule's page whose plans are all known reads none)."""
        if self._loaded:
            return
        self._loaded = True
        tags = self._tags_query
        children = ManifestChild.objects.filter(parent_id__in=tags.filter(kind="index").values("manifest_id"))
        columns = ("digest", "media_type", "raw", "config_digest", "os", "architecture", "variant", "os_version",
                   "os_features")
        # Two indexed lookups in one UNION ALL (a row in both comes twice, the same): with OR, PostgreSQL
        # scans every stored manifest.
        for values in ManifestRow.objects.filter(pk__in=tags.values("manifest_id")).values_list(*columns).union(
                ManifestRow.objects.filter(digest__in=children.values("digest")).values_list(*columns), all=True):
            self._manifests[values[0]] = _ManifestRow(*values)
        for repository, digest in self._indexes:
            if digest in self._manifests:
                listing = self._parse(self._manifests[digest])
                self._in_repository[repository].update(c.digest for c in listing.children)
        self._configs = {row.config_digest: row for row in self._manifests.values() if row.config_digest}

    def _parse(self, row: _ManifestRow) -> Manifest:
        parsed = self._parsed.get(row.digest)
        if parsed is None:
            parsed = self._parsed[row.digest] = parse_manifest(bytes(row.raw), content_type=row.media_type,
                                                               digest=row.digest)
        return parsed

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        self._load()
        if ":" in reference:
            row = self._manifests.get(reference)
            if row is None or reference not in self._in_repository.get(repository, ()):
                raise errors.ManifestUnknown(
                    f"{repository}@{reference} is not in the inventory: scan the repository first")
        else:
            tag = self.tags.get(repository, {}).get(reference)
            if tag is None:
                raise errors.ManifestUnknown(f"{repository}:{reference} is not in the inventory")
            row = self._manifests.get(tag.manifest) if tag.manifest else None
            if row is None:
                raise errors.ManifestUnknown(
                    f"{repository}:{reference} could not be read at the last scan: {tag.error or 'unknown'}")
        return self._parse(row)

    def labels(self, repository: str, tag: str, platform: str) -> dict[str, str]:
        """The image labels a source tag contributes (services.labels); the configs load in one query."""
        self._load()
        if self._kept_configs is None:
            self._kept_configs = configs_load(digests=set(self._manifests))
        found = self.tags.get(repository, {}).get(tag)
        row = self._manifests.get(found.manifest) if found is not None else None
        if row is None:
            return {}
        return config_labels(self._kept_configs.get(contributed_digest(self._parse(row), platform)))

    def get_json_blob(self, repository: str, digest: str, **kwargs) -> dict:
        self._load()
        row = self._configs.get(digest)
        if row is None:
            raise errors.BlobUnknown(f"config {digest} is not in the inventory")
        return config_stored(row)
