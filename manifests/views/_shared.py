"""What several page modules share: the registry or repository of a URL, the push check, a delete."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect

from ..models import Registry, Repository


def registry_or_404(name: str) -> Registry:
    return get_object_or_404(Registry, name=name)


def repository_or_404(registry: Registry, name: str) -> Repository:
    return get_object_or_404(Repository, registry=registry, name=name)


def require_push(request: HttpRequest, registry: Registry | None) -> None:
    if registry is None or not registry.can_push(request.user):
        raise PermissionDenied("You may not push to this registry.")


def object_delete(request: HttpRequest, obj: Model, *, message: str, to: str) -> HttpResponse:
    """Delete `obj`, say `message`, and go back to the page named `to`."""
    obj.delete()
    messages.success(request, message)
    return redirect(to)
