"""What several page modules share: the registry or repository of a URL, and the push check."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from ..models import Registry, Repository


def registry_or_404(name: str) -> Registry:
    return get_object_or_404(Registry, name=name)


def repository_or_404(registry: Registry, name: str) -> Repository:
    return get_object_or_404(Repository, registry=registry, name=name)


def require_push(request: HttpRequest, registry: Registry | None) -> None:
    if registry is None or not registry.can_push(request.user):
        raise PermissionDenied("You may not push to this registry.")
