"""Assembly rules: keep `repo:{tag}` lists assembled from per-platform sources, tag by tag.

A rule turns, for each selected tag, into the very plan the builder makes
(`assemble.list_plan` over the inventory), so a rule's dry run, the builder's
preview and the push agree to the byte. The dry run reads the inventory in a
fixed number of queries, whatever the number of tags; the apply job pushes
with `assemble.list_push`, sharing what it knows to be in the target
repository across tags, and records every push as made by the rule.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Prefetch, Q
from django.utils import timezone

from registry import errors
from registry.copy import CopyReport
from registry.mediatypes import Manifest, parse_manifest
from registry.reference import validate_repository, validate_tag

from ..models import (
    Event,
    Job,
    ManifestChild,
    PushRecord,
    Registry,
    Repository,
    Rule,
    RuleSource,
    RuleTagState,
    Tag,
    TagPlatform,
)
from ..models import Manifest as ManifestRow
from . import events, jobs, queue
from .across import Across
from .assemble import (
    AssemblyInvalid,
    Plan,
    PushResult,
    SourceSpec,
    TagMoved,
    list_confirm,
    list_plan,
    list_push,
    tag_current_digest,
)
from .builder import diff_rows
from .inventory import config_stored
from .labels import config_labels, configs_load, contributed_digest, label_field_problem, label_values, uses_labels
from .registries import registry_client
from .rules_select import SelectionInvalid, selection_compile, semver_newest, semver_parse

logger = logging.getLogger(__name__)

PLACEHOLDER = "{tag}"
STATUS_NEW = "new"
STATUS_UNCHANGED = "unchanged"
STATUS_CHANGED = "changed"
STATUS_INCOMPLETE = "incomplete"
STATUS_CONFLICT = "conflict"
STATUS_INVALID = "invalid"
PUSHABLE = (STATUS_NEW, STATUS_CHANGED)


# -- templates ------------------------------------------------------------------


def template_render(template: str, tag: str) -> str:
    return template.replace(PLACEHOLDER, tag)


def template_pattern(template: str) -> re.Pattern:
    """The tags a source template produces, with the {tag} part as a group: `{tag}-arm64` -> (?P<tag>.+)-arm64."""
    before, _, after = template.partition(PLACEHOLDER)
    return re.compile(re.escape(before) + r"(?P<tag>[A-Za-z0-9_.-]+?)" + re.escape(after))


def target_validate(target: str) -> str | None:
    """A message when `repo:{tag}` is not a usable target template."""
    repository, sep, tag = target.rpartition(":")
    if not sep or not repository:
        return "give the target as repository:{tag}, e.g. username/test:{tag}"
    if PLACEHOLDER in repository or "{" in repository:
        return "{tag} may only stand in the tag part (after the colon)"
    if tag.count(PLACEHOLDER) != 1:
        return "the tag part must hold {tag} once, e.g. username/test:{tag}"
    try:
        validate_repository(repository)
        validate_tag(template_render(tag, "x"))
    except errors.InvalidReference as exc:
        return str(exc)
    return None


_ANNOTATION_FIELD = re.compile(r"\{([A-Za-z0-9_.]*label:[^{}]*|[a-z0-9_.]+)\}")


def annotation_fields(*, tag: str, sources: list[tuple[RuleSource, str, str]],
                      labels: list[dict[str, str]] | None = None) -> dict[str, str]:
    """What annotation values may name: {tag}, {version} and, per source N (1-based),
    {sourceN.repository}, {sourceN.tag} and {sourceN.digest}; with the sources' image labels
    (per source, in order), {label:NAME} and {sourceN.label:NAME} (services.labels)."""
    version = semver_parse(tag)
    values = {"tag": tag, "version": tag.lstrip("v") if version else tag}
    for number, (source, source_tag, digest) in enumerate(sources, start=1):
        values[f"source{number}.repository"] = source.repository
        values[f"source{number}.tag"] = source_tag
        values[f"source{number}.digest"] = digest
    values.update(label_values(labels or []))
    return values


def annotations_render(annotations: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    """Substitute {name} fields (no str.format: a template must not reach attributes)."""
    return {key: _ANNOTATION_FIELD.sub(lambda m: values.get(m[1], m[0]), value)
            for key, value in annotations.items()}


def annotations_unfilled(annotations: dict[str, str], values: dict[str, str]) -> str:
    """What a tag lacks to render its annotations (a label no source carries), said per annotation; ""."""
    problems = []
    for key, value in annotations.items():
        for name in _ANNOTATION_FIELD.findall(value):
            if "label:" in name and name not in values:
                source, _, label = name.rpartition("label:")
                who = f"source {source[6:-1]}'s image" if source else "no source image"
                verb = "does not carry" if source else "carries"
                problems.append(f"annotation {key}: {who} {verb} the label {label}")
    return "; ".join(problems)


def annotations_check(annotations: dict[str, str], *, source_count: int) -> list[str]:
    known = set(annotation_fields(tag="1.0.0", sources=[(RuleSource(repository="r"), "t", "d")] * source_count))
    problems = []
    for key, value in annotations.items():
        for name in _ANNOTATION_FIELD.findall(value):
            if problem := label_field_problem(name, source_count=source_count):
                problems.append(f"{key}: {problem}")
            elif name not in known and "label:" not in name:
                problems.append(f"{key}: unknown field {{{name}}}: use {{tag}}, {{version}}, "
                                "{sourceN.repository}, {sourceN.tag}, {sourceN.digest}, {label:NAME} "
                                "or {sourceN.label:NAME}")
    return problems


# -- the inventory, loaded in bulk ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TagRow:
    name: str
    digest: str
    kind: str
    manifest: str  # the stored manifest's digest, "" when the scan could not read it
    error: str


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
class _TargetRow:
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
        for repository, name, digest, kind, manifest, error in tags.values_list(
                "repository__name", "name", "digest", "kind", "manifest__digest", "error"):
            self.tags[repository][name] = _TagRow(name, digest, kind, manifest or "", error)
            if manifest:
                self._in_repository[repository].add(manifest)
                if kind == "index":
                    indexes.append((repository, manifest))
        children = ManifestChild.objects.filter(parent_id__in=tags.filter(kind="index").values("manifest_id"))
        self._manifests: dict[str, _ManifestRow] = {}
        for values in ManifestRow.objects.filter(
                Q(pk__in=tags.values("manifest_id")) | Q(digest__in=children.values("digest"))).values_list(
                "digest", "media_type", "raw", "config_digest", "os", "architecture", "variant", "os_version",
                "os_features"):
            self._manifests[values[0]] = _ManifestRow(*values)
        self._parsed: dict[str, Manifest] = {}
        for repository, digest in indexes:
            if digest in self._manifests:
                listing = self._parse(self._manifests[digest])
                self._in_repository[repository].update(c.digest for c in listing.children)
        self._configs = {row.config_digest: row for row in self._manifests.values() if row.config_digest}
        self._kept_configs: dict[str, dict] | None = None

    def _parse(self, row: _ManifestRow) -> Manifest:
        parsed = self._parsed.get(row.digest)
        if parsed is None:
            parsed = self._parsed[row.digest] = parse_manifest(bytes(row.raw), content_type=row.media_type,
                                                               digest=row.digest)
        return parsed

    def get_manifest(self, repository: str, reference: str) -> Manifest:
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
        if self._kept_configs is None:
            self._kept_configs = configs_load(digests=set(self._manifests))
        found = self.tags.get(repository, {}).get(tag)
        row = self._manifests.get(found.manifest) if found is not None else None
        if row is None:
            return {}
        return config_labels(self._kept_configs.get(contributed_digest(self._parse(row), platform)))

    def get_json_blob(self, repository: str, digest: str, **kwargs) -> dict:
        row = self._configs.get(digest)
        if row is None:
            raise errors.BlobUnknown(f"config {digest} is not in the inventory")
        return config_stored(row)


# -- the dry run ----------------------------------------------------------------


@dataclass
class TagPlan:
    tag: str  # the {tag} value (or an also_tag name)
    target: str  # repository:tag
    status: str
    digest: str = ""  # what the rule would push
    current: str = ""  # what the target holds now, per the inventory
    missing: list[str] = field(default_factory=list)
    diff: list[dict] = field(default_factory=list)
    error: str = ""
    follows: str = ""  # for an also_tag: the tag it points at
    plan: Plan | None = None
    last_pushed: str = ""
    # Per source of the plan (Entry.source_index): the id of the registry it lives in, when not the rule's.
    foreign: list[int | None] = field(default_factory=list)

    def as_json(self) -> dict:
        data = {"tag": self.tag, "target": self.target, "status": self.status, "digest": self.digest,
                "current": self.current, "missing": self.missing, "diff": self.diff}
        if self.error:
            data["error"] = self.error
        if self.follows:
            data["follows"] = self.follows
        return data


@dataclass
class DryRun:
    rule: Rule
    rows: list[TagPlan]
    also: list[TagPlan]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    def as_json(self) -> dict:
        return {"rule": self.rule.pk, "tags": [row.as_json() for row in self.rows],
                "also": [row.as_json() for row in self.also], "counts": self.counts()}


def rule_load(*, rule_id: int) -> Rule | None:
    return (Rule.objects.select_related("registry")
            .prefetch_related(Prefetch("sources", queryset=RuleSource.objects.select_related("registry")
                                       .order_by("position")))
            .filter(pk=rule_id).first())


def _status(*, planned: str, current: str, last_pushed: str, owns: bool) -> str:
    if current == planned:
        return STATUS_UNCHANGED
    if not current:
        return STATUS_NEW
    if owns or (last_pushed and current == last_pushed):
        return STATUS_CHANGED
    # The target holds something the rule did not push last (or the rule never pushed it).
    return STATUS_CONFLICT


def rule_tags_candidates(*, rule: Rule, inventory: BulkInventory) -> set[str]:
    """Every {tag} value that some source repository holds, before selection."""
    found: set[str] = set()
    for source in rule.sources.all():
        pattern = template_pattern(source.tag)
        for name in inventory.tags.get(source.repository, {}):
            match = pattern.fullmatch(name)
            if match is not None:
                found.add(match["tag"])
    return found


def rule_dry_run(*, rule: Rule, tags: Iterable[str] | None = None) -> DryRun:
    """What applying the rule would do to each selected tag, from the inventory alone.

    A fixed number of queries whatever the number of tags (the rule's sources,
    the source tags with their manifests, the children of lists, the target
    tags and their platforms, the rule's states).
    """
    sources = list(rule.sources.all())
    registry = rule.registry
    selected = selection_compile(mode=rule.tags_mode, pattern=rule.tags_pattern)
    wanted = set(tags) if tags is not None else None
    source_names = None
    if wanted is not None:
        source_names = {template_render(s.tag, t) for s in sources for t in wanted}
    elsewhere: dict[int, list[str]] = {}
    for source in sources:
        if source.registry_id and source.registry_id != registry.pk:
            elsewhere.setdefault(source.registry_id, []).append(source.repository)
    local = sorted({s.repository for s in sources if not s.registry_id or s.registry_id == registry.pk})
    inventory = BulkInventory(registry=registry, repositories=local, tag_names=source_names, elsewhere=elsewhere)
    candidates = rule_tags_candidates(rule=rule, inventory=inventory) if wanted is None else wanted
    also = set(rule.also_tag)
    values = sorted(t for t in candidates if t not in also and selected(t) and _tag_ok(rule, t))
    target_tags = _targets(rule)
    states = {state.tag: state for state in RuleTagState.objects.filter(rule=rule)}
    rows = [_tag_plan(rule, sources, inventory, value, target_tags, states) for value in values]
    return DryRun(rule=rule, rows=rows, also=_also_plans(rule, rows, target_tags, states))


def _tag_ok(rule: Rule, value: str) -> bool:
    try:
        validate_tag(template_render(rule.target_tag_template, value))
    except errors.InvalidReference:
        return False
    return True


def _targets(rule: Rule) -> dict[str, _TargetRow]:
    """The target repository's tags from the inventory, with their platforms, in two queries."""
    where = {"repository__registry": rule.registry, "repository__name": rule.target_repository}
    before: dict[str, dict[str, str]] = {}
    for name, platform, os_version, digest in TagPlatform.objects.filter(
            **{f"tag__{k}": v for k, v in where.items()}).values_list("tag__name", "platform", "os_version",
                                                                      "digest"):
        before.setdefault(name, {})[f"{platform} {os_version}".strip()] = digest
    return {name: _TargetRow(digest, before.get(name, {}))
            for name, digest in Tag.objects.filter(**where).values_list("name", "digest")}


def _tag_plan(rule: Rule, sources: list[RuleSource], inventory: BulkInventory, value: str,
              target_tags: dict[str, _TargetRow], states: dict[str, RuleTagState]) -> TagPlan:
    target_tag = template_render(rule.target_tag_template, value)
    target = f"{rule.target_repository}:{target_tag}"
    current_row = target_tags.get(target_tag)
    current = current_row.digest if current_row is not None else ""
    state = states.get(value)
    row = TagPlan(tag=value, target=target, status=STATUS_INCOMPLETE, current=current,
                  last_pushed=state.digest if state else "")
    present: list[tuple[RuleSource, str, str]] = []
    for source in sources:
        source_tag = template_render(source.tag, value)
        found = inventory.tags.get(source.repository, {}).get(source_tag)
        if found is None or not found.manifest:
            row.missing.append(f"{source.repository}:{source_tag}")
        else:
            present.append((source, source_tag, found.digest))
    if not present or (not rule.require and row.missing):
        return row
    specs = [SourceSpec(reference=f"{source.repository}:{source_tag}", platform=source.platform)
             for source, source_tag, _ in present]
    row.foreign = [source.registry_id if source.registry_id not in (None, rule.registry_id) else None
                   for source, _, _ in present]
    labels = ([inventory.labels(source.repository, source_tag, source.platform) for source, source_tag, _ in present]
              if uses_labels(rule.annotations) else None)
    fields = annotation_fields(tag=value, sources=present, labels=labels)
    if unfilled := annotations_unfilled(rule.annotations, fields):
        row.status, row.error = STATUS_INVALID, unfilled
        return row
    annotations = annotations_render(rule.annotations, fields)
    try:
        plan = list_plan(client=inventory, target=target, sources=specs, fmt=rule.format, annotations=annotations)
    except AssemblyInvalid as exc:
        row.status = STATUS_INVALID
        row.error = "; ".join(
            (f"{specs[int(k.split('.')[1])].reference}: " if k.startswith("sources.") else "") + " ".join(v)
            for k, v in exc.errors.items())
        return row
    if rule.require:
        have = {e.descriptor.platform.normalized for e in plan.entries
                if e.descriptor.platform is not None and not e.descriptor.is_attestation}
        lacking = [p for p in rule.require if p not in have]
        if lacking:
            row.missing = lacking + row.missing
            return row
        row.missing = []  # optional sources that are absent are not missing
    row.plan = plan
    row.digest = plan.digest
    row.status = _status(planned=plan.digest, current=current, last_pushed=row.last_pushed,
                         owns=rule.owns_target)
    if row.status != STATUS_UNCHANGED:
        row.diff = diff_rows(before=current_row.before if current_row else {}, plan=plan)
    return row


def _also_plans(rule: Rule, rows: list[TagPlan], target_tags: dict[str, _TargetRow],
                states: dict[str, RuleTagState]) -> list[TagPlan]:
    """`latest` (any also_tag) follows the newest semver tag the rule assembled or would assemble."""
    if not rule.also_tag:
        return []
    assembled = {row.tag: row.digest for row in rows
                 if row.digest and row.status in (STATUS_NEW, STATUS_CHANGED, STATUS_UNCHANGED)}
    for state in states.values():
        if state.digest and state.status in (RuleTagState.STATUS_PUSHED, RuleTagState.STATUS_UNCHANGED):
            assembled.setdefault(state.tag, state.digest)
    newest = semver_newest(t for t in assembled if t not in rule.also_tag)
    plans = []
    for name in rule.also_tag:
        current_row = target_tags.get(name)
        current = current_row.digest if current_row is not None else ""
        state = states.get(name)
        row = TagPlan(tag=name, target=f"{rule.target_repository}:{name}", status=STATUS_INCOMPLETE,
                      current=current, follows=newest, last_pushed=state.digest if state else "")
        if not newest:
            row.missing = ["no semver tag assembled yet"]
        else:
            row.digest = assembled[newest]
            row.status = _status(planned=row.digest, current=current, last_pushed=row.last_pushed,
                                 owns=rule.owns_target)
        plans.append(row)
    return plans


# -- states ---------------------------------------------------------------------


def rule_tag_state_set(*, rule: Rule, tag: str, status: str, digest: str | None = None, error: str = "",
                       job: Job | None = None) -> RuleTagState:
    """Record how a tag went; `digest` (what the rule pushed or found in place) is kept when None."""
    defaults: dict = {"status": status, "error": error, "job": job}
    if digest is not None:
        defaults["digest"] = digest
    state, _ = RuleTagState.objects.update_or_create(rule=rule, tag=tag, defaults=defaults)
    return state


def rule_tag_conflict(*, rule: Rule, tag: str, target: str, current: str, job: Job | None = None) -> RuleTagState:
    """A tag's target was changed by someone else since the rule last pushed it: stop, say so.

    The one place a rule conflict is recorded. A `rule_conflict` event (and
    its notifications) is recorded when the conflict is new: not again on every
    apply that finds the same digest in place.
    """
    before = RuleTagState.objects.filter(rule=rule, tag=tag).first()
    error = (f"{target} holds {current[:19]}…, which this rule did not push: it was left alone "
             "(let the rule own its targets to overwrite it)")
    state = rule_tag_state_set(rule=rule, tag=tag, status=RuleTagState.STATUS_CONFLICT, job=job, error=error)
    if before is None or before.status != RuleTagState.STATUS_CONFLICT or before.error != error:
        repository, _, target_tag = target.rpartition(":")
        events.event_record(kind=Event.RULE_CONFLICT, registry=rule.registry, repository=repository, tag=target_tag,
                            old_digest=before.digest if before else "", new_digest=current,
                            detail=f"rule {rule.name}: {error}")
    return state


# -- the apply job ----------------------------------------------------------------


def rule_apply_job_create(*, rule: Rule, tags: list[str] | None = None, user=None, automatic: bool = False) -> Job:
    """Queue one job for the rule's selected tags (all of them when `tags` is None)."""
    from ..tasks import rule_apply_run

    if not queue.queue_available():
        raise queue.QueueUnavailable()
    job = jobs.job_create(kind=Job.KIND_RULE_APPLY, registry=rule.registry, user=user,
                          target=f"rule {rule.name}: {rule.target}",
                          params={"rule": rule.pk, "tags": tags, "automatic": automatic})
    queue.job_enqueue(task=rule_apply_run, job=job)
    return job


def rule_apply_job_run(*, job_id: int, worker: str = "") -> None:
    """Run a rule's apply job, on one worker at a time, like a push."""
    jobs.job_run(job_id=job_id, runner=rule_apply_execute, exclusive=True, worker=worker)


def rule_apply_execute(job: Job, progress: jobs.JobProgress) -> None:
    """The runner of a rule_apply job: every selected tag, then the also_tags; never raises."""
    rule = rule_load(rule_id=job.params.get("rule") or 0)
    if rule is None:
        jobs.job_finish(job=job, progress=progress, error="the rule was deleted")
        return
    try:
        outcome = _apply(rule, job, progress)
    except SelectionInvalid as exc:
        outcome = {"error": f"the rule's tag selection is invalid: {exc}", "result": {}}
    except errors.RegistryError as exc:
        outcome = {"error": f"registry error: {exc}", "result": {"code": exc.code}}
    except Exception:
        logger.exception("rule job %s crashed", job.pk)
        outcome = {"error": "internal error: see the worker log", "result": {}}
    Rule.objects.filter(pk=rule.pk).update(last_error=outcome["error"], last_applied_at=timezone.now())
    jobs.job_finish(job=job, progress=progress, error=outcome["error"], result=outcome["result"])


def _apply(rule: Rule, job: Job, progress: jobs.JobProgress) -> dict:
    dry = rule_dry_run(rule=rule, tags=job.params.get("tags"))
    rows = dry.rows
    total = len(rows) + len(rule.also_tag)
    results: dict[str, dict] = {}
    pushed: list[tuple[str, Plan | None, str, bytes, str]] = []  # (tag, plan, digest, raw, media type)
    present: set[str] = set()  # manifests and blobs known to be in the target repository
    repository = rule.target_repository
    across = Across(progress)
    with registry_client(registry=rule.registry) as client:
        try:
            for number, row in enumerate(rows, start=1):
                results[row.tag] = _apply_one(rule, job, client, row, present, pushed, across)
                progress({"event": "tag", "tag": row.tag, "n": number, "of": total, **results[row.tag],
                          **({"transfer": across.stats.as_dict()} if across.clients else {})})
        finally:
            across.close()
        if rule.also_tag:
            # Take what this run assembled into account.
            states = {s.tag: s for s in RuleTagState.objects.filter(rule=rule)}
            target_tags = _targets(rule)
            for row in rows:
                outcome = results[row.tag]
                if outcome["status"] in ("pushed", "unchanged"):
                    row.status, row.digest = STATUS_UNCHANGED, outcome["digest"]
                else:
                    row.status = outcome["status"]
            for number, row in enumerate(_also_plans(rule, rows, target_tags, states), start=len(rows) + 1):
                results[row.tag] = _apply_also(rule, job, client, row, pushed, {r.tag: r for r in rows})
                progress({"event": "tag", "tag": row.tag, "n": number, "of": total, **results[row.tag]})
        counters = dict(client.counters)
    _inventory_record(rule.registry, repository, pushed)
    failed = [tag for tag, result in results.items() if result["status"] == "failed"]
    counts: dict[str, int] = {}
    for result in results.values():
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    error = ""
    if failed:
        error = f"{len(failed)} of {total} tags failed: " + "; ".join(
            f"{tag}: {results[tag]['error']}" for tag in failed[:5])
    result = {"tags": results, "counts": counts, "requests": counters}
    if across.clients:
        result["transfer"] = across.stats.as_dict()
    return {"error": error, "result": result}


def _record_push(rule: Rule, job: Job, *, tag: str, old: str, new: str, media_type: str, raw: bytes,
                 verify_error: str) -> None:
    PushRecord.objects.create(registry=rule.registry, repository=rule.target_repository, tag=tag, old_digest=old,
                              new_digest=new, media_type=media_type, raw=raw, job=job, user=job.created_by,
                              rule=rule, verified=not verify_error, verify_error=verify_error)


def _push_confirm(client, *, repository: str, tag: str, result: PushResult, present: set[str]) -> str:
    """The read-back of a rule's push at the request floor, as the builder's (list_confirm): the PUT's
    answer proves the tag when it named our digest, and only the children no answer proved (in this job
    or earlier ones) are asked for, once per job. "" when proven, else what failed."""
    children = [digest for digest in result.unproven if digest not in present]
    try:
        list_confirm(client=client, repository=repository, tag=tag, digest=result.digest,
                     put_confirmed=result.confirmed, children=children, read_tag=False)
    except errors.RegistryError as exc:
        return f"read-back failed: {exc}"
    present.update(children)
    return ""


def _apply_one(rule: Rule, job: Job, client, row: TagPlan, present: set[str], pushed: list,
               across: Across | None = None) -> dict:
    target_tag = row.target.rpartition(":")[2]
    if row.status == STATUS_INCOMPLETE:
        rule_tag_state_set(rule=rule, tag=row.tag, status=RuleTagState.STATUS_INCOMPLETE, job=job,
                           error="missing: " + ", ".join(row.missing))
        return {"status": "incomplete", "missing": row.missing, "digest": ""}
    if row.status == STATUS_INVALID:
        rule_tag_state_set(rule=rule, tag=row.tag, status=RuleTagState.STATUS_FAILED, job=job, error=row.error)
        return {"status": "failed", "error": row.error, "digest": ""}
    if row.status == STATUS_CONFLICT:
        rule_tag_conflict(rule=rule, tag=row.tag, target=row.target, current=row.current, job=job)
        return {"status": "conflict", "current": row.current, "digest": row.digest}
    assert row.plan is not None
    # What the target may hold for the rule to write it: what the rule pushed last ("" when
    # it never did); an owning rule overwrites whatever is there.
    expect = None if rule.owns_target else (row.last_pushed if row.current else "")
    try:
        if across is not None and any(row.foreign):
            # Blobs cannot be mounted from another registry: stream them first (then the copy finds them),
            # unless the target already holds this very list.
            if tag_current_digest(client=client, repository=rule.target_repository,
                                  tag=target_tag) != row.plan.digest:
                across.bring(target=client, plan=row.plan, foreign=row.foreign, repository=rule.target_repository,
                             present=present)
        try:
            result = list_push(client=client, plan=row.plan, expect_digest=expect, present=present, verify=False)
        except TagMoved as moved:
            # The inventory was behind, but the target holds what the rule may replace: nothing, or its own list.
            if moved.actual not in ("", row.last_pushed):
                raise
            result = list_push(client=client, plan=row.plan, expect_digest=moved.actual, present=present,
                               verify=False)
    except TagMoved as exc:
        rule_tag_conflict(rule=rule, tag=row.tag, target=row.target, current=exc.actual, job=job)
        return {"status": "conflict", "current": exc.actual, "digest": row.digest}
    except errors.RegistryError as exc:
        rule_tag_state_set(rule=rule, tag=row.tag, status=RuleTagState.STATUS_FAILED, job=job,
                           error=f"registry error: {exc}")
        return {"status": "failed", "error": f"registry error: {exc}", "digest": ""}
    if result.already_done:
        rule_tag_state_set(rule=rule, tag=row.tag, status=RuleTagState.STATUS_UNCHANGED, digest=result.digest,
                           job=job)
        if row.current != result.digest:  # the inventory did not know yet
            pushed.append((target_tag, row.plan, result.digest, row.plan.raw, row.plan.media_type))
        return {"status": "unchanged", "digest": result.digest}
    verify_error = _push_confirm(client, repository=rule.target_repository, tag=target_tag, result=result,
                                 present=present)
    with transaction.atomic():
        _record_push(rule, job, tag=target_tag, old=result.old_digest, new=result.digest,
                     media_type=result.media_type, raw=result.raw, verify_error=verify_error)
        if verify_error:
            error = f"{row.target} now holds {result.digest} (recorded in its history), but {verify_error}"
            rule_tag_state_set(rule=rule, tag=row.tag, status=RuleTagState.STATUS_FAILED, digest=result.digest,
                               job=job, error=error)
            return {"status": "failed", "error": error, "digest": result.digest, "old_digest": result.old_digest}
        rule_tag_state_set(rule=rule, tag=row.tag, status=RuleTagState.STATUS_PUSHED, digest=result.digest,
                           job=job)
    pushed.append((target_tag, row.plan, result.digest, result.raw, result.media_type))
    return {"status": "pushed", "digest": result.digest, "old_digest": result.old_digest,
            "copied": result.copy.as_dict()}


def _apply_also(rule: Rule, job: Job, client, row: TagPlan, pushed: list, by_tag: dict[str, TagPlan]) -> dict:
    if row.status == STATUS_INCOMPLETE:
        return {"status": "incomplete", "missing": row.missing, "digest": ""}
    source = by_tag.get(row.follows)
    raw, media_type = b"", ""
    if source is not None and source.plan is not None and source.plan.digest == row.digest:
        raw, media_type = source.plan.raw, source.plan.media_type
    else:
        stored = ManifestRow.objects.filter(digest=row.digest).first()
        if stored is not None:
            raw, media_type = bytes(stored.raw), stored.media_type
    if not raw:
        return {"status": "failed", "error": f"the list {row.digest} is not in the inventory", "digest": ""}
    try:
        current = tag_current_digest(client=client, repository=rule.target_repository, tag=row.tag)
        if current == row.digest:
            rule_tag_state_set(rule=rule, tag=row.tag, status=RuleTagState.STATUS_UNCHANGED, digest=row.digest,
                               job=job)
            return {"status": "unchanged", "digest": row.digest, "follows": row.follows}
        if current and not rule.owns_target and current != row.last_pushed:
            rule_tag_conflict(rule=rule, tag=row.tag, target=row.target, current=current, job=job)
            return {"status": "conflict", "current": current, "digest": row.digest}
        answer = client.put_manifest_answer(rule.target_repository, row.tag, raw, media_type)
    except errors.RegistryError as exc:
        rule_tag_state_set(rule=rule, tag=row.tag, status=RuleTagState.STATUS_FAILED, job=job,
                           error=f"registry error: {exc}")
        return {"status": "failed", "error": f"registry error: {exc}", "digest": ""}
    digest = answer.digest
    # The children are those of the list it follows, proven by that tag's push: only the tag is left to prove.
    put = PushResult(digest, current, media_type, raw, CopyReport(), confirmed=answer.confirmed)
    verify_error = _push_confirm(client, repository=rule.target_repository, tag=row.tag, result=put, present=set())
    with transaction.atomic():
        _record_push(rule, job, tag=row.tag, old=current, new=digest, media_type=media_type, raw=raw,
                     verify_error=verify_error)
        rule_tag_state_set(rule=rule, tag=row.tag, status=RuleTagState.STATUS_PUSHED, digest=digest, job=job)
    pushed.append((row.tag, None, digest, raw, media_type))
    return {"status": "pushed", "digest": digest, "old_digest": current, "follows": row.follows}


def _inventory_record(registry: Registry, repository_name: str, pushed: list) -> None:
    """Record the pushed lists as the target's tags without asking the registry again:
    the job put these exact bytes (their children came from the inventory)."""
    if not pushed:
        return
    from .scan import Learned, TagFetch, manifests_store, repository_aggregate, tags_apply

    now = timezone.now()
    fetches = []
    learned = []
    for tag, _plan, digest, raw, media_type in pushed:
        manifest = parse_manifest(raw, content_type=media_type, digest=digest)
        item = Learned(manifest=manifest)
        learned.append(item)
        fetches.append(TagFetch(name=tag, digest=digest, learned={digest: item}))
    with transaction.atomic():
        repository, _ = Repository.objects.select_for_update().get_or_create(registry=registry,
                                                                             name=repository_name)
        manifests_store(learned)
        tags_apply(repository, fetches, now, set())
        repository_aggregate(repository)


# -- automatic --------------------------------------------------------------------


def rules_for_moves(*, repository: Repository, moves) -> dict[int, list[str]]:
    """Per automatic rule with a source in this repository: the {tag} values the moves touch."""
    sources = (RuleSource.objects.select_related("rule")
               .filter(repository=repository.name, rule__automatic=True)
               .filter(Q(registry_id=repository.registry_id)
                       | Q(registry__isnull=True, rule__registry_id=repository.registry_id)))
    found: dict[int, set[str]] = {}
    rules: dict[int, Rule] = {}
    for source in sources:
        rule = rules.setdefault(source.rule_id, source.rule)
        try:
            selected = selection_compile(mode=rule.tags_mode, pattern=rule.tags_pattern)
        except SelectionInvalid:
            continue
        pattern = template_pattern(source.tag)
        for move in moves:
            match = pattern.fullmatch(move.tag)
            if match is not None and match["tag"] not in rule.also_tag and selected(match["tag"]):
                found.setdefault(rule.pk, set()).add(match["tag"])
    return {pk: sorted(tags) for pk, tags in found.items()}


def rules_on_tags_moved(sender, *, repository: Repository, moves, **kwargs) -> None:
    """tags_moved receiver: one apply job per matching rule for the tags that moved.

    Runs in the scan's worker, after its commit: it only queues work, and a
    failure to queue is logged, never raised into the scan.
    """
    try:
        targets = rules_for_moves(repository=repository, moves=moves)
        for rule_id, tags in targets.items():
            rule = Rule.objects.filter(pk=rule_id).select_related("registry").first()
            if rule is None:
                continue
            try:
                rule_apply_job_create(rule=rule, tags=tags, automatic=True)
            except queue.QueueUnavailable:
                # The broker's health is cached for a few seconds: ask it again once before giving up,
                # and then say so on the rule, where its owner looks.
                queue.queue_forget()
                try:
                    rule_apply_job_create(rule=rule, tags=tags, automatic=True)
                except queue.QueueUnavailable:
                    logger.warning("rules: the queue is down, %s not re-assembled for %s", tags, rule.name)
                    Rule.objects.filter(pk=rule.pk).update(
                        last_error=f"the task queue was unreachable when {', '.join(tags)} moved in "
                                   f"{repository.name}: apply the rule to re-assemble them")
    except Exception:
        logger.exception("rules: reacting to moves in %s failed", repository)
