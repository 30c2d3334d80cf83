"""The builder's form: the target, format and annotations, and one column per entry field.

Lenient on purpose: whatever is posted becomes the builder's state, and the
preview says what is wrong next to each field (services.builder.preview_build).
"""

from __future__ import annotations

from typing import Any

from django import forms

from registry.assemble import FORMAT_AUTO

from ..services.builder import ENTRY_FIELDS

FORMAT_CHOICES = [
    ("auto", "Auto: a Docker list if every child is Docker, else OCI (as buildx)"),
    ("oci", "OCI image index"),
    ("docker", "Docker manifest list (Docker children only)"),
]


class _Text(forms.Field):
    """Text as posted, stripped or not; `missing` when the form does not send the field at all."""

    def __init__(self, *, missing: str = "", strip: bool = False) -> None:
        super().__init__(required=False)
        self.missing, self.strip = missing, strip

    def clean(self, value: Any) -> str:
        if value is None:
            return self.missing
        return str(value).strip() if self.strip else str(value)


class _Column(forms.Field):
    """Every value posted under one name (`e_ref` once per entry), in order."""

    widget = forms.MultipleHiddenInput

    def __init__(self) -> None:
        super().__init__(required=False)

    def clean(self, value: Any) -> list[str]:
        return [str(v) for v in value or []]


class BuilderForm(forms.Form):
    """Its cleaned data is what services.builder.state_from_post reads: plain strings and lists."""

    target = _Text(strip=True)
    format = _Text(missing=FORMAT_AUTO)
    annotations = _Text()
    expect_digest = _Text()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ENTRY_FIELDS:
            self.fields[f"e_{name}"] = _Column()


def builder_data(data: Any) -> dict:
    """The cleaned data of the builder's form bound to `data` (a request's POST or GET): never invalid."""
    form = BuilderForm(data)
    form.is_valid()
    return form.cleaned_data
