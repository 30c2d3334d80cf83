"""Build small but real images (gzip'd tar layers, configs with diff_ids) and push them.

Used to seed the demo registry and by the tests, which push their own images
through the registry API, as a build tool would.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass

from .client import RegistryClient
from .mediatypes import (
    ATTESTATION_MANIFEST,
    ATTESTATION_REFERENCE_DIGEST,
    ATTESTATION_REFERENCE_TYPE,
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    sha256_digest,
)
from .platform import Platform

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
INTOTO = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class Pushed:
    repository: str
    tag: str
    digest: str
    media_type: str
    size: int
    platform: Platform | None = None

    def descriptor(self, **extra) -> Descriptor:
        return Descriptor(media_type=self.media_type, digest=self.digest, size=self.size,
                          platform=extra.pop("platform", self.platform), **extra)


def layer(content: str, *, path: str = "etc/demo-release") -> tuple[bytes, str]:
    """A gzip'd tar with one file; returns (compressed bytes, diff_id). Reproducible: no times."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = content.encode()
        info = tarfile.TarInfo(path)
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = buffer.getvalue()
    compressed = gzip.compress(tar_bytes, mtime=0)
    return compressed, "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def config_build(platform: Platform, *, diff_id: str, created: str, config: dict,
                 created_by: str = "manifest-dashboard demo") -> bytes:
    """An image config's bytes (sorted keys) for one layer; `config` is its `config` object (Cmd, Env, Labels)."""
    data: dict = {
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": created_by}],
    }
    if platform.variant:
        data["variant"] = platform.variant
    if platform.os_version:
        data["os.version"] = platform.os_version
    if platform.os_features:
        data["os.features"] = list(platform.os_features)
    return json.dumps(data, sort_keys=True).encode()


def image_manifest_build(*, config_raw: bytes, layer_digest: str, layer_size: int, oci: bool) -> tuple[str, bytes]:
    """A single-platform image manifest over one layer: (media type, bytes)."""
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "digest": sha256_digest(config_raw),
                   "size": len(config_raw)},
        "layers": [{"mediaType": OCI_LAYER if oci else DOCKER_LAYER, "digest": layer_digest,
                    "size": layer_size}],
    }
    return media_type, json.dumps(manifest, indent=2).encode()


def attestation_build(*, repository: str, subject_digest: str) -> tuple[bytes, bytes, bytes]:
    """An in-toto attestation manifest as buildx makes it: (statement layer, empty config, manifest bytes)."""
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1",
                            "predicateType": "https://spdx.dev/Document",
                            "subject": [{"name": repository, "digest": {"sha256": subject_digest[7:]}}],
                            "predicate": {"spdxVersion": "SPDX-2.3"}}).encode()
    empty_config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(empty_config), "size": len(empty_config)},
        "layers": [{"mediaType": INTOTO, "digest": sha256_digest(statement), "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}],
    }
    return statement, empty_config, json.dumps(manifest, indent=2).encode()


def index_build(children: list[Descriptor], *, docker: bool = False,
                annotations: dict[str, str] | None = None) -> tuple[str, bytes]:
    """An OCI index (or a Docker list) of `children`: (media type, bytes)."""
    media_type = DOCKER_LIST if docker else OCI_INDEX
    data: dict = {"schemaVersion": 2, "mediaType": media_type,
                  "manifests": [child.to_json() for child in children]}
    if annotations:
        data["annotations"] = annotations
    return media_type, json.dumps(data, indent=2).encode()


def _blobs_upload(client: RegistryClient, repository: str, blobs: tuple[bytes, ...]) -> None:
    for blob in blobs:
        digest = sha256_digest(blob)
        if not client.blob_exists(repository, digest, push=True):
            client.upload_blob(repository, digest, blob)


def image_push(client: RegistryClient, *, repository: str, tag: str | None, platform: Platform,
               content: str = "", oci: bool = False, created: str = "2026-01-01T00:00:00Z",
               extra_layer_bytes: int = 0, labels: dict[str, str] | None = None) -> Pushed:
    """Push a single-platform image (its config carrying `labels`); `tag=None` pushes it by digest only."""
    layer_bytes, diff_id = layer(content or f"{repository}:{tag} {platform.normalized} {platform.os_version}\n"
                                 + ("x" * extra_layer_bytes))
    config_raw = config_build(platform, diff_id=diff_id, created=created,
                              config={"Cmd": ["/bin/sh"], **({"Labels": dict(labels)} if labels else {})})
    _blobs_upload(client, repository, (layer_bytes, config_raw))
    media_type, raw = image_manifest_build(config_raw=config_raw, layer_digest=sha256_digest(layer_bytes),
                                           layer_size=len(layer_bytes), oci=oci)
    digest = client.put_manifest(repository, tag or sha256_digest(raw), raw, media_type)
    return Pushed(repository, tag or "", digest, media_type, len(raw), platform)


def attestation_push(client: RegistryClient, *, repository: str, subject: Pushed) -> Pushed:
    """An in-toto attestation manifest as buildx attaches it (by digest only)."""
    statement, empty_config, raw = attestation_build(repository=subject.repository, subject_digest=subject.digest)
    _blobs_upload(client, repository, (statement, empty_config))
    digest = client.put_manifest(repository, sha256_digest(raw), raw, OCI_MANIFEST)
    return Pushed(repository, "", digest, OCI_MANIFEST, len(raw), Platform("unknown", "unknown"))


def index_push(client: RegistryClient, *, repository: str, tag: str, children: list[Descriptor],
               docker: bool = False, annotations: dict[str, str] | None = None) -> Pushed:
    media_type, raw = index_build(children, docker=docker, annotations=annotations)
    digest = client.put_manifest(repository, tag, raw, media_type)
    return Pushed(repository, tag, digest, media_type, len(raw))


def attested_index_push(client: RegistryClient, *, repository: str, tag: str,
                        platforms: list[Platform], oci: bool = True) -> tuple[Pushed, list[Pushed], list[Pushed]]:
    """A buildx-style multi-platform index with one attestation per image."""
    images = [image_push(client, repository=repository, tag=None, platform=p, oci=oci) for p in platforms]
    attestations = [attestation_push(client, repository=repository, subject=image) for image in images]
    children = [image.descriptor() for image in images] + [
        att.descriptor(annotations={ATTESTATION_REFERENCE_TYPE: ATTESTATION_MANIFEST,
                                    ATTESTATION_REFERENCE_DIGEST: image.digest})
        for att, image in zip(attestations, images, strict=True)
    ]
    index = index_push(client, repository=repository, tag=tag, children=children)
    return index, images, attestations
