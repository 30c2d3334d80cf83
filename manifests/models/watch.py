"""What is told and to whom: events, notification channels and their deliveries."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .. import crypto
from .registries import Registry


class Event(models.Model):
    """Something that changed in a registry and that people want told: drift, breakage, conflicts."""

    PLATFORM_LOST = "platform_lost"
    CHILD_MISSING = "child_missing"
    REQUIRED_MISSING = "required_missing"
    SIGNATURE_LOST = "signature_lost"
    RULE_CONFLICT = "rule_conflict"
    KIND_CHOICES = [
        (PLATFORM_LOST, "Platform lost"),
        (CHILD_MISSING, "Child missing"),
        (REQUIRED_MISSING, "Required platform missing"),
        (SIGNATURE_LOST, "Signature lost"),
        (RULE_CONFLICT, "Rule conflict"),
    ]

    kind = models.CharField(max_length=32, choices=KIND_CHOICES, db_index=True)
    registry = models.ForeignKey(Registry, on_delete=models.CASCADE, related_name="events")
    repository = models.CharField(max_length=255, blank=True)
    tag = models.CharField(max_length=128, blank=True)
    old_digest = models.CharField(max_length=135, blank=True)
    new_digest = models.CharField(max_length=135, blank=True)
    platforms = models.JSONField(default=list, blank=True)  # those lost or missing
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["registry", "repository", "tag"], name="event_tag_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.repository}:{self.tag}"


class Channel(models.Model):
    """Where events are sent: an outgoing webhook, a Slack-compatible incoming webhook, or email."""

    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"
    KIND_CHOICES = [(WEBHOOK, "Webhook (JSON, signed)"), (SLACK, "Slack incoming webhook"), (EMAIL, "Email")]

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=KIND_CHOICES)
    url = models.CharField(max_length=1000, blank=True)
    to = models.CharField(max_length=1000, blank=True, help_text="Email addresses, comma separated")
    secret_encrypted = models.TextField(blank=True, editable=False)
    events = models.JSONField(default=list, blank=True)  # kinds; empty means every kind
    registry = models.ForeignKey(Registry, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="channels")
    repository = models.CharField(max_length=255, blank=True, help_text="A glob, e.g. team/*; empty for all")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret)

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)

    @property
    def recipients(self) -> list[str]:
        return [a.strip() for a in self.to.replace(";", ",").split(",") if a.strip()]


class Delivery(models.Model):
    """One event (or a test message) sent to one channel, with its attempts."""

    PENDING = "pending"
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"
    STATUS_CHOICES = [(s, s) for s in (PENDING, SENT, RETRYING, FAILED)]

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.channel} {self.event_id or 'test'} ({self.status})"

    @property
    def is_test(self) -> bool:
        return self.event_id is None
