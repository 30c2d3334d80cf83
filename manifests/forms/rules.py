"""The rule form: one validation for the page, the API and the YAML command.

Fields take either what a page posts (text) or what JSON/YAML gives (lists,
objects, booleans), so every way in reports the same message at the same field.
"""

from __future__ import annotations

import yaml
from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction

from registry.assemble import FORMAT_DOCKER, FORMATS
from registry.errors import InvalidPlatform, InvalidReference
from registry.platform import Platform
from registry.reference import validate_repository, validate_tag

from ..models import Registry, Rule, RuleSource
from ..services.rules import PLACEHOLDER, annotations_check, target_validate, template_render
from ..services.rules_select import SelectionInvalid, selection_compile
from .platforms import platforms_normalize

SOURCES_MAX = 16


def _lines(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).replace(",", "\n").splitlines() if part.strip()]


class SourcesField(forms.Field):
    """A list of {repository, tag?, platform?, registry?}, or text: one source a line,
    `repository [os/arch[/variant]] [tag=TEMPLATE] [registry=NAME]`."""

    widget = forms.Textarea(attrs={"rows": 4})

    def to_python(self, value) -> list[dict]:
        if value in (None, "", []):
            return []
        if isinstance(value, str):
            items = []
            for number, line in enumerate(value.splitlines(), start=1):
                words = line.split()
                if not words:
                    continue
                item: dict = {"repository": words[0]}
                for word in words[1:]:
                    key, sep, rest = word.partition("=")
                    if sep and key in ("tag", "platform", "registry"):
                        item[key] = rest
                    elif not sep and "/" in word:
                        item["platform"] = word
                    else:
                        raise ValidationError(f"line {number}: cannot read {word!r}: give repository, "
                                              "then a platform and tag=TEMPLATE if needed")
                items.append(item)
            return items
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise ValidationError("give a list of sources, each an object with a repository")
        return [dict(item) for item in value]

    def validate(self, value: list[dict]) -> None:
        if not value:
            raise ValidationError("give at least one source repository")
        if len(value) > SOURCES_MAX:
            raise ValidationError(f"at most {SOURCES_MAX} sources")
        problems = []
        for number, item in enumerate(value, start=1):
            unknown = set(item) - {"repository", "tag", "platform", "registry"}
            if unknown:
                problems.append(f"source {number}: unknown field(s) {', '.join(sorted(unknown))}")
                continue
            repository = str(item.get("repository") or "")
            try:
                validate_repository(repository)
            except InvalidReference as exc:
                problems.append(f"source {number}: {exc}")
            tag = str(item.get("tag") or PLACEHOLDER)
            if tag.count(PLACEHOLDER) != 1:
                problems.append(f"source {number}: the tag must hold {{tag}} once, e.g. {{tag}} or {{tag}}-arm64")
            else:
                try:
                    validate_tag(template_render(tag, "x"))
                except InvalidReference as exc:
                    problems.append(f"source {number}: {exc}")
            if item.get("platform"):
                try:
                    Platform.parse(str(item["platform"]))
                except InvalidPlatform as exc:
                    problems.append(f"source {number}: {exc}")
        if problems:
            raise ValidationError(problems)


class ListField(forms.Field):
    """A list of strings, or text separated by commas or lines."""

    def to_python(self, value) -> list[str]:
        return _lines(value)


class AnnotationsField(forms.Field):
    """An object of strings, or `key=value` lines."""

    widget = forms.Textarea(attrs={"rows": 3})

    def to_python(self, value) -> dict[str, str]:
        if value in (None, "", {}):
            return {}
        if isinstance(value, dict):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise ValidationError("annotations must be an object of strings")
            return dict(value)
        if not isinstance(value, str):
            raise ValidationError("annotations must be an object of strings, or key=value lines")
        values: dict[str, str] = {}
        for number, line in enumerate(value.splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, rest = line.partition("=")
            if not sep or not key.strip():
                raise ValidationError(f"line {number}: expected key=value")
            values[key.strip()] = rest.strip()
        return values


class StrictBooleanField(forms.Field):
    """A checkbox on the page (absent = false), true/false in JSON."""

    widget = forms.CheckboxInput

    def __init__(self, *, default: bool = False, **kwargs) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.default = default

    def to_python(self, value) -> bool:
        if isinstance(value, bool):
            return value
        if value in (None, ""):
            return False
        if isinstance(value, str) and value.lower() in ("on", "true", "1", "yes"):
            return True
        if isinstance(value, str) and value.lower() in ("off", "false", "0", "no"):
            return False
        raise ValidationError("true or false")


class RuleForm(forms.Form):
    name = forms.SlugField(max_length=64, help_text="Letters, digits, - and _.")
    registry = forms.ModelChoiceField(queryset=Registry.objects.all(), to_field_name="name",
                                      help_text="Where the target lists are pushed (and, unless said, the sources are).")
    target = forms.CharField(max_length=300, help_text="repository:{tag}, e.g. username/test:{tag}")
    sources = SourcesField(help_text="One a line: repository [os/arch[/variant]] [tag={tag}-suffix]")
    tags_mode = forms.ChoiceField(choices=Rule.TAGS_CHOICES, initial=Rule.TAGS_ALL, label="Which tags")
    tags_pattern = forms.CharField(max_length=200, required=False, label="Pattern",
                                   help_text="v* (glob), ^v[0-9.]+$ (regular expression) or >=1.2 <2 (semver)")
    require = ListField(required=False, label="Required platforms",
                        help_text="Empty: every source must be present. Else these platforms, the rest optional.")
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS], initial="auto")
    annotations = AnnotationsField(required=False, help_text="key=value lines; {tag}, {version}, "
                                   "{source1.tag}, {source1.digest} and the sources' labels, "
                                   "{label:org.opencontainers.image.revision} or {source2.label:NAME}, may be used")
    also_tag = ListField(required=False, label="Also tag",
                         help_text="e.g. latest: follows the newest semver tag the rule assembled")
    owns_target = StrictBooleanField(label="The rule owns its targets (overwrite a target someone else changed)")
    automatic = StrictBooleanField(label="Re-assemble automatically when a source tag moves")

    def __init__(self, *args, instance: Rule | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.instance = instance

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        others = Rule.objects.filter(name=name)
        if self.instance is not None and self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise ValidationError("A rule with this name exists.")
        return name

    def clean_target(self) -> str:
        target = self.cleaned_data["target"].strip()
        if (problem := target_validate(target)) is not None:
            raise ValidationError(problem)
        return target

    def clean_require(self) -> list[str]:
        values = self.cleaned_data["require"]
        if values == ["all"]:
            return []
        normalized = platforms_normalize(values)
        return sorted(set(normalized), key=normalized.index)

    def clean_also_tag(self) -> list[str]:
        values = self.cleaned_data["also_tag"]
        for value in values:
            try:
                validate_tag(value)
            except InvalidReference as exc:
                raise ValidationError(f"{value!r}: {exc}") from None
        return values

    def clean(self) -> dict:
        data = super().clean()
        mode, pattern = data.get("tags_mode"), data.get("tags_pattern", "")
        if mode:
            try:
                selection_compile(mode=mode, pattern=pattern)
            except SelectionInvalid as exc:
                self.add_error("tags_pattern", str(exc))
        registry = data.get("registry")
        sources = data.get("sources") or []
        target = data.get("target", "")
        known = {r.name: r for r in Registry.objects.all()} if any(i.get("registry") for i in sources) else {}
        seen: dict[str, str] = {}
        for number, item in enumerate(sources, start=1):
            name = str(item.get("registry") or (registry.name if registry else ""))
            if item.get("registry") and name not in known:
                self.add_error("sources", f"source {number}: no registry named {name!r}")
            repository = str(item.get("repository") or "")
            if seen.setdefault(repository, name) != name:
                self.add_error("sources", f"source {number}: {repository} is already a source from "
                                          f"{seen[repository]}: a repository name may stand for one registry")
            if target and item.get("repository") == target.rpartition(":")[0]:
                self.add_error("sources", f"source {number}: a rule cannot take its own target repository "
                                          "as a source")
        annotations = data.get("annotations") or {}
        for problem in annotations_check(annotations, source_count=len(sources)):
            self.add_error("annotations", problem)
        if annotations and data.get("format") == FORMAT_DOCKER:
            self.add_error("annotations", "annotations exist only on OCI indexes: choose oci or auto")
        return data

    @transaction.atomic
    def save(self, *, user=None) -> Rule:
        data = self.cleaned_data
        rule = self.instance or Rule(created_by=user if user and user.is_authenticated else None)
        for name in ("name", "registry", "target", "tags_mode", "tags_pattern", "require", "format",
                     "annotations", "also_tag", "owns_target", "automatic"):
            setattr(rule, name, data[name])
        if rule.tags_mode == Rule.TAGS_ALL:
            rule.tags_pattern = ""
        rule.save()
        rule.sources.all().delete()
        registries = {r.name: r for r in Registry.objects.filter(
            name__in=[i["registry"] for i in data["sources"] if i.get("registry")])}
        RuleSource.objects.bulk_create([
            RuleSource(rule=rule, position=i, repository=item["repository"], tag=item.get("tag") or PLACEHOLDER,
                       platform=Platform.parse(item["platform"]).normalized if item.get("platform") else "",
                       registry=registries.get(item.get("registry") or "")
                       if item.get("registry") not in (None, "", rule.registry.name) else None)
            for i, item in enumerate(data["sources"])])
        return rule


# -- the API's and the YAML's schema --------------------------------------------

API_FIELDS = ("name", "registry", "target", "sources", "tags", "require", "format", "annotations", "also_tag",
              "owns_target", "automatic")


def rule_form_data(body: dict, *, instance: Rule | None = None) -> tuple[dict, dict[str, list[str]]]:
    """The API/YAML object as form data (PATCH: over the rule's own values); problems the form cannot see."""
    problems: dict[str, list[str]] = {}
    unknown = set(body) - set(API_FIELDS) - {"id", "url"}
    if unknown:
        problems["non_field_errors"] = [f"unknown field(s): {', '.join(sorted(unknown))}"]
    defaults = {"format": "auto", "automatic": True, "owns_target": False, "tags": "*", "require": "all"}
    merged = {**(rule_to_dict(instance) if instance is not None else defaults), **body}
    data = {key: merged.get(key) for key in API_FIELDS if key != "tags"}
    tags = merged.get("tags", "*")
    if tags in (None, "*", "all", ""):
        data["tags_mode"], data["tags_pattern"] = Rule.TAGS_ALL, ""
    elif isinstance(tags, str):
        data["tags_mode"], data["tags_pattern"] = Rule.TAGS_GLOB, tags
    elif isinstance(tags, dict) and len(tags) == 1 and next(iter(tags)) in ("glob", "regex", "semver") \
            and isinstance(next(iter(tags.values())), str):
        (mode, pattern), = tags.items()
        data["tags_mode"], data["tags_pattern"] = mode, pattern
    else:
        problems["tags"] = ['give "*", a glob such as "v*", {"regex": "..."} or {"semver": ">=1.2 <2"}']
    require = merged.get("require", "all")
    data["require"] = [] if require in (None, "all") else require
    if data.get("registry") is not None and not isinstance(data["registry"], str):
        problems["registry"] = ["give the registry's name"]
    return data, problems


def form_errors(form: RuleForm) -> dict[str, list[str]]:
    """The form's errors under the API's field names."""
    out: dict[str, list[str]] = {}
    for name, messages in form.errors.items():
        key = "tags" if name in ("tags_mode", "tags_pattern") else name
        out.setdefault(key, []).extend(str(m) for m in messages)
    return out


def rule_to_dict(rule: Rule) -> dict:
    """A rule in the API's schema (what `rules_apply` reads back)."""
    sources = []
    for source in rule.sources.all():
        item: dict = {"repository": source.repository}
        if source.tag != PLACEHOLDER:
            item["tag"] = source.tag
        if source.platform:
            item["platform"] = source.platform
        if source.registry_id:
            item["registry"] = source.registry.name
        sources.append(item)
    if rule.tags_mode == Rule.TAGS_ALL:
        tags: str | dict = "*"
    elif rule.tags_mode == Rule.TAGS_GLOB:
        tags = rule.tags_pattern
    else:
        tags = {rule.tags_mode: rule.tags_pattern}
    return {"name": rule.name, "registry": rule.registry.name, "target": rule.target, "sources": sources,
            "tags": tags, "require": list(rule.require) or "all", "format": rule.format,
            "annotations": dict(rule.annotations), "also_tag": list(rule.also_tag),
            "owns_target": rule.owns_target, "automatic": rule.automatic}


def rule_yaml(rule: Rule) -> str:
    """A rule as YAML, in the API's schema: what `manage.py rules_apply` reads."""
    return yaml.safe_dump({"rules": [rule_to_dict(rule)]}, sort_keys=False, allow_unicode=True)
