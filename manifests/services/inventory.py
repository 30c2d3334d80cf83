"""Answer the assembly code's registry questions from the stored inventory.

The builder page and the API validate a list without touching the registry
(web requests do no registry I/O): `list_plan` runs against this read-only
stand-in, so the preview's bytes and digest come from the very code the push
job runs against the real registry. When the inventory is current, the two
agree to the byte; the push job refuses to go on when they do not.
"""

from __future__ import annotations

from registry import errors
from registry.mediatypes import Manifest, parse_manifest

from .. import selectors
from ..models import Manifest as ManifestRow
from ..models import ManifestChild, Registry, Tag


class InventoryClient:
    """The subset of RegistryClient that `list_plan` uses, read from the database."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.counters: dict[str, int] = {}

    def _in_repository(self, repository: str, digest: str) -> bool:
        tags = Tag.objects.filter(repository__registry=self.registry, repository__name=repository)
        if tags.filter(digest=digest).exists():
            return True
        return ManifestChild.objects.filter(
            digest=digest, parent__tags__in=tags).exists()

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        if ":" in reference:
            row = ManifestRow.objects.filter(digest=reference).first()
            if row is None or not self._in_repository(repository, reference):
                raise errors.ManifestUnknown(
                    f"{repository}@{reference} is not in the inventory: scan the repository first")
        else:
            tag = Tag.objects.select_related("manifest").filter(
                repository__registry=self.registry, repository__name=repository, name=reference).first()
            if tag is None:
                raise errors.ManifestUnknown(f"{repository}:{reference} is not in the inventory")
            if tag.manifest is None:
                raise errors.ManifestUnknown(
                    f"{repository}:{reference} could not be read at the last scan: {tag.error or 'unknown'}")
            row = tag.manifest
        return parse_manifest(bytes(row.raw), content_type=row.media_type, digest=row.digest)

    def get_json_blob(self, repository: str, digest: str, **kwargs) -> dict:
        """An image config as far as the scan kept it: the platform fields."""
        row = ManifestRow.objects.filter(config_digest=digest).first()
        if row is None:
            raise errors.BlobUnknown(f"config {digest} is not in the inventory")
        return selectors.config_stored(row)

