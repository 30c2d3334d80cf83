"""Jobs: the list, a job's page (polled by htmx), retrying a push, rolling back a push."""

from __future__ import annotations

import dataclasses

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from ..models import Job, PushRecord, Tag
from ..services import push, queue
from ._shared import require_push

PAGE_SIZE = 50


@require_GET
@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = Job.objects.select_related("registry", "created_by")
    filters = {key: request.GET.get(key, "").strip() for key in ("kind", "status", "user")}
    if filters["kind"]:
        jobs = jobs.filter(kind=filters["kind"])
    if filters["status"]:
        jobs = jobs.filter(status=filters["status"])
    if filters["user"]:
        jobs = jobs.filter(created_by__username=filters["user"])
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    for job in page.object_list:
        end = job.finished_at or (timezone.now() if job.started_at else None)
        job.duration = (end - job.started_at).total_seconds() if end and job.started_at else None
    return render(request, "manifests/job_list.html", {
        "page": page, "filters": filters,
        "kinds": [Job.KIND_SCAN, Job.KIND_PUSH, Job.KIND_ROLLBACK, Job.KIND_CHECK],
        "statuses": [s for s, _ in Job.STATUS_CHOICES],
        "users": list(Job.objects.exclude(created_by=None).values_list("created_by__username", flat=True)
                      .distinct().order_by("created_by__username"))})


@require_GET
@login_required
@vary_on_headers("HX-Request")
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("registry"), pk=job_id)
    if request.htmx:
        template = "manifests/_job_inline.html" if request.GET.get("inline") else "manifests/_job.html"
        response = render(request, template, {"job": job})
        if job.is_done:
            # 286 tells htmx to stop polling; the partial carries the final state.
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "manifests/job_detail.html", {"job": job})


@require_POST
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    """Push again what a failed push job asked for; `overwrite=1` skips the tag-moved check."""
    job = get_object_or_404(Job, pk=job_id, kind=Job.KIND_PUSH)
    require_push(request, job.registry)
    asked = push.push_params(job.params)
    if request.POST.get("overwrite") == "1":
        # Overwriting a tag someone moved needs the dialog's confirmation, naming what it holds now.
        if not request.POST.get("confirm") or request.POST.get("confirm") != (job.result.get("actual") or ""):
            messages.error(request, f"Not pushed: confirm that {job.target} may be overwritten.")
            return redirect("manifests-job-detail", job_id=job.pk)
        asked = dataclasses.replace(asked, expect_digest=None)
    try:
        new = push.push_submit(
            registry=job.registry, target=job.target, user=request.user, sources=asked.sources, fmt=asked.fmt,
            annotations=asked.annotations, expect_digest=asked.expect_digest, preview_digest=asked.preview_digest)
    except queue.QueueUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("manifests-job-detail", job_id=job.pk)
    return redirect("manifests-job-detail", job_id=new.pk)


@require_POST
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def push_rollback(request: HttpRequest, record_id: int) -> HttpResponse:
    record = get_object_or_404(PushRecord.objects.select_related("registry"), pk=record_id)
    require_push(request, record.registry)
    if request.POST.get("confirm") != record.new_digest:
        # A rollback rewrites a tag: refused until the confirmation (the dialog's, or this page's) names the digest.
        tag = Tag.objects.filter(repository__registry=record.registry, repository__name=record.repository,
                                 name=record.tag).first()
        return render(request, "manifests/rollback_confirm.html",
                       {"record": record, "current_digest": tag.digest if tag else ""}, status=400)
    try:
        job = push.rollback_submit(record=record, user=request.user)
    except queue.QueueUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("manifests-registry-list")
    return redirect("manifests-job-detail", job_id=job.pk)
