"""A scan job: one repository (or some of its tags) at once, or a whole registry fanned out.

A whole-registry scan lists the repositories, then sends them in parts of
a few repositories (the `scan_part_run` task, part_names), so that adding
workers (on other machines, same Redis and database) shortens it; a part
writes each repository while it fetches the next (behind.py). Each repository
is counted once (a ScanPart row); the last to be counted
closes the job (`_scan_close`): the totals, the repositories gone from the
catalog and the registry's last scan are written there, and only there.
Run inline (jobs.job_run(inline=True): tests, the benchmark), the parts run
here, one after another: the same code.
"""

from __future__ import annotations

import functools
import logging
import secrets
from concurrent.futures import Future

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from registry import errors
from registry.reference import validate_repository

from .. import jobs
from ..models import Job, Registry, Repository, ScanPart
from ..services import history
from ..services.registries import registry_client, registry_client_kept
from .behind import WriteBehind, behind_failed
from .repository import grammar_split, registry_repositories, repository_scan, repository_scan_behind, skipped_note
from .share import ScanShare

logger = logging.getLogger(__name__)

PART_TASK = "manifests.tasks.scan_part_run"


def scan_submit(*, registry: Registry, repository: str = "", tags: list[str] | None = None, user=None,
                verify_children: bool = False) -> Job:
    """Queue a scan of a registry, a repository or some tags; `verify_children`
    (a repository or its tags) also checks the children of their lists."""
    tags = tags if repository else None  # tags are named within a repository: without one, the registry
    target = registry.name + (f"/{repository}" if repository else "") + (f":{','.join(tags)}" if tags else "")
    return jobs.job_submit(kind=Job.KIND_SCAN, registry=registry, target=target, user=user,
                           params={"repository": repository, "tags": tags,
                                   "verify": bool(verify_children and repository)})


def scan_handed_off(job: Job) -> bool:
    """A whole-registry scan delivered again after its fan-out: its parts are queued already."""
    return not job.params.get("repository") and job.registry is not None and job.params.get("names") is not None


def scan_execute(job: Job, progress: jobs.JobProgress) -> object:
    """The runner of a scan job (jobs.KINDS)."""
    if job.params.get("repository"):
        return _scan_repository(job, progress)
    return _scan_fanout(job, progress)


def _totals_add(totals: dict, counts: dict) -> None:
    """Add one repository's counts to a scan's totals."""
    totals["repositories"] += 1
    for key in ("tags", "errors", "changed"):
        totals[key] += counts.get(key, 0)
    for key in ("children_checked", "children_missing", "children_unchecked"):
        if key in counts:
            totals[key] = totals.get(key, 0) + counts[key]
    if counts.get("shared_hits"):
        totals["shared_hits"] = totals.get("shared_hits", 0) + counts["shared_hits"]
    if counts.get("requests") is not None:
        requests = totals.setdefault("requests", {})
        for kind, count in counts["requests"].items():
            requests[kind] = requests.get(kind, 0) + count


def _totals_empty() -> dict:
    return {"repositories": 0, "tags": 0, "errors": 0, "changed": 0}


def _scan_repository(job: Job, progress: jobs.JobProgress) -> None:
    """A scan of one repository, or of some of its tags."""
    registry = job.registry
    repository, tags = job.params.get("repository") or "", job.params.get("tags")
    totals = _totals_empty()
    error = ""
    try:
        with registry_client(registry=registry) as client:
            counts = repository_scan(client=client, registry=registry, name=repository, only_tags=tags,
                                     concurrency=registry.concurrency,
                                     verify_children=bool(job.params.get("verify")))
            progress({"event": "repository", "name": repository, **counts})
            _totals_add(totals, {**counts, "requests": dict(client.counters)})
    except Exception as exc:
        if not isinstance(exc, errors.RegistryError | jobs.CredentialsUndecryptable):
            logger.exception("scan job %s crashed", job.pk)
        error, _ = jobs.job_error(exc)
    if repository and not tags and not error:
        history.scan_snapshot(job=job, repository=repository)
    jobs.job_finish(job=job, progress=progress, error=error, result=totals)


def _last_scan_write(registry_id: int, error: str) -> None:
    Registry.objects.filter(pk=registry_id).update(last_scan_at=timezone.now(), last_scan_error=error)


def _scan_fanout(job: Job, progress: jobs.JobProgress) -> object:
    registry = job.registry
    try:
        with registry_client(registry=registry) as client:
            names = registry_repositories(client=client, registry=registry)
            listing_requests = dict(client.counters)
    except Exception as exc:
        message = str(exc) if isinstance(exc, errors.RegistryError) else jobs.job_error(exc)[0]
        error = f"cannot list repositories: {message}"
        _last_scan_write(registry.pk, error)
        raise jobs.JobFailed(error, result={"repositories": 0, "tags": 0, "errors": 0}) from exc
    names, skipped = grammar_split(names, validate_repository)
    at = timezone.now().isoformat(timespec="milliseconds")
    job.params = {**job.params, "names": names, "started": timezone.now().isoformat(),
                  "share": secrets.token_hex(8)}
    job.result = {"listing_requests": listing_requests, "skipped": skipped}
    job.steps = [*job.steps, *({"at": at, "event": "skipped", "name": name, "note": reason}
                               for name, reason in skipped.items()),
                 {"at": at, "event": "fanout", "name": registry.name, "repositories": len(names)}]
    job.save(update_fields=["params", "result", "steps"])
    progress.steps = list(job.steps)
    if not names:
        _scan_close(job)
        return None
    sizes = dict(Repository.objects.filter(registry=registry).values_list("name", "tag_count"))
    for part in part_names(names, sizes):
        if jobs.job_inline():
            scan_part_run(job_id=job.pk, names=part, share=False)
        else:
            jobs.task_send(PART_TASK, job.pk, part)
    return jobs.CONTINUES  # the last part closes the job


# A whole-registry scan sends its repositories in parts of up to PART_REPOSITORIES each: a part writes
# one repository while it fetches the next (behind.py). A registry of fewer than PART_REPOSITORIES *
# PARTS_MIN repositories gets smaller parts, so that several workers still share its scan; a part
# holds repositories of PART_TAGS tags at most, as the last scan counted them, so that its task
# stays short beside the broker's visibility timeout (a repository larger than that is a part alone).
PART_REPOSITORIES = 8
PARTS_MIN = 8
PART_TAGS = 5000


def part_names(names: list[str], sizes: dict[str, int]) -> list[list[str]]:
    """The repositories of each part of a fanned-out scan, in catalog order; `sizes`: tags per
    repository at the last scan (a repository never scanned counts as none)."""
    most = max(1, min(PART_REPOSITORIES, len(names) // PARTS_MIN))
    parts: list[list[str]] = []
    tags = 0
    for name in names:
        if not parts or len(parts[-1]) >= most or tags + sizes.get(name, 0) > PART_TAGS:
            parts.append([])
            tags = 0
        parts[-1].append(name)
        tags += sizes.get(name, 0)
    return parts


class _ClientSpoilt(Exception):
    """A repository of the part crashed: its client is closed rather than kept (registry_client_kept)."""


def scan_part_run(*, job_id: int, names: list[str] | str, share: bool = True, behind: bool = False) -> None:
    """Some repositories of a fanned-out scan (one name: that repository); idempotent, each repository
    is counted once. `share`: with the parts running at the same time (share.py), which parts run one
    after another need not. `behind`: each repository's writes run beside the fetch of the next."""
    names = [names] if isinstance(names, str) else list(names)
    job = Job.objects.select_related("registry").filter(pk=job_id).first()
    if job is None or job.is_done or job.registry is None:
        return
    done = set(ScanPart.objects.filter(job=job, repository__in=names).values_list("repository", flat=True))
    names = [name for name in names if name not in done]
    if not names:
        return
    share = (ScanShare.for_job(job_id, job.params["share"])
             if share and job.params.get("share") and len(job.params.get("names") or ()) > 1 else None)
    writer = WriteBehind(threaded=behind)
    try:
        _part_scan(job=job, names=names, share=share, writer=writer)
    finally:
        writer.close()
        if share is not None:
            share.close()


def _part_scan(*, job: Job, names: list[str], share: ScanShare | None, writer: WriteBehind) -> None:
    """The part's repositories through the thread's kept client. One that crashed here (anything but
    a registry's error) has its client closed, and the next repository gets a new one; one that crashed
    in the writing thread, at the end of the part."""
    taken = {"hits": 0}
    records: list[Future] = []
    remaining = list(names)
    while remaining:
        try:
            with registry_client_kept(registry=job.registry) as client:
                while remaining:
                    name = remaining.pop(0)
                    spoilt = False
                    try:
                        scanned = repository_scan_behind(client=client, registry=job.registry, name=name,
                                                         concurrency=job.registry.concurrency, share=share,
                                                         writer=writer)
                    except Exception as exc:
                        scanned, spoilt = behind_failed(exc), not isinstance(exc, errors.RegistryError)
                    records.append(writer.then(functools.partial(
                        _repository_record, job=job, name=name, scanned=scanned, client=client, share=share,
                        taken=taken)))
                    if spoilt:
                        writer.wait()  # the steps given before use this client: they end before it is closed
                        raise _ClientSpoilt
                writer.wait()
                if any(record.result() for record in records):
                    raise _ClientSpoilt
        except _ClientSpoilt:
            continue
        except Exception as exc:  # no client (its credentials cannot be read): each repository left says so
            if not isinstance(exc, errors.RegistryError | jobs.CredentialsUndecryptable):
                logger.exception("a part of scan job %s failed", job.pk)
            writer.wait()
            for name in remaining:
                writer.then(functools.partial(_repository_record, job=job, name=name, scanned=behind_failed(exc),
                                              client=None, share=share, taken=taken))
            return


def _repository_record(*, job: Job, name: str, scanned: Future, client, share: ScanShare | None,
                       taken: dict) -> bool:
    """Count one repository of a part once, and close the job after its last; whether it crashed.

    Its requests are those sent since the part's repository before was counted: the totals are
    exact, and a repository's own figure is, unless its part wrote it beside the next one's fetch."""
    crashed = False
    try:
        counts = scanned.result()
    except Exception as exc:  # one repository's failure must not stall the whole job
        crashed = not isinstance(exc, errors.RegistryError)
        if not isinstance(exc, errors.RegistryError | jobs.CredentialsUndecryptable):
            logger.exception("scan of %s in job %s crashed", name, job.pk)
        counts = {"tags": 0, "errors": 1, "crash": type(exc).__name__, "note": jobs.job_error(exc)[0]}
    counts["requests"] = client.counts_take() if client is not None else {}
    if share is not None and share.hits > taken["hits"]:
        counts["shared_hits"], taken["hits"] = share.hits - taken["hits"], share.hits
    try:
        _, created = ScanPart.objects.get_or_create(job=job, repository=name, defaults={"counts": counts})
        if created and ScanPart.objects.filter(job=job).count() >= len(job.params.get("names") or ()):
            with transaction.atomic():
                closing = Job.objects.select_for_update().get(pk=job.pk)
                if not closing.is_done:
                    _scan_close(closing)
    except Exception as exc:
        # The part cannot be counted (or the job closed): the job would wait for it forever.
        logger.exception("recording %s of scan job %s failed", name, job.pk)
        jobs.job_fail(job=Job.objects.get(pk=job.pk), progress=None, exc=jobs.JobFailed(
            f"recording the scan of {name} failed: {jobs.job_error(exc)[0]}"))
    return crashed


def _scan_close(job: Job) -> None:
    """Sum the parts, forget repositories gone from the catalog, finish the job."""
    names = job.params.get("names") or []
    skipped = job.result.get("skipped") or {}
    totals: dict = {**_totals_empty(), "skipped": len(skipped),
                    "requests": dict(job.result.get("listing_requests") or {})}
    progress = jobs.JobProgress(job)
    for part in ScanPart.objects.filter(job=job).order_by("finished_at", "pk"):
        progress.steps.append({"at": part.finished_at.isoformat(timespec="milliseconds"), "event": "repository",
                               "name": part.repository, **{k: v for k, v in part.counts.items()
                                                           if k not in ("requests", "shared_hits")}})
        _totals_add(totals, part.counts)
    started = parse_datetime(job.params.get("started") or "") or job.started_at
    Repository.objects.filter(registry=job.registry, scanned_at__lt=started).exclude(name__in=names).delete()
    _last_scan_write(job.registry_id, skipped_note(skipped))
    history.scan_snapshot(job=job)
    jobs.job_finish(job=job, progress=progress, result=totals)
