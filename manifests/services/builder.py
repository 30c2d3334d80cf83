"""The list builder: form entries <-> sources, preview, diff, equivalent CLI."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, replace

from django.db.models import BooleanField, Case, Exists, F, Q, Value, When
from django.db.models.lookups import IContains

from registry.assemble import FORMAT_AUTO, FORMATS, AssemblyInvalid, Plan, SourceSpec
from registry.errors import InvalidPlatform, InvalidReference
from registry.platform import Platform, platform_sort_key
from registry.reference import Reference

from ..models import ManifestChild, Registry, Repository, Tag
from ..selectors import tag_digest
from .across import list_plan_inventory

ENTRY_FIELDS = ("key", "ref", "select", "label", "os", "arch", "variant", "os_version", "os_features", "annotations",
                "registry")


@dataclass
class BuilderEntry:
    key: str
    ref: str
    select: str = ""
    label: str = ""
    os: str = ""
    arch: str = ""
    variant: str = ""
    os_version: str = ""
    os_features: str = ""
    annotations: str = ""
    registry: str = ""  # another registered registry the image lives in ("" for the target's own)

    @property
    def platform(self) -> str:
        if not self.os and not self.arch:
            return ""
        return "/".join(p for p in (self.os, self.arch, self.variant) if p) if self.os and self.arch else "?"


@dataclass
class BuilderState:
    registry: Registry | None
    target: str = ""
    fmt: str = FORMAT_AUTO  # buildx's choice: the children's family
    annotations_text: str = ""
    entries: list[BuilderEntry] = field(default_factory=list)
    expect_digest: str = ""


@dataclass
class Preview:
    plan: Plan | None
    errors: dict[str, list[str]]  # "target", "format", "annotations", "sources", or an entry key
    entry_errors: dict[str, list[str]]
    current_digest: str = ""
    diff: list[dict] = field(default_factory=list)
    command: str = ""

    @property
    def ok(self) -> bool:
        return self.plan is not None and not self.errors and not self.entry_errors


def annotations_parse(text: str) -> tuple[dict[str, str], list[str]]:
    """`key=value` lines into a dict, with a message per bad line."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            problems.append(f"line {number}: expected key=value")
            continue
        values[key.strip()] = value.strip()
    return values, problems


def state_from_post(data: dict, registry: Registry | None) -> BuilderState:
    """The builder's state from its form's cleaned data (forms.builder): strings, and a list per `e_` field."""
    columns = {name: data[f"e_{name}"] for name in ENTRY_FIELDS}
    count = len(columns["ref"])
    entries = [
        BuilderEntry(**{name: (columns[name][i] if i < len(columns[name]) else "").strip() for name in ENTRY_FIELDS})
        for i in range(count)
    ]
    return BuilderState(registry=registry, target=data["target"], fmt=data["format"],
                        annotations_text=data["annotations"], entries=entries, expect_digest=data["expect_digest"])


def entry_to_spec(entry: BuilderEntry) -> tuple[SourceSpec | None, list[str]]:
    problems: list[str] = []
    if bool(entry.os) != bool(entry.arch):
        problems.append("give both os and architecture")
    platform = entry.platform if entry.os and entry.arch else ""
    if platform:
        try:
            Platform.parse(platform)
        except InvalidPlatform as exc:
            problems.append(str(exc))
    annotations, bad = annotations_parse(entry.annotations)
    problems += bad
    if problems:
        return None, problems
    features = tuple(f.strip() for f in entry.os_features.split(",") if f.strip())
    return SourceSpec(reference=entry.ref, platform=platform, os_version=entry.os_version, os_features=features,
                      annotations=annotations, select=entry.select, registry=entry.registry), []


def preview_build(state: BuilderState) -> Preview:
    """Validate and render from the inventory; no registry I/O."""
    errors: dict[str, list[str]] = {}
    entry_errors: dict[str, list[str]] = {}
    if state.registry is None:
        return Preview(None, {"registry": ["choose a registry"]}, {})
    annotations, bad = annotations_parse(state.annotations_text)
    if bad:
        errors["annotations"] = bad
    specs: list[SourceSpec] = []
    keys: list[str] = []
    for entry in state.entries:
        spec, problems = entry_to_spec(entry)
        if problems:
            entry_errors[entry.key] = problems
        elif spec is not None:
            specs.append(spec)
            keys.append(entry.key)
    if state.fmt not in FORMATS:
        errors["format"] = [f"format must be one of {', '.join(FORMATS)}"]
    plan = None
    others: dict[str, Registry] = {}
    try:
        plan, others = list_plan_inventory(registry=state.registry, target=state.target, sources=specs,
                                           fmt=state.fmt if state.fmt in FORMATS else FORMAT_AUTO,
                                           annotations=annotations)
    except AssemblyInvalid as exc:
        for name, messages in exc.errors.items():
            if name.startswith("sources."):
                index = int(name.split(".", 1)[1])
                entry = next(e for e in state.entries if e.key == keys[index])
                entry_errors.setdefault(keys[index], []).extend(_at_entry(entry, m) for m in messages)
            else:
                errors.setdefault(name, []).extend(messages)
    if state.entries and "sources" in errors:
        # "no entries" said of a list whose entries each have their own error repeats them: keep those.
        errors.pop("sources")
    if not state.entries and "sources" in errors:
        errors["sources"] = ["add at least one image from the palette"]
    current = ""
    if "target" not in errors:
        try:
            current = tag_digest(registry=state.registry, reference=state.target)
        except InvalidReference:
            current = ""
    preview = Preview(plan if not errors and not entry_errors else None, errors, entry_errors, current)
    if preview.plan is not None:
        preview.diff = diff_build(registry=state.registry, target=state.target, plan=preview.plan)
        hosts = [others[spec.registry].host if spec.registry in others else state.registry.host for spec in specs]
        preview.command = command_build(registry=state.registry, state=state, plan=preview.plan, hosts=hosts)
    return preview


def _at_entry(entry: BuilderEntry, message: str) -> str:
    """A message shown at its entry need not name the entry's reference again."""
    for name in (entry.ref, entry.label):
        if name and message.startswith(f"{name}: "):
            return message[len(name) + 2:]
    return message


def _platform_key(platform: str, os_version: str) -> str:
    return f"{platform} {os_version}".strip()


def diff_build(*, registry: Registry, target: str, plan: Plan) -> list[dict]:
    """Per platform: added, removed, changed (another digest) or unchanged, against the stored tag."""
    ref = Reference.parse(target, allow_host=False)
    tag = Tag.objects.select_related("manifest").filter(
        repository__registry=registry, repository__name=ref.repository, name=ref.tag).first()
    before: dict[str, str] = {}
    if tag is not None:
        for row in tag.platform_rows.all():
            before[_platform_key(row.platform, row.os_version)] = row.digest
    return diff_rows(before=before, plan=plan)


def diff_rows(*, before: dict[str, str], plan: Plan) -> list[dict]:
    """The diff of `diff_build` against a given {"platform os_version": digest} (rules load them in bulk)."""
    after: dict[str, str] = {}
    for entry in plan.entries:
        descriptor = entry.descriptor
        if descriptor.is_attestation or descriptor.platform is None:
            continue
        after[_platform_key(descriptor.platform.normalized, descriptor.platform.os_version)] = descriptor.digest
    rows = []
    for key in sorted(set(before) | set(after), key=lambda k: platform_sort_key(k.split(" ")[0]) + (k,)):
        old, new = before.get(key, ""), after.get(key, "")
        status = "added" if not old else "removed" if not new else "unchanged" if old == new else "changed"
        rows.append({"platform": key, "old": old, "new": new, "status": status})
    return rows


def command_build(*, registry: Registry, state: BuilderState, plan: Plan, hosts: list[str] | None = None) -> str:
    """The one-line `docker buildx imagetools create` that makes the same list (attestations aside).

    `hosts`: per source, the host of the registry it lives in (the target's by default)."""
    host = registry.host
    parts = ["docker", "buildx", "imagetools", "create", "-t", f"{host}/{plan.target.repository}:{plan.target.tag}"]
    for key, value in plan.annotations.items():
        parts += ["--annotation", f"index:{key}={value}"]
    for entry in plan.entries:
        if entry.descriptor.is_attestation:
            continue
        source_host = hosts[entry.source_index] if hosts and entry.source_index < len(hosts) else host
        parts.append(f"{source_host}/{entry.source_repository}@{entry.descriptor.digest}")
    return " ".join(shlex.quote(p) for p in parts)


def entries_from_tag(*, registry: Registry, target: str) -> list[BuilderEntry]:
    """Start from what the tag holds (amend), one entry per platform manifest."""
    try:
        ref = Reference.parse(target, allow_host=False)
    except InvalidReference:
        return []
    tag = Tag.objects.select_related("manifest").filter(
        repository__registry=registry, repository__name=ref.repository, name=ref.tag).first()
    if tag is None or tag.manifest is None:
        return []
    if tag.kind != "index":
        m = tag.manifest
        return [BuilderEntry(key="e0", ref=f"{ref.repository}@{tag.digest}", label=f"{ref.repository}:{ref.tag}",
                             os=m.os, arch=m.architecture, variant=m.variant, os_version=m.os_version,
                             os_features=",".join(m.os_features))]
    entries = []
    for i, child in enumerate(tag.manifest.children.filter(is_attestation=False)):
        entries.append(BuilderEntry(
            key=f"e{i}", ref=f"{ref.repository}@{tag.digest}", select=child.digest,
            label=f"{ref.repository}:{ref.tag} → {child.platform or 'no platform'}",
            os=child.os, arch=child.architecture, variant=child.variant, os_version=child.os_version,
            os_features=",".join(child.os_features),
            annotations="\n".join(f"{k}={v}" for k, v in child.annotations.items())))
    return entries


_CANDIDATE_FIELDS = ("os", "architecture", "variant", "os_version", "os_features", "platform", "media_type")


@dataclass(frozen=True)
class Candidate:
    """An image the user can add: a single-platform tag or a platform child of a list."""

    ref: str
    select: str
    label: str
    repository: str
    tag: str
    os: str
    arch: str
    variant: str
    os_version: str
    os_features: str
    platform: str
    digest: str
    media_type: str
    from_list: bool
    registry: str = ""  # set when the image lives in another registry than the list's

    @property
    def token(self) -> str:
        return candidate_token(self)


class _Contains(IContains):
    """icontains; on PostgreSQL written as a position, whose share of matching rows it does not guess low.

    PostgreSQL estimates a few rows for `LIKE '%term%'`, so it sorts every
    match instead of walking the indexes in the order shown and stopping at
    the limit; for `strpos(...) > 0` it assumes a third of the rows match.
    SQLite walks in order either way, and its LIKE is the faster matcher.
    """

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"STRPOS(UPPER({lhs}::text), UPPER(%s)) > 0", [*lhs_params, self.rhs]


def _contains(field: str, term: str) -> Q:
    return Q(_Contains(F(field), term))


def _candidate_terms(terms: list[str], *, platform: str, repository: str, tag: str) -> Q:
    """Every term matches (a substring, any case): a platform or a repository path for a term with `/`,
    else the repository or the tag. One Q, so that a list child's conditions all name the same tag."""
    where = Q()
    for term in terms:
        if "/" in term and not any(c in term for c in ":@"):
            # A platform (linux/arm64) or a repository path: match either.
            where &= _contains(platform, term) | _contains(repository, term)
        else:
            where &= _contains(repository, term) | _contains(tag, term)
    return where


def _terms_may_match(*, registry: Registry, terms: list[str]) -> bool:
    """False when a term (not a platform) is in no repository name and no tag name of the registry: then no
    candidate matches, known in one query, where the two searches would each read every tag to find none
    (a platform term, with `/`, is left to them). Each EXISTS stops at the first match."""
    words = [term for term in terms if not ("/" in term and not any(c in term for c in ":@"))]
    if not words:
        return True
    # CASE, not OR: the tags are read only for a term in no repository name (both databases evaluate
    # every side of an OR of subqueries).
    checks = {f"t{i}": Case(
        When(Exists(Repository.objects.filter(_contains("name", term), registry=registry)), then=Value(True)),
        When(Exists(Tag.objects.filter(_contains("name", term), repository__registry=registry)), then=Value(True)),
        default=Value(False), output_field=BooleanField()) for i, term in enumerate(words)}
    found = Registry.objects.filter(pk=registry.pk).annotate(**checks).values(*checks).first()
    return found is not None and all(found.values())


def candidates_search(*, registry: Registry, query: str = "", limit: int = 60) -> list[Candidate]:
    """Single-platform images and the platform children of lists, from the inventory.

    Two queries whatever the inventory's size: each walks the registry's
    repositories and their tags in name order (the order shown) through the
    (registry, name) and (repository, name) unique indexes and stops at `limit`,
    so nothing is sorted and no manifest's raw bytes are read.
    """
    terms = query.strip().lower().split()
    if not _terms_may_match(registry=registry, terms=terms):
        return []
    images = (Tag.objects.filter(Q(repository__registry=registry, kind="image") & _candidate_terms(
        terms, platform="manifest__platform", repository="repository__name", tag="name"))
        .select_related("repository", "manifest")
        .only("name", "digest", "repository__name", *(f"manifest__{name}" for name in _CANDIDATE_FIELDS)))
    children = ManifestChild.objects.filter(
        Q(parent__tags__repository__registry=registry, is_attestation=False, platform__gt="") & _candidate_terms(
            terms, platform="platform", repository="parent__tags__repository__name", tag="parent__tags__name"),
    ).annotate(tag_name=F("parent__tags__name"), repository_name=F("parent__tags__repository__name"),
               parent_digest=F("parent__digest")).only("digest", *_CANDIDATE_FIELDS)
    found: list[Candidate] = []
    for tag in images.order_by("repository__name", "name")[:limit]:
        m = tag.manifest
        if m is None:
            continue
        found.append(Candidate(
            ref=f"{tag.repository.name}@{tag.digest}", select="", label=f"{tag.repository.name}:{tag.name}",
            repository=tag.repository.name, tag=tag.name, os=m.os, arch=m.architecture, variant=m.variant,
            os_version=m.os_version, os_features=",".join(m.os_features), platform=m.platform, digest=tag.digest,
            media_type=m.media_type, from_list=False))
    for child in children.order_by("repository_name", "tag_name", "position")[:limit]:
        found.append(Candidate(
            ref=f"{child.repository_name}@{child.parent_digest}", select=child.digest,
            label=f"{child.repository_name}:{child.tag_name} → {child.platform}",
            repository=child.repository_name, tag=child.tag_name, os=child.os, arch=child.architecture,
            variant=child.variant, os_version=child.os_version, os_features=",".join(child.os_features),
            platform=child.platform, digest=child.digest, media_type=child.media_type, from_list=True))
    return found


def palette_candidates(*, registry: Registry, source: Registry | None, query: str = "") -> list[Candidate]:
    """The palette: images of `source` (any registered registry; the target's by default), each naming its
    registry when it is not the target's, so the entry it makes is streamed across at the push."""
    if source is None or source.pk == registry.pk:
        return candidates_search(registry=registry, query=query)
    return [replace(c, registry=source.name, label=f"{source.name}: {c.label}")
            for c in candidates_search(registry=source, query=query)]


def entry_from_token(token: str, *, existing: list[BuilderEntry]) -> BuilderEntry:
    """A new entry from a candidate's Add button (a JSON object of entry fields)."""
    try:
        data = json.loads(token)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    used = {e.key for e in existing}
    number = len(existing)
    while f"e{number}" in used:
        number += 1
    fields = {name: str(data.get(name, "")) for name in ENTRY_FIELDS if name != "key"}
    return BuilderEntry(key=f"e{number}", **fields)


def candidate_token(candidate: Candidate) -> str:
    return json.dumps({"ref": candidate.ref, "select": candidate.select, "label": candidate.label,
                       "os": candidate.os, "arch": candidate.arch, "variant": candidate.variant,
                       "os_version": candidate.os_version, "os_features": candidate.os_features,
                       **({"registry": candidate.registry} if candidate.registry else {})})
