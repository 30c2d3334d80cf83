"""Manifest parsing: media types, list formats, descriptors, attestations.

Shared notes, registry-protocol §2 (mediaType vs Content-Type), §3 and §4.
Pure unit tests: no Django, no network.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from registry.errors import ContentInvalid, ManifestInvalid, MediaTypeMismatch
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


# --------------------------------------------------------------------------- properties

_MEDIA_TYPES = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    OCI_CONFIG,
    "application/json",
    "text/plain",
    "",
]
json_scalars = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=10)
json_values = st.recursive(
    json_scalars | st.sampled_from(_MEDIA_TYPES),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)
digests = st.one_of(st.just(AMD64), st.text(max_size=12), st.integers(), st.none())
annotations = st.one_of(
    st.dictionaries(
        st.sampled_from(["vnd.docker.reference.type", "vnd.docker.reference.digest", "x"]),
        st.one_of(st.just("attestation-manifest"), st.just(AMD64), json_scalars),
        max_size=3,
    ),
    json_values,
)
platforms = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "os": st.one_of(st.sampled_from(["linux", "windows", "unknown"]), json_scalars),
            "architecture": st.one_of(st.sampled_from(["amd64", "arm64", "arm", "unknown"]), json_scalars),
            "variant": st.one_of(st.sampled_from(["v7", "v8"]), json_scalars),
            "os.version": json_scalars,
            "os.features": st.one_of(st.lists(st.text(max_size=5), max_size=2), json_values),
        },
    ),
    json_values,
)
descriptors = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "mediaType": st.one_of(st.sampled_from(_MEDIA_TYPES), json_scalars),
            "digest": digests,
            "size": st.one_of(st.integers(-2, 10**9), json_scalars),
            "annotations": annotations,
            "platform": platforms,
            "artifactType": json_scalars,
        },
    ),
    json_values,
)
manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": st.one_of(st.sampled_from([1, 2, 2.0, "2", True]), json_scalars),
        "mediaType": st.one_of(st.sampled_from(_MEDIA_TYPES), json_scalars),
        "manifests": st.one_of(st.lists(descriptors, max_size=4), json_values),
        "config": descriptors,
        "layers": st.one_of(st.lists(descriptors, max_size=4), json_values),
        "annotations": annotations,
        "artifactType": json_scalars,
        "subject": descriptors,
    },
)
content_types = st.one_of(st.sampled_from(_MEDIA_TYPES + [OCI_INDEX + "; charset=utf-8"]), st.text(max_size=20))


def _only_content_invalid(raw: bytes, content_type: str = "") -> None:
    try:
        parse_manifest(raw, content_type=content_type)
    except ContentInvalid:
        pass


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300), content_types)
@example(b"\xef\xbb\xbf{}", "")
@example(b"[" * 5_000, "")
def test_it_raises_only_content_invalid_for_any_bytes(raw, content_type):
    _only_content_invalid(raw, content_type)


@settings(max_examples=1000, deadline=None)
@given(json_values, content_types)
def test_it_raises_only_content_invalid_for_any_json(value, content_type):
    _only_content_invalid(json.dumps(value).encode(), content_type)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(manifest_like, content_types)
def test_it_raises_only_content_invalid_for_any_manifest_shaped_json(data, content_type):
    _only_content_invalid(json.dumps(data).encode(), content_type)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX]),
            st.binary(min_size=1, max_size=8),
            st.integers(0, 10**9),
            st.sampled_from(["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "unknown/unknown", "windows/amd64"]),
        ),
        max_size=6,
    ),
    st.sampled_from([OCI_INDEX, DOCKER_LIST]),
)
def test_it_keeps_every_index_entry_in_order(entries, media_type):
    manifests = [
        {"mediaType": mt, "digest": sha256_digest(seed), "size": size, "platform": Platform.parse(p).to_json()}
        for mt, seed, size, p in entries
    ]
    raw = _raw({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests})
    manifest = parse_manifest(raw, content_type=media_type)
    assert manifest.digest == sha256_digest(raw)
    assert [c.to_json() for c in manifest.children] == manifests
