"""Registries: where the images are, with their credentials and settings, and the webhook events they sent."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.db import models
from django.urls import reverse

from registry.platform import platform_sort_key

from .. import crypto


class Registry(models.Model):
    AUTH_ANONYMOUS = "anonymous"
    AUTH_BASIC = "basic"
    AUTH_TOKEN = "token"
    AUTH_CHOICES = [
        (AUTH_ANONYMOUS, "Anonymous"),
        (AUTH_BASIC, "Username and password"),
        (AUTH_TOKEN, "Bearer token"),
    ]

    name = models.SlugField(max_length=64, unique=True)
    url = models.CharField(max_length=255, help_text="Base URL, e.g. https://ghcr.io or http://127.0.0.1:5000")
    auth = models.CharField(max_length=16, choices=AUTH_CHOICES, default=AUTH_ANONYMOUS)
    username = models.CharField(max_length=255, blank=True)
    secret_encrypted = models.TextField(blank=True, editable=False)
    insecure = models.BooleanField(default=False, help_text="Allow plain http and unverified TLS")
    ca_bundle = models.TextField(blank=True, help_text="PEM certificates to trust for this registry")
    watch = models.TextField(blank=True, help_text="Repositories to scan when the registry has no catalog")
    required_platforms = models.CharField(max_length=512, blank=True, default="linux/amd64,linux/arm64")
    concurrency = models.PositiveSmallIntegerField(default=4)
    push_groups = models.ManyToManyField(
        "auth.Group", blank=True, related_name="push_registries",
        help_text="If set, only members of these groups may push here (besides the push permission)")
    # SHA-256 of the token Distribution's notifications must send for this
    # registry (shown once, when made: `webhook_token_rotate`).
    webhook_token_hash = models.CharField(max_length=64, blank=True, editable=False)
    last_scan_at = models.DateTimeField(null=True, blank=True)
    last_scan_error = models.TextField(blank=True)
    # The token realm's origin (scheme://host:port) recorded by the first successful check: a realm
    # elsewhere later is refused before it gets the credentials. Blank it to trust a moved realm.
    token_realm_origin = models.CharField(max_length=255, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "registries"
        permissions = [("push_registry", "Can assemble and push lists"),
                       ("scan_registry", "Can start scans, registry checks and child checks")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("manifests-repository-list", args=[self.name])

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret)

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    def can_push(self, user) -> bool:
        """The push permission, and membership of a push group when the registry names any."""
        if not user.is_authenticated or not user.has_perm("manifests.push_registry"):
            return False
        if user.is_superuser:
            return True
        groups = list(self.push_groups.all())
        return not groups or user.groups.filter(pk__in=[g.pk for g in groups]).exists()

    def can_scan(self, user) -> bool:
        """Starting registry work (scan, Test, Check children) spends its credentials' rate limits."""
        return bool(user.is_authenticated and (user.has_perm("manifests.scan_registry") or self.can_push(user)))

    def webhook_token_rotate(self) -> str:
        """A new webhook token for this registry; only its hash is kept, so it is shown once."""
        key = "whk_" + secrets.token_urlsafe(32)
        self.webhook_token_set(key)
        return key

    def webhook_token_set(self, key: str) -> None:
        self.webhook_token_hash = hashlib.sha256(key.encode()).hexdigest()
        self.save(update_fields=["webhook_token_hash"])

    def webhook_token_matches(self, given: str) -> bool:
        if not self.webhook_token_hash or not given:
            return False
        return hmac.compare_digest(hashlib.sha256(given.encode()).hexdigest(), self.webhook_token_hash)

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[-1].rstrip("/")

    @property
    def watch_list(self) -> list[str]:
        return [name.strip() for name in self.watch.replace(",", "\n").splitlines() if name.strip()]

    @property
    def required_list(self) -> list[str]:
        return sorted({p.strip() for p in self.required_platforms.split(",") if p.strip()}, key=platform_sort_key)


class WebhookEvent(models.Model):
    """A notification event already handled: Distribution retries and sends the same event id again."""

    registry = models.ForeignKey(Registry, on_delete=models.CASCADE, related_name="webhook_events")
    event_id = models.CharField(max_length=128)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["registry", "event_id"], name="webhookevent_unique")]

    def __str__(self) -> str:
        return f"{self.registry_id}: {self.event_id}"
