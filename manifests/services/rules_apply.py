"""A rule's apply job: every selected tag pushed as the dry run planned it, then the also_tags.

It pushes with `assemble.list_push`, sharing what it knows to be in the
target repository across tags, and records every push as made by the rule.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from registry import errors
from registry.assemble import Plan, PushResult, TagMoved, list_confirm, list_push, tag_current_digest
from registry.copy import CopyReport
from registry.mediatypes import parse_manifest

from .. import jobs
from ..models import Job, PushRecord, Registry, Repository, Rule, RuleTagState
from ..models import Manifest as ManifestRow
from .across import Across
from .registries import registry_client
from .rules import (
    STATUS_CONFLICT,
    STATUS_INCOMPLETE,
    STATUS_INVALID,
    STATUS_UNCHANGED,
    TagPlan,
    also_plans,
    rule_dry_run,
    rule_load,
    rule_tag_conflict,
    rule_tag_state_set,
    rule_targets,
)
from .rules_select import SelectionInvalid

logger = logging.getLogger(__name__)


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
            target_tags = rule_targets(rule)
            for row in rows:
                outcome = results[row.tag]
                if outcome["status"] in ("pushed", "unchanged"):
                    row.status, row.digest = STATUS_UNCHANGED, outcome["digest"]
                else:
                    row.status = outcome["status"]
            for number, row in enumerate(also_plans(rule, rows, target_tags, states), start=len(rows) + 1):
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
    if row.plan is None:  # every status but these three comes with a plan (rules._tag_plan)
        raise RuntimeError(f"{row.target}: the dry run gave status {row.status!r} and no list")
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
    from ..scan.fetching import Learned, TagFetch
    from ..scan.storing import manifests_store, repository_aggregate, tags_apply

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
        tags_apply(repository=repository, fetches=fetches, now=now, missing=set())
        repository_aggregate(repository)
