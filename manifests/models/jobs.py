"""Work for the worker: jobs, the parts of a split scan, and the history of every tag move."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .registries import Registry


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
    # one means a worker is alive on it (jobs.job_start).
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

    # What the job pages branch on, instead of comparing kind and status strings.
    is_scan = property(lambda self: self.kind == self.KIND_SCAN)
    is_push = property(lambda self: self.kind == self.KIND_PUSH)
    is_rollback = property(lambda self: self.kind == self.KIND_ROLLBACK)
    is_check = property(lambda self: self.kind == self.KIND_CHECK)
    is_rule_apply = property(lambda self: self.kind == self.KIND_RULE_APPLY)
    is_promote = property(lambda self: self.kind == self.KIND_PROMOTE)
    is_queued = property(lambda self: self.status == self.STATUS_QUEUED)
    is_running = property(lambda self: self.status == self.STATUS_RUNNING)
    is_succeeded = property(lambda self: self.status == self.STATUS_SUCCEEDED)
    is_failed = property(lambda self: self.status == self.STATUS_FAILED)

    @property
    def moves_tag(self) -> bool:
        """A push or a rollback: a job that points a tag at a list."""
        return self.kind in (self.KIND_PUSH, self.KIND_ROLLBACK)

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
