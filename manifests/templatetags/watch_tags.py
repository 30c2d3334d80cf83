from __future__ import annotations

from django import template

from ..models import Event

register = template.Library()


@register.simple_tag
def tag_events(registry, repository: str, tag: str, limit: int = 20) -> list[Event]:
    """The latest events of one tag, for its page (its history of drift and breakage)."""
    return list(Event.objects.filter(registry=registry, repository=repository, tag=tag)
                .select_related("registry")[:limit])
