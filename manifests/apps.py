from __future__ import annotations

from django.apps import AppConfig


class ManifestsConfig(AppConfig):
    name = "manifests"
    verbose_name = "Manifests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .services import events
        from .services.rules import rules_on_tags_moved
        from .signals import tags_moved

        tags_moved.connect(rules_on_tags_moved, dispatch_uid="manifests.rules")
        tags_moved.connect(events.on_tags_moved, dispatch_uid="manifests.events.on_tags_moved")
