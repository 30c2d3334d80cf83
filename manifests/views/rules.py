"""Pages of assembly rules: list, form, detail with the dry run and Apply, YAML export."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..forms.rules import RuleForm, rule_yaml
from ..models import Registry, Rule
from ..selectors import tag_digest
from ..services import queue, rules
from ..services.promote import PromotionInvalid, promotion_preview, promotion_submit
from ..services.rules_select import SelectionInvalid
from ._shared import object_delete

DRY_RUN_PAGE = 100  # rows of the dry-run table per page


def _rule_or_404(rule_id: int) -> Rule:
    rule = rules.rule_load(rule_id=rule_id)
    if rule is None:
        raise Http404("no such rule")
    return rule


def _rule_to_change(request: HttpRequest, rule_id: int) -> Rule:
    """The rule, if the user may push to its registry (what applying, editing or deleting it needs)."""
    rule = _rule_or_404(rule_id)
    if not rule.registry.can_push(request.user):
        raise PermissionDenied("You may not push to this rule's registry.")
    return rule


def _initial(rule: Rule) -> dict:
    sources = []
    for source in rule.sources.all():
        words = [source.repository]
        if source.platform:
            words.append(source.platform)
        if source.tag != rules.PLACEHOLDER:
            words.append(f"tag={source.tag}")
        if source.registry_id:
            words.append(f"registry={source.registry.name}")
        sources.append(" ".join(words))
    return {"name": rule.name, "registry": rule.registry.name, "target": rule.target, "sources": "\n".join(sources),
            "tags_mode": rule.tags_mode, "tags_pattern": rule.tags_pattern, "require": ", ".join(rule.require),
            "format": rule.format, "annotations": "\n".join(f"{k}={v}" for k, v in rule.annotations.items()),
            "also_tag": ", ".join(rule.also_tag), "owns_target": rule.owns_target, "automatic": rule.automatic}


@require_GET
@login_required
def rule_list(request: HttpRequest) -> HttpResponse:
    found = Rule.objects.select_related("registry").prefetch_related("sources").order_by("name")
    return render(request, "manifests/rule_list.html", {"rules": found})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def rule_edit(request: HttpRequest, rule_id: int | None = None) -> HttpResponse:
    rule = _rule_to_change(request, rule_id) if rule_id is not None else None
    if request.method == "POST":
        form = RuleForm(request.POST, instance=rule)
        if form.is_valid() and form.cleaned_data["registry"].can_push(request.user):
            saved = form.save(user=request.user)
            messages.success(request, f"Rule {saved.name} saved. Here is what it would do.")
            return redirect("manifests-rule-detail", saved.pk)
        if form.is_valid():
            form.add_error("registry", "You may not push to this registry.")
    else:
        form = RuleForm(initial=_initial(rule) if rule else {"automatic": True, "format": "auto"}, instance=rule)
    return render(request, "manifests/rule_form.html", {"form": form, "rule": rule})


@require_GET
@login_required
def rule_detail(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule_or_404(rule_id)
    dry, problem = None, ""
    try:
        dry = rules.rule_dry_run(rule=rule)
    except SelectionInvalid as exc:
        problem = str(exc)
    # The table shows a page of the tags (of one status, when asked); the counts and "apply to all" cover every tag.
    status = request.GET.get("status", "")
    every = dry.rows + dry.also if dry else []
    page = Paginator([row for row in every if not status or row.status == status], DRY_RUN_PAGE).get_page(
        request.GET.get("page"))
    states = {state.tag: state for state in rule.states.all()}
    rows = [(row, states.get(row.tag)) for row in page.object_list]
    return render(request, "manifests/rule_detail.html", {
        "rule": rule, "dry": dry, "rows": rows, "problem": problem, "can_push": rule.registry.can_push(request.user),
        "pushable": rules.PUSHABLE, "recent": rule.pushes.order_by("-created_at")[:10], "page": page,
        "status": status, "pushable_count": sum(1 for row in every if row.status in rules.PUSHABLE and not row.follows),
        "paged": page.paginator.count < len(every) or page.has_other_pages()})


@require_POST
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def rule_apply(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule_to_change(request, rule_id)
    tags = request.POST.getlist("tags")
    if not tags and request.POST.get("all") != "1":
        messages.error(request, "Choose at least one tag to apply.")
        return redirect("manifests-rule-detail", rule.pk)
    try:
        job = rules.rule_apply_submit(rule=rule, tags=tags or None, user=request.user)
    except queue.QueueUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("manifests-rule-detail", rule.pk)
    return redirect("manifests-job-detail", job.pk)


@require_POST
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule_to_change(request, rule_id)
    return object_delete(request, rule, message=f"Rule {rule.name} deleted. The lists it pushed stay in the registry.",
                         to="manifests-rule-list")


@require_GET
@login_required
def rule_export(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule_or_404(rule_id)
    response = HttpResponse(rule_yaml(rule), content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{rule.name}.yaml"'
    return response


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("manifests.push_registry", raise_exception=True)
def promotion_page(request: HttpRequest) -> HttpResponse:
    """Copy a list to another registry: preview from the inventory (digest kept or new), then push on a worker."""
    registries = list(Registry.objects.prefetch_related("push_groups"))
    data = request.POST if request.method == "POST" else request.GET
    values = {name: data.get(name, "").strip() for name in ("from_registry", "reference", "to_registry", "target",
                                                             "platforms", "plan_digest", "expect_digest")}
    by_name = {r.name: r for r in registries}
    context: dict = {"values": values, "registries": registries,
                     "targets": [r for r in registries if r.can_push(request.user)], "errors": {}}
    if request.method == "POST":
        source, target_registry = by_name.get(values["from_registry"]), by_name.get(values["to_registry"])
        platforms = [p.strip() for p in values["platforms"].split(",") if p.strip()] or None
        try:
            if target_registry is not None and not target_registry.can_push(request.user):
                raise PromotionInvalid({"to.registry": ["you may not push to this registry"]})
            plan = promotion_preview(source=source, reference=values["reference"], target_registry=target_registry,
                                     target=values["target"], platforms=platforms)
        except PromotionInvalid as exc:
            context["errors"] = {key.replace(".", "_"): messages for key, messages in exc.errors.items()}
            return render(request, "manifests/promotion.html", context, status=400)
        current = tag_digest(registry=target_registry, reference=values["target"])
        if request.POST.get("action") == "promote":
            if values["plan_digest"] != plan.digest:
                context.update(plan=plan, current=current,
                               stale=f"the source changed since the preview: it would now push {plan.digest}")
                return render(request, "manifests/promotion.html", context, status=409)
            try:
                job = promotion_submit(source=source, reference=values["reference"],
                                       target_registry=target_registry, target=values["target"],
                                       platforms=platforms, expect_digest=values["expect_digest"],
                                       plan_digest=plan.digest, user=request.user)
            except queue.QueueUnavailable as exc:
                messages.error(request, str(exc))
            else:
                return redirect("manifests-job-detail", job.pk)
        context.update(plan=plan, current=current)
    return render(request, "manifests/promotion.html", context)
