"""Forms bound to an API write's decoded JSON object: each field checks the value's JSON type itself."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

EXPECT_DIGEST_HELP = 'a digest, "" for a tag that must not exist yet, or null'


class JsonField(forms.Field):
    """A field of a JSON body: the value as JSON gave it (None when absent), never "required" by Django."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)

    def clean(self, value: Any) -> Any:
        return self.check(value)

    def check(self, value: Any) -> Any:
        return value


class ObjectField(JsonField):
    """A JSON object, else `message`; an absent or wrong one cleans to {} after the error."""

    def __init__(self, *, message: str) -> None:
        super().__init__()
        self.message = message

    def check(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise ValidationError(self.message, code="invalid")
        return value


class StringsField(JsonField):
    """null or an array of strings, else `message`."""

    def __init__(self, *, message: str) -> None:
        super().__init__()
        self.message = message

    def check(self, value: Any) -> list[str] | None:
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise ValidationError(self.message, code="invalid")
        return value


class TextField(JsonField):
    """A string or null (cleaned to "")."""

    def check(self, value: Any) -> str:
        if value is not None and not isinstance(value, str):
            raise ValidationError("must be a string", code="invalid")
        return value or ""


class ExpectDigestField(JsonField):
    def check(self, value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise ValidationError(EXPECT_DIGEST_HELP, code="invalid")
        return value


class JsonForm(forms.Form):
    def api_errors(self) -> dict[str, list[str]]:
        """The errors under the API's names: `<field>.N` for an error about the N-th item (from 0)."""
        out: dict[str, list[str]] = {}
        for name, errors in self.errors.as_data().items():
            for error in errors:
                index = (error.params or {}).get("index")
                out.setdefault(name if index is None else f"{name}.{index}", []).extend(error.messages)
        return out
