"""Docker Distribution's notifications: each pushed or deleted tag re-scanned at once."""

from __future__ import annotations

import datetime
import hmac
import json
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..models import Registry, WebhookEvent
from ..services import queue
from ..services.scan import scan_enqueue

WEBHOOK_EVENT_MEMORY = datetime.timedelta(days=1)


logger = logging.getLogger(__name__)


def _webhook_authorized(registry: Registry | None, given: str) -> bool:
    """The registry's own token; the global WEBHOOK_TOKEN only when a deployment set it explicitly."""
    if registry is not None and registry.webhook_token_matches(given):
        return True
    expected = settings.WEBHOOK_TOKEN or ""
    return bool(expected and given and hmac.compare_digest(given.encode(), expected.encode()))


def _webhook_events_new(registry: Registry, events: list[dict]) -> list[dict]:
    """The events not handled before: Distribution retries a delivery with the same event ids."""
    WebhookEvent.objects.filter(received_at__lt=timezone.now() - WEBHOOK_EVENT_MEMORY).delete()
    fresh = []
    for event in events:
        event_id = event.get("id")
        if isinstance(event_id, str) and event_id:
            try:
                with transaction.atomic():
                    WebhookEvent.objects.create(registry=registry, event_id=event_id[:128])
            except IntegrityError:
                continue
        fresh.append(event)
    return fresh


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
        envelope = json.loads(request.body)
        events = envelope.get("events", [])
        assert isinstance(events, list)
    except (ValueError, AssertionError, AttributeError, RecursionError):
        return JsonResponse({"error": "expected a notification envelope"}, status=400)
    events = [e for e in events if isinstance(e, dict) and e.get("action") in ("push", "delete")
              and isinstance(e.get("target"), dict)]
    limit = settings.WEBHOOK_MAX_EVENTS
    ignored = max(0, len(events) - limit)
    if ignored:
        logger.warning("webhook for %s: %d events, handled the first %d", registry.name, len(events), limit)
    jobs = []
    try:
        # Recording the ids and queueing the scans commit together: a refused
        # delivery (queue down) is not remembered, so its retry is handled.
        with transaction.atomic():
            pushed: dict[str, set[str]] = {}
            for event in _webhook_events_new(registry, events[:limit]):
                target = event["target"]
                repository, tag = target.get("repository"), target.get("tag")
                if isinstance(repository, str) and isinstance(tag, str) and tag:
                    pushed.setdefault(repository, set()).add(tag)
                elif isinstance(repository, str) and event.get("action") == "delete":
                    pushed.setdefault(repository, set())
            for repository, tags in pushed.items():
                jobs.append(scan_enqueue(registry=registry, repository=repository, tags=sorted(tags) or None).pk)
    except queue.QueueUnavailable as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    return JsonResponse({"queued": jobs, "ignored": ignored}, status=202)
