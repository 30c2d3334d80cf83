"""Platform coverage: repositories x platforms, from the stored inventory only."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Case, Exists, F, IntegerField, OuterRef, QuerySet, Subquery, Value, When

from registry.platform import Platform, platform_sort_key
from registry.referrers import SIGNATURES

from ..models import Referrer, Registry, Repository, Tag, TagPlatform

# Signatures and attestations kept under tags (sha256-<hex>[.sig|.att|.sbom]) are not images to cover.
REFERRER_TAG_REGEX = r"^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$"


@dataclass(frozen=True)
class CoverageRow:
    repository: str
    tag: str
    digest: str
    kind: str
    platforms: list[str]
    missing: list[str]
    error: str
    signed: list[str] | None = None  # platforms whose manifest carries a signature


def required_parse(text: str | None, *, registry: Registry) -> list[str]:
    """Normalized required platforms from `a,b,c`, or the registry's own set. Raises InvalidPlatform."""
    if not text:
        return registry.required_list
    values = {Platform.parse(p.strip()).normalized for p in text.split(",") if p.strip()}
    return sorted(values, key=platform_sort_key)


def glob_to_regex(pattern: str) -> str:
    """A shell glob (`*`, `?`) as an anchored regex that SQLite and PostgreSQL both read."""
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return "^" + "".join(parts) + "$"


def _chosen_tags(pattern: str) -> QuerySet[Tag]:
    """Per repository, the tag the matrix shows: newest matching `pattern`, `latest` first by default."""
    tags = Tag.objects.filter(repository=OuterRef("pk")).exclude(name__regex=REFERRER_TAG_REGEX)
    if pattern:
        tags = tags.filter(name__regex=glob_to_regex(pattern))
    tags = tags.annotate(
        is_latest=Case(When(name="latest", then=Value(1)), default=Value(0), output_field=IntegerField())
    )
    return tags.order_by("-is_latest", F("created").desc(nulls_last=True), "-name")


def _unsigned_platform_rows() -> QuerySet[TagPlatform]:
    return TagPlatform.objects.exclude(Exists(Referrer.objects.filter(
        repository=OuterRef("tag__repository"), subject=OuterRef("digest"), kind__in=SIGNATURES)))


def coverage_rows(*, registry: Registry, pattern: str = "", lacking: str = "",
                  search: str = "", unsigned: bool = False) -> QuerySet[Repository]:
    """Repositories annotated with the chosen tag's id; materialize with `coverage_materialize`."""
    repositories = Repository.objects.filter(registry=registry).annotate(
        chosen_tag=Subquery(_chosen_tags(pattern).values("pk")[:1])
    ).filter(chosen_tag__isnull=False)
    if search:
        repositories = repositories.filter(name__icontains=search)
    if lacking:
        repositories = repositories.exclude(
            chosen_tag__in=TagPlatform.objects.filter(platform=lacking).values("tag_id"))
    if unsigned:  # lacking a signature on at least one platform
        repositories = repositories.filter(chosen_tag__in=_unsigned_platform_rows().values("tag_id"))
    return repositories.order_by("name")


def coverage_materialize(repositories: list[Repository], *, required: list[str]) -> list[CoverageRow]:
    """One query for the chosen tags of a page of repositories."""
    tags = Tag.objects.in_bulk([r.chosen_tag for r in repositories])
    signed: dict[int, set[str]] = {}
    for tag_id, platform in TagPlatform.objects.filter(tag_id__in=list(tags)).filter(Exists(Referrer.objects.filter(
            repository=OuterRef("tag__repository"), subject=OuterRef("digest"), kind__in=SIGNATURES))).values_list(
            "tag_id", "platform"):
        signed.setdefault(tag_id, set()).add(platform)
    rows = []
    for repository in repositories:
        tag = tags[repository.chosen_tag]
        present = set(tag.platforms)
        rows.append(CoverageRow(
            repository=repository.name, tag=tag.name, digest=tag.digest, kind=tag.kind,
            platforms=list(tag.platforms), missing=[p for p in required if p not in present], error=tag.error,
            signed=[p for p in tag.platforms if p in signed.get(tag.pk, set())]))
    return rows


def coverage_columns(rows: list[CoverageRow], required: list[str]) -> list[str]:
    """Columns: required platforms first, then every other platform seen, in the fixed order."""
    seen = {p for row in rows for p in row.platforms}
    return sorted(set(required) | seen, key=platform_sort_key)
