"""Docker Distribution's notifications: the envelope read, repeated deliveries dropped, the scans queued."""

from __future__ import annotations

import datetime
import json

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import Registry, WebhookEvent
from ..scan.fanout import scan_submit

# Event ids are remembered this long: Distribution's retries come within minutes.
WEBHOOK_EVENT_MEMORY = datetime.timedelta(days=1)


class EnvelopeInvalid(ValueError):
    def __init__(self) -> None:
        super().__init__("expected a notification envelope")


def envelope_events(body: bytes) -> list[dict]:
    """The push and delete events of a notification body `{"events": [...]}`, each with a target object.

    Other actions (pulls, mounts) are dropped; a body that is not such an
    envelope raises EnvelopeInvalid.
    """
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):
        raise EnvelopeInvalid() from None
    events = envelope.get("events", []) if isinstance(envelope, dict) else None
    if not isinstance(events, list):
        raise EnvelopeInvalid()
    return [e for e in events if isinstance(e, dict) and e.get("action") in ("push", "delete")
            and isinstance(e.get("target"), dict)]


def _events_new(registry: Registry, events: list[dict]) -> list[dict]:
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


def webhook_scans_enqueue(*, registry: Registry, events: list[dict]) -> list[int]:
    """One scan per repository named by a new event (its pushed tags; a whole repository on a delete).

    Recording the ids and queueing the scans commit together: a refused
    delivery (queue down: QueueUnavailable) is not remembered, so its retry is handled.
    """
    jobs = []
    with transaction.atomic():
        pushed: dict[str, set[str]] = {}
        for event in _events_new(registry, events):
            target = event["target"]
            repository, tag = target.get("repository"), target.get("tag")
            if isinstance(repository, str) and isinstance(tag, str) and tag:
                pushed.setdefault(repository, set()).add(tag)
            elif isinstance(repository, str) and event.get("action") == "delete":
                pushed.setdefault(repository, set())
        for repository, tags in pushed.items():
            jobs.append(scan_submit(registry=registry, repository=repository, tags=sorted(tags) or None).pk)
    return jobs
