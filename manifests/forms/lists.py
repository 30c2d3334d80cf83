"""The API's writes (lists, promotions, channels): the JSON body's fields, each checked with the API's own messages."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from registry.assemble import FORMAT_AUTO, SourceSpec
from registry.errors import InvalidReference

from ..models import Registry
from .json import ExpectDigestField, JsonField, JsonForm, ObjectField, StringsField, TextField

# A list of 256 sources is far more than any registry's platforms.
MAX_SOURCES = 256


class RegistryNameField(JsonField):
    def check(self, value: Any) -> Registry:
        registry = Registry.objects.filter(name=str(value or "")).first()
        if registry is None:
            raise ValidationError(f"no registry named {value!r}", code="unknown")
        return registry


class SourcesField(JsonField):
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


class FormatField(JsonField):
    def check(self, value: Any) -> str:
        return str(value or FORMAT_AUTO)  # list_plan says what is wrong with an unknown one


class AnnotationsField(JsonField):
    def check(self, value: Any) -> dict[str, str]:
        value = value or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValidationError("annotations must be an object of strings", code="invalid")
        return value


class TargetField(JsonField):
    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValidationError("give the target as repository:tag", code="required")
        return value


class ListCreateForm(JsonForm):
    """The body of POST /api/v1/lists. Bound to the decoded JSON object, not to a QueryDict; see api_errors."""

    registry = RegistryNameField()
    sources = SourcesField()
    format = FormatField()
    annotations = AnnotationsField()
    target = TargetField()
    expect_digest = ExpectDigestField()


class PromotionCreateForm(JsonForm):
    """The body of POST /api/v1/promotions: {"from": {registry, reference}, "to": {registry, target}, ...}."""

    platforms = StringsField(message="a list of platforms such as linux/amd64")
    expect_digest = ExpectDigestField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword: these two are named here, first as before.
        self.fields = {"from": ObjectField(message='give {"registry", "reference"}'),
                       "to": ObjectField(message='give {"registry", "target"}'), **self.fields}


class ChannelCreateForm(JsonForm):
    """The body of POST /api/v1/channels: strings, and a list of event kinds (services.notify checks the rest)."""

    TEXT_FIELDS = ("name", "kind", "url", "to", "secret", "registry", "repository")

    events = JsonField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields = {**{name: TextField() for name in self.TEXT_FIELDS}, **self.fields}

    def clean_events(self) -> list:
        events = self.cleaned_data["events"] or []
        if not isinstance(events, list):
            raise ValidationError("must be a list of event kinds", code="invalid")
        return events
