"""The fast indented JSON renders what json.dumps(indent=2) renders, byte for byte.

A manifest list's digest is the digest of these bytes: any difference would
make a rule's dry run disagree with the push. Pure unit tests.
"""

from __future__ import annotations

import json
from collections import OrderedDict

from hypothesis import example, given, settings
from hypothesis import strategies as st

from registry.assemble import list_render
from registry.jsontext import json_indent
from registry.mediatypes import OCI_INDEX, Descriptor
from registry.platform import Platform

_SCALARS = (st.none() | st.booleans() | st.integers() | st.text()
            | st.floats(allow_nan=True, allow_infinity=True))
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=5) | st.tuples(children, children)
    | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=40)


@settings(max_examples=2000, deadline=None)
@given(_VALUES)
@example({"a": [], "b": {}, "c": [{}], "d": "\u2028\x00\"\\é😀", "e": -0, "f": 10**30})
@example([True, False, None, 1.5, float("nan"), float("-inf")])
def test_any_json_value_renders_as_json_dumps_with_indent_2(value):
    assert json_indent(value) == json.dumps(value, indent=2)


@given(st.dictionaries(st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False), st.integers(),
                       min_size=1, max_size=4))
def test_keys_that_are_not_strings_render_as_json_dumps_does(value):
    assert json_indent(value) == json.dumps(value, indent=2)


def test_subclasses_of_the_plain_types_render_as_json_dumps_does():
    value = {"ordered": OrderedDict([("z", 1), ("a", 2)]), "flag": True}
    assert json_indent(value) == json.dumps(value, indent=2)


def test_a_circular_value_fails_as_json_dumps_does():
    value: list = []
    value.append(value)
    try:
        json.dumps(value, indent=2)
    except ValueError as expected:
        message = str(expected)
    try:
        json_indent(value)
    except ValueError as raised:
        assert str(raised) == message
    else:
        raise AssertionError("a circular value rendered")


_PLATFORMS = st.builds(Platform, os=st.sampled_from(["linux", "windows"]),
                       architecture=st.sampled_from(["amd64", "arm64", "arm"]),
                       variant=st.sampled_from(["", "v7", "v8"]), os_version=st.sampled_from(["", "10.0.17763.1"]),
                       os_features=st.lists(st.text(max_size=8), max_size=2).map(tuple))
_DESCRIPTORS = st.builds(
    Descriptor, media_type=st.sampled_from(["application/vnd.oci.image.manifest.v1+json"]),
    digest=st.text(min_size=1, max_size=71).map(lambda s: "sha256:" + s), size=st.integers(0, 2**40),
    platform=st.none() | _PLATFORMS, annotations=st.dictionaries(st.text(max_size=20), st.text(max_size=30), max_size=3),
    artifact_type=st.sampled_from(["", "application/vnd.example+json"]))


@settings(max_examples=500, deadline=None)
@given(st.lists(_DESCRIPTORS, max_size=12), st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=3))
def test_a_manifest_list_renders_to_the_bytes_json_dumps_gives(descriptors, annotations):
    class _Entry:
        def __init__(self, descriptor):
            self.descriptor = descriptor

    data: dict = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d.to_json() for d in descriptors]}
    if annotations:
        data["annotations"] = dict(annotations)
    rendered = list_render(media_type=OCI_INDEX, entries=[_Entry(d) for d in descriptors], annotations=annotations)
    assert rendered == json.dumps(data, indent=2).encode()
