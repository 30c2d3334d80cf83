"""JSON API of assembly rules: /api/v1/rules[/<id>[/dry-run|/apply]].

Through the API's one decorator (`api.api_view`), so session and token
authentication, CSRF and JSON errors are the same as for POST /api/v1/lists.
Writes need the push permission on the rule's registry.
"""

from __future__ import annotations

import json

from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from ..forms.lists import PromotionCreateForm
from ..forms.rules import RuleForm, form_errors, rule_form_data, rule_to_dict, rule_yaml
from ..models import Registry, Rule, RuleSource
from ..services import rules
from ..services.promote import PromotionInvalid, promotion_preview, promotion_submit
from ..services.queue import QueueUnavailable
from ..services.rules_select import SelectionInvalid
from .base import ApiError, api_view


def _body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise ApiError(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _rule_or_404(rule_id: int) -> Rule:
    rule = rules.rule_load(rule_id=rule_id)
    if rule is None:
        raise ApiError(404, f"no rule {rule_id}")
    return rule


def _require_push(request: HttpRequest, registry: Registry | None) -> None:
    if not request.user.has_perm("manifests.push_registry") or (registry and not registry.can_push(request.user)):
        raise ApiError(403, "you may not push lists to this registry")


def _detail(request: HttpRequest, rule: Rule) -> dict:
    url = request.build_absolute_uri(reverse("manifests-api-rule-detail", args=[rule.pk]))
    states = {s.tag: {"status": s.status, "digest": s.digest, "error": s.error} for s in rule.states.all()}
    return {"id": rule.pk, "url": url, **rule_to_dict(rule), "last_error": rule.last_error,
            "last_applied_at": rule.last_applied_at, "states": states}


def _save(request: HttpRequest, body: dict, instance: Rule | None) -> Rule:
    data, problems = rule_form_data(body, instance=instance)
    form = RuleForm(data, instance=instance)
    valid = form.is_valid()
    fields = {**problems, **form_errors(form)}
    if fields or not valid:
        raise ApiError(400, "the rule has problems", fields=fields)
    _require_push(request, form.cleaned_data["registry"])
    return form.save(user=request.user)


@api_view(methods=("GET", "POST"))
def rule_list(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        _require_push(request, None)
        rule = _save(request, _body(request), None)
        url = request.build_absolute_uri(reverse("manifests-api-rule-detail", args=[rule.pk]))
        return JsonResponse({"id": rule.pk, "url": url}, status=201)
    found = Rule.objects.select_related("registry").prefetch_related(
        Prefetch("sources", queryset=RuleSource.objects.select_related("registry").order_by("position")))
    return JsonResponse({"rules": [{"id": r.pk, **rule_to_dict(r)} for r in found]})


@api_view(methods=("GET", "PATCH", "DELETE"))
def rule_detail(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule_or_404(rule_id)
    if request.method == "GET":
        if request.GET.get("format") == "yaml":
            return HttpResponse(rule_yaml(rule), content_type="application/yaml; charset=utf-8")
        return JsonResponse(_detail(request, rule))
    _require_push(request, rule.registry)
    if request.method == "DELETE":
        rule.delete()
        return HttpResponse(status=204)
    rule = _save(request, _body(request), rule)
    return JsonResponse(_detail(request, rules.rule_load(rule_id=rule.pk)))


@api_view(methods=("POST",))
def rule_dry_run(request: HttpRequest, rule_id: int) -> JsonResponse:
    rule = _rule_or_404(rule_id)
    tags = _tags(_body(request))
    try:
        dry = rules.rule_dry_run(rule=rule, tags=tags)
    except SelectionInvalid as exc:
        raise ApiError(400, str(exc), field="tags") from None
    return JsonResponse(dry.as_json())


@api_view(methods=("POST",))
def rule_apply(request: HttpRequest, rule_id: int) -> JsonResponse:
    rule = _rule_or_404(rule_id)
    _require_push(request, rule.registry)
    tags = _tags(_body(request))
    try:
        job = rules.rule_apply_submit(rule=rule, tags=tags, user=request.user)
    except QueueUnavailable as exc:
        raise ApiError(503, str(exc)) from None
    url = request.build_absolute_uri(reverse("manifests-api-job-detail", args=[job.pk]))
    return JsonResponse({"job": job.pk, "url": url}, status=202)


def _tags(body: dict) -> list[str] | None:
    tags = body.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ApiError(400, "tags must be a list of tag names", field="tags")
    return tags


@api_view(methods=("POST",))
def promotion_create(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/promotions: checked against the inventory at once, copied by the worker."""
    form = PromotionCreateForm(_body(request))
    if not form.is_valid():
        raise ApiError(400, "the request has problems", fields=form.api_errors())
    source_part, target_part = form.cleaned_data["from"], form.cleaned_data["to"]
    platforms, expect = form.cleaned_data["platforms"], form.cleaned_data["expect_digest"]
    source = Registry.objects.filter(name=str(source_part.get("registry") or "")).first()
    target_registry = Registry.objects.filter(name=str(target_part.get("registry") or "")).first()
    _require_push(request, target_registry)
    try:
        plan = promotion_preview(source=source, reference=str(source_part.get("reference") or ""),
                                 target_registry=target_registry, target=str(target_part.get("target") or ""),
                                 platforms=platforms or None)
    except PromotionInvalid as exc:
        raise ApiError(400, "the promotion has problems", fields=exc.errors) from None
    try:
        job = promotion_submit(source=source, reference=str(source_part["reference"]),
                               target_registry=target_registry, target=str(target_part["target"]),
                               platforms=platforms or None, expect_digest=expect, plan_digest=plan.digest,
                               user=request.user)
    except QueueUnavailable as exc:
        raise ApiError(503, str(exc)) from None
    url = request.build_absolute_uri(reverse("manifests-api-job-detail", args=[job.pk]))
    return JsonResponse({"job": job.pk, "url": url, **plan.as_json()}, status=202)
