"""The app's models, one module per concern; Django and the migrations know them as manifests.models.X."""

from __future__ import annotations

from .auth import ApiToken, OidcIdentity
from .inventory import CoverageSnapshot, ListCheck, Manifest, ManifestChild, Referrer, Repository, Tag, TagPlatform
from .jobs import Job, PushRecord, ScanPart
from .registries import Registry, WebhookEvent
from .rules import Rule, RuleSource, RuleTagState
from .watch import Channel, Delivery, Event

__all__ = [
    "ApiToken",
    "Channel",
    "CoverageSnapshot",
    "Delivery",
    "Event",
    "Job",
    "ListCheck",
    "Manifest",
    "ManifestChild",
    "OidcIdentity",
    "PushRecord",
    "Referrer",
    "Registry",
    "Repository",
    "Rule",
    "RuleSource",
    "RuleTagState",
    "ScanPart",
    "Tag",
    "TagPlatform",
    "WebhookEvent",
]
