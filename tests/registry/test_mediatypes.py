"""Manifest parsing: media types, list formats, descriptors, attestations.

OCI image spec and Docker's manifest list spec: mediaType vs Content-Type, the list formats, attestations.
Pure unit tests: no Django, no network.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from registry.errors import ContentInvalid, MediaTypeMismatch
from registry.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    KIND_ARTIFACT,
    KIND_IMAGE,
    KIND_INDEX,
    KIND_SCHEMA1,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    parse_manifest,
    sha256_digest,
)
from registry.platform import Platform
from tests.registry.manifest_samples import (
    AMD64,
    ARM64,
    ATTESTATION,
    CONFIG,
    LAYER,
    LAYER2,
    _child,
    _digest,
    _docker_list,
    _image,
    _oci_index,
    _raw,
    _schema1,
)

# --------------------------------------------------------------------------- indexes


def test_it_parses_an_oci_index():
    raw = _raw(_oci_index())
    manifest = parse_manifest(raw, content_type=OCI_INDEX)
    assert manifest.media_type == OCI_INDEX
    assert manifest.kind == KIND_INDEX
    assert manifest.is_index
    assert manifest.raw == raw
    assert manifest.size == len(raw)
    assert [c.digest for c in manifest.children] == [AMD64, ARM64, ATTESTATION]
    assert [c.media_type for c in manifest.children] == [OCI_MANIFEST] * 3
    assert [c.size for c in manifest.children] == [1234] * 3
    assert manifest.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    assert manifest.config is None
    assert manifest.layers == ()
    assert manifest.blobs == ()


def test_it_reads_the_platform_of_each_index_entry():
    manifest = parse_manifest(_raw(_oci_index()), content_type=OCI_INDEX)
    assert [c.platform.normalized for c in manifest.children] == ["linux/amd64", "linux/arm64", "unknown/unknown"]
    assert manifest.children[1].platform == Platform(os="linux", architecture="arm64", variant="v8")


def test_it_parses_a_docker_manifest_list():
    manifest = parse_manifest(_raw(_docker_list()), content_type=DOCKER_LIST)
    assert manifest.media_type == DOCKER_LIST
    assert manifest.kind == KIND_INDEX
    assert manifest.is_index
    assert [c.media_type for c in manifest.children] == [DOCKER_MANIFEST] * 3
    windows = manifest.children[2].platform
    assert windows.os_version == "10.0.17763.5329"
    assert windows.os_features == ("win32k",)
    assert manifest.children[1].platform.normalized == "linux/arm/v7"


def test_it_parses_an_empty_index():
    manifest = parse_manifest(_raw({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}))
    assert manifest.kind == KIND_INDEX
    assert manifest.children == ()


def test_it_parses_a_nested_index_entry():
    data = _oci_index()
    data["manifests"].append(_child(OCI_INDEX, _digest("nested")))
    manifest = parse_manifest(_raw(data))
    assert manifest.children[-1].media_type == OCI_INDEX
    assert manifest.children[-1].platform is None


def test_it_computes_the_sha256_digest_of_the_exact_bytes():
    raw = _raw(_oci_index())
    pretty = json.dumps(_oci_index(), indent=3).encode()
    assert parse_manifest(raw).digest == "sha256:" + hashlib.sha256(raw).hexdigest() == sha256_digest(raw)
    assert parse_manifest(pretty).digest == sha256_digest(pretty) != sha256_digest(raw)


def test_it_keeps_a_digest_given_by_the_caller():
    assert parse_manifest(_raw(_oci_index()), digest=AMD64).digest == AMD64


# --------------------------------------------------------------------------- attestations


def test_it_detects_attestation_descriptors():
    manifest = parse_manifest(_raw(_oci_index()), content_type=OCI_INDEX)
    flags = [c.is_attestation for c in manifest.children]
    assert flags == [False, False, True]


def test_it_reads_the_subject_of_an_attestation():
    manifest = parse_manifest(_raw(_oci_index()), content_type=OCI_INDEX)
    attestation = manifest.children[2]
    assert attestation.attestation_subject == AMD64
    assert attestation.platform.is_unknown


def test_it_gives_no_subject_for_an_image_entry():
    manifest = parse_manifest(_raw(_oci_index()), content_type=OCI_INDEX)
    assert manifest.children[0].attestation_subject == ""


def test_it_ignores_a_reference_digest_without_the_attestation_type():
    descriptor = Descriptor(
        media_type=OCI_MANIFEST, digest=AMD64, size=1, annotations={"vnd.docker.reference.digest": ARM64}
    )
    assert not descriptor.is_attestation
    assert descriptor.attestation_subject == ""


def test_it_ignores_other_reference_types():
    descriptor = Descriptor(
        media_type=OCI_MANIFEST,
        digest=AMD64,
        size=1,
        annotations={"vnd.docker.reference.type": "signature", "vnd.docker.reference.digest": ARM64},
    )
    assert not descriptor.is_attestation
    assert descriptor.attestation_subject == ""


def test_it_reads_an_attestation_without_a_subject_as_an_empty_subject():
    descriptor = Descriptor(
        media_type=OCI_MANIFEST, digest=AMD64, size=1, annotations={"vnd.docker.reference.type": "attestation-manifest"}
    )
    assert descriptor.is_attestation
    assert descriptor.attestation_subject == ""


def test_it_writes_a_descriptor_back_to_json():
    manifest = parse_manifest(_raw(_oci_index()))
    for original, child in zip(_oci_index()["manifests"], manifest.children, strict=True):
        assert child.to_json() == original


# --------------------------------------------------------------------------- image manifests


@pytest.mark.parametrize(("media_type", "config_type"), [(OCI_MANIFEST, OCI_CONFIG), (DOCKER_MANIFEST, DOCKER_CONFIG)])
def test_it_parses_an_image_manifest(media_type, config_type):
    manifest = parse_manifest(_raw(_image(media_type, config_type)), content_type=media_type)
    assert manifest.media_type == media_type
    assert manifest.kind == KIND_IMAGE
    assert not manifest.is_index
    assert manifest.config == Descriptor(media_type=config_type, digest=CONFIG, size=1469)
    assert [layer.digest for layer in manifest.layers] == [LAYER, LAYER2]
    assert [layer.size for layer in manifest.layers] == [3370706, 42]
    assert [b.digest for b in manifest.blobs] == [CONFIG, LAYER, LAYER2]
    assert manifest.children == ()


def test_it_accepts_an_image_manifest_without_layers():
    data = _image()
    del data["layers"]
    manifest = parse_manifest(_raw(data))
    assert manifest.layers == ()
    assert [b.digest for b in manifest.blobs] == [CONFIG]


def test_it_reads_an_artifact_by_its_config_media_type():
    manifest = parse_manifest(_raw(_image(config_type="application/vnd.cncf.helm.config.v1+json")))
    assert manifest.kind == KIND_ARTIFACT


def test_it_reads_an_artifact_by_its_artifact_type():
    data = _image(
        config_type="application/vnd.oci.empty.v1+json",
        artifactType="application/vnd.dev.cosign.simplesigning.v1+json",
        subject={"mediaType": OCI_MANIFEST, "digest": AMD64, "size": 1234},
    )
    manifest = parse_manifest(_raw(data))
    assert manifest.kind == KIND_ARTIFACT
    assert manifest.artifact_type == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert manifest.subject == Descriptor(media_type=OCI_MANIFEST, digest=AMD64, size=1234)


def test_it_reads_the_artifact_type_of_an_index_entry():
    data = _oci_index()
    data["manifests"].append(_child(OCI_MANIFEST, _digest("sbom"), artifactType="application/spdx+json"))
    assert parse_manifest(_raw(data)).children[-1].artifact_type == "application/spdx+json"


# --------------------------------------------------------------------------- schema 1


def test_it_recognizes_a_schema1_manifest():
    manifest = parse_manifest(_raw(_schema1()))
    assert manifest.media_type == DOCKER_SCHEMA1
    assert manifest.kind == KIND_SCHEMA1
    assert not manifest.is_index
    assert manifest.blobs == ()


def test_it_keeps_the_signed_schema1_media_type():
    manifest = parse_manifest(_raw(_schema1()), content_type=DOCKER_SCHEMA1_SIGNED)
    assert manifest.media_type == DOCKER_SCHEMA1_SIGNED
    assert manifest.kind == KIND_SCHEMA1


def test_it_reads_a_schema1_media_type_from_the_content_type():
    manifest = parse_manifest(_raw(_schema1()), content_type=DOCKER_SCHEMA1)
    assert manifest.kind == KIND_SCHEMA1


# --------------------------------------------------------------------------- media type vs Content-Type


def test_it_refuses_a_body_whose_media_type_contradicts_the_content_type():
    with pytest.raises(MediaTypeMismatch):
        parse_manifest(_raw(_oci_index()), content_type=DOCKER_LIST)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (_oci_index(), OCI_MANIFEST),
        (_docker_list(), OCI_INDEX),
        (_image(OCI_MANIFEST, OCI_CONFIG), DOCKER_MANIFEST),
        (_image(DOCKER_MANIFEST, DOCKER_CONFIG), OCI_MANIFEST),
        (_image(DOCKER_MANIFEST, DOCKER_CONFIG), DOCKER_LIST),
        (_oci_index(), "application/octet-stream"),
    ],
)
def test_it_raises_media_type_mismatch_for_every_contradiction(body, content_type):
    with pytest.raises(MediaTypeMismatch) as info:
        parse_manifest(_raw(body), content_type=content_type)
    assert isinstance(info.value, ContentInvalid)
    assert info.value.code == "MEDIA_TYPE_MISMATCH"


def test_it_ignores_content_type_parameters():
    manifest = parse_manifest(_raw(_oci_index()), content_type=f"{OCI_INDEX}; charset=utf-8")
    assert manifest.media_type == OCI_INDEX


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/json; charset=utf-8", ""])
def test_it_trusts_the_body_when_served_as_generic_json(content_type):
    manifest = parse_manifest(_raw(_docker_list()), content_type=content_type)
    assert manifest.media_type == DOCKER_LIST


def test_it_takes_the_content_type_when_the_body_has_no_media_type():
    data = _docker_list()
    del data["mediaType"]
    assert parse_manifest(_raw(data), content_type=DOCKER_LIST).media_type == DOCKER_LIST


@pytest.mark.parametrize("content_type", ["", "application/json", "text/plain"])
def test_it_guesses_an_oci_index_from_its_shape_without_any_media_type(content_type):
    data = _oci_index()
    del data["mediaType"]
    manifest = parse_manifest(_raw(data), content_type=content_type)
    assert manifest.media_type == OCI_INDEX
    assert manifest.kind == KIND_INDEX


@pytest.mark.parametrize("content_type", ["", "application/json", "text/plain"])
def test_it_guesses_an_oci_image_from_its_shape_without_any_media_type(content_type):
    data = _image()
    del data["mediaType"]
    manifest = parse_manifest(_raw(data), content_type=content_type)
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.kind == KIND_IMAGE
