"""Platform coverage: repositories x platforms, from the stored inventory only."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Case, Exists, F, IntegerField, Lookup, OuterRef, QuerySet, Subquery, Value, When, Window
from django.db.models.functions import Coalesce, RowNumber

from registry.platform import Platform, platform_sort_key
from registry.referrers import SIGNATURES

from ..models import Referrer, Registry, Repository, Tag, TagPlatform

# Signatures and attestations kept under tags (sha256-<hex>[.sig|.att|.sbom]) are not images to cover.
REFERRER_TAG_REGEX = r"^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$"
# The same tags as globs the database matches itself (the matrix's query runs no regular expression).
REFERRER_TAG_GLOBS = tuple("sha256-" + "?" * 64 + suffix for suffix in ("", ".sig", ".att", ".sbom"))


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
    registry: str = ""


def required_parse(text: str | None, *, registry: Registry) -> list[str]:
    """Normalized required platforms from `a,b,c`, or the registry's own set. Raises InvalidPlatform."""
    if not text:
        return registry.required_list
    values = {Platform.parse(p.strip()).normalized for p in text.split(",") if p.strip()}
    return sorted(values, key=platform_sort_key)


# A tag is at most 128 characters (distribution's grammar); a longer pattern matches nothing real.
PATTERN_MAX_LENGTH = 128
_PATTERN = re.compile(r"[A-Za-z0-9_.*?-]+")


class PatternInvalid(ValueError):
    """A tag pattern that is too long or uses characters no tag has."""


def pattern_validate(pattern: str) -> str:
    """The pattern itself, or PatternInvalid with a message for the field."""
    if len(pattern) > PATTERN_MAX_LENGTH:
        raise PatternInvalid(f"a tag pattern is at most {PATTERN_MAX_LENGTH} characters (this one has {len(pattern)})")
    if pattern and not _PATTERN.fullmatch(pattern):
        raise PatternInvalid("a tag pattern uses letters, digits, '_', '.', '-', and the wildcards '*' and '?'")
    return pattern


class _Glob(Lookup):
    """`name` matches a shell glob (`*`, `?`), case-sensitively, in the database's own matcher.

    Not a regular expression: SQLite runs REGEXP in Python's backtracking `re`,
    where `*a*a*...*b` against one long tag takes minutes. SQLite's GLOB and
    PostgreSQL's LIKE stop at the first wildcard that cannot match, so they
    take time linear in the tag's length for a pattern of bounded length
    (SQLite's LIKE would do too, but ignores case).
    """

    lookup_name = "glob"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        pattern = self.rhs.value if isinstance(self.rhs, Value) else str(self.rhs)  # a Value once resolved
        if connection.vendor == "sqlite":
            return f"{lhs} GLOB %s", [*lhs_params, glob_to_sqlite(pattern)]
        return f"{lhs} LIKE %s ESCAPE '\\'", [*lhs_params, glob_to_like(pattern)]


def glob_to_like(pattern: str) -> str:
    """A shell glob as a LIKE pattern, with LIKE's own `%`, `_` and the escape escaped."""
    out = []
    for char in pattern:
        if char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        elif char in "%_\\":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def glob_to_sqlite(pattern: str) -> str:
    """A shell glob as SQLite's GLOB reads it: only `*` and `?` are wildcards, `[` is taken literally."""
    return pattern.replace("[", "[[]")


# ?newest=N: at most this many tags per repository (the page shows 100 repositories).
NEWEST_MAX = 20


class NewestInvalid(ValueError):
    """A `newest` that is not a whole number from 1 to NEWEST_MAX."""


def newest_parse(text: str | None) -> int:
    """How many tags per repository, newest first: 1 when not given. Raises NewestInvalid."""
    text = (text or "").strip()
    if not text:
        return 1
    if not text.isdigit() or not 1 <= int(text) <= NEWEST_MAX:
        raise NewestInvalid(f"newest is a whole number from 1 to {NEWEST_MAX} (tags per repository)")
    return int(text)


def _tag_order() -> list:
    """`latest` first, then the newest, then by name: the order the matrix picks tags in."""
    is_latest = Case(When(name="latest", then=Value(1)), default=Value(0), output_field=IntegerField())
    return [is_latest.desc(), F("created").desc(nulls_last=True), F("name").desc()]


def _matching_tags(pattern: str) -> QuerySet[Tag]:
    """Tags the matrix may show: matching `pattern`, signatures and attestations left out."""
    tags = Tag.objects.all()
    for glob in REFERRER_TAG_GLOBS:  # globs, not REFERRER_TAG_REGEX: this query never runs a regular expression
        tags = tags.exclude(_Glob(F("name"), glob))
    if pattern:
        tags = tags.filter(_Glob(F("name"), pattern))
    return tags


def _chosen_tag(pattern: str) -> Coalesce:
    """Per repository, the id of the tag the matrix shows: newest matching `pattern`, `latest` first.

    The order of `_tag_order` as three probes a repository answers from its
    indexes, each stopping at the first row: `latest` ((repository, name)),
    else the newest dated tag, else the last undated one by name (both
    (repository, created, name) walked backwards). A sorted subquery per
    repository read every tag of every repository.
    """
    tags = _matching_tags(pattern).filter(repository=OuterRef("pk"))
    latest = tags.filter(name="latest")
    dated = tags.filter(created__isnull=False).order_by("-created", "-name")
    undated = tags.filter(created__isnull=True).order_by("-name")
    return Coalesce(*(Subquery(probe.values("pk")[:1]) for probe in (latest, dated, undated)),
                    output_field=IntegerField())


def _unsigned_platform_rows() -> QuerySet[TagPlatform]:
    return TagPlatform.objects.exclude(Exists(Referrer.objects.filter(
        repository=OuterRef("tag__repository"), subject=OuterRef("digest"), kind__in=SIGNATURES)))


def coverage_rows(*, registry: Registry | None, pattern: str = "", lacking: str = "",
                  search: str = "", newest: int = 1, unsigned: bool = False) -> QuerySet[Repository]:
    """Repositories (of one registry, or of all with None) annotated with the chosen tag's id.

    Materialize with `coverage_materialize` (with the same `newest`, `pattern`
    and `lacking`). Raises PatternInvalid for a `pattern` that `pattern_validate`
    refuses. With `newest` above 1 and `lacking`, a repository stays when any of
    its matching tags lacks the platform; the materialized rows say which.
    """
    pattern_validate(pattern)
    scope = Repository.objects.filter(registry=registry) if registry is not None else Repository.objects.all()
    repositories = scope.annotate(
        chosen_tag=_chosen_tag(pattern)
    ).filter(chosen_tag__isnull=False)
    if search:
        repositories = repositories.filter(name__icontains=search)
    # Per repository, probes by tag id (EXISTS), not `IN` lists of every tag holding a platform.
    if lacking and newest > 1:
        matching = Tag.objects.filter(_Glob(F("name"), pattern)) if pattern else Tag.objects.all()
        repositories = repositories.filter(Exists(matching.filter(repository=OuterRef("pk")).exclude(
            Exists(TagPlatform.objects.filter(tag=OuterRef("pk"), platform=lacking)))))
    elif lacking:
        repositories = repositories.exclude(
            Exists(TagPlatform.objects.filter(tag=OuterRef("chosen_tag"), platform=lacking)))
    if unsigned:  # lacking a signature on at least one platform
        repositories = repositories.filter(Exists(_unsigned_platform_rows().filter(tag=OuterRef("chosen_tag"))))
    return repositories.order_by("registry__name", "name")


def _newest_tags(repositories: list[Repository], *, newest: int, pattern: str) -> dict[int, list[Tag]]:
    """Per repository id, its `newest` tags matching `pattern`, in the matrix's order: one query."""
    # signatures and SBOMs are shown under their subject, not as tags
    tags = _matching_tags(pattern).filter(repository_id__in=[r.pk for r in repositories])
    tags = tags.annotate(rank=Window(RowNumber(), partition_by=[F("repository_id")], order_by=_tag_order()))
    by_repository: dict[int, list[Tag]] = {}
    for tag in sorted(tags.filter(rank__lte=newest), key=lambda t: (t.repository_id, t.rank)):
        by_repository.setdefault(tag.repository_id, []).append(tag)
    return by_repository


def coverage_materialize(repositories: list[Repository], *, required: list[str],
                         required_by_registry: dict[int, list[str]] | None = None, newest: int = 1,
                         pattern: str = "", lacking: str = "") -> list[CoverageRow]:
    """One query for the chosen tags of a page of repositories (and one for their registries' names).

    `required_by_registry` (registry id -> platforms), when given, overrides `required` per registry.
    `newest` above 1: a row for each of a repository's newest `newest` tags
    matching `pattern` (still one query), only those lacking `lacking` if given.
    """
    if newest > 1:
        chosen = _newest_tags(repositories, newest=newest, pattern=pattern)
    else:
        bulk = Tag.objects.in_bulk([r.chosen_tag for r in repositories])
        chosen = {r.pk: [bulk[r.chosen_tag]] for r in repositories}
    tag_ids = [tag.pk for tags in chosen.values() for tag in tags]
    signed: dict[int, set[str]] = {}
    for tag_id, platform in TagPlatform.objects.filter(tag_id__in=tag_ids).filter(Exists(Referrer.objects.filter(
            repository=OuterRef("tag__repository"), subject=OuterRef("digest"), kind__in=SIGNATURES))).values_list(
            "tag_id", "platform"):
        signed.setdefault(tag_id, set()).add(platform)
    names = dict(Registry.objects.filter(pk__in={r.registry_id for r in repositories}).values_list("pk", "name"))
    rows = []
    for repository in repositories:
        wanted = (required_by_registry or {}).get(repository.registry_id, required)
        for tag in chosen.get(repository.pk, ()):
            present = set(tag.platforms)
            if newest > 1 and lacking and lacking in present:
                continue
            rows.append(CoverageRow(
                repository=repository.name, tag=tag.name, digest=tag.digest, kind=tag.kind,
                platforms=list(tag.platforms), missing=[p for p in wanted if p not in present], error=tag.error,
                signed=[p for p in tag.platforms if p in signed.get(tag.pk, set())],
                registry=names.get(repository.registry_id, "")))
    return rows


def coverage_columns(rows: list[CoverageRow], required: list[str]) -> list[str]:
    """Columns: required platforms first, then every other platform seen, in the fixed order."""
    seen = {p for row in rows for p in row.platforms}
    return sorted(set(required) | seen, key=platform_sort_key)


# A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: one that could start a formula gets a leading apostrophe."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def coverage_csv(rows: list[CoverageRow], *, required: list[str], with_registry: bool = False,
                 sizes: dict[tuple[str, str, str], dict[str, int | None]] | None = None) -> list[list[str]]:
    """The matrix as CSV lines, header first; every cell guarded, the header's platforms too.

    `with_registry` (an export across registries) adds the registry as the first column;
    each platform has a column of its compressed download bytes (`sizes`, from
    services.sizes.coverage_sizes), and `signed` names the platforms carrying a signature.
    """
    sizes = sizes or {}
    columns = coverage_columns(rows, required)
    first = ["registry"] if with_registry else []
    lines = [[*first, "repository", "tag", "digest", *columns, *(f"{c} bytes" for c in columns), "signed",
              "missing"]]
    for row in rows:
        row_sizes = sizes.get((row.registry, row.repository, row.tag), {})
        lines.append([*([row.registry] if with_registry else []), row.repository, row.tag, row.digest,
                      *("yes" if c in row.platforms else "" for c in columns),
                      *("" if row_sizes.get(c) is None else str(row_sizes[c]) for c in columns),
                      " ".join(row.signed or []), " ".join(row.missing)])
    return [[csv_cell(cell) for cell in line] for line in lines]
