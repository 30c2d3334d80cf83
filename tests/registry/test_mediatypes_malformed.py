"""Manifest parsing: malformed manifests and bad descriptors (OCI image spec, buildx attestations).

Pure unit tests: no Django, no network.
"""

from __future__ import annotations

import json

import pytest

from registry.errors import ContentInvalid, ManifestInvalid
from registry.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_manifest,
)
from tests.registry.manifest_samples import (
    AMD64,
    CONFIG,
    _image,
    _oci_index,
    _raw,
)

# --------------------------------------------------------------------------- malformed manifests


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"not json",
        b"{",
        b'{"schemaVersion": 2,}',
        b"\xff\xfe\x00garbage",
        b"\x80\x81\x82",
        b"null",
        b"[]",
        b'"a string"',
        b"2",
        b"true",
    ],
)
def test_it_refuses_bytes_that_are_not_a_json_object(raw):
    with pytest.raises(ManifestInvalid):
        parse_manifest(raw)


@pytest.mark.parametrize(
    "data",
    [
        {"mediaType": OCI_INDEX, "manifests": []},
        {"schemaVersion": 3, "mediaType": OCI_INDEX, "manifests": []},
        {"schemaVersion": "2", "mediaType": OCI_INDEX, "manifests": []},
        {"schemaVersion": None, "mediaType": OCI_INDEX, "manifests": []},
        {"schemaVersion": 2, "mediaType": 7, "manifests": []},
        {"schemaVersion": 2, "mediaType": ["x"], "manifests": []},
        {"schemaVersion": 2, "mediaType": "application/vnd.example.unknown+json"},
        {"schemaVersion": 2, "mediaType": OCI_INDEX},
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": None},
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {"0": {}}},
        {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": "none"},
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "annotations": ["a"]},
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "annotations": "a=b"},
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []},
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": None, "layers": []},
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": CONFIG, "size": 1},
            "layers": {"0": {}},
        },
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": CONFIG, "size": 1},
            "layers": "x",
        },
    ],
    ids=lambda d: json.dumps(d)[:60],
)
def test_it_refuses_a_malformed_manifest(data):
    with pytest.raises(ManifestInvalid):
        parse_manifest(_raw(data))


def test_it_refuses_a_deeply_nested_document_as_invalid():
    # A hostile or broken registry must not crash the caller with RecursionError:
    # 10 kB of brackets is far below the 4 MiB manifest cap (§2).
    with pytest.raises(ManifestInvalid):
        parse_manifest(b"[" * 5_000 + b"]" * 5_000)
    with pytest.raises(ManifestInvalid):
        parse_manifest(b'{"schemaVersion":2,"manifests":' + b"[" * 5_000 + b"]" * 5_000 + b"}")


# --------------------------------------------------------------------------- bad descriptors

GOOD = {"mediaType": OCI_MANIFEST, "digest": AMD64, "size": 1234}
BAD_DESCRIPTORS = {
    "not an object": "sha256:abc",
    "a list": [GOOD],
    "null": None,
    "no digest": {"mediaType": OCI_MANIFEST, "size": 1},
    "digest not text": {**GOOD, "digest": 123},
    "digest without algorithm": {**GOOD, "digest": "a" * 64},
    "no size": {"mediaType": OCI_MANIFEST, "digest": AMD64},
    "negative size": {**GOOD, "size": -1},
    "size as text": {**GOOD, "size": "1234"},
    "size as float": {**GOOD, "size": 12.5},
    "size as bool": {**GOOD, "size": True},
    "size null": {**GOOD, "size": None},
    "media type not text": {**GOOD, "mediaType": 5},
    "annotations a list": {**GOOD, "annotations": ["a"]},
    "annotation value not text": {**GOOD, "annotations": {"a": 1}},
    "annotation value null": {**GOOD, "annotations": {"a": None}},
    "platform not an object": {**GOOD, "platform": "linux/amd64"},
    "platform null": {**GOOD, "platform": None},
    "platform arch not text": {**GOOD, "platform": {"os": "linux", "architecture": 64}},
    "platform features not a list": {
        **GOOD,
        "platform": {"os": "windows", "architecture": "amd64", "os.features": "win32k"},
    },
    "artifact type not text": {**GOOD, "artifactType": ["x"]},
}


@pytest.mark.parametrize("descriptor", BAD_DESCRIPTORS.values(), ids=BAD_DESCRIPTORS.keys())
def test_it_refuses_a_bad_descriptor_in_an_index(descriptor):
    data = _oci_index()
    data["manifests"].insert(1, descriptor)
    with pytest.raises(ManifestInvalid, match=r"manifests\[1\]"):
        parse_manifest(_raw(data))


@pytest.mark.parametrize("descriptor", BAD_DESCRIPTORS.values(), ids=BAD_DESCRIPTORS.keys())
def test_it_refuses_a_bad_config_descriptor(descriptor):
    with pytest.raises(ManifestInvalid, match="config"):
        parse_manifest(_raw(_image(config=descriptor)))


@pytest.mark.parametrize("descriptor", BAD_DESCRIPTORS.values(), ids=BAD_DESCRIPTORS.keys())
def test_it_refuses_a_bad_layer_descriptor(descriptor):
    data = _image()
    data["layers"].append(descriptor)
    with pytest.raises(ManifestInvalid, match=r"layers\[2\]"):
        parse_manifest(_raw(data))


@pytest.mark.parametrize(
    "descriptor",
    [v for k, v in BAD_DESCRIPTORS.items() if v],  # an empty subject means "no subject"
    ids=[k for k, v in BAD_DESCRIPTORS.items() if v],
)
def test_it_refuses_a_bad_subject_descriptor(descriptor):
    with pytest.raises(ManifestInvalid, match="subject"):
        parse_manifest(_raw(_image(subject=descriptor)))


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:abc",  # too short for sha256
        "sha256:" + "A" * 64,  # sha256 is lowercase hex
        "sha256:" + "z" * 64,
        "../../v2/other/manifests/x:y",  # would be pasted into a URL path
        "sha256:" + "a" * 64 + "/../../x",
        ":",
        "sha256:",
    ],
)
def test_it_refuses_a_descriptor_whose_digest_breaks_the_digest_grammar(digest):
    # OCI image-spec, descriptor "digest": MUST follow the digest grammar; a
    # child digest goes verbatim into /v2/<name>/manifests/<digest>.
    data = _oci_index()
    data["manifests"][0]["digest"] = digest
    with pytest.raises(ManifestInvalid):
        parse_manifest(_raw(data))


def test_it_accepts_a_zero_size_descriptor():
    data = _oci_index()
    data["manifests"][0]["size"] = 0
    assert parse_manifest(_raw(data)).children[0].size == 0


def test_it_accepts_a_descriptor_without_media_type_as_empty():
    data = _oci_index()
    del data["manifests"][0]["mediaType"]
    assert parse_manifest(_raw(data)).children[0].media_type == ""


def test_every_parse_error_is_content_invalid():
    # The client catches ContentInvalid to show "the registry served something broken".
    for raw, ct in [(b"{", ""), (_raw(_oci_index()), DOCKER_LIST), (_raw({"schemaVersion": 9}), "")]:
        with pytest.raises(ContentInvalid):
            parse_manifest(raw, content_type=ct)
