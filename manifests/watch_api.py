"""JSON API of events and notification channels (under /api/v1/)."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse

from .api import _api_view, _ApiError
from .models import Channel
from .services import notify


def _channel_json(channel: Channel) -> dict:
    # The secret is never echoed: only whether one is set.
    return {"id": channel.pk, "name": channel.name, "kind": channel.kind, "url": channel.url, "to": channel.to,
            "has_secret": channel.has_secret, "events": channel.events,
            "registry": channel.registry.name if channel.registry else None,
            "repository": channel.repository, "enabled": channel.enabled}


@_api_view(methods=("GET", "POST"))
def channels(request: HttpRequest) -> JsonResponse:
    """GET lists the channels; POST /api/v1/channels {"name", "kind", "url"|"to", "secret"?, "events"?,
    "registry"?, "repository"?} adds one."""
    if request.method == "GET":
        return JsonResponse({"channels": [_channel_json(c) for c in Channel.objects.select_related("registry")]})
    if not request.user.has_perm("manifests.add_channel"):
        raise _ApiError(403, "you may not add notification channels")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise _ApiError(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise _ApiError(400, "the body must be a JSON object")
    fields: dict[str, list[str]] = {}
    values: dict = {}
    for key in ("name", "kind", "url", "to", "secret", "registry", "repository"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            fields[key] = ["must be a string"]
        values[key] = value or ""
    events = body.get("events") or []
    if not isinstance(events, list):
        fields["events"] = ["must be a list of event kinds"]
        events = []
    if fields:
        raise _ApiError(400, "the request has problems", fields=fields)
    try:
        channel = notify.channel_create(**values, events=events, user=request.user)
    except notify.ChannelInvalid as exc:
        raise _ApiError(400, "the request has problems", fields=exc.errors) from None
    return JsonResponse(_channel_json(channel), status=201)
