"""Platforms typed into a form field, each normalized or the field's error."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from registry.errors import InvalidPlatform
from registry.platform import Platform


def platforms_normalize(values: list[str]) -> list[str]:
    """Each platform normalized (`linux/amd64`), in the order given; the first bad one raises ValidationError."""
    normalized = []
    for value in values:
        try:
            normalized.append(Platform.parse(value).normalized)
        except InvalidPlatform as exc:
            raise ValidationError(str(exc)) from None
    return normalized
