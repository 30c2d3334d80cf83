"""POST /api/v1/lists: a list checked against the inventory at once, then pushed on the worker."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from registry.assemble import AssemblyInvalid

from ..forms.lists import ListCreateForm
from ..selectors import tag_digest
from ..services.across import list_plan_inventory
from ..services.push import push_submit
from ..services.queue import QueueUnavailable
from .base import ApiError, api_view, json_object


def _source_fields(fields: dict[str, list[str]]) -> dict[str, Any]:
    """The 400 answer's problems, sources counted from 1 as the pages count them.

    `fields` names the n-th source "source n" (n from 1); `source_errors` says
    the same for programs: `source` counts from 1, `index` is the position in
    the request's `sources` array (from 0).
    """
    public: dict[str, list[str]] = {}
    source_errors: list[dict[str, Any]] = []
    for key, messages in fields.items():
        prefix, _, rest = key.partition(".")
        if prefix == "sources" and rest.isdigit():
            index = int(rest)
            public[f"source {index + 1}"] = messages
            source_errors.append({"source": index + 1, "index": index, "messages": messages})
        else:
            public[key] = messages
    source_errors.sort(key=lambda e: e["index"])
    return {"fields": public, "source_errors": source_errors}


@api_view(methods=("POST",))
def list_create(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/lists: check against the inventory at once, then push on the worker."""
    form = ListCreateForm(json_object(request))
    valid = form.is_valid()
    registry = form.cleaned_data.get("registry")
    if not request.user.has_perm("manifests.push_registry") or (registry and not registry.can_push(request.user)):
        raise ApiError(403, "you may not push lists to this registry")
    if not valid:
        raise ApiError(400, "the request has problems", **_source_fields(form.api_errors()))
    specs, fmt, annotations = form.cleaned_data["sources"], form.cleaned_data["format"], form.cleaned_data["annotations"]
    target, expect_digest = form.cleaned_data["target"], form.cleaned_data["expect_digest"]
    try:
        plan, _ = list_plan_inventory(registry=registry, target=target, sources=specs, fmt=str(fmt),
                         annotations=annotations)
    except AssemblyInvalid as exc:
        raise ApiError(400, "the list cannot be built", **_source_fields(exc.errors)) from None
    if expect_digest is not None:
        current = tag_digest(registry=registry, reference=target)
        if current != expect_digest:
            raise ApiError(409, f"{target} holds {current or 'nothing'}, not {expect_digest or 'nothing'}",
                            current=current)
    try:
        job = push_submit(registry=registry, target=str(plan.target.repository + ":" + plan.target.tag),
                              sources=specs, fmt=str(fmt), annotations=annotations, expect_digest=expect_digest,
                              user=request.user)
    except QueueUnavailable as exc:
        raise ApiError(503, str(exc)) from None
    url = reverse("manifests-api-job-detail", args=[job.pk])
    return JsonResponse({"job": job.pk, "url": request.build_absolute_uri(url), "digest": plan.digest}, status=202)
