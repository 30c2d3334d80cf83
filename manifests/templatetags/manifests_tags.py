from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def short_digest(digest: str) -> str:
    """sha256:0123456789ab… for display; the full digest stays copyable beside it."""
    if not digest:
        return ""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}" if value else digest[:19]


@register.filter
def platform_os(platform: str) -> str:
    return platform.split("/", 1)[0]


@register.filter
def get_item(mapping: dict, key: str):
    return mapping.get(key) if mapping else None
