"""Platforms, properties: parsing and normalizing any text or JSON.

Pure unit tests: no Django, no network.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from registry.errors import InvalidPlatform
from registry.platform import (
    Platform,
    normalize_arch,
    normalize_platform_string,
)

TOKEN_RE = re.compile(r"[a-z0-9._-]+")


# --------------------------------------------------------------------------- properties

_ALIAS_ARCHES = [
    "x86_64",
    "x86-64",
    "amd64",
    "i386",
    "386",
    "aarch64",
    "arm64",
    "armhf",
    "armel",
    "arm",
    "ppc64le",
    "s390x",
    "riscv64",
]
_VARIANTS = ["", "1", "v1", "5", "6", "7", "8", "9", "v5", "v6", "v7", "v8", "v8.0", "9.0", "v9", "v9.0", "v2"]
tokens = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,9}", fullmatch=True)  # the token grammar
oses = st.one_of(st.sampled_from(["linux", "windows", "darwin", "macos", "freebsd", "unknown"]), tokens)
arches = st.one_of(st.sampled_from(_ALIAS_ARCHES), tokens)
variants = st.one_of(st.sampled_from(_VARIANTS), tokens)


def _case(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from([text, text.upper(), text.capitalize()])


typed_platforms = st.builds(
    lambda o, a, v: f"{o}/{a}/{v}" if v else f"{o}/{a}",
    oses.flatmap(_case),
    arches.flatmap(_case),
    variants.flatmap(_case),
)


# Reparsing the normalized form gives the same normalized platform, and a duplicate of it (the same key).
@pytest.mark.parametrize("attribute", ["normalized", "key"])
@settings(max_examples=500)
@given(typed_platforms)
def test_it_reparses_a_normalized_platform_to_the_same_platform(attribute, text):
    platform = Platform.parse(text)
    assert getattr(Platform.parse(platform.normalized), attribute) == getattr(platform, attribute)


@settings(max_examples=500)
@given(typed_platforms)
def test_normalizing_twice_changes_nothing(text):
    normalized = Platform.parse(text).normalized
    assert normalize_platform_string(normalized) == normalized
    parts = normalized.split("/")
    arch, variant = parts[1], parts[2] if len(parts) == 3 else ""
    assert normalize_arch(arch, variant) == (arch, variant)


@settings(max_examples=500)
@given(st.one_of(arches, st.text(max_size=10)), st.one_of(variants, st.text(max_size=10)))
def test_normalize_arch_is_idempotent(arch, variant):
    once = normalize_arch(arch, variant)
    assert normalize_arch(*once) == once


@settings(max_examples=500)
@given(oses, arches, variants)
def test_json_and_typed_platforms_normalize_alike(os_name, arch, variant):
    data = {"os": os_name, "architecture": arch}
    if variant:
        data["variant"] = variant
    typed = f"{os_name}/{arch}/{variant}" if variant else f"{os_name}/{arch}"
    assert Platform.from_json(data).normalized == Platform.parse(typed).normalized


_PLATFORM_ALPHABET = st.sampled_from(list("aZ09._-/ \n\t+:@") + ["linux", "arm", "amd64", "v7", "\u212a", "İ"])
platform_like = st.lists(_PLATFORM_ALPHABET, max_size=12).map("".join)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(), platform_like))
def test_it_raises_only_invalid_platform_for_any_text(text):
    try:
        Platform.parse(text)
    except InvalidPlatform:
        pass


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(), platform_like))
@example("linux\n/amd64")
def test_it_accepts_only_lowercase_tokens(text):
    try:
        platform = Platform.parse(text)
    except InvalidPlatform:
        return
    for part in (platform.os, platform.architecture):
        assert TOKEN_RE.fullmatch(part), platform
    assert platform.variant == "" or TOKEN_RE.fullmatch(platform.variant), platform


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
platform_objects = st.dictionaries(
    st.sampled_from(["os", "architecture", "variant", "os.version", "os.features", "other"]),
    st.one_of(json_values, tokens, st.lists(st.text(max_size=5), max_size=3)),
    max_size=6,
)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(json_values, platform_objects))
def test_it_raises_only_invalid_platform_for_any_json(data):
    try:
        Platform.from_json(data)
    except InvalidPlatform:
        pass
