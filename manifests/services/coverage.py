"""Platform coverage: repositories x platforms, from the stored inventory only."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Case, F, IntegerField, OuterRef, QuerySet, Subquery, Value, When

from registry.platform import Platform, platform_sort_key

from ..models import Registry, Repository, Tag, TagPlatform


@dataclass(frozen=True)
class CoverageRow:
    repository: str
    tag: str
    digest: str
    kind: str
    platforms: list[str]
    missing: list[str]
    error: str
    registry: str = ""


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
    tags = Tag.objects.filter(repository=OuterRef("pk"))
    if pattern:
        tags = tags.filter(name__regex=glob_to_regex(pattern))
    tags = tags.annotate(
        is_latest=Case(When(name="latest", then=Value(1)), default=Value(0), output_field=IntegerField())
    )
    return tags.order_by("-is_latest", F("created").desc(nulls_last=True), "-name")


def coverage_rows(*, registry: Registry | None, pattern: str = "", lacking: str = "",
                  search: str = "") -> QuerySet[Repository]:
    """Repositories (of one registry, or of all with None) annotated with the chosen tag's id.

    Materialize with `coverage_materialize`.
    """
    scope = Repository.objects.filter(registry=registry) if registry is not None else Repository.objects.all()
    repositories = scope.annotate(
        chosen_tag=Subquery(_chosen_tags(pattern).values("pk")[:1])
    ).filter(chosen_tag__isnull=False)
    if search:
        repositories = repositories.filter(name__icontains=search)
    if lacking:
        repositories = repositories.exclude(
            chosen_tag__in=TagPlatform.objects.filter(platform=lacking).values("tag_id"))
    return repositories.order_by("registry__name", "name")


def coverage_materialize(repositories: list[Repository], *, required: list[str],
                         required_by_registry: dict[int, list[str]] | None = None) -> list[CoverageRow]:
    """One query for the chosen tags of a page of repositories (and one for their registries' names).

    `required_by_registry` (registry id -> platforms), when given, overrides `required` per registry.
    """
    tags = Tag.objects.in_bulk([r.chosen_tag for r in repositories])
    names = dict(Registry.objects.filter(pk__in={r.registry_id for r in repositories}).values_list("pk", "name"))
    rows = []
    for repository in repositories:
        tag = tags[repository.chosen_tag]
        present = set(tag.platforms)
        wanted = (required_by_registry or {}).get(repository.registry_id, required)
        rows.append(CoverageRow(
            repository=repository.name, tag=tag.name, digest=tag.digest, kind=tag.kind,
            platforms=list(tag.platforms), missing=[p for p in wanted if p not in present], error=tag.error,
            registry=names.get(repository.registry_id, "")))
    return rows


def coverage_columns(rows: list[CoverageRow], required: list[str]) -> list[str]:
    """Columns: required platforms first, then every other platform seen, in the fixed order."""
    seen = {p for row in rows for p in row.platforms}
    return sorted(set(required) | seen, key=platform_sort_key)
