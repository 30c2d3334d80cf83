"""Manifest parsing, properties: any bytes, any JSON, only ContentInvalid; index entries kept in order.

Pure unit tests: no Django, no network.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from registry.errors import ContentInvalid
from registry.mediatypes import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_manifest,
    sha256_digest,
)
from registry.platform import Platform
from tests.registry.manifest_samples import (
    AMD64,
    _raw,
)

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
