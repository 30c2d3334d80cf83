"""The list builder: the page, its palette, the preview and the push."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..forms.builder import FORMAT_CHOICES, builder_data
from ..models import Registry
from ..services import builder, push, queue
from ._shared import require_push


def _pushable(request: HttpRequest) -> list[Registry]:
    """The registries the user may push to, computed once per request (the choice and the page's menu)."""
    if not hasattr(request, "_pushable_registries"):
        request._pushable_registries = [r for r in Registry.objects.prefetch_related("push_groups")
                                        if r.can_push(request.user)]
    return request._pushable_registries


def _builder_registry(request: HttpRequest) -> Registry | None:
    """The registry chosen in the builder, among those the user may push to."""
    name = request.POST.get("registry") or request.GET.get("registry")
    registries = _pushable(request)
    if name:
        return next((r for r in registries if r.name == name), None)
    return registries[0] if registries else None


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


def _palette_registry(request: HttpRequest, registry: Registry | None) -> Registry | None:
    """The registry the palette lists images of (any registered one: its images are streamed across)."""
    name = request.POST.get("source_registry") or request.GET.get("source_registry")
    return Registry.objects.filter(name=name).first() if name else registry


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
        "registries": _pushable(request),
        "palette": _palette(candidates, state.entries),
        "blank_entry": builder.BuilderEntry(key="", ref=""),
        "formats": FORMAT_CHOICES,
        "entry_fields": builder.ENTRY_FIELDS,  # what static/js/builder.js fills in a new entry
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
        return render(request, "manifests/builder.html", _builder_context(request, state))
    state = builder.state_from_post(builder_data(request.POST), registry)
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
    return render(request, "manifests/builder.html", context)


@require_GET
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def builder_candidates(request: HttpRequest) -> HttpResponse:
    registry = _builder_registry(request)
    candidates = builder.palette_candidates(registry=registry, source=_palette_registry(request, registry),
                                            query=request.GET.get("q", "")) if registry else []
    entries = builder.state_from_post(builder_data(request.GET), registry).entries
    return render(request, "manifests/_candidates.html", {"palette": _palette(candidates, entries)})


@require_POST
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def builder_preview(request: HttpRequest) -> HttpResponse:
    """htmx: validation and preview of the list as the form stands, from the inventory."""
    state = builder.state_from_post(builder_data(request.POST), _builder_registry(request))
    preview = builder.preview_build(state)
    return render(request, "manifests/_builder_preview.html", {
        "state": state, "preview": preview, "oob": True,
        "error_fields": ["registry", "target", "format", "annotations", "sources"]})


@require_POST
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def builder_push(request: HttpRequest) -> HttpResponse:
    state = builder.state_from_post(builder_data(request.POST), _builder_registry(request))
    require_push(request, state.registry)
    preview = builder.preview_build(state)
    if not preview.ok:
        messages.error(request, "The list has problems: see the messages next to the fields.")
        context = _builder_context(request, state)
        return render(request, "manifests/builder.html", context)
    overwrite = request.POST.get("overwrite") == "1"
    try:
        job = push.push_submit(
            registry=state.registry, target=state.target, user=request.user,
            sources=[builder.entry_to_spec(e)[0] for e in state.entries], fmt=state.fmt,
            annotations=preview.plan.annotations, expect_digest=None if overwrite else state.expect_digest,
            preview_digest=preview.plan.digest)
    except queue.QueueUnavailable as exc:
        messages.error(request, str(exc))
        return render(request, "manifests/builder.html", _builder_context(request, state))
    return redirect("manifests-job-detail", job_id=job.pk)
