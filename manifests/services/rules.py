"""Assembly rules: keep `repo:{tag}` lists assembled from per-platform sources, tag by tag.

A rule turns, for each selected tag, into the very plan the builder makes
(`assemble.list_plan` over the inventory), so a rule's dry run, the builder's
preview and the push agree to the byte. The dry run reads the inventory in a
fixed number of queries, whatever the number of tags; the apply job pushes
with `assemble.list_push`, sharing what it knows to be in the target
repository across tags, and records every push as made by the rule
(rules_apply.py; the inventory loaded in bulk: rules_inventory.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from django.db.models import Prefetch, Q

from registry import errors
from registry.assemble import AssemblyInvalid, Plan, SourceSpec, list_plan
from registry.reference import validate_repository, validate_tag

from .. import jobs
from ..models import (
    Event,
    Job,
    Repository,
    Rule,
    RuleSource,
    RuleTagState,
    Tag,
    TagPlatform,
)
from . import events, queue
from .builder import diff_rows
from .labels import label_field_problem, label_values, uses_labels
from .rules_inventory import BulkInventory, TargetRow
from .rules_plans import Assembled, plan_remembered, rule_key_of
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


# -- the dry run ----------------------------------------------------------------


@dataclass
class TagPlan:
    tag: str  # the {tag} value (or an also_tag name)
    target: str  # repository:tag
    status: str
    digest: str = ""  # what the rule would push
    current: str = ""  # what the target holds now, per the inventory
    missing: list[str] = field(default_factory=list)
    error: str = ""
    follows: str = ""  # for an also_tag: the tag it points at
    plan: Plan | None = None
    last_pushed: str = ""
    # Per source of the plan (Entry.source_index): the id of the registry it lives in, when not the rule's.
    foreign: list[int | None] = field(default_factory=list)
    before: dict | None = None  # the target's platforms now, when the plan changes it: what `diff` compares

    @cached_property
    def diff(self) -> list[dict]:
        """Per platform, what the push would change (computed when read: a page shows 100 rows)."""
        if self.plan is None or self.before is None:
            return []
        return diff_rows(before=self.before, plan=self.plan)

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
    target_tags = rule_targets(rule)
    states = {state.tag: state for state in RuleTagState.objects.filter(rule=rule)}
    rule_key = rule_key_of(rule, sources)
    rows = [_tag_plan(rule, sources, inventory, value, target_tags, states, rule_key) for value in values]
    return DryRun(rule=rule, rows=rows, also=also_plans(rule, rows, target_tags, states))


def _tag_ok(rule: Rule, value: str) -> bool:
    try:
        validate_tag(template_render(rule.target_tag_template, value))
    except errors.InvalidReference:
        return False
    return True


def rule_targets(rule: Rule) -> dict[str, TargetRow]:
    """The target repository's tags from the inventory, with their platforms, in two queries."""
    where = {"repository__registry": rule.registry, "repository__name": rule.target_repository}
    before: dict[str, dict[str, str]] = {}
    for name, platform, os_version, digest in TagPlatform.objects.filter(
            **{f"tag__{k}": v for k, v in where.items()}).values_list("tag__name", "platform", "os_version",
                                                                      "digest"):
        before.setdefault(name, {})[f"{platform} {os_version}".strip()] = digest
    return {name: TargetRow(digest, before.get(name, {}))
            for name, digest in Tag.objects.filter(**where).values_list("name", "digest")}


def _tag_assemble(rule: Rule, sources: list[RuleSource], inventory: BulkInventory, value: str,
                  target: str, rule_key: tuple) -> Assembled:
    """The plan for one {tag} value, made once for what it is made of (rules_plans)."""
    found = [inventory.tags.get(s.repository, {}).get(template_render(s.tag, value)) for s in sources]
    key = (rule_key, value, tuple((f.digest, f.manifest, f.stamp) if f is not None else None for f in found))
    return plan_remembered(key=key, make=lambda: _tag_assemble_new(rule, sources, inventory, value, target, found))


def _tag_assemble_new(rule: Rule, sources: list[RuleSource], inventory: BulkInventory, value: str, target: str,
                      found: list) -> Assembled:
    missing: list[str] = []
    present: list[tuple[RuleSource, str, str]] = []
    for source, row in zip(sources, found, strict=True):
        source_tag = template_render(source.tag, value)
        if row is None or not row.manifest:
            missing.append(f"{source.repository}:{source_tag}")
        else:
            present.append((source, source_tag, row.digest))
    if not present or (not rule.require and missing):
        return Assembled(missing=tuple(missing))
    specs = [SourceSpec(reference=f"{source.repository}:{source_tag}", platform=source.platform)
             for source, source_tag, _ in present]
    foreign = tuple(source.registry_id if source.registry_id not in (None, rule.registry_id) else None
                    for source, _, _ in present)
    labels = ([inventory.labels(source.repository, source_tag, source.platform) for source, source_tag, _ in present]
              if uses_labels(rule.annotations) else None)
    fields = annotation_fields(tag=value, sources=present, labels=labels)
    if unfilled := annotations_unfilled(rule.annotations, fields):
        return Assembled(missing=tuple(missing), error=unfilled, foreign=foreign)
    annotations = annotations_render(rule.annotations, fields)
    try:
        plan = list_plan(client=inventory, target=target, sources=specs, fmt=rule.format, annotations=annotations)
    except AssemblyInvalid as exc:
        return Assembled(missing=tuple(missing), foreign=foreign, error="; ".join(
            (f"{specs[int(k.split('.')[1])].reference}: " if k.startswith("sources.") else "") + " ".join(v)
            for k, v in exc.errors.items()))
    if rule.require:
        have = {e.descriptor.platform.normalized for e in plan.entries
                if e.descriptor.platform is not None and not e.descriptor.is_attestation}
        lacking = [p for p in rule.require if p not in have]
        if lacking:
            return Assembled(missing=tuple(lacking + missing), foreign=foreign)
        missing = []  # optional sources that are absent are not missing
    return Assembled(missing=tuple(missing), plan=plan, foreign=foreign)


def _tag_plan(rule: Rule, sources: list[RuleSource], inventory: BulkInventory, value: str,
              target_tags: dict[str, TargetRow], states: dict[str, RuleTagState], rule_key: tuple) -> TagPlan:
    target_tag = template_render(rule.target_tag_template, value)
    target = f"{rule.target_repository}:{target_tag}"
    current_row = target_tags.get(target_tag)
    current = current_row.digest if current_row is not None else ""
    state = states.get(value)
    row = TagPlan(tag=value, target=target, status=STATUS_INCOMPLETE, current=current,
                  last_pushed=state.digest if state else "")
    done = _tag_assemble(rule, sources, inventory, value, target, rule_key)
    row.missing, row.foreign, row.error = list(done.missing), list(done.foreign), done.error
    if done.error:
        row.status = STATUS_INVALID
    if done.plan is None:
        return row
    row.plan = done.plan
    row.digest = done.plan.digest
    row.status = _status(planned=row.digest, current=current, last_pushed=row.last_pushed,
                         owns=rule.owns_target)
    if row.status != STATUS_UNCHANGED:
        row.before = current_row.before if current_row else {}
    return row


def also_plans(rule: Rule, rows: list[TagPlan], target_tags: dict[str, TargetRow],
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


def rule_apply_submit(*, rule: Rule, tags: list[str] | None = None, user=None, automatic: bool = False) -> Job:
    """Queue one job for the rule's selected tags (all of them when `tags` is None)."""
    return jobs.job_submit(kind=Job.KIND_RULE_APPLY, registry=rule.registry, user=user,
                           target=f"rule {rule.name}: {rule.target}",
                           params={"rule": rule.pk, "tags": tags, "automatic": automatic})


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
                rule_apply_submit(rule=rule, tags=tags, automatic=True)
            except queue.QueueUnavailable:
                # The broker's health is cached for a few seconds: ask it again once before giving up,
                # and then say so on the rule, where its owner looks.
                queue.queue_forget()
                try:
                    rule_apply_submit(rule=rule, tags=tags, automatic=True)
                except queue.QueueUnavailable:
                    logger.warning("rules: the queue is down, %s not re-assembled for %s", tags, rule.name)
                    Rule.objects.filter(pk=rule.pk).update(
                        last_error=f"the task queue was unreachable when {', '.join(tags)} moved in "
                                   f"{repository.name}: apply the rule to re-assemble them")
    except Exception:
        logger.exception("rules: reacting to moves in %s failed", repository)
