"""A scan job: one repository (or some of its tags) at once, or a whole registry fanned out.

A whole-registry scan lists the repositories, then sends one part per
repository (the `scan_part_run` task), so that adding workers (on other
machines, same Redis and database) shortens it; the last part to finish
closes the job (`_scan_close`): the totals, the repositories gone from the
catalog and the registry's last scan are written there, and only there.
Run inline (jobs.job_run(inline=True): tests, the benchmark), the parts run
here, one after another: the same code.
"""

from __future__ import annotations

import logging
import secrets

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from registry import errors
from registry.reference import validate_repository

from .. import jobs
from ..models import Job, Registry, Repository, ScanPart
from ..services import history
from ..services.registries import registry_client, registry_client_kept
from .repository import grammar_split, registry_repositories, repository_scan, skipped_note
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
    for name in names:
        if jobs.job_inline():
            scan_part_run(job_id=job.pk, name=name, share=False)
        else:
            jobs.task_send(PART_TASK, job.pk, name)
    return jobs.CONTINUES  # the last part closes the job


def scan_part_run(*, job_id: int, name: str, share: bool = True) -> None:
    """One repository of a fanned-out scan; idempotent. `share`: with the parts running
    at the same time (share.py); parts run one after another need not."""
    job = Job.objects.select_related("registry").filter(pk=job_id).first()
    if job is None or job.is_done or job.registry is None:
        return
    if ScanPart.objects.filter(job=job, repository=name).exists():
        return
    registry = job.registry
    share = (ScanShare.for_job(job_id, job.params["share"])
             if share and job.params.get("share") and len(job.params.get("names") or ()) > 1 else None)
    try:
        with registry_client_kept(registry=registry) as client:
            counts = repository_scan(client=client, registry=registry, name=name, concurrency=registry.concurrency,
                                     share=share)
            counts["requests"] = dict(client.counters)
            if share is not None and share.hits:
                counts["shared_hits"] = share.hits
    except Exception as exc:  # one repository's failure must not stall the whole job
        if not isinstance(exc, errors.RegistryError | jobs.CredentialsUndecryptable):
            logger.exception("scan of %s in job %s crashed", name, job_id)
        counts = {"tags": 0, "errors": 1, "crash": type(exc).__name__, "note": jobs.job_error(exc)[0]}
    finally:
        if share is not None:
            share.close()
    try:
        _, created = ScanPart.objects.get_or_create(job=job, repository=name, defaults={"counts": counts})
        if created and ScanPart.objects.filter(job=job).count() >= len(job.params.get("names") or ()):
            with transaction.atomic():
                job = Job.objects.select_for_update().get(pk=job_id)
                if not job.is_done:
                    _scan_close(job)
    except Exception as exc:
        # The part cannot be counted (or the job closed): the job would wait for it forever.
        logger.exception("recording %s of scan job %s failed", name, job_id)
        jobs.job_fail(job=Job.objects.get(pk=job_id), progress=None, exc=jobs.JobFailed(
            f"recording the scan of {name} failed: {jobs.job_error(exc)[0]}"))


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
