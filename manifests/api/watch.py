"""JSON API of events and notification channels (under /api/v1/)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from ..forms.lists import ChannelCreateForm
from ..models import Channel
from ..services import notify
from .base import ApiError, api_view, json_object


def _channel_json(channel: Channel) -> dict:
    # The secret is never echoed: only whether one is set.
    return {"id": channel.pk, "name": channel.name, "kind": channel.kind, "url": channel.url, "to": channel.to,
            "has_secret": channel.has_secret, "events": channel.events,
            "registry": channel.registry.name if channel.registry else None,
            "repository": channel.repository, "enabled": channel.enabled}


@api_view(methods=("GET", "POST"))
def channels(request: HttpRequest) -> JsonResponse:
    """GET lists the channels; POST /api/v1/channels {"name", "kind", "url"|"to", "secret"?, "events"?,
    "registry"?, "repository"?} adds one.

    A write: `api_view` refuses it without the CSRF token (a session) or from an API key whose scope is not push.
    """
    if request.method == "GET":
        return JsonResponse({"channels": [_channel_json(c) for c in Channel.objects.select_related("registry")]})
    if not request.user.has_perm("manifests.add_channel"):
        raise ApiError(403, "you may not add notification channels")
    body = json_object(request)  # bounded in size and depth, as every API write's body
    form = ChannelCreateForm(body)
    if not form.is_valid():
        raise ApiError(400, "the request has problems", fields=form.api_errors())
    values = dict(form.cleaned_data)
    events = values.pop("events")
    try:
        channel = notify.channel_create(**values, events=events, user=request.user)
    except notify.ChannelInvalid as exc:
        raise ApiError(400, "the request has problems", fields=exc.errors) from None
    return JsonResponse(_channel_json(channel), status=201)


def _since(text: str):
    import datetime

    from django.utils import timezone
    from django.utils.dateparse import parse_date, parse_datetime

    text = text.strip()
    if not text:
        return None
    try:
        moment = parse_datetime(text)
        if moment is None and (day := parse_date(text)) is not None:
            moment = datetime.datetime.combine(day, datetime.time.min)
    except ValueError:
        moment = None
    if moment is None:
        raise ApiError(400, "since must be a date or an ISO 8601 time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z",
                        field="since")
    return timezone.make_aware(moment, datetime.UTC) if timezone.is_naive(moment) else moment


@api_view
def coverage_history(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/coverage/history?registry=&repository=&since=: per required platform, a point per scan."""
    from ..models import Registry
    from ..services.history import coverage_history as history

    name = request.GET.get("registry", "").strip()
    if not name:
        raise ApiError(400, "the registry parameter is required", field="registry")
    registry = Registry.objects.filter(name=name).first()
    if registry is None:
        raise ApiError(404, f"no registry named {name}")
    repository = request.GET.get("repository", "").strip()
    series = history(registry=registry, repository=repository, since=_since(request.GET.get("since", "")))
    return JsonResponse({
        "registry": registry.name, "repository": repository or None,
        "series": {platform: [{"at": p.at, "covered": p.covered, "total": p.total, "lacking": p.lacking}
                              for p in points] for platform, points in series.items()}})


@api_view
def events(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/events?kind=&registry=&repository=&since=: the latest events, newest first (at most 500)."""
    from ..models import Event
    from ..services.notify import event_payload

    rows = Event.objects.select_related("registry")
    if kind := request.GET.get("kind", "").strip():
        rows = rows.filter(kind=kind)
    if registry := request.GET.get("registry", "").strip():
        rows = rows.filter(registry__name=registry)
    if repository := request.GET.get("repository", "").strip():
        rows = rows.filter(repository=repository)
    if (since := _since(request.GET.get("since", ""))) is not None:
        rows = rows.filter(created_at__gte=since)
    return JsonResponse({"events": [event_payload(event) for event in rows[:500]]})
