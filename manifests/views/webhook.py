"""Docker Distribution's notifications: each pushed or deleted tag re-scanned at once."""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..models import Registry
from ..services import queue, webhook

logger = logging.getLogger(__name__)


def _webhook_authorized(registry: Registry | None, given: str) -> bool:
    """The registry's own token; the global WEBHOOK_TOKEN only when a deployment set it explicitly."""
    if registry is not None and registry.webhook_token_matches(given):
        return True
    expected = settings.WEBHOOK_TOKEN or ""
    return bool(expected and given and hmac.compare_digest(given.encode(), expected.encode()))


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
        events = webhook.envelope_events(request.body)
    except webhook.EnvelopeInvalid as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    limit = settings.WEBHOOK_MAX_EVENTS
    ignored = max(0, len(events) - limit)
    if ignored:
        logger.warning("webhook for %s: %d events, handled the first %d", registry.name, len(events), limit)
    try:
        jobs = webhook.webhook_scans_enqueue(registry=registry, events=events[:limit])
    except queue.QueueUnavailable as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    return JsonResponse({"queued": jobs, "ignored": ignored}, status=202)
