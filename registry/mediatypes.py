"""Media types and manifest parsing (OCI image-spec, Docker image manifest v2.2)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from .errors import InvalidReference, ManifestInvalid, MediaTypeMismatch
from .platform import Platform
from .reference import validate_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
IMAGE_CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
SCHEMA1_TYPES = (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED)
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

# buildx attestation manifests (buildx's attestation storage: an `unknown/unknown` child).
ATTESTATION_REFERENCE_TYPE = "vnd.docker.reference.type"
ATTESTATION_REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"

KIND_INDEX = "index"
KIND_IMAGE = "image"
KIND_ARTIFACT = "artifact"
KIND_SCHEMA1 = "schema1"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str = ""

    @property
    def is_attestation(self) -> bool:
        return self.annotations.get(ATTESTATION_REFERENCE_TYPE) == ATTESTATION_MANIFEST

    @property
    def attestation_subject(self) -> str:
        return self.annotations.get(ATTESTATION_REFERENCE_DIGEST, "") if self.is_attestation else ""

    def to_json(self) -> dict:
        data: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        if self.platform is not None:
            data["platform"] = self.platform.to_json()
        return data


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest, keeping the exact bytes the registry served."""

    raw: bytes
    media_type: str
    digest: str
    data: dict
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str = ""
    subject: Descriptor | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def kind(self) -> str:
        if self.media_type in INDEX_TYPES:
            return KIND_INDEX
        if self.media_type in SCHEMA1_TYPES:
            return KIND_SCHEMA1
        if self.artifact_type or (self.config and self.config.media_type not in IMAGE_CONFIG_TYPES):
            return KIND_ARTIFACT
        return KIND_IMAGE

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config and layers of an image manifest: what must exist beside it."""
        return ((self.config,) if self.config else ()) + self.layers


def _descriptor(item: object, *, where: str) -> Descriptor:
    if not isinstance(item, dict):
        raise ManifestInvalid(f"{where} is not an object")
    media_type = item.get("mediaType", "")
    digest = item.get("digest")
    size = item.get("size")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where} has no valid digest")
    try:
        validate_digest(digest)
    except InvalidReference:
        # The digest is pasted into URL paths: it must follow the grammar exactly.
        raise ManifestInvalid(f"{where} has an invalid digest") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where} has no valid size")
    if not isinstance(media_type, str):
        raise ManifestInvalid(f"{where} has an invalid mediaType")
    annotations = item.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise ManifestInvalid(f"{where} has invalid annotations")
    platform = None
    if "platform" in item:
        try:
            platform = Platform.from_json(item["platform"])
        except ValueError as exc:
            raise ManifestInvalid(f"{where}: {exc}") from None
    artifact_type = item.get("artifactType") or ""
    if not isinstance(artifact_type, str):
        raise ManifestInvalid(f"{where} has an invalid artifactType")
    return Descriptor(media_type=media_type, digest=digest, size=size, platform=platform,
                      annotations=dict(annotations), artifact_type=artifact_type)


def parse_manifest(raw: bytes, *, content_type: str = "", digest: str = "") -> Manifest:
    """Parse manifest bytes; refuse a body whose mediaType contradicts Content-Type."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from None
    except RecursionError:
        raise ManifestInvalid("manifest JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise ManifestInvalid("manifest is not a JSON object")
    declared = data.get("mediaType") or ""
    if not isinstance(declared, str):
        raise ManifestInvalid("mediaType is not a string")
    content_type = (content_type or "").split(";")[0].strip()
    if declared and content_type and content_type not in ("application/json", "text/plain") and declared != content_type:
        raise MediaTypeMismatch(f"manifest says mediaType {declared} but was served as {content_type}")
    media_type = declared or content_type
    if not media_type:
        # OCI allows omitting mediaType; guess from shape.
        media_type = OCI_INDEX if "manifests" in data else OCI_MANIFEST
    if media_type in ("application/json", "text/plain"):
        media_type = OCI_INDEX if "manifests" in data else OCI_MANIFEST
    version = data.get("schemaVersion")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ManifestInvalid("schemaVersion must be a number")
    if version == 1 or media_type in SCHEMA1_TYPES:
        return Manifest(raw=raw, media_type=media_type if media_type in SCHEMA1_TYPES else DOCKER_SCHEMA1,
                        digest=digest or sha256_digest(raw), data=data)
    if version != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    annotations = data.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ManifestInvalid("annotations must be an object")
    artifact_type = data.get("artifactType") or ""
    subject = _descriptor(data["subject"], where="subject") if data.get("subject") else None
    common = dict(raw=raw, media_type=media_type, digest=digest or sha256_digest(raw), data=data,
                  annotations=annotations, artifact_type=artifact_type if isinstance(artifact_type, str) else "",
                  subject=subject)
    if media_type in INDEX_TYPES:
        items = data.get("manifests")
        if not isinstance(items, list):
            raise ManifestInvalid("an index must have a manifests list")
        children = tuple(_descriptor(item, where=f"manifests[{i}]") for i, item in enumerate(items))
        return Manifest(children=children, **common)
    if media_type in IMAGE_TYPES:
        config = _descriptor(data.get("config"), where="config")
        layers_data = data.get("layers")
        if layers_data is None:
            layers_data = []
        if not isinstance(layers_data, list):
            raise ManifestInvalid("layers must be a list")
        layers = tuple(_descriptor(item, where=f"layers[{i}]") for i, item in enumerate(layers_data))
        return Manifest(config=config, layers=layers, **common)
    raise ManifestInvalid(f"unsupported manifest media type {media_type!r}")
