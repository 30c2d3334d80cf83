"""Assembly rules: a target kept assembled from its sources, and the state of each tag."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from .jobs import Job
from .registries import Registry


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
