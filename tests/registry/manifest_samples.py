"""Manifests and descriptors the manifest-parsing tests build (tests/registry/test_mediatypes*.py)."""

from __future__ import annotations

import hashlib
import json

from registry.mediatypes import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
)


def _digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


AMD64 = _digest("amd64 image")
ARM64 = _digest("arm64 image")
ATTESTATION = _digest("attestation for amd64")
CONFIG = _digest("config")
LAYER = _digest("layer")
LAYER2 = _digest("layer 2")


def _raw(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _child(media_type: str, digest: str, platform: dict | None = None, **extra) -> dict:
    item = {"mediaType": media_type, "digest": digest, "size": 1234}
    if platform is not None:
        item["platform"] = platform
    item.update(extra)
    return item


def _oci_index(**extra) -> dict:
    data = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            _child(OCI_MANIFEST, AMD64, {"architecture": "amd64", "os": "linux"}),
            _child(OCI_MANIFEST, ARM64, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
            _child(
                OCI_MANIFEST,
                ATTESTATION,
                {"architecture": "unknown", "os": "unknown"},
                annotations={
                    "vnd.docker.reference.digest": AMD64,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            ),
        ],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    data.update(extra)
    return data


def _docker_list() -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            _child(DOCKER_MANIFEST, AMD64, {"architecture": "amd64", "os": "linux"}),
            _child(DOCKER_MANIFEST, ARM64, {"architecture": "arm", "os": "linux", "variant": "v7"}),
            _child(
                DOCKER_MANIFEST,
                _digest("windows"),
                {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5329", "os.features": ["win32k"]},
            ),
        ],
    }


def _image(media_type: str = OCI_MANIFEST, config_type: str = OCI_CONFIG, **extra) -> dict:
    layer_type = (
        "application/vnd.oci.image.layer.v1.tar+gzip"
        if media_type == OCI_MANIFEST
        else "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    data = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": CONFIG, "size": 1469},
        "layers": [
            {"mediaType": layer_type, "digest": LAYER, "size": 3370706},
            {"mediaType": layer_type, "digest": LAYER2, "size": 42},
        ],
    }
    data.update(extra)
    return data


def _schema1() -> dict:
    return {
        "schemaVersion": 1,
        "name": "library/hello-world",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": LAYER}],
        "history": [{"v1Compatibility": "{}"}],
    }
