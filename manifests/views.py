from __future__ import annotations

import csv
import datetime
import hmac
import json
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template import loader
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from registry.errors import InvalidPlatform, RegistryError
from registry.mediatypes import parse_manifest
from registry.platform import Platform, platform_sort_key

from .forms import RegistryForm
from .models import Job, Manifest, ManifestChild, PushRecord, Registry, Repository, Tag, WebhookEvent
from .services import builder, coverage, push, queue, registries, signatures
from .services.assemble import SourceSpec
from .services.scan import scan_enqueue
from .services.sizes import coverage_sizes

PAGE_SIZE = 50
# Event ids are remembered this long: Distribution's retries come within minutes.
WEBHOOK_EVENT_MEMORY = datetime.timedelta(days=1)

logger = logging.getLogger(__name__)


def _registry_or_404(name: str) -> Registry:
    return get_object_or_404(Registry, name=name)


def _repository_or_404(registry: Registry, name: str) -> Repository:
    return get_object_or_404(Repository, registry=registry, name=name)


def _render(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    context.setdefault("queue_down", not queue.queue_available())
    return render(request, template, context, status=status)


def _platform_filter(request: HttpRequest) -> tuple[str, str]:
    """A normalized platform from ?platform=, and an error message for the field."""
    value = request.GET.get("platform", "").strip()
    if not value:
        return "", ""
    try:
        return Platform.parse(value).normalized, ""
    except InvalidPlatform as exc:
        return "", str(exc)


def login_locked_out(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict | None = None) -> HttpResponse:
    """django-axes' answer to a locked-out login: the login page, saying why and for how long."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    # Unbound: validating it would try to authenticate again.
    form = AuthenticationForm(request, initial={"username": request.POST.get("username", "")})
    return render(request, "registration/login.html", {
        "form": form, "next": request.POST.get("next", ""),
        "locked_out": f"Too many failed logins for this account from this address: "
                      f"try again in {minutes} minutes, or ask an admin."}, status=429)


ALL_REGISTRIES = "*"
REPOSITORY_SORTS = {"name": "name", "tags": "tag_count", "lists": "list_count", "scanned": "scanned_at"}
TAG_SORTS = {"name": "name", "size": "size", "created": "created", "kind": "kind"}


def _sort_order(request: HttpRequest, allowed: dict[str, str], default: str) -> list:
    """?sort=key or ?sort=-key, among the allowed columns; anything else sorts by the default."""
    value = request.GET.get("sort", "")
    field = allowed.get(value.lstrip("-"))
    if field is None:
        return [default]
    return [F(field).desc(nulls_last=True) if value.startswith("-") else F(field).asc(nulls_last=True)]


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# -- registries --------------------------------------------------------------


@require_GET
@login_required
def registry_list(request: HttpRequest) -> HttpResponse:
    registries = Registry.objects.annotate(
        repository_total=Count("repositories", distinct=True),
    ).order_by("name")
    tag_totals = dict(
        Tag.objects.values_list("repository__registry").annotate(n=Count("pk")).values_list("repository__registry", "n")
    )
    platforms: dict[int, set[str]] = {}
    for registry_id, repo_platforms in Repository.objects.values_list("registry_id", "platforms"):
        platforms.setdefault(registry_id, set()).update(repo_platforms)
    rows = [
        {"registry": r, "tags": tag_totals.get(r.pk, 0),
         "platforms": sorted(platforms.get(r.pk, ()), key=platform_sort_key)}
        for r in registries
    ]
    return _render(request, "manifests/registry_list.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("manifests.change_registry", raise_exception=True)
def registry_edit(request: HttpRequest, name: str | None = None) -> HttpResponse:
    instance = _registry_or_404(name) if name else None
    form = RegistryForm(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        registry = form.save()
        messages.success(request, f"Saved registry {registry.name}.")
        return redirect("manifests-registry-list")
    return _render(request, "manifests/registry_form.html", {"form": form, "registry": instance,
                                                             "test_url": _registry_test_url(instance)})


def _registry_test_url(registry: Registry | None) -> str:
    if registry is None:
        return reverse("manifests-registry-add-test")
    return reverse("manifests-registry-edit-test", args=[registry.name])


@require_POST
@login_required
@permission_required("manifests.change_registry", raise_exception=True)
def registry_test(request: HttpRequest, name: str | None = None) -> HttpResponse:
    """"Test connection": the form's unsaved settings checked on the worker; nothing is saved.

    htmx gets the result slot alone (the job's progress, or what to fix first);
    without JavaScript the form comes back with its errors and the job.
    """
    instance = _registry_or_404(name) if name else None
    form = RegistryForm(request.POST, instance=instance)
    context: dict = {"form": form, "registry": instance, "test_url": _registry_test_url(instance),
                     "test_attempt": True}
    if form.is_valid():
        draft, secret = form.draft()
        try:
            context["test_job"] = registries.registry_draft_check_enqueue(
                draft=draft, secret=secret, editing=instance, user=request.user)
        except queue.QueueUnavailable as exc:
            context["test_error"] = str(exc)
    if request.htmx:
        return render(request, "manifests/_registry_test.html", context)
    return _render(request, "manifests/registry_form.html", context)


@require_POST
@login_required
@permission_required("manifests.delete_registry", raise_exception=True)
def registry_delete(request: HttpRequest, name: str) -> HttpResponse:
    registry = _registry_or_404(name)
    registry.delete()
    messages.success(request, f"Removed registry {name} and its stored inventory.")
    return redirect("manifests-registry-list")


def _require_scan(request: HttpRequest, registry: Registry) -> None:
    """Registry work spends the stored credentials' rate limits: pushers and admins only."""
    if not registry.can_scan(request.user):
        raise PermissionDenied("You may not start work on this registry.")


def _next_or(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return reverse(fallback)


@require_POST
@login_required
def registry_check(request: HttpRequest, name: str) -> HttpResponse:
    """Test: can the worker reach the registry with its credentials?"""
    registry = _registry_or_404(name)
    _require_scan(request, registry)
    try:
        job = registries.registry_check_enqueue(registry=registry, user=request.user)
    except queue.QueueUnavailable as exc:
        if request.htmx:
            return render(request, "manifests/_action_error.html", {"error": str(exc)})
        messages.error(request, str(exc))
        return redirect("manifests-registry-list")
    if request.htmx:  # the job's progress where the button was clicked
        return render(request, "manifests/_job_inline.html", {"job": job})
    return redirect("manifests-job-detail", job_id=job.pk)


@require_POST
@login_required
@permission_required("manifests.change_registry", raise_exception=True)
def registry_webhook_token(request: HttpRequest, name: str) -> HttpResponse:
    """A new webhook token for the registry, shown once on the page this answers; the old one stops working."""
    registry = _registry_or_404(name)
    token = registry.webhook_token_rotate()
    hook_url = request.build_absolute_uri(reverse("manifests-webhook", args=[registry.name]))
    response = _render(request, "manifests/registry_webhook_token.html",
                       {"registry": registry, "token": token, "hook_url": hook_url})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def scan_start(request: HttpRequest, name: str) -> HttpResponse:
    """Refresh: re-scan a registry, a repository or some tags on the worker (and check lists' children)."""
    registry = _registry_or_404(name)
    _require_scan(request, registry)
    repository = request.POST.get("repository", "")
    tags = [t for t in request.POST.getlist("tag") if t] or None
    try:
        job = scan_enqueue(registry=registry, repository=repository, tags=tags, user=request.user,
                           verify_children=request.POST.get("verify") == "1")
    except queue.QueueUnavailable as exc:
        if request.htmx:
            return render(request, "manifests/_action_error.html", {"error": str(exc)})
        messages.error(request, str(exc))
        return redirect(_next_or(request, "manifests-registry-list"))
    if request.htmx:  # the job's progress where the button was clicked
        return render(request, "manifests/_job_inline.html", {"job": job})
    return redirect("manifests-job-detail", job_id=job.pk)


# -- inventory ---------------------------------------------------------------


@require_GET
@login_required
def repository_list(request: HttpRequest, name: str) -> HttpResponse:
    registry = _registry_or_404(name)
    query = request.GET.get("q", "").strip()
    platform, platform_error = _platform_filter(request)
    repositories = registry.repositories.all()
    if query:
        repositories = repositories.filter(name__icontains=query)
    if platform:
        repositories = repositories.filter(tags__platform_rows__platform=platform).distinct()
    page = Paginator(repositories.order_by(*_sort_order(request, REPOSITORY_SORTS, "name")), PAGE_SIZE).get_page(
        request.GET.get("page"))
    return _render(request, "manifests/repository_list.html", {
        "registry": registry, "page": page, "query": query, "platform": request.GET.get("platform", ""),
        "platform_error": platform_error})


@require_GET
@login_required
def tag_list(request: HttpRequest, name: str, repository: str) -> HttpResponse:
    registry = _registry_or_404(name)
    repo = _repository_or_404(registry, repository)
    platform, platform_error = _platform_filter(request)
    query = request.GET.get("q", "").strip()
    tags = repo.tags.exclude(name__regex=coverage.REFERRER_TAG_REGEX).annotate(
        artifact_type=F("manifest__artifact_type"))  # shown instead of platforms
    if platform:
        tags = tags.filter(platform_rows__platform=platform).distinct()
    if query:
        tags = tags.filter(name__icontains=query)
    # Group tags sharing a digest: order by digest group, newest first.
    tags = tags.prefetch_related("platform_rows")
    if request.GET.get("sort", "").lstrip("-") in TAG_SORTS:
        ordered = tags.order_by(*_sort_order(request, TAG_SORTS, "name"), "name")
    else:
        ordered = tags.order_by(F("created").desc(nulls_last=True), "digest", "name")
    page = Paginator(ordered, 100).get_page(request.GET.get("page"))
    groups: list[dict] = []
    for tag in page.object_list:
        if groups and groups[-1]["digest"] == tag.digest and tag.digest:
            groups[-1]["tags"].append(tag)
        else:
            groups.append({"digest": tag.digest, "tags": [tag], "first": tag})
    attached = signatures.signed_platforms(repository=repo, digests=[g["digest"] for g in groups])
    for group in groups:
        group["attached"] = sorted({r.kind for r in attached.get(group["digest"], [])})
    return _render(request, "manifests/tag_list.html", {
        "registry": registry, "repository": repo, "page": page, "groups": groups, "query": query,
        "platform": request.GET.get("platform", ""), "platform_error": platform_error})


@require_GET
@login_required
def tag_detail(request: HttpRequest, name: str, repository: str, tag: str) -> HttpResponse:
    registry = _registry_or_404(name)
    repo = _repository_or_404(registry, repository)
    tag_row = get_object_or_404(Tag.objects.select_related("manifest"), repository=repo, name=tag)
    children = list(tag_row.manifest.children.all()) if tag_row.manifest else []
    missing = set(tag_row.missing)
    for child in children:
        child.is_missing = child.digest in missing
    same_digest = repo.tags.filter(digest=tag_row.digest).exclude(pk=tag_row.pk).order_by("name") \
        if tag_row.digest else Tag.objects.none()
    # Lists in this registry that reference this manifest as a child.
    parents = ManifestChild.objects.filter(digest=tag_row.digest).values("parent_id") if tag_row.digest else []
    referenced_by = Tag.objects.filter(repository__registry=registry, manifest_id__in=parents) \
        .select_related("repository").order_by("repository__name", "name")[:50] if tag_row.digest else []
    history = PushRecord.objects.filter(registry=registry, repository=repo.name, tag=tag_row.name)[:20]
    raw = tag_row.manifest.raw_text if tag_row.manifest else ""
    pretty = ""
    if raw:
        try:
            pretty = json.dumps(json.loads(raw), indent=2)
        except ValueError:
            pretty = raw
    reference = f"{registry.host}/{repo.name}:{tag_row.name}"
    insecure_flag = " --insecure" if registry.insecure else ""
    commands = [
        f"docker buildx imagetools inspect {reference}",
        f"docker buildx imagetools inspect --raw {reference}",
        f"docker manifest inspect{insecure_flag} {reference}",
        f"skopeo inspect --raw{' --tls-verify=false' if registry.insecure else ''} docker://{reference}",
        f"regctl manifest get {reference}",
    ]
    # Display only: each child's download size from its stored manifest, and
    # which push record the tag holds now (the newest one that put its digest there).
    sizes = dict(Manifest.objects.filter(digest__in=[c.digest for c in children]).values_list("digest", "size"))
    for child in children:
        child.download_size = sizes.get(child.digest, 0)
    history = list(history.select_related("job", "user"))
    for record in history:
        record.is_rollback = record.job is not None and record.job.kind == Job.KIND_ROLLBACK
    current_record_id = next((r.pk for r in history if r.new_digest == tag_row.digest), None)
    return _render(request, "manifests/tag_detail.html", {
        "registry": registry, "repository": repo, "tag": tag_row, "children": children,
        "platform_children": [c for c in children if not c.is_attestation],
        "attestations": [c for c in children if c.is_attestation],
        "same_digest": same_digest, "referenced_by": referenced_by, "history": history,
        "current_record_id": current_record_id,
        "raw": raw, "pretty": pretty, "reference": reference, "commands": commands,
        "pull_command": f"docker pull {registry.host}/{repo.name}@{tag_row.digest}",
        "insecure_flag": insecure_flag})


# -- coverage ----------------------------------------------------------------


def _coverage_context(request: HttpRequest) -> dict:
    registries = list(Registry.objects.all())
    chosen = request.GET.get("registry") or (registries[0].name if registries else "")
    registry = next((r for r in registries if r.name == chosen), None)
    every = chosen == ALL_REGISTRIES and bool(registries)
    context: dict = {"registries": registries, "registry": registry, "errors": {}, "all_registries": every,
                     "pattern": request.GET.get("tag", "").strip(), "search": request.GET.get("q", "").strip(),
                     "require_text": request.GET.get("require", ""), "lacking_text": request.GET.get("lacking", ""),
                     "unsigned": request.GET.get("unsigned") == "1"}
    if registry is None and not every:
        return context
    # All registries: each keeps its own required platforms unless the form names some.
    context["required_by_registry"] = (
        {r.pk: r.required_list for r in registries} if every and not context["require_text"] else None)
    try:
        required = coverage.required_parse(context["require_text"], registry=registry or registries[0]) \
            if registry or context["require_text"] else sorted(
                {p for r in registries for p in r.required_list}, key=platform_sort_key)
    except InvalidPlatform as exc:
        context["errors"]["require"] = str(exc)
        required = (registry or registries[0]).required_list
    lacking = ""
    if context["lacking_text"]:
        try:
            lacking = Platform.parse(context["lacking_text"]).normalized
        except InvalidPlatform as exc:
            context["errors"]["lacking"] = str(exc)
    pattern = context["pattern"]
    try:
        coverage.pattern_validate(pattern)
    except coverage.PatternInvalid as exc:
        context["errors"]["tag"] = str(exc)
        pattern = ""
    context["newest_text"] = request.GET.get("newest", "").strip()
    try:
        newest = coverage.newest_parse(context["newest_text"])
    except coverage.NewestInvalid as exc:
        context["errors"]["newest"] = str(exc)
        newest = 1
    repositories = coverage.coverage_rows(registry=registry, pattern=pattern,
                                          lacking=lacking, search=context["search"], newest=newest,
                                          unsigned=context["unsigned"])
    context.update({"required": required, "lacking": lacking, "repositories": repositories,
                    # what coverage_materialize needs besides the repositories
                    "tag_choice": {"newest": newest, "pattern": pattern, "lacking": lacking}})
    return context


@require_GET
@login_required
@vary_on_headers("HX-Request")
def coverage_matrix(request: HttpRequest) -> HttpResponse:
    context = _coverage_context(request)
    export = request.GET.get("format", "")
    if context.get("registry") is None and not context["all_registries"]:
        return _render(request, "manifests/coverage.html", context)
    if export in ("csv", "json"):
        rows = coverage.coverage_materialize(list(context["repositories"]), required=context["required"],
                                             required_by_registry=context["required_by_registry"],
                                             **context["tag_choice"])
        if context["all_registries"]:
            context = {**context, "registry": Registry(name="all")}  # names the download only
        return _coverage_export(export, rows, context)
    page = Paginator(context["repositories"], 100).get_page(request.GET.get("page"))
    rows = coverage.coverage_materialize(list(page.object_list), required=context["required"],
                                         required_by_registry=context["required_by_registry"],
                                         **context["tag_choice"])
    columns = coverage.coverage_columns(rows, context["required"])
    # Links and cells made here, not by a {% url %} and two tests per cell: the
    # matrix is the widest page, and reversing URLs row by row dominated it.
    links: dict[str, tuple[str, str, str, str, str]] = {}

    def _links(name: str) -> tuple[str, str, str, str, str]:
        if name not in links:
            repo_before, _, repo_after = reverse("manifests-tag-list", args=[name, "0repo0"]).rpartition("0repo0")
            tag_before, _, tag_rest = reverse("manifests-tag-detail", args=[name, "0repo0", "0tag0"]).rpartition("0repo0")
            tag_middle, _, tag_after = tag_rest.rpartition("0tag0")
            links[name] = (repo_before, repo_after, tag_before, tag_middle, tag_after)
        return links[name]

    table = []
    for row in rows:
        repo_before, repo_after, tag_before, tag_middle, tag_after = _links(row.registry)
        table.append({
            "row": row, "repo_url": f"{repo_before}{row.repository}{repo_after}",
            "tag_url": f"{tag_before}{row.repository}{tag_middle}{row.tag}{tag_after}",
            "cells": format_html_join("", '<td class="cell {}" title="{}">{}</td>',
                                      (_coverage_cell(c, row) for c in columns))})
    context.update({"page": page, "rows": rows, "table": table, "columns": columns})
    template = "manifests/_coverage_table.html" if request.htmx else "manifests/coverage.html"
    return _render(request, template, context)


def _coverage_cell(platform: str, row: coverage.CoverageRow) -> tuple[str, str, str]:
    # The text says it; colour only repeats it.
    if platform in row.platforms:
        return "yes", f"{row.tag} has {platform}", "✓ yes"
    if platform in row.missing:
        return "no", f"{platform} is required and missing", "✗ missing"
    return "none", f"{row.tag} has no {platform} (not required)", "– no"


def _coverage_export(kind: str, rows: list[coverage.CoverageRow], context: dict) -> HttpResponse:
    registry = context["registry"]
    sizes = coverage_sizes(rows=rows)  # compressed download bytes per platform
    if kind == "json":
        response = JsonResponse({"registry": registry.name, "required": context["required"],
                                 "rows": [{**row.__dict__, "size": sizes.get((row.registry, row.repository, row.tag), {})}
                                          for row in rows]})
        response["Content-Disposition"] = f'attachment; filename="coverage-{registry.name}.json"'  # a download
        return response
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="coverage-{registry.name}.csv"'
    csv.writer(response).writerows(coverage.coverage_csv(rows, required=context["required"], sizes=sizes,
                                                         with_registry=bool(context.get("all_registries"))))
    return response


# -- jobs ----------------------------------------------------------------------


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
    return _render(request, "manifests/job_list.html", {
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
    return _render(request, "manifests/job_detail.html", {"job": job})


# -- registry notifications ----------------------------------------------------


def _webhook_authorized(registry: Registry | None, given: str) -> bool:
    """The registry's own token; the global WEBHOOK_TOKEN only when a deployment set it explicitly."""
    if registry is not None and registry.webhook_token_matches(given):
        return True
    expected = settings.WEBHOOK_TOKEN or ""
    return bool(expected and given and hmac.compare_digest(given.encode(), expected.encode()))


def _webhook_events_new(registry: Registry, events: list[dict]) -> list[dict]:
    """The events not handled before: Distribution retries a delivery with the same event ids."""
    WebhookEvent.objects.filter(received_at__lt=timezone.now() - WEBHOOK_EVENT_MEMORY).delete()
    fresh = []
    for event in events:
        event_id = event.get("id")
        if isinstance(event_id, str) and event_id:
            try:
                with transaction.atomic():
                    WebhookEvent.objects.create(registry=registry, event_id=event_id[:128])
            except IntegrityError:
                continue
        fresh.append(event)
    return fresh


@csrf_exempt
@require_POST
def registry_webhook(request: HttpRequest, name: str) -> JsonResponse:
    """Docker Distribution's notifications: re-scan each pushed tag at once."""
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    registry = Registry.objects.filter(name=name).first()
    if not _webhook_authorized(registry, given):
        return JsonResponse({"error": "invalid token"}, status=401)
    if registry is None:
        return JsonResponse({"error": "unknown registry"}, status=404)
    try:
        envelope = json.loads(request.body)
        events = envelope.get("events", [])
        assert isinstance(events, list)
    except (ValueError, AssertionError, AttributeError, RecursionError):
        return JsonResponse({"error": "expected a notification envelope"}, status=400)
    events = [e for e in events if isinstance(e, dict) and e.get("action") in ("push", "delete")
              and isinstance(e.get("target"), dict)]
    limit = settings.WEBHOOK_MAX_EVENTS
    ignored = max(0, len(events) - limit)
    if ignored:
        logger.warning("webhook for %s: %d events, handled the first %d", registry.name, len(events), limit)
    jobs = []
    try:
        # Recording the ids and queueing the scans commit together: a refused
        # delivery (queue down) is not remembered, so its retry is handled.
        with transaction.atomic():
            pushed: dict[str, set[str]] = {}
            for event in _webhook_events_new(registry, events[:limit]):
                target = event["target"]
                repository, tag = target.get("repository"), target.get("tag")
                if isinstance(repository, str) and isinstance(tag, str) and tag:
                    pushed.setdefault(repository, set()).add(tag)
                elif isinstance(repository, str) and event.get("action") == "delete":
                    pushed.setdefault(repository, set())
            for repository, tags in pushed.items():
                jobs.append(scan_enqueue(registry=registry, repository=repository, tags=sorted(tags) or None).pk)
    except queue.QueueUnavailable as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    return JsonResponse({"queued": jobs, "ignored": ignored}, status=202)


# -- the list builder ------------------------------------------------------------


def _builder_registry(request: HttpRequest) -> Registry | None:
    """The registry chosen in the builder, among those the user may push to."""
    name = request.POST.get("registry") or request.GET.get("registry")
    registries = [r for r in Registry.objects.prefetch_related("push_groups") if r.can_push(request.user)]
    if name:
        return next((r for r in registries if r.name == name), None)
    return registries[0] if registries else None


def _palette_registry(request: HttpRequest, registry: Registry | None) -> Registry | None:
    """The registry the palette lists images of (any registered one: its images are streamed across)."""
    name = request.POST.get("source_registry") or request.GET.get("source_registry")
    return Registry.objects.filter(name=name).first() if name else registry


def _require_push(request: HttpRequest, registry: Registry | None) -> None:
    if registry is None or not registry.can_push(request.user):
        raise PermissionDenied("You may not push to this registry.")


def _palette(candidates: list, entries: list[builder.BuilderEntry]) -> list[dict]:
    """Candidates grouped by repository, one row per digest (however many tags hold it), "added" marked.

    Display only: the candidates come from the builder service as before.
    """
    added = {e.select or e.ref.rpartition("@")[2] for e in entries}
    groups: dict[str, dict] = {}
    for candidate in candidates:
        group = groups.setdefault(candidate.repository, {"repository": candidate.repository, "items": {}})
        item = group["items"].get(candidate.digest)
        if item is None:
            group["items"][candidate.digest] = {"candidate": candidate, "tags": [candidate.tag],
                                                "added": candidate.digest in added}
        elif candidate.tag not in item["tags"]:
            item["tags"].append(candidate.tag)
    return [{"repository": g["repository"], "items": list(g["items"].values())}
            for g in sorted(groups.values(), key=lambda g: g["repository"])]


BUILDER_FORMATS = [
    ("auto", "Auto: a Docker list if every child is Docker, else OCI (as buildx)"),
    ("oci", "OCI image index"),
    ("docker", "Docker manifest list (Docker children only)"),
]


def _builder_context(request: HttpRequest, state: builder.BuilderState, *, with_preview: bool = True) -> dict:
    preview = builder.preview_build(state) if with_preview and (state.entries or state.target) else None
    if preview is not None and not state.expect_digest and request.method == "GET":
        state.expect_digest = preview.current_digest
    query = request.GET.get("q", "")
    source = _palette_registry(request, state.registry)
    candidates = builder.palette_candidates(registry=state.registry, source=source, query=query) if state.registry else []
    return {
        "state": state, "preview": preview, "query": query, "source": source,
        "sources": Registry.objects.order_by("name"),
        "registries": [r for r in Registry.objects.prefetch_related("push_groups") if r.can_push(request.user)],
        "palette": _palette(candidates, state.entries),
        "blank_entry": builder.BuilderEntry(key="", ref=""),
        "formats": BUILDER_FORMATS,
    }


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def builder_page(request: HttpRequest) -> HttpResponse:
    """The builder. Works without JavaScript: Add, Remove and Preview post the whole form here."""
    registry = _builder_registry(request)
    if request.method == "GET":
        target = request.GET.get("target", "").strip()
        state = builder.BuilderState(registry=registry, target=target)
        if registry and target:
            state.entries = builder.entries_from_tag(registry=registry, target=target)
        return _render(request, "manifests/builder.html", _builder_context(request, state))
    state = builder.state_from_post(request.POST, registry)
    if "add" in request.POST:
        state.entries.append(builder.entry_from_token(request.POST["add"], existing=state.entries))
    if "remove" in request.POST:
        state.entries = [e for e in state.entries if e.key != request.POST["remove"]]
    if "move" in request.POST:
        # Keyboard reordering without JavaScript: "KEY:up" or "KEY:down".
        key, _, direction = request.POST["move"].partition(":")
        keys = [e.key for e in state.entries]
        if key in keys:
            i = keys.index(key)
            j = i - 1 if direction == "up" else i + 1
            if 0 <= j < len(keys):
                state.entries[i], state.entries[j] = state.entries[j], state.entries[i]
    load_note = ""
    if "load" in request.POST and registry:
        state.entries = builder.entries_from_tag(registry=registry, target=state.target)
        state.expect_digest = ""
        if not state.entries:
            load_note = (f"{state.target or 'This tag'} holds nothing in {registry.name} yet: "
                         "a new tag starts empty, add images from the palette.")
    context = _builder_context(request, state)
    context["load_note"] = load_note
    if "load" in request.POST and context["preview"] is not None:
        state.expect_digest = context["preview"].current_digest
    return _render(request, "manifests/builder.html", context)


@require_GET
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def builder_candidates(request: HttpRequest) -> HttpResponse:
    registry = _builder_registry(request)
    candidates = builder.palette_candidates(registry=registry, source=_palette_registry(request, registry),
                                            query=request.GET.get("q", "")) if registry else []
    entries = builder.state_from_post(request.GET, registry).entries
    return render(request, "manifests/_candidates.html", {"palette": _palette(candidates, entries)})


@require_POST
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def builder_preview(request: HttpRequest) -> HttpResponse:
    """htmx: validation and preview of the list as the form stands, from the inventory."""
    state = builder.state_from_post(request.POST, _builder_registry(request))
    preview = builder.preview_build(state)
    return render(request, "manifests/_builder_preview.html", {
        "state": state, "preview": preview, "oob": True,
        "error_fields": ["registry", "target", "format", "annotations", "sources"]})


@require_POST
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def builder_push(request: HttpRequest) -> HttpResponse:
    state = builder.state_from_post(request.POST, _builder_registry(request))
    _require_push(request, state.registry)
    preview = builder.preview_build(state)
    if not preview.ok:
        messages.error(request, "The list has problems: see the messages next to the fields.")
        context = _builder_context(request, state)
        return _render(request, "manifests/builder.html", context)
    overwrite = request.POST.get("overwrite") == "1"
    try:
        job = push.push_job_create(
            registry=state.registry, target=state.target, user=request.user,
            sources=[builder.entry_to_spec(e)[0] for e in state.entries], fmt=state.fmt,
            annotations=preview.plan.annotations, expect_digest=None if overwrite else state.expect_digest,
            preview_digest=preview.plan.digest)
    except queue.QueueUnavailable as exc:
        messages.error(request, str(exc))
        return _render(request, "manifests/builder.html", _builder_context(request, state))
    return redirect("manifests-job-detail", job_id=job.pk)


@require_POST
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    """Push again what a failed push job asked for; `overwrite=1` skips the tag-moved check."""
    job = get_object_or_404(Job, pk=job_id, kind=Job.KIND_PUSH)
    _require_push(request, job.registry)
    params = dict(job.params)
    if request.POST.get("overwrite") == "1":
        # Overwriting a tag someone moved needs the dialog's confirmation, naming what it holds now.
        if not request.POST.get("confirm") or request.POST.get("confirm") != (job.result.get("actual") or ""):
            messages.error(request, f"Not pushed: confirm that {job.target} may be overwritten.")
            return redirect("manifests-job-detail", job_id=job.pk)
        params["expect_digest"] = None
    try:
        new = push.push_job_create(
            registry=job.registry, target=job.target, user=request.user,
            sources=[SourceSpec.from_json(s) for s in params.get("sources", [])], fmt=params.get("format", "auto"),
            annotations=params.get("annotations") or {}, expect_digest=params.get("expect_digest"),
            preview_digest=params.get("preview_digest"))
    except queue.QueueUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("manifests-job-detail", job_id=job.pk)
    return redirect("manifests-job-detail", job_id=new.pk)


@require_POST
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def push_rollback(request: HttpRequest, record_id: int) -> HttpResponse:
    record = get_object_or_404(PushRecord.objects.select_related("registry"), pk=record_id)
    _require_push(request, record.registry)
    if request.POST.get("confirm") != record.new_digest:
        # A rollback rewrites a tag: refused until the confirmation (the dialog's, or this page's) names the digest.
        tag = Tag.objects.filter(repository__registry=record.registry, repository__name=record.repository,
                                 name=record.tag).first()
        return _render(request, "manifests/rollback_confirm.html",
                       {"record": record, "current_digest": tag.digest if tag else ""}, status=400)
    try:
        job = push.rollback_job_create(record=record, user=request.user)
    except queue.QueueUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("manifests-registry-list")
    return redirect("manifests-job-detail", job_id=job.pk)


# -- a manifest by digest, search, error pages (display only) --------------------


def _manifest_in_repository(repo: Repository, digest: str) -> tuple[Manifest | None, list[ManifestChild]]:
    """The stored manifest, if a tag of `repo` holds it or a list held by one names it as a child.

    The descriptors that name it (as a child of those lists) come along: they
    say what its lists know when the manifest itself was never fetched.
    """
    descriptors = list(ManifestChild.objects.filter(
        digest=digest, parent__tags__repository=repo).select_related("parent").distinct()[:20])
    held = repo.tags.filter(digest=digest).exists()
    if not held and not descriptors:
        raise Http404("No manifest with this digest in this repository.")
    return Manifest.objects.filter(digest=digest).first(), descriptors


@require_GET
@login_required
def manifest_detail(request: HttpRequest, name: str, repository: str, digest: str) -> HttpResponse:
    """One manifest by digest: an image's layers and config, or a list's children with their download sizes."""
    registry = _registry_or_404(name)
    repo = _repository_or_404(registry, repository)
    manifest, descriptors = _manifest_in_repository(repo, digest)
    parsed = None
    if manifest is not None:
        try:
            parsed = parse_manifest(bytes(manifest.raw), digest=manifest.digest)
        except RegistryError:
            parsed = None
    layers = list(parsed.layers) if parsed else []
    config_descriptor = parsed.config if parsed else None
    compressed = (config_descriptor.size if config_descriptor else 0) + sum(layer.size for layer in layers)
    children: list[dict] = []
    if parsed is not None and parsed.is_index:
        stored = {m.digest: m for m in Manifest.objects.filter(digest__in=[c.digest for c in parsed.children])}
        for child in parsed.children:
            row = stored.get(child.digest)
            children.append({"descriptor": child, "manifest": row, "is_attestation": child.is_attestation,
                             "platform": child.platform.normalized if child.platform else "",
                             "download_size": row.size if row else 0})
    config = manifest.config if manifest is not None else None
    config_view = _config_view(config) if isinstance(config, dict) else None
    tags = list(repo.tags.filter(digest=digest).order_by("name"))
    parents = Tag.objects.filter(repository=repo, manifest_id__in=[d.parent_id for d in descriptors]).order_by("name")
    return _render(request, "manifests/manifest_detail.html", {
        "registry": registry, "repository": repo, "digest": digest, "manifest": manifest, "parsed": parsed,
        "layers": layers, "config_descriptor": config_descriptor, "compressed": compressed,
        "children": children, "config": config_view, "tags": tags, "parents": parents,
        "descriptor": descriptors[0] if descriptors else None,
        "platform": (manifest.platform if manifest else "") or (descriptors[0].platform if descriptors else ""),
        "platform_os": (manifest.os if manifest else "") or (descriptors[0].os if descriptors else ""),
        "pull_command": f"docker pull {registry.host}/{repo.name}@{digest}",
        "raw": manifest.raw_text if manifest is not None else ""})


def _config_view(config: dict) -> dict:
    """The parts of an image config a person reads, from the stored JSON (untrusted: rendered escaped)."""
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    labels = inner.get("Labels") if isinstance(inner.get("Labels"), dict) else {}
    history = config.get("history") if isinstance(config.get("history"), list) else []
    return {
        "entrypoint": inner.get("Entrypoint") or [], "cmd": inner.get("Cmd") or [],
        "env": [e for e in inner.get("Env") or [] if isinstance(e, str)],
        "labels": sorted((str(k), str(v)) for k, v in labels.items()),
        "user": inner.get("User") or "", "working_dir": inner.get("WorkingDir") or "",
        "exposed_ports": sorted(inner.get("ExposedPorts") or {}) if isinstance(inner.get("ExposedPorts"), dict) else [],
        "created": config.get("created") or "",
        "history": [h for h in history if isinstance(h, dict)],
    }


SEARCH_LIMIT = 50


@require_GET
@login_required
def search(request: HttpRequest) -> HttpResponse:
    """The top bar's search: repositories and tags by name, manifests by digest prefix (tags and lists holding it)."""
    query = request.GET.get("q", "").strip()
    context: dict = {"search_query": query, "repositories": [], "tags": [], "holders": [], "children": []}
    if query:
        digest_prefix = query.lower()
        if ":" not in digest_prefix and len(digest_prefix) >= 7 and all(c in "0123456789abcdef" for c in digest_prefix):
            digest_prefix = "sha256:" + digest_prefix
        is_digest = digest_prefix.startswith("sha256:") and len(digest_prefix) >= 11
        if is_digest:
            context["tags"] = list(Tag.objects.filter(digest__startswith=digest_prefix).select_related(
                "repository__registry").order_by("repository__registry__name", "repository__name", "name")[:SEARCH_LIMIT])
            parents = ManifestChild.objects.filter(digest__startswith=digest_prefix).values("parent_id")
            context["holders"] = list(Tag.objects.filter(manifest_id__in=parents).select_related(
                "repository__registry").order_by("repository__registry__name", "repository__name", "name")[:SEARCH_LIMIT])
        else:
            context["repositories"] = list(Repository.objects.filter(name__icontains=query).select_related(
                "registry").order_by("registry__name", "name")[:SEARCH_LIMIT])
            context["tags"] = list(Tag.objects.filter(name__icontains=query).select_related(
                "repository__registry").order_by("repository__registry__name", "repository__name", "name")[:SEARCH_LIMIT])
        context["is_digest"] = is_digest
    return _render(request, "manifests/search.html", context)


def _error_page(request: HttpRequest, status: int, title: str, text: str) -> HttpResponse:
    context = {"status": status, "title": title, "text": text}
    if status == 500:
        # Without the request's context: no session or user lookup, the database may be what failed.
        return HttpResponse(loader.render_to_string("error.html", context), status=500)
    return render(request, "error.html", context, status=status)


def error_403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error_page(request, 403, "Not allowed",
                       str(exception) if exception and str(exception) else "Your account may not do this.")


def error_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error_page(request, 404, "Not found",
                       "Nothing is stored at this address: the registry, repository, tag or digest may be gone, "
                       "or not scanned yet.")


def error_500(request: HttpRequest) -> HttpResponse:
    return _error_page(request, 500, "Something went wrong",
                       "The dashboard failed to show this page. The error is logged; try again, or go back.")
