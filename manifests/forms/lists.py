"""POST /api/v1/lists: the JSON body's fields, each checked with the API's own messages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from registry.errors import InvalidReference

from ..models import Registry
from ..services.assemble import FORMAT_AUTO, SourceSpec

# A list of 256 sources is far more than any registry's platforms.
MAX_SOURCES = 256


class _JsonField(forms.Field):
    """A field of a JSON body: the value as JSON gave it (None when absent), never "required" by Django."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)

    def clean(self, value: Any) -> Any:
        return self.check(value)

    def check(self, value: Any) -> Any:
        return value


class RegistryNameField(_JsonField):
    def check(self, value: Any) -> Registry:
        registry = Registry.objects.filter(name=str(value or "")).first()
        if registry is None:
            raise ValidationError(f"no registry named {value!r}", code="unknown")
        return registry


class SourcesField(_JsonField):
    """A non-empty array of source objects; a bad source's message carries its index (from 0)."""

    def check(self, value: Any) -> list[SourceSpec]:
        if not isinstance(value, list) or not value:
            raise ValidationError("give a non-empty list of sources", code="empty")
        if len(value) > MAX_SOURCES:
            raise ValidationError(f"at most {MAX_SOURCES} sources in one list ({len(value)} given)", code="too_many")
        specs: list[SourceSpec] = []
        problems: list[ValidationError] = []
        for index, item in enumerate(value):
            try:
                if not isinstance(item, dict):
                    raise InvalidReference("each source must be an object with a reference")
                specs.append(SourceSpec.from_json(item))
            except InvalidReference as exc:
                # `%` escaped: the message quotes the request, and params make Django format it.
                problems.append(ValidationError(str(exc).replace("%", "%%"), code="source",
                                                params={"index": index}))
        if problems:
            raise ValidationError(problems)
        return specs


class FormatField(_JsonField):
    def check(self, value: Any) -> str:
        return str(value or FORMAT_AUTO)  # list_plan says what is wrong with an unknown one


class AnnotationsField(_JsonField):
    def check(self, value: Any) -> dict[str, str]:
        value = value or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValidationError("annotations must be an object of strings", code="invalid")
        return value


class TargetField(_JsonField):
    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValidationError("give the target as repository:tag", code="required")
        return value


class ExpectDigestField(_JsonField):
    def check(self, value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise ValidationError('a digest, "" for a tag that must not exist yet, or null', code="invalid")
        return value


class ListCreateForm(forms.Form):
    """The body of POST /api/v1/lists. Bound to the decoded JSON object, not to a QueryDict."""

    registry = RegistryNameField()
    sources = SourcesField()
    format = FormatField()
    annotations = AnnotationsField()
    target = TargetField()
    expect_digest = ExpectDigestField()

    def api_errors(self) -> dict[str, list[str]]:
        """The errors under the API's names: `sources.N` for the N-th source (from 0), else the field's."""
        out: dict[str, list[str]] = {}
        for name, errors in self.errors.as_data().items():
            for error in errors:
                index = (error.params or {}).get("index")
                out.setdefault(name if index is None else f"{name}.{index}", []).extend(error.messages)
        return out
