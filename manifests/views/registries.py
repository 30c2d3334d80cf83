"""Registry pages: the list, the form with Test connection, delete, check, webhook token, scan."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import selectors
from ..forms.registries import RegistryForm
from ..models import Registry
from ..scan.fanout import scan_submit
from ..services import queue, registries
from ._shared import object_delete, registry_or_404


def _registry_test_url(registry: Registry | None) -> str:
    if registry is None:
        return reverse("manifests-registry-add-test")
    return reverse("manifests-registry-edit-test", args=[registry.name])


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


@require_GET
@login_required
def registry_list(request: HttpRequest) -> HttpResponse:
    return render(request, "manifests/registry_list.html", {"rows": selectors.registry_rows()})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("manifests.change_registry", raise_exception=True)
def registry_edit(request: HttpRequest, name: str | None = None) -> HttpResponse:
    instance = registry_or_404(name) if name else None
    form = RegistryForm(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        registry = form.save()
        messages.success(request, f"Saved registry {registry.name}.")
        return redirect("manifests-registry-list")
    return render(request, "manifests/registry_form.html", {"form": form, "registry": instance,
                                                             "test_url": _registry_test_url(instance)})


@require_POST
@login_required
@permission_required("manifests.change_registry", raise_exception=True)
def registry_test(request: HttpRequest, name: str | None = None) -> HttpResponse:
    """"Test connection": the form's unsaved settings checked on the worker; nothing is saved.

    htmx gets the result slot alone (the job's progress, or what to fix first);
    without JavaScript the form comes back with its errors and the job.
    """
    instance = registry_or_404(name) if name else None
    form = RegistryForm(request.POST, instance=instance)
    context: dict = {"form": form, "registry": instance, "test_url": _registry_test_url(instance),
                     "test_attempt": True}
    if form.is_valid():
        draft, secret = form.draft()
        try:
            context["test_job"] = registries.registry_draft_check_submit(
                draft=draft, secret=secret, editing=instance, user=request.user)
        except queue.QueueUnavailable as exc:
            context["test_error"] = str(exc)
    if request.htmx:
        return render(request, "manifests/_registry_test.html", context)
    return render(request, "manifests/registry_form.html", context)


@require_POST
@login_required
@permission_required("manifests.delete_registry", raise_exception=True)
def registry_delete(request: HttpRequest, name: str) -> HttpResponse:
    return object_delete(request, registry_or_404(name), message=f"Removed registry {name} and its stored inventory.",
                         to="manifests-registry-list")


@require_POST
@login_required
def registry_check(request: HttpRequest, name: str) -> HttpResponse:
    """Test: can the worker reach the registry with its credentials?"""
    registry = registry_or_404(name)
    _require_scan(request, registry)
    try:
        job = registries.registry_check_submit(registry=registry, user=request.user)
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
    registry = registry_or_404(name)
    token = registry.webhook_token_rotate()
    hook_url = request.build_absolute_uri(reverse("manifests-webhook", args=[registry.name]))
    response = render(request, "manifests/registry_webhook_token.html",
                       {"registry": registry, "token": token, "hook_url": hook_url})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def scan_start(request: HttpRequest, name: str) -> HttpResponse:
    """Refresh: re-scan a registry, a repository or some tags on the worker (and check lists' children)."""
    registry = registry_or_404(name)
    _require_scan(request, registry)
    repository = request.POST.get("repository", "")
    tags = [t for t in request.POST.getlist("tag") if t] or None
    try:
        job = scan_submit(registry=registry, repository=repository, tags=tags, user=request.user,
                           verify_children=request.POST.get("verify") == "1")
    except queue.QueueUnavailable as exc:
        if request.htmx:
            return render(request, "manifests/_action_error.html", {"error": str(exc)})
        messages.error(request, str(exc))
        return redirect(_next_or(request, "manifests-registry-list"))
    if request.htmx:  # the job's progress where the button was clicked
        return render(request, "manifests/_job_inline.html", {"job": job})
    return redirect("manifests-job-detail", job_id=job.pk)
