"""The sources' image labels in a rule's index annotations: `{label:NAME}` and `{sourceN.label:NAME}`.

`{label:org.opencontainers.image.revision}` is the label of the first source
(in the rule's order) whose image config carries it; `{source2.label:NAME}`
that of the second source only. A source that is a list gives the labels of
the platform manifest it contributes (its platform override's, else its
first). Read from the image configs the scan kept (`Manifest.config`), in one
query for a whole dry run. A label no source carries makes that tag invalid,
with the label named: an annotation is never pushed half-rendered.
"""

from __future__ import annotations

import re

from registry.mediatypes import Manifest
from registry.platform import Platform

from ..models import Manifest as ManifestRow

# A label key as image builders write them (reverse-DNS, with dashes and slashes seen in the wild).
LABEL_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-/]*"
LABEL_FIELD = re.compile(rf"^(?:source(?P<number>[1-9][0-9]*)\.)?label:(?P<name>{LABEL_NAME})$")


def label_field_problem(name: str, *, source_count: int) -> str | None:
    """A message when `name` (what stands between the braces) is a label field written wrongly; None when it
    is a good one. Names that are not label fields at all are not this function's business (it answers None)."""
    if "label:" not in name:
        return None
    match = LABEL_FIELD.match(name)
    if match is None:
        return (f"{{{name}}}: write a label as {{label:NAME}} or {{sourceN.label:NAME}}, "
                "e.g. {label:org.opencontainers.image.revision}")
    if match["number"] and int(match["number"]) > source_count:
        return f"{{{name}}}: the rule has {source_count} source(s)"
    return None


def uses_labels(annotations: dict[str, str]) -> bool:
    return any("label:" in value for value in annotations.values())


def config_labels(config: dict | None) -> dict[str, str]:
    """The Labels of an image config (Docker and OCI keep them under config.Labels)."""
    labels = ((config or {}).get("config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def configs_load(*, digests: set[str]) -> dict[str, dict]:
    """The kept image configs of these manifests, by manifest digest: one query."""
    return dict(ManifestRow.objects.filter(digest__in=sorted(digests), config__isnull=False)
                .values_list("digest", "config"))


def contributed_digest(manifest: Manifest, platform: str) -> str:
    """The manifest whose labels a source gives: itself, or for a list the platform child it contributes."""
    if not manifest.is_index:
        return manifest.digest
    wanted = Platform.parse(platform).normalized if platform else ""
    for child in manifest.children:
        if child.is_attestation:
            continue
        if not wanted or (child.platform is not None and child.platform.normalized == wanted):
            return child.digest
    return ""


def label_values(labels: list[dict[str, str]]) -> dict[str, str]:
    """The annotation fields the sources' labels give: `label:NAME` (first source carrying it) and
    `sourceN.label:NAME`."""
    values: dict[str, str] = {}
    for number, source_labels in enumerate(labels, start=1):
        for name, value in source_labels.items():
            values[f"source{number}.label:{name}"] = value
            values.setdefault(f"label:{name}", value)
    return values
