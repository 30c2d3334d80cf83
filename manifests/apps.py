from __future__ import annotations

from django.apps import AppConfig


class ManifestsConfig(AppConfig):
    name = "manifests"
    verbose_name = "Manifests"
    default_auto_field = "django.db.models.BigAutoField"
