"""Who may sign in and call the API: API keys and OpenID Connect identities."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """An API key: only its SHA-256 is stored; the key is shown once.

    `read` keys may only read; `push` keys may also write (POST /api/v1/lists
    and every later write endpoint), within what their user may do.
    """

    SCOPE_READ = "read"
    SCOPE_PUSH = "push"
    SCOPE_CHOICES = [(SCOPE_READ, "read"), (SCOPE_PUSH, "push")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=SCOPE_CHOICES, default=SCOPE_READ)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user}, {self.scope})"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user, *, scope: str = SCOPE_READ, expires_at=None) -> tuple[ApiToken, str]:
        key = "mdb_" + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, prefix=key[:12], key_hash=cls.hash_key(key), scope=scope,
                                   expires_at=expires_at)
        return token, key

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        return "expired" if self.is_expired else "active"


class OidcIdentity(models.Model):
    """The identity provider's account behind a user who signs in with OpenID Connect.

    Users are matched by the provider's `sub`, never by e-mail or user name, so
    an identity provider account cannot take over a local account that shares
    its name or address.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identity")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="oidcidentity_unique")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
