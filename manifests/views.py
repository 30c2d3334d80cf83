from __future__ import annotations

import csv
import hmac
import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html_join
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from registry.errors import InvalidPlatform
from registry.platform import Platform, platform_sort_key

from .forms import RegistryForm
from .models import Job, ManifestChild, PushRecord, Registry, Repository, Tag
from .services import builder, coverage, push, queue, registries, signatures
from .services.assemble import SourceSpec
from .services.scan import scan_enqueue
from .services.sizes import coverage_sizes

PAGE_SIZE = 50


def _registry_or_404(name: str) -> Registry:
    return get_object_or_404(Registry, name=name)


def _repository_or_404(registry: Registry, name: str) -> Repository:
    return get_object_or_404(Repository, registry=registry, name=name)


def _render(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    context.setdefault("queue_down", not queue.queue_available())
    return render(request, template, context)


def _platform_filter(request: HttpRequest) -> tuple[str, str]:
    """A normalized platform from ?platform=, and an error message for the field."""
    value = request.GET.get("platform", "").strip()
    if not value:
        return "", ""
    try:
        return Platform.parse(value).normalized, ""
    except InvalidPlatform as exc:
        return "", str(exc)


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
    return _render(request, "manifests/registry_form.html", {"form": form, "registry": instance})


@require_POST
@login_required
@permission_required("manifests.delete_registry", raise_exception=True)
def registry_delete(request: HttpRequest, name: str) -> HttpResponse:
    registry = _registry_or_404(name)
    registry.delete()
    messages.success(request, f"Removed registry {name} and its stored inventory.")
    return redirect("manifests-registry-list")


@require_POST
@login_required
@permission_required("manifests.change_registry", raise_exception=True)
def registry_check(request: HttpRequest, name: str) -> HttpResponse:
    """Test: can the worker reach the registry with its credentials?"""
    try:
        job = registries.registry_check_enqueue(registry=_registry_or_404(name), user=request.user)
    except queue.QueueUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("manifests-registry-list")
    return redirect("manifests-job-detail", job_id=job.pk)


@require_POST
@login_required
def scan_start(request: HttpRequest, name: str) -> HttpResponse:
    """Refresh: re-scan a registry, a repository or some tags on the worker (and check lists' children)."""
    registry = _registry_or_404(name)
    repository = request.POST.get("repository", "")
    tags = [t for t in request.POST.getlist("tag") if t] or None
    try:
        job = scan_enqueue(registry=registry, repository=repository, tags=tags, user=request.user,
                           verify_children=request.POST.get("verify") == "1")
    except queue.QueueUnavailable as exc:
        messages.error(request, str(exc))
        return redirect(request.POST.get("next") or "manifests-registry-list")
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
    page = Paginator(repositories.order_by("name"), PAGE_SIZE).get_page(request.GET.get("page"))
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
    tags = repo.tags.exclude(name__regex=coverage.REFERRER_TAG_REGEX)
    if platform:
        tags = tags.filter(platform_rows__platform=platform).distinct()
    if query:
        tags = tags.filter(name__icontains=query)
    # Group tags sharing a digest: order by digest group, newest first.
    tags = tags.prefetch_related("platform_rows")
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
    return _render(request, "manifests/tag_detail.html", {
        "registry": registry, "repository": repo, "tag": tag_row, "children": children,
        "platform_children": [c for c in children if not c.is_attestation],
        "attestations": [c for c in children if c.is_attestation],
        "same_digest": same_digest, "referenced_by": referenced_by, "history": history,
        "raw": raw, "pretty": pretty, "reference": reference,
        "insecure_flag": " --insecure" if registry.insecure else ""})


# -- coverage ----------------------------------------------------------------


def _coverage_context(request: HttpRequest) -> dict:
    registries = list(Registry.objects.all())
    chosen = request.GET.get("registry") or (registries[0].name if registries else "")
    registry = next((r for r in registries if r.name == chosen), None)
    context: dict = {"registries": registries, "registry": registry, "errors": {},
                     "pattern": request.GET.get("tag", "").strip(), "search": request.GET.get("q", "").strip(),
                     "require_text": request.GET.get("require", ""), "lacking_text": request.GET.get("lacking", ""),
                     "unsigned": request.GET.get("unsigned") == "1"}
    if registry is None:
        return context
    try:
        required = coverage.required_parse(context["require_text"], registry=registry)
    except InvalidPlatform as exc:
        context["errors"]["require"] = str(exc)
        required = registry.required_list
    lacking = ""
    if context["lacking_text"]:
        try:
            lacking = Platform.parse(context["lacking_text"]).normalized
        except InvalidPlatform as exc:
            context["errors"]["lacking"] = str(exc)
    repositories = coverage.coverage_rows(registry=registry, pattern=context["pattern"],
                                          lacking=lacking, search=context["search"], unsigned=context["unsigned"])
    context.update({"required": required, "lacking": lacking, "repositories": repositories})
    return context


@require_GET
@login_required
@vary_on_headers("HX-Request")
def coverage_matrix(request: HttpRequest) -> HttpResponse:
    context = _coverage_context(request)
    export = request.GET.get("format", "")
    if context.get("registry") is None:
        return _render(request, "manifests/coverage.html", context)
    if export in ("csv", "json"):
        rows = coverage.coverage_materialize(list(context["repositories"]), required=context["required"])
        return _coverage_export(export, rows, context)
    page = Paginator(context["repositories"], 100).get_page(request.GET.get("page"))
    rows = coverage.coverage_materialize(list(page.object_list), required=context["required"])
    columns = coverage.coverage_columns(rows, context["required"])
    # Links and cells made here, not by a {% url %} and two tests per cell: the
    # matrix is the widest page, and reversing URLs row by row dominated it.
    registry = context["registry"]
    repo_before, _, repo_after = reverse("manifests-tag-list", args=[registry.name, "0repo0"]).rpartition("0repo0")
    tag_url = reverse("manifests-tag-detail", args=[registry.name, "0repo0", "0tag0"])
    tag_before, _, tag_rest = tag_url.rpartition("0repo0")
    tag_middle, _, tag_after = tag_rest.rpartition("0tag0")
    table = [
        {"row": row, "repo_url": f"{repo_before}{row.repository}{repo_after}",
         "tag_url": f"{tag_before}{row.repository}{tag_middle}{row.tag}{tag_after}",
         "cells": format_html_join("", '<td class="cell {}" title="{}">{}</td>', (_coverage_cell(c, row) for c in columns))}
        for row in rows
    ]
    context.update({"page": page, "rows": rows, "table": table, "columns": columns})
    template = "manifests/_coverage_table.html" if request.htmx else "manifests/coverage.html"
    return _render(request, template, context)


def _coverage_cell(platform: str, row: coverage.CoverageRow) -> tuple[str, str, str]:
    if platform in row.platforms:
        return "yes", platform, "✓"
    if platform in row.missing:
        return "no", f"{platform} missing", "✗"
    return "none", platform, ""


def _coverage_export(kind: str, rows: list[coverage.CoverageRow], context: dict) -> HttpResponse:
    registry = context["registry"]
    sizes = coverage_sizes(registry=registry, rows=rows)  # compressed download bytes per platform
    if kind == "json":
        return JsonResponse({"registry": registry.name, "required": context["required"],
                             "rows": [{**row.__dict__, "size": sizes.get((row.repository, row.tag), {})}
                                      for row in rows]})
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="coverage-{registry.name}.csv"'
    columns = coverage.coverage_columns(rows, context["required"])
    writer = csv.writer(response)
    writer.writerow(["repository", "tag", "digest", *columns, *(f"{c} bytes" for c in columns), "signed",
                     "missing"])
    for row in rows:
        # Cells a spreadsheet would run as formulas are quoted with a leading apostrophe.
        safe = [("'" + v) if v[:1] in ("=", "+", "-", "@") else v for v in (row.repository, row.tag)]
        row_sizes = sizes.get((row.repository, row.tag), {})
        writer.writerow([*safe, row.digest, *("yes" if c in row.platforms else "" for c in columns),
                         *("" if row_sizes.get(c) is None else str(row_sizes[c]) for c in columns),
                         " ".join(row.signed or []), " ".join(row.missing)])
    return response


# -- jobs ----------------------------------------------------------------------


@require_GET
@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(Job.objects.select_related("registry", "created_by"), PAGE_SIZE).get_page(
        request.GET.get("page"))
    return _render(request, "manifests/job_list.html", {"page": page})


@require_GET
@login_required
@vary_on_headers("HX-Request")
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("registry"), pk=job_id)
    if request.htmx:
        response = render(request, "manifests/_job.html", {"job": job})
        if job.is_done:
            # 286 tells htmx to stop polling; the partial carries the final state.
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return _render(request, "manifests/job_detail.html", {"job": job})


# -- registry notifications ----------------------------------------------------


@csrf_exempt
@require_POST
def registry_webhook(request: HttpRequest, name: str) -> JsonResponse:
    """Docker Distribution's notifications: re-scan each pushed tag at once."""
    expected = settings.WEBHOOK_TOKEN or ""
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return JsonResponse({"error": "invalid token"}, status=401)
    registry = Registry.objects.filter(name=name).first()
    if registry is None:
        return JsonResponse({"error": "unknown registry"}, status=404)
    try:
        envelope = json.loads(request.body)
        events = envelope.get("events", [])
        assert isinstance(events, list)
    except (ValueError, AssertionError, AttributeError):
        return JsonResponse({"error": "expected a notification envelope"}, status=400)
    pushed: dict[str, set[str]] = {}
    for event in events:
        target = event.get("target") if isinstance(event, dict) else None
        if not isinstance(target, dict) or event.get("action") not in ("push", "delete"):
            continue
        repository, tag = target.get("repository"), target.get("tag")
        if isinstance(repository, str) and isinstance(tag, str) and tag:
            pushed.setdefault(repository, set()).add(tag)
        elif isinstance(repository, str) and event.get("action") == "delete":
            pushed.setdefault(repository, set())
    jobs = []
    try:
        for repository, tags in pushed.items():
            jobs.append(scan_enqueue(registry=registry, repository=repository, tags=sorted(tags) or None).pk)
    except queue.QueueUnavailable as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    return JsonResponse({"queued": jobs}, status=202)



# -- the list builder ------------------------------------------------------------


def _builder_registry(request: HttpRequest) -> Registry | None:
    """The registry chosen in the builder, among those the user may push to."""
    name = request.POST.get("registry") or request.GET.get("registry")
    registries = [r for r in Registry.objects.prefetch_related("push_groups") if r.can_push(request.user)]
    if name:
        return next((r for r in registries if r.name == name), None)
    return registries[0] if registries else None


def _require_push(request: HttpRequest, registry: Registry | None) -> None:
    if registry is None or not registry.can_push(request.user):
        raise PermissionDenied("You may not push to this registry.")


def _builder_context(request: HttpRequest, state: builder.BuilderState, *, with_preview: bool = True) -> dict:
    preview = builder.preview_build(state) if with_preview and (state.entries or state.target) else None
    if preview is not None and not state.expect_digest and request.method == "GET":
        state.expect_digest = preview.current_digest
    query = request.GET.get("q", "")
    return {
        "state": state, "preview": preview, "query": query,
        "registries": [r for r in Registry.objects.prefetch_related("push_groups") if r.can_push(request.user)],
        "candidates": builder.candidates_search(registry=state.registry, query=query) if state.registry else [],
        "blank_entry": builder.BuilderEntry(key="", ref=""),
        "formats": [("oci", "OCI image index"), ("docker", "Docker manifest list (Docker children only)"),
                    ("auto", "Docker list if every child is Docker, else OCI (as buildx)")],
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
    if "load" in request.POST and registry:
        state.entries = builder.entries_from_tag(registry=registry, target=state.target)
        state.expect_digest = ""
    context = _builder_context(request, state)
    if "load" in request.POST and context["preview"] is not None:
        state.expect_digest = context["preview"].current_digest
    return _render(request, "manifests/builder.html", context)


@require_GET
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def builder_candidates(request: HttpRequest) -> HttpResponse:
    registry = _builder_registry(request)
    candidates = builder.candidates_search(registry=registry, query=request.GET.get("q", "")) if registry else []
    return render(request, "manifests/_candidates.html", {"candidates": candidates})


@require_POST
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def builder_preview(request: HttpRequest) -> HttpResponse:
    """htmx: validation and preview of the list as the form stands, from the inventory."""
    state = builder.state_from_post(request.POST, _builder_registry(request))
    preview = builder.preview_build(state)
    return render(request, "manifests/_builder_preview.html", {"state": state, "preview": preview, "oob": True})


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
    try:
        job = push.rollback_job_create(record=record, user=request.user)
    except queue.QueueUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("manifests-registry-list")
    return redirect("manifests-job-detail", job_id=job.pk)
