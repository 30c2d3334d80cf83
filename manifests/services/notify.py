"""Notifications: channels subscribe to events; deliveries run on the worker.

A webhook receives the event as JSON, signed: `X-Manifests-Timestamp` is the
Unix time of the attempt and `X-Manifests-Signature` is
`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the channel's secret>`,
so a receiver can refuse a replayed or forged body. A Slack channel receives
an incoming-webhook body (`{"text": ...}`); an email channel a plain-text
mail through Django's email settings (SMTP).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
import random
import time

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone

from .. import jobs
from ..models import Channel, Delivery, Event
from . import outbound

logger = logging.getLogger(__name__)


class DeliveryRetry(Exception):
    """This attempt failed and another is due in `retry_in` seconds (the task retries then)."""

    def __init__(self, error: str, *, attempts: int) -> None:
        super().__init__(error)
        # Exponential backoff with jitter: 2, 4, 8 ... seconds, at most five minutes.
        base = min(300.0, 2.0 ** attempts)
        self.retry_in = base / 2 + random.uniform(0, base / 2)


def channel_matches(channel: Channel, event: Event) -> bool:
    if not channel.enabled:
        return False
    if channel.events and event.kind not in channel.events:
        return False
    if channel.registry_id and channel.registry_id != event.registry_id:
        return False
    return not channel.repository or fnmatch.fnmatchcase(event.repository, channel.repository)


def deliveries_create(*, event: Event) -> list[Delivery]:
    """A delivery per channel that subscribes to the event, each sent on the worker after commit."""
    deliveries = [Delivery.objects.create(channel=channel, event=event)
                  for channel in Channel.objects.filter(enabled=True) if channel_matches(channel, event)]
    for delivery in deliveries:
        delivery_submit(delivery=delivery)
    return deliveries


def delivery_submit(*, delivery: Delivery) -> None:
    """Send the delivery on the worker once the transaction commits (the `delivery_send` task, by name)."""

    def unsent(exc: Exception) -> None:  # the delivery stays pending
        Delivery.objects.filter(pk=delivery.pk).update(last_error="the task queue was unreachable")

    jobs.task_send("manifests.tasks.delivery_send", delivery.pk, on_error=unsent)


def test_delivery_create(*, channel: Channel) -> Delivery:
    """The "send test" button: a delivery with no event, sent like any other."""
    delivery = Delivery.objects.create(channel=channel, event=None)
    delivery_submit(delivery=delivery)
    return delivery


def _site_url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def event_link(event: Event) -> str:
    if event.tag:
        try:
            return _site_url(reverse("manifests-tag-detail", args=[event.registry.name, event.repository,
                                                                   event.tag]))
        except Exception:  # a name the URL pattern refuses: link to the events page instead
            pass
    return _site_url(reverse("manifests-event-list") + f"?registry={event.registry.name}")


def event_payload(event: Event) -> dict:
    return {"event": event.kind, "registry": event.registry.name, "repository": event.repository,
            "tag": event.tag, "old_digest": event.old_digest, "new_digest": event.new_digest,
            "platforms": event.platforms, "detail": event.detail, "url": event_link(event),
            "created_at": event.created_at.isoformat(), "id": event.pk}


def _test_payload(channel: Channel) -> dict:
    return {"event": "test", "registry": channel.registry.name if channel.registry else "", "repository": "",
            "tag": "", "old_digest": "", "new_digest": "", "platforms": [],
            "detail": f"a test message for the channel {channel.name}", "url": _site_url(reverse(
                "manifests-channel-list")), "created_at": timezone.now().isoformat(), "id": None}


def webhook_sign(*, secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _summary(payload: dict) -> str:
    where = payload["repository"] + (f":{payload['tag']}" if payload["tag"] else "")
    platforms = ", ".join(payload["platforms"])
    return (f"[{payload['registry']}] {payload['event']}" + (f" {where}" if where else "")
            + (f" ({platforms})" if platforms else ""))


def _slack_escape(text: str) -> str:
    """Slack reads &, < and > as markup (links, mentions): registry names must not make any."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _send(channel: Channel, payload: dict) -> None:
    timeout = float(settings.NOTIFY_TIMEOUT_SECONDS)
    if channel.kind == Channel.WEBHOOK:
        body = json.dumps(payload, sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Manifests-Timestamp": timestamp,
                   "X-Manifests-Event": payload["event"]}
        if channel.has_secret:
            headers["X-Manifests-Signature"] = webhook_sign(secret=channel.get_secret(), timestamp=timestamp,
                                                            body=body)
        outbound.post(channel.url, body=body, headers=headers, timeout=timeout)
    elif channel.kind == Channel.SLACK:
        text = _slack_escape(_summary(payload)) + f"\n{_slack_escape(payload['detail'])}\n<{payload['url']}|Open>"
        outbound.post(channel.url, body=json.dumps({"text": text}).encode(),
                      headers={"Content-Type": "application/json"}, timeout=timeout)
    elif channel.kind == Channel.EMAIL:
        lines = [payload["detail"], "", *(f"{key}: {payload[key]}" for key in (
            "event", "registry", "repository", "tag", "old_digest", "new_digest")),
            f"platforms: {', '.join(payload['platforms'])}", "", payload["url"]]
        send_mail(_summary(payload)[:200], "\n".join(lines), None, channel.recipients, fail_silently=False)
    else:
        raise outbound.OutboundError(f"unknown channel kind {channel.kind!r}")


def delivery_send(*, delivery_id: int) -> None:
    """One attempt; raises DeliveryRetry while attempts remain, records the outcome either way."""
    delivery = Delivery.objects.select_related("channel", "channel__registry", "event", "event__registry").filter(
        pk=delivery_id).first()
    if delivery is None or delivery.status in (Delivery.SENT, Delivery.FAILED):
        return
    payload = event_payload(delivery.event) if delivery.event else _test_payload(delivery.channel)
    attempts = delivery.attempts + 1
    try:
        _send(delivery.channel, payload)
    except Exception as exc:  # SMTP, HTTP, a secret that cannot be decrypted: all a failed attempt
        error = str(exc) if isinstance(exc, outbound.OutboundError) else f"{type(exc).__name__}: {exc}"[:500]
        final = attempts >= settings.NOTIFY_MAX_ATTEMPTS
        Delivery.objects.filter(pk=delivery.pk).update(
            attempts=attempts, last_error=error, status=Delivery.FAILED if final else Delivery.RETRYING)
        logger.warning("delivery %s to channel %s failed (attempt %s): %s", delivery.pk, delivery.channel_id,
                       attempts, error)
        if not final:
            raise DeliveryRetry(error, attempts=attempts) from None
        return
    Delivery.objects.filter(pk=delivery.pk).update(attempts=attempts, status=Delivery.SENT, last_error="",
                                                   sent_at=timezone.now())


class ChannelInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("the channel has problems")
        self.errors = errors


def channel_create(*, name: str, kind: str, url: str = "", to: str = "", secret: str = "",
                   events: list[str] | None = None, registry: str = "", repository: str = "", user=None) -> Channel:
    """Check a channel as a person or a script gave it, then store it; ChannelInvalid says what is wrong."""
    from django.core.validators import validate_email

    from ..models import Registry
    from .events import KINDS

    problems: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name:
        problems["name"] = ["give the channel a name"]
    elif len(name) > 100:
        problems["name"] = ["at most 100 characters"]
    elif Channel.objects.filter(name=name).exists():
        problems["name"] = [f"a channel named {name!r} exists already"]
    if kind not in dict(Channel.KIND_CHOICES):
        problems["kind"] = ["choose webhook, slack or email"]
    url, to = (url or "").strip(), (to or "").strip()
    if kind in (Channel.WEBHOOK, Channel.SLACK):
        try:
            outbound.url_check(url)
            if len(url) > 1000:
                raise ValueError("at most 1000 characters")
        except ValueError as exc:
            problems["url"] = [str(exc)]
    if kind == Channel.EMAIL:
        addresses = [a.strip() for a in to.replace(";", ",").split(",") if a.strip()]
        if not addresses or len(to) > 1000:
            problems["to"] = ["give one or more email addresses, comma separated"]
        for address in addresses:
            try:
                validate_email(address)
            except Exception:
                problems.setdefault("to", []).append(f"{address!r} is not an email address")
    events = list(events or [])
    unknown = [e for e in events if not isinstance(e, str) or e not in KINDS]
    if unknown:
        problems["events"] = [f"unknown event kinds: {', '.join(map(str, unknown))}; known: {', '.join(KINDS)}"]
    registry_row = None
    if registry:
        registry_row = Registry.objects.filter(name=registry).first()
        if registry_row is None:
            problems["registry"] = [f"no registry named {registry!r}"]
    repository = (repository or "").strip()
    if len(repository) > 255:
        problems["repository"] = ["at most 255 characters"]
    if problems:
        raise ChannelInvalid(problems)
    channel = Channel(name=name, kind=kind, url=url if kind != Channel.EMAIL else "",
                      to=to if kind == Channel.EMAIL else "", events=sorted(set(events), key=KINDS.index),
                      registry=registry_row, repository=repository,
                      created_by=user if user is not None and user.is_authenticated else None)
    if secret:
        channel.set_secret(secret)
    channel.save()
    return channel
