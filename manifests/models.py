from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from registry.platform import platform_sort_key

from . import crypto


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


class Repository(models.Model):
    registry = models.ForeignKey(Registry, on_delete=models.CASCADE, related_name="repositories")
    name = models.CharField(max_length=255)
    platforms = models.JSONField(default=list, blank=True)
    tag_count = models.PositiveIntegerField(default=0)
    list_count = models.PositiveIntegerField(default=0)
    scanned_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["registry", "name"], name="repository_unique_name")]

    def __str__(self) -> str:
        return f"{self.registry.name}/{self.name}"


class Manifest(models.Model):
    """A manifest by digest: content-addressed, so stored once and never fetched again."""

    digest = models.CharField(max_length=135, unique=True)
    media_type = models.CharField(max_length=255)
    kind = models.CharField(max_length=16)  # index, image, artifact, schema1
    raw = models.BinaryField()
    size = models.BigIntegerField(default=0)  # manifest bytes plus, for images, config and layers
    config_digest = models.CharField(max_length=135, blank=True, db_index=True)  # scans look configs up by it
    artifact_type = models.CharField(max_length=255, blank=True)
    os = models.CharField(max_length=64, blank=True)
    architecture = models.CharField(max_length=64, blank=True)
    variant = models.CharField(max_length=32, blank=True)
    os_version = models.CharField(max_length=64, blank=True)
    os_features = models.JSONField(default=list, blank=True)
    platform = models.CharField(max_length=128, blank=True)  # normalized os/arch[/variant]
    created = models.DateTimeField(null=True, blank=True)
    # An image's config JSON as the scan read it (entrypoint, env, labels, history), for its page;
    # null for lists, artifacts, images stored before it was kept, and configs too large to keep.
    config = models.JSONField(null=True, blank=True)
    fetched_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.digest

    @property
    def raw_text(self) -> str:
        return bytes(self.raw).decode("utf-8", errors="replace")


class ManifestChild(models.Model):
    """One entry of an index, exactly as its parent's bytes describe it."""

    parent = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="children")
    position = models.PositiveIntegerField()
    digest = models.CharField(max_length=135, db_index=True)
    media_type = models.CharField(max_length=255)
    size = models.BigIntegerField(default=0)
    os = models.CharField(max_length=64, blank=True)
    architecture = models.CharField(max_length=64, blank=True)
    variant = models.CharField(max_length=32, blank=True)
    os_version = models.CharField(max_length=64, blank=True)
    os_features = models.JSONField(default=list, blank=True)
    platform = models.CharField(max_length=128, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    artifact_type = models.CharField(max_length=255, blank=True)
    is_attestation = models.BooleanField(default=False)
    subject = models.CharField(max_length=135, blank=True)

    class Meta:
        ordering = ["parent", "position"]
        constraints = [models.UniqueConstraint(fields=["parent", "position"], name="child_unique_position")]

    def __str__(self) -> str:
        return f"{self.platform or 'no platform'} {self.digest}"


class Tag(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=128)
    digest = models.CharField(max_length=135, blank=True, db_index=True)
    media_type = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=16, blank=True)
    manifest = models.ForeignKey(Manifest, null=True, blank=True, on_delete=models.SET_NULL, related_name="tags")
    platforms = models.JSONField(default=list, blank=True)  # normalized, in display order
    size = models.BigIntegerField(default=0)
    created = models.DateTimeField(null=True, blank=True)
    missing = models.JSONField(default=list, blank=True)  # child digests that answered 404
    scanned_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="tag_unique_name")]
        # The coverage matrix's newest tag per repository, read backwards from the end.
        indexes = [models.Index(fields=["repository", "created", "name"], name="tag_newest_idx")]

    def __str__(self) -> str:
        return f"{self.repository.name}:{self.name}"

    def chips(self) -> list[str]:
        """Platforms for display, in the fixed order, windows builds told apart (prefetch platform_rows)."""
        rows = sorted(self.platform_rows.all(), key=lambda r: (platform_sort_key(r.platform), r.os_version))
        chips: list[str] = []
        for row in rows:
            text = f"{row.platform} {row.os_version}" if row.os_version else row.platform
            if text not in chips:
                chips.append(text)
        return chips


class TagPlatform(models.Model):
    """Normalized platform rows, so coverage is a query and not a walk over JSON."""

    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="platform_rows")
    platform = models.CharField(max_length=128, db_index=True)
    digest = models.CharField(max_length=135)
    os_version = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tag", "platform", "os_version"], name="tagplatform_unique")
        ]

    def __str__(self) -> str:
        return f"{self.platform} {self.os_version}".strip()


class Job(models.Model):
    KIND_PUSH = "push"
    KIND_SCAN = "scan"
    KIND_ROLLBACK = "rollback"
    KIND_CHECK = "check"
    KIND_RULE_APPLY = "rule_apply"
    KIND_PROMOTE = "promote"
    STATUS_QUEUED = "queued"
    STATUS_RUNNING = "running"
    STATUS_SUCCEEDED = "succeeded"
    STATUS_FAILED = "failed"
    STATUS_CHOICES = [(s, s) for s in (STATUS_QUEUED, STATUS_RUNNING, STATUS_SUCCEEDED, STATUS_FAILED)]

    kind = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=STATUS_QUEUED)
    registry = models.ForeignKey(Registry, null=True, on_delete=models.SET_NULL, related_name="jobs")
    target = models.CharField(max_length=400, blank=True)
    params = models.JSONField(default=dict, blank=True)
    steps = models.JSONField(default=list, blank=True)
    result = models.JSONField(default=dict, blank=True)
    digest = models.CharField(max_length=135, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Written every JOB_LEASE_SECONDS / 4 by the worker running the job: a fresh
    # one means a worker is alive on it (services.jobs.job_start).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The Celery worker (name@host) of the latest attempt.
    worker = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.target} ({self.status})"

    @property
    def is_done(self) -> bool:
        return self.status in (self.STATUS_SUCCEEDED, self.STATUS_FAILED)

    def parts_done(self) -> int:
        """Repositories finished, for a registry scan split across workers."""
        return self.scan_parts.count() if self.params.get("names") is not None else 0

    @property
    def repository_name(self) -> str:
        """For push and rollback jobs, whose target is repository:tag."""
        return self.target.rpartition(":")[0]

    @property
    def tag_name(self) -> str:
        return self.target.rpartition(":")[2]


class PushRecord(models.Model):
    """History of every tag move we made (pushes and rollbacks): who, when, from which digest to which.

    Written as soon as the registry accepted the PUT, before the list is read
    back: the tag has moved, whatever happens next.
    """

    registry = models.ForeignKey(Registry, on_delete=models.CASCADE, related_name="pushes")
    repository = models.CharField(max_length=255)
    tag = models.CharField(max_length=128)
    old_digest = models.CharField(max_length=135, blank=True)
    new_digest = models.CharField(max_length=135)
    media_type = models.CharField(max_length=255)
    raw = models.BinaryField()
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Set when an assembly rule made this push (by hand or automatically).
    rule = models.ForeignKey("Rule", null=True, blank=True, on_delete=models.SET_NULL, related_name="pushes")
    created_at = models.DateTimeField(auto_now_add=True)
    # The read-back after the PUT: True when the registry served the list and
    # every child, False when the check failed, None when it never finished.
    verified = models.BooleanField(null=True)
    # What failed after the PUT: the read-back, or recording the tag in the inventory.
    verify_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag} {self.old_digest or '(new)'} -> {self.new_digest}"


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


class WebhookEvent(models.Model):
    """A notification event already handled: Distribution retries and sends the same event id again."""

    registry = models.ForeignKey(Registry, on_delete=models.CASCADE, related_name="webhook_events")
    event_id = models.CharField(max_length=128)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["registry", "event_id"], name="webhookevent_unique")]

    def __str__(self) -> str:
        return f"{self.registry_id}: {self.event_id}"


class ScanPart(models.Model):
    """One repository of a registry scan split across workers; unique, so a redelivered task counts once."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="scan_parts")
    repository = models.CharField(max_length=255)
    counts = models.JSONField(default=dict)
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "repository"], name="scanpart_unique")]

    def __str__(self) -> str:
        return f"job {self.job_id}: {self.repository}"


class Rule(models.Model):
    """An assembly rule: keep `target` (repo:{tag}) assembled from its sources, for every selected tag."""

    TAGS_ALL = "all"
    TAGS_GLOB = "glob"
    TAGS_REGEX = "regex"
    TAGS_SEMVER = "semver"
    TAGS_CHOICES = [(TAGS_ALL, "Every tag"), (TAGS_GLOB, "Glob"), (TAGS_REGEX, "Regular expression"),
                    (TAGS_SEMVER, "Semver range")]

    name = models.SlugField(max_length=64, unique=True)
    registry = models.ForeignKey(Registry, on_delete=models.CASCADE, related_name="rules")
    target = models.CharField(max_length=300, help_text="repository:{tag}, e.g. username/test:{tag}")
    tags_mode = models.CharField(max_length=8, choices=TAGS_CHOICES, default=TAGS_ALL)
    tags_pattern = models.CharField(max_length=200, blank=True)
    require = models.JSONField(default=list, blank=True)  # [] = every source; else required platforms
    format = models.CharField(max_length=8, default="auto")
    annotations = models.JSONField(default=dict, blank=True)
    also_tag = models.JSONField(default=list, blank=True)  # follow the newest semver tag assembled
    owns_target = models.BooleanField(default=False)
    automatic = models.BooleanField(default=True)
    last_error = models.TextField(blank=True)
    last_applied_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("manifests-rule-detail", args=[self.pk])

    @property
    def target_repository(self) -> str:
        return self.target.rpartition(":")[0]

    @property
    def target_tag_template(self) -> str:
        return self.target.rpartition(":")[2]


class RuleSource(models.Model):
    """One source of a rule: a repository, its tag template and an optional platform override."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="sources")
    position = models.PositiveSmallIntegerField(default=0)
    registry = models.ForeignKey(Registry, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="rule_sources")  # None: the rule's registry
    repository = models.CharField(max_length=255)
    tag = models.CharField(max_length=128, default="{tag}")
    platform = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["rule", "position"]

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}"


class RuleTagState(models.Model):
    """What a rule last did to one of its tags: the digest it pushed, and how it went."""

    STATUS_PUSHED = "pushed"
    STATUS_UNCHANGED = "unchanged"
    STATUS_INCOMPLETE = "incomplete"
    STATUS_CONFLICT = "conflict"
    STATUS_FAILED = "failed"

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="states")
    tag = models.CharField(max_length=128)  # the {tag} value, or an also_tag name
    digest = models.CharField(max_length=135, blank=True)  # what the rule last pushed (or found in place)
    status = models.CharField(max_length=16, blank=True)
    error = models.TextField(blank=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rule", "tag"]
        constraints = [models.UniqueConstraint(fields=["rule", "tag"], name="ruletagstate_unique")]

    def __str__(self) -> str:
        return f"{self.rule}: {self.tag} {self.status}"


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


class ListCheck(models.Model):
    """When the children of one list were last known present in one repository.

    Whole-registry scans HEAD the children of the lists whose check is older
    than CHILDREN_CHECK_SECONDS, so a child deleted under a list is noticed
    without anyone pressing Check children.
    """

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="list_checks")
    digest = models.CharField(max_length=135)
    checked_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "digest"], name="listcheck_unique")]

    def __str__(self) -> str:
        return f"{self.repository} {self.digest} at {self.checked_at}"


class CoverageSnapshot(models.Model):
    """After each scan: how many tags cover one required platform, per repository (and, with an empty
    repository, for the whole registry), and which do not."""

    registry = models.ForeignKey(Registry, on_delete=models.CASCADE, related_name="coverage_snapshots")
    repository = models.CharField(max_length=255, blank=True)  # "" for the registry as a whole
    platform = models.CharField(max_length=128)
    covered = models.PositiveIntegerField()
    total = models.PositiveIntegerField()
    lacking = models.JSONField(default=list, blank=True)  # tag names (repository:tag for the registry), capped
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL)
    taken_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["taken_at", "pk"]
        indexes = [models.Index(fields=["registry", "repository", "taken_at"], name="coverage_history_idx")]

    def __str__(self) -> str:
        return f"{self.registry_id} {self.repository or '*'} {self.platform} {self.covered}/{self.total}"


class Referrer(models.Model):
    """A signature, SBOM or attestation attached to a manifest (its subject) in a repository."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="referrers")
    subject = models.CharField(max_length=135, db_index=True)
    digest = models.CharField(max_length=135)
    kind = models.CharField(max_length=32)  # registry.referrers: cosign-signature, sbom-spdx, ...
    media_type = models.CharField(max_length=255, blank=True)
    artifact_type = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=16)  # referrers-api, tag-schema, cosign-tag
    tag = models.CharField(max_length=128, blank=True)  # the tag that holds it, for the tag layouts
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["subject", "kind", "digest"]
        constraints = [models.UniqueConstraint(fields=["repository", "subject", "digest"], name="referrer_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.digest} -> {self.subject}"

    @property
    def is_signature(self) -> bool:
        return self.kind in ("cosign-signature", "notation-signature")
