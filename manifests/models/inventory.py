"""What a scan stores: repositories, tags, manifests by digest, their children, referrers and coverage."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from registry.mediatypes import INDEX_TYPES, KIND_ARTIFACT, KIND_INDEX
from registry.platform import platform_sort_key

from .jobs import Job
from .registries import Registry


class Repository(models.Model):
    registry = models.ForeignKey(Registry, on_delete=models.CASCADE, related_name="repositories")
    name = models.CharField(max_length=255)
    platforms = models.JSONField(default=list, blank=True)
    tag_count = models.PositiveIntegerField(default=0)
    list_count = models.PositiveIntegerField(default=0)
    scanned_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["registry", "name"], name="repository_unique_name")]

    def __str__(self) -> str:
        return f"{self.registry.name}/{self.name}"


class _ManifestKind:
    """`is_index` and `is_artifact`, for the templates, of a row with a manifest `kind` (Manifest, Tag)."""

    kind: str

    @property
    def is_index(self) -> bool:
        return self.kind == KIND_INDEX

    @property
    def is_artifact(self) -> bool:
        return self.kind == KIND_ARTIFACT


class Manifest(_ManifestKind, models.Model):
    """A manifest by digest: content-addressed, so stored once and never fetched again."""

    digest = models.CharField(max_length=135, unique=True)
    media_type = models.CharField(max_length=255)
    kind = models.CharField(max_length=16)  # index, image, artifact, schema1
    raw = models.BinaryField()
    size = models.BigIntegerField(default=0)  # manifest bytes plus, for images, config and layers
    config_digest = models.CharField(max_length=135, blank=True, db_index=True)  # scans look configs up by it
    artifact_type = models.CharField(max_length=255, blank=True)
    os = models.CharField(max_length=64, blank=True)
    architecture = models.CharField(max_length=64, blank=True)
    variant = models.CharField(max_length=32, blank=True)
    os_version = models.CharField(max_length=64, blank=True)
    os_features = models.JSONField(default=list, blank=True)
    platform = models.CharField(max_length=128, blank=True)  # normalized os/arch[/variant]
    created = models.DateTimeField(null=True, blank=True)
    # An image's config JSON as the scan read it (entrypoint, env, labels, history), for its page;
    # null for lists, artifacts, images stored before it was kept, and configs too large to keep.
    config = models.JSONField(null=True, blank=True)
    fetched_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.digest

    @property
    def raw_text(self) -> str:
        return bytes(self.raw).decode("utf-8", errors="replace")


class ManifestChild(models.Model):
    """One entry of an index, exactly as its parent's bytes describe it."""

    parent = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="children")
    position = models.PositiveIntegerField()
    digest = models.CharField(max_length=135, db_index=True)
    media_type = models.CharField(max_length=255)
    size = models.BigIntegerField(default=0)
    os = models.CharField(max_length=64, blank=True)
    architecture = models.CharField(max_length=64, blank=True)
    variant = models.CharField(max_length=32, blank=True)
    os_version = models.CharField(max_length=64, blank=True)
    os_features = models.JSONField(default=list, blank=True)
    platform = models.CharField(max_length=128, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    artifact_type = models.CharField(max_length=255, blank=True)
    is_attestation = models.BooleanField(default=False)
    subject = models.CharField(max_length=135, blank=True)

    class Meta:
        ordering = ["parent", "position"]
        constraints = [models.UniqueConstraint(fields=["parent", "position"], name="child_unique_position")]

    def __str__(self) -> str:
        return f"{self.platform or 'no platform'} {self.digest}"

    @property
    def is_index(self) -> bool:
        """A nested list: an index or a Docker manifest list, by the descriptor's media type."""
        return self.media_type in INDEX_TYPES


class Tag(_ManifestKind, models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=128)
    digest = models.CharField(max_length=135, blank=True, db_index=True)
    media_type = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=16, blank=True)
    manifest = models.ForeignKey(Manifest, null=True, blank=True, on_delete=models.SET_NULL, related_name="tags")
    platforms = models.JSONField(default=list, blank=True)  # normalized, in display order
    size = models.BigIntegerField(default=0)
    created = models.DateTimeField(null=True, blank=True)
    missing = models.JSONField(default=list, blank=True)  # child digests that answered 404
    scanned_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="tag_unique_name")]
        # The coverage matrix's newest tag per repository, read backwards from the end.
        indexes = [models.Index(fields=["repository", "created", "name"], name="tag_newest_idx")]

    def __str__(self) -> str:
        return f"{self.repository.name}:{self.name}"

    def chips(self) -> list[str]:
        """Platforms for display, in the fixed order, windows builds told apart (prefetch platform_rows)."""
        rows = sorted(self.platform_rows.all(), key=lambda r: (platform_sort_key(r.platform), r.os_version))
        chips: list[str] = []
        for row in rows:
            text = f"{row.platform} {row.os_version}" if row.os_version else row.platform
            if text not in chips:
                chips.append(text)
        return chips


class TagPlatform(models.Model):
    """Normalized platform rows, so coverage is a query and not a walk over JSON."""

    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="platform_rows")
    platform = models.CharField(max_length=128, db_index=True)
    digest = models.CharField(max_length=135)
    os_version = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tag", "platform", "os_version"], name="tagplatform_unique")
        ]

    def __str__(self) -> str:
        return f"{self.platform} {self.os_version}".strip()


class ListCheck(models.Model):
    """When the children of one list were last known present in one repository.

    Whole-registry scans HEAD the children of the lists whose check is older
    than CHILDREN_CHECK_SECONDS, so a child deleted under a list is noticed
    without anyone pressing Check children.
    """

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="list_checks")
    digest = models.CharField(max_length=135)
    checked_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "digest"], name="listcheck_unique")]

    def __str__(self) -> str:
        return f"{self.repository} {self.digest} at {self.checked_at}"


class CoverageSnapshot(models.Model):
    """After each scan: how many tags cover one required platform, per repository (and, with an empty
    repository, for the whole registry), and which do not."""

    registry = models.ForeignKey(Registry, on_delete=models.CASCADE, related_name="coverage_snapshots")
    repository = models.CharField(max_length=255, blank=True)  # "" for the registry as a whole
    platform = models.CharField(max_length=128)
    covered = models.PositiveIntegerField()
    total = models.PositiveIntegerField()
    lacking = models.JSONField(default=list, blank=True)  # tag names (repository:tag for the registry), capped
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL)
    taken_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["taken_at", "pk"]
        indexes = [models.Index(fields=["registry", "repository", "taken_at"], name="coverage_history_idx")]

    def __str__(self) -> str:
        return f"{self.registry_id} {self.repository or '*'} {self.platform} {self.covered}/{self.total}"


class Referrer(models.Model):
    """A signature, SBOM or attestation attached to a manifest (its subject) in a repository."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="referrers")
    subject = models.CharField(max_length=135, db_index=True)
    digest = models.CharField(max_length=135)
    kind = models.CharField(max_length=32)  # registry.referrers: cosign-signature, sbom-spdx, ...
    media_type = models.CharField(max_length=255, blank=True)
    artifact_type = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=16)  # referrers-api, tag-schema, cosign-tag
    tag = models.CharField(max_length=128, blank=True)  # the tag that holds it, for the tag layouts
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["subject", "kind", "digest"]
        constraints = [models.UniqueConstraint(fields=["repository", "subject", "digest"], name="referrer_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.digest} -> {self.subject}"

    @property
    def is_signature(self) -> bool:
        return self.kind in ("cosign-signature", "notation-signature")
