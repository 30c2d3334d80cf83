"""Assemble a manifest list (or OCI index) from images elsewhere in a registry.

What `docker buildx imagetools create -t T src...` does, with the checks of
`docker manifest annotate` and more: resolve each source, flatten index
sources, build the list, copy every child into the target repository by
digest (mount, else stream), put the list by tag, read it back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from . import errors
from .client import RegistryClient
from .copy import CopyReport, copy_manifest
from .jsontext import json_indent
from .mediatypes import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    KIND_ARTIFACT,
    KIND_SCHEMA1,
    OCI_INDEX,
    Descriptor,
    Manifest,
    sha256_digest,
)
from .platform import Platform
from .reference import Reference, validate_repository, validate_tag

FORMAT_AUTO = "auto"
FORMAT_OCI = "oci"
FORMAT_DOCKER = "docker"
FORMATS = (FORMAT_AUTO, FORMAT_OCI, FORMAT_DOCKER)

Progress = Callable[[dict], None]


class AssemblyInvalid(Exception):
    """The list cannot be built: `errors` maps a field to its messages.

    Fields are "target", "format", "annotations", "sources", or
    "sources.<i>" for the i-th source.
    """

    def __init__(self, errors_by_field: dict[str, list[str]]) -> None:
        self.errors = errors_by_field
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors_by_field.items()))


class TagMoved(Exception):
    """The target tag no longer holds the digest the preview was made against."""

    def __init__(self, expected: str, actual: str) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(
            f"the tag moved since the preview: expected {expected or 'no tag'}, it now holds {actual or 'nothing'}"
        )


@dataclass(frozen=True)
class SourceSpec:
    """One source as a user gives it (API `sources[]`, builder entries)."""

    reference: str
    platform: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    # For an index source: take exactly this child (then `platform` annotates
    # it instead of selecting), with the attestations whose subject it is.
    select: str = ""
    # The name of another registered registry the source lives in ("" for the target's own).
    registry: str = ""

    @classmethod
    def from_json(cls, data: dict) -> SourceSpec:
        features = data.get("os_features") or ()
        if isinstance(features, str):
            features = tuple(f.strip() for f in features.split(",") if f.strip())
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise errors.InvalidReference("annotations must be an object of strings")
        return cls(
            reference=str(data.get("reference") or ""),
            platform=str(data.get("platform") or ""),
            os_version=str(data.get("os_version") or ""),
            os_features=tuple(str(f) for f in features),
            annotations={str(k): str(v) for k, v in annotations.items()},
            select=str(data.get("select") or ""),
            registry=str(data.get("registry") or ""),
        )

    def to_json(self) -> dict:
        data = {"reference": self.reference, "platform": self.platform, "os_version": self.os_version,
                "os_features": list(self.os_features), "annotations": dict(self.annotations)}
        if self.select:
            data["select"] = self.select
        if self.registry:
            data["registry"] = self.registry
        return data


@dataclass(frozen=True)
class Entry:
    """One descriptor of the list to build, with where its manifest lives now."""

    source_repository: str
    descriptor: Descriptor
    manifest: Manifest
    source_index: int  # which SourceSpec it came from


@dataclass
class Plan:
    target: Reference
    media_type: str
    entries: list[Entry]
    raw: bytes
    digest: str
    annotations: dict[str, str]

    @property
    def data(self) -> dict:
        return json.loads(self.raw)


def _config_platform(client: RegistryClient, repository: str, manifest: Manifest) -> Platform:
    """The platform of a single image, from its config blob."""
    if manifest.config is None:
        raise errors.ManifestInvalid(f"{repository}: an image manifest without a config has no platform")
    config = client.get_json_blob(repository, manifest.config.digest)
    try:
        return Platform.from_json(config)
    except ValueError as exc:
        raise errors.ManifestInvalid(f"image config {manifest.config.digest}: {exc}") from None


def _override_platform(base: Platform | None, spec: SourceSpec) -> Platform | None:
    """Apply the user's platform, os.version and os.features, as `docker manifest annotate` does."""
    platform = base
    if spec.platform:
        given = Platform.parse(spec.platform)
        platform = Platform(os=given.os, architecture=given.architecture, variant=given.variant,
                            os_version=base.os_version if base else "",
                            os_features=base.os_features if base else ())
    if platform is None:
        return None
    if spec.os_version:
        platform = replace(platform, os_version=spec.os_version)
    if spec.os_features:
        platform = replace(platform, os_features=tuple(spec.os_features))
    return platform


def source_resolve(*, client: RegistryClient, spec: SourceSpec, index: int) -> list[Entry]:
    """Turn one source into list entries (flattening an index as buildx does)."""
    ref = Reference.parse(spec.reference, allow_host=False)
    manifest = client.get_manifest(ref.repository, ref.reference)
    if manifest.kind == KIND_SCHEMA1:
        raise AssemblyInvalid({f"sources.{index}": [
            f"{spec.reference} is a schema 1 manifest: deprecated, and cannot be put in a list"]})
    if not manifest.is_index:
        base = None
        if manifest.kind != KIND_ARTIFACT:
            base = _config_platform(client, ref.repository, manifest)
        platform = _override_platform(base, spec)
        descriptor = Descriptor(media_type=manifest.media_type, digest=manifest.digest, size=manifest.size,
                                platform=platform, annotations=dict(spec.annotations),
                                artifact_type=manifest.artifact_type)
        return [Entry(ref.repository, descriptor, manifest, index)]
    # An index: keep the selected child, or the chosen platform's manifests
    # (or all), and the attestations whose subject is kept.
    if spec.select:
        kept = [c for c in manifest.children if c.digest == spec.select and not c.is_attestation]
        if not kept:
            raise AssemblyInvalid({f"sources.{index}": [f"{spec.reference} has no child {spec.select}"]})
        override = spec
    else:
        wanted = Platform.parse(spec.platform).normalized if spec.platform else ""
        kept = [
            child for child in manifest.children
            if not child.is_attestation
            and (not wanted or (child.platform is not None and child.platform.normalized == wanted))
            and (not (wanted and spec.os_version) or (child.platform and child.platform.os_version == spec.os_version))
        ]
        if not kept:
            raise AssemblyInvalid({f"sources.{index}": [
                f"{spec.reference} has no manifest for {spec.platform}" if wanted
                else f"{spec.reference} is an index with no platform manifests"]})
        override = replace(spec, platform="")  # the platform selected; it does not rename
    kept_digests = {child.digest for child in kept}
    attestations = [c for c in manifest.children if c.is_attestation and c.attestation_subject in kept_digests]
    entries: list[Entry] = []
    for child in kept + attestations:
        child_manifest = client.get_manifest(ref.repository, child.digest)
        descriptor = child
        if not child.is_attestation and (override.platform or override.os_features or override.os_version
                                         or override.annotations):
            descriptor = replace(child, platform=_override_platform(child.platform, override),
                                 annotations={**child.annotations, **override.annotations})
        entries.append(Entry(ref.repository, descriptor, child_manifest, index))
    return entries


def _validate(entries: list[Entry], *, fmt: str, annotations: dict[str, str]) -> tuple[str, dict[str, list[str]]]:
    problems: dict[str, list[str]] = {}

    def add(key: str, message: str) -> None:
        problems.setdefault(key, []).append(message)

    seen: dict[tuple[str, str], int] = {}
    for entry in entries:
        key = f"sources.{entry.source_index}"
        descriptor = entry.descriptor
        if descriptor.is_attestation:
            continue
        platform = descriptor.platform
        if platform is None or not platform.os or not platform.architecture:
            add(key, f"{descriptor.digest[:19]} has no os or architecture: give a platform")
            continue
        if platform.is_unknown or platform.os == "unknown" or platform.architecture == "unknown":
            add(key, "unknown/unknown is not a platform (it marks attestations)")
            continue
        if problem := platform.grammar_problem():  # a scan would refuse the list we pushed
            add(key, f"the {problem}")
            continue
        identity = platform.key
        if identity in seen and seen[identity] != entry.source_index:
            add(key, f"{platform} is already provided by source {seen[identity] + 1}")
        elif identity in seen:
            add(key, f"{platform} appears twice in this source")
        else:
            seen[identity] = entry.source_index
    all_docker = all(entry.manifest.media_type == DOCKER_MANIFEST for entry in entries)
    has_annotations = bool(annotations) or any(
        entry.descriptor.annotations and not entry.descriptor.is_attestation
        and entry.manifest.media_type != DOCKER_MANIFEST for entry in entries
    ) or any(entry.descriptor.annotations and not entry.descriptor.is_attestation for entry in entries)
    if fmt == FORMAT_DOCKER:
        if not all_docker:
            add("format", "a Docker manifest list can only hold Docker image manifests; "
                          "some entries are OCI manifests or attestations: use an OCI index")
        if has_annotations:
            add("annotations", "annotations exist only on OCI indexes; choose the OCI format or drop them")
        media_type = DOCKER_LIST
    elif fmt == FORMAT_OCI:
        media_type = OCI_INDEX
    elif fmt == FORMAT_AUTO:
        media_type = DOCKER_LIST if all_docker and not has_annotations else OCI_INDEX
    else:
        add("format", f"format must be one of {', '.join(FORMATS)}")
        media_type = OCI_INDEX
    if not [e for e in entries if not e.descriptor.is_attestation]:
        add("sources", "the list has no entries")
    return media_type, problems


def list_render(*, media_type: str, entries: list[Entry], annotations: dict[str, str]) -> bytes:
    data: dict = {"schemaVersion": 2, "mediaType": media_type,
                  "manifests": [entry.descriptor.to_json() for entry in entries]}
    if annotations:
        data["annotations"] = dict(annotations)
    return json_indent(data).encode()


def list_plan(*, client: RegistryClient, target: str, sources: list[SourceSpec], fmt: str = FORMAT_AUTO,
              annotations: dict[str, str] | None = None,
              source_client: Callable[[SourceSpec], RegistryClient] | None = None) -> Plan:
    """Resolve sources and build the exact bytes to push. Raises AssemblyInvalid.

    `source_client` gives the client to read a source from when not `client`
    (a source in another registry).
    """
    problems: dict[str, list[str]] = {}
    try:
        target_ref = Reference.parse(target, allow_host=False)
        validate_repository(target_ref.repository)
        if target_ref.digest or not target_ref.tag:
            raise errors.InvalidReference("the target must be repository:tag")
        validate_tag(target_ref.tag)
    except errors.InvalidReference as exc:
        problems["target"] = [str(exc)]
    if not sources:
        problems["sources"] = ["give at least one source"]
    entries: list[Entry] = []
    for index, spec in enumerate(sources):
        try:
            entries.extend(source_resolve(client=source_client(spec) if source_client else client, spec=spec,
                                          index=index))
        except AssemblyInvalid as exc:
            for key, messages in exc.errors.items():
                problems.setdefault(key, []).extend(messages)
        except (errors.InvalidReference, errors.InvalidPlatform) as exc:
            problems.setdefault(f"sources.{index}", []).append(str(exc))
        except errors.NotFound as exc:
            problems.setdefault(f"sources.{index}", []).append(f"{spec.reference}: {exc.message}")
    # Platform manifests in the order given, attestations after them, as buildx lays an index out.
    entries.sort(key=lambda entry: entry.descriptor.is_attestation)
    annotations = dict(annotations or {})
    media_type, more = _validate(entries, fmt=fmt, annotations=annotations)
    for key, messages in more.items():
        problems.setdefault(key, []).extend(messages)
    if problems:
        raise AssemblyInvalid(problems)
    raw = list_render(media_type=media_type, entries=entries, annotations=annotations)
    return Plan(target=target_ref, media_type=media_type, entries=entries, raw=raw,
                digest=sha256_digest(raw), annotations=annotations)


def tag_current_digest(*, client: RegistryClient, repository: str, tag: str) -> str:
    """What the tag holds now, or "" when it does not exist."""
    try:
        head = client.head_manifest(repository, tag)
    except errors.NotFound:
        return ""
    if head.digest:
        return head.digest
    return client.get_manifest(repository, tag).digest


@dataclass
class PushResult:
    digest: str
    old_digest: str
    media_type: str
    raw: bytes
    copy: CopyReport
    already_done: bool = False
    # What the PUT's answer proved (201 with our digest), and the children no answer proved:
    # what a read-back must still ask (list_confirm).
    confirmed: bool = False
    unproven: list[str] = field(default_factory=list)


def list_push(*, client: RegistryClient, plan: Plan, expect_digest: str | None = None,
              progress: Progress = lambda event: None,
              on_put: Callable[[PushResult], None] | None = None, present: set[str] | None = None,
              verify: bool = True) -> PushResult:
    """Copy every child into the target repository, put the list by tag, verify.

    `expect_digest` is the digest the tag held when the user previewed ("" for
    a tag that did not exist); None skips the check (an explicit overwrite).
    Safe to run again after an interruption: a tag that already holds the
    planned list counts as done (and is not verified again here), and copies
    put again what is there already (a refused mount asks first, before it
    streams). `on_put` is called as soon as the registry accepted the list,
    before the read-back: the tag has moved, whatever happens next.

    At the request floor: one HEAD of the tag, a mount per distinct blob, a
    PUT per child and one for the list, then one HEAD of the tag reading it
    back (list_confirm); no HEAD before a mount or a PUT, whose answers prove
    what they made.
    """
    repository, tag = plan.target.repository, plan.target.tag
    current = tag_current_digest(client=client, repository=repository, tag=tag)
    progress({"event": "check", "current": current})
    if current == plan.digest:
        progress({"event": "done", "digest": plan.digest, "note": "the tag already holds this list"})
        return PushResult(plan.digest, current, plan.media_type, plan.raw, CopyReport(), already_done=True)
    if expect_digest is not None and current != expect_digest:
        raise TagMoved(expect_digest, current)
    report = CopyReport()
    for entry in plan.entries:
        progress({"event": "child", "digest": entry.descriptor.digest,
                  "platform": str(entry.descriptor.platform) if entry.descriptor.platform else "",
                  "attestation": entry.descriptor.is_attestation, "from": entry.source_repository})
        if entry.source_repository == repository:
            continue  # in the target already (read from there to plan): checked after the PUT
        copy_manifest(client, source=entry.source_repository, target=repository, manifest=entry.manifest,
                      report=report, progress=progress, check_first=False, present=present)
    progress({"event": "put", "digest": plan.digest})
    answer = client.put_manifest_answer(repository, tag, plan.raw, plan.media_type)
    unproven = [entry.descriptor.digest for entry in plan.entries if entry.descriptor.digest not in report.confirmed]
    result = PushResult(answer.digest, current, plan.media_type, plan.raw, report, confirmed=answer.confirmed,
                        unproven=unproven)
    if on_put is not None:
        on_put(result)
    if verify:  # a bulk push (rules) confirms with read_tag=False: the PUT's answer proves the tag
        list_confirm(client=client, repository=repository, tag=tag, digest=answer.digest,
                     put_confirmed=answer.confirmed, children=unproven)
    progress({"event": "done", "digest": answer.digest, **report.as_dict()})
    return result


def list_confirm(*, client: RegistryClient, repository: str, tag: str, digest: str, put_confirmed: bool,
                 children: list[str], read_tag: bool = True) -> None:
    """The fewest reads that prove a push: the tag names `digest` and every child is present.

    One HEAD of the tag (a registry whose answer to the PUT gave no digest is
    read by GET when its HEAD gives none either), and one HEAD per child whose
    own PUT answer did not prove it (`children`: those the push did not copy).
    `read_tag=False` (a bulk push at the request floor) takes a confirmed PUT
    answer (201 naming our digest) as the proof for the tag, and reads it only
    when the answer proved nothing.
    """
    if read_tag or not put_confirmed:
        head = client.head_manifest(repository, tag)
        actual = head.digest
        if not actual and not put_confirmed:
            actual = client.get_manifest(repository, tag).digest
        if actual and actual != digest:
            raise errors.DigestMismatch(f"after the push {repository}:{tag} holds {actual}, not {digest}")
    for child in dict.fromkeys(children):
        if not client.manifest_exists(repository, child):
            raise errors.ManifestUnknown(f"child {child} is missing from {repository} after the push")


def list_verify(*, client: RegistryClient, repository: str, tag: str, digest: str) -> None:
    """Read the list back by tag and check that every child resolves in the repository."""
    head = client.head_manifest(repository, tag)
    if head.digest and head.digest != digest:
        raise errors.DigestMismatch(f"after the push {repository}:{tag} holds {head.digest}, not {digest}")
    manifest = client.get_manifest(repository, digest)
    for child in manifest.children:
        if not client.manifest_exists(repository, child.digest):
            raise errors.ManifestUnknown(f"child {child.digest} is missing from {repository} after the push")
