"""Pages of events and notification channels."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..models import Channel, Event, Registry
from ..services import notify, queue
from ..services.history import coverage_chart, coverage_history
from ._shared import object_delete

PAGE_SIZE = 50


def _channel_context(request: HttpRequest, **extra) -> dict:
    channels = list(Channel.objects.select_related("registry"))
    for channel in channels:
        channel.recent = list(channel.deliveries.select_related("event")[:5])
    return {"channels": channels, "kinds": Channel.KIND_CHOICES, "event_kinds": Event.KIND_CHOICES,
            "registries": Registry.objects.order_by("name"), "errors": {}, "values": {},
            **extra}


@require_GET
@login_required
def event_list(request: HttpRequest) -> HttpResponse:
    kind = request.GET.get("kind", "").strip()
    registry = request.GET.get("registry", "").strip()
    repository = request.GET.get("repository", "").strip()
    events = Event.objects.select_related("registry")
    if kind:
        events = events.filter(kind=kind)
    if registry:
        events = events.filter(registry__name=registry)
    if repository:
        events = events.filter(repository__icontains=repository)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "manifests/event_list.html", {
        "page": page, "kinds": Event.KIND_CHOICES, "kind": kind, "registry": registry, "repository": repository,
        "registries": Registry.objects.order_by("name")})


@require_http_methods(["GET", "POST"])
@login_required
def channel_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if not request.user.has_perm("manifests.add_channel"):
            messages.error(request, "You may not add notification channels.")
            return redirect("manifests-channel-list")
        values = {key: request.POST.get(key, "") for key in ("name", "kind", "url", "to", "registry", "repository")}
        try:
            channel = notify.channel_create(**values, secret=request.POST.get("secret", ""),
                                            events=request.POST.getlist("events"), user=request.user)
        except notify.ChannelInvalid as exc:
            context = _channel_context(request, errors=exc.errors, values={**values,
                                                                            "events": request.POST.getlist("events")})
            return render(request, "manifests/channel_list.html", context, status=400)
        messages.success(request, f"Added the channel {channel.name}.")
        return redirect("manifests-channel-list")
    return render(request, "manifests/channel_list.html", _channel_context(request))


@require_POST
@login_required
@permission_required("manifests.change_channel", raise_exception=True)
def channel_test(request: HttpRequest, channel_id: int) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=channel_id)
    if not queue.queue_available():
        messages.error(request, str(queue.QueueUnavailable()))
    else:
        notify.test_delivery_create(channel=channel)
        messages.success(request, f"A test message to {channel.name} is queued; its delivery shows below.")
    return redirect("manifests-channel-list")


@require_POST
@login_required
@permission_required("manifests.delete_channel", raise_exception=True)
def channel_delete(request: HttpRequest, channel_id: int) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=channel_id)
    return object_delete(request, channel, message=f"Removed the channel {channel.name}.", to="manifests-channel-list")


@require_GET
@login_required
def coverage_history_page(request: HttpRequest) -> HttpResponse:
    registries = list(Registry.objects.order_by("name"))
    chosen = request.GET.get("registry") or (registries[0].name if registries else "")
    registry = next((r for r in registries if r.name == chosen), None)
    repository = request.GET.get("repository", "").strip()
    series = coverage_history(registry=registry, repository=repository) if registry else {}
    return render(request, "manifests/coverage_history.html", {
        "registries": registries, "registry": registry, "repository": repository, "series": series,
        "chart": coverage_chart(series),
        "repositories": registry.repositories.order_by("name").values_list("name", flat=True)[:500]
        if registry else []})
