"""Platforms: parse, normalize (containerd's rules) and order.

Pure unit tests: no Django, no network.
"""

from __future__ import annotations

import pytest

from registry.errors import InvalidPlatform
from registry.platform import (
    PREFERRED_ORDER,
    Platform,
    normalize_arch,
    normalize_platform_string,
    platform_sort_key,
)

# Every row of the normalization table in the notes, one (architecture, variant) per case.
NORMALIZATION_TABLE = [
    # x86_64, x86-64, amd64/v1 -> amd64
    ("x86_64", "", "amd64", ""),
    ("x86-64", "", "amd64", ""),
    ("amd64", "v1", "amd64", ""),
    # i386 -> 386
    ("i386", "", "386", ""),
    # aarch64; arm64 with 8, v8, v8.0 -> arm64 (no variant)
    ("aarch64", "", "arm64", ""),
    ("arm64", "8", "arm64", ""),
    ("arm64", "v8", "arm64", ""),
    ("arm64", "v8.0", "arm64", ""),
    # arm64 with 9, 9.0, v9.0 -> arm64/v9
    ("arm64", "9", "arm64", "v9"),
    ("arm64", "9.0", "arm64", "v9"),
    ("arm64", "v9.0", "arm64", "v9"),
    # armhf -> arm/v7, armel -> arm/v6
    ("armhf", "", "arm", "v7"),
    ("armel", "", "arm", "v6"),
    # arm with no variant or 7 -> arm/v7
    ("arm", "", "arm", "v7"),
    ("arm", "7", "arm", "v7"),
    # arm with 5, 6, 8 -> arm/v5, arm/v6, arm/v8
    ("arm", "5", "arm", "v5"),
    ("arm", "6", "arm", "v6"),
    ("arm", "8", "arm", "v8"),
]

_ids = [f"{a}/{v or '-'}" for a, v, _, _ in NORMALIZATION_TABLE]


def _display(os_name: str, arch: str, variant: str) -> str:
    return f"{os_name}/{arch}/{variant}" if variant else f"{os_name}/{arch}"


# --------------------------------------------------------------------------- normalization table


@pytest.mark.parametrize(("arch", "variant", "want_arch", "want_variant"), NORMALIZATION_TABLE, ids=_ids)
def test_it_normalizes_every_row_of_the_table(arch, variant, want_arch, want_variant):
    assert normalize_arch(arch, variant) == (want_arch, want_variant)


@pytest.mark.parametrize(("arch", "variant", "want_arch", "want_variant"), NORMALIZATION_TABLE, ids=_ids)
def test_it_normalizes_every_row_of_the_table_in_a_typed_platform(arch, variant, want_arch, want_variant):
    typed = _display("linux", arch, variant)
    assert Platform.parse(typed).normalized == _display("linux", want_arch, want_variant)
    assert normalize_platform_string(typed) == _display("linux", want_arch, want_variant)


@pytest.mark.parametrize(("arch", "variant", "want_arch", "want_variant"), NORMALIZATION_TABLE, ids=_ids)
def test_it_normalizes_every_row_of_the_table_in_a_json_platform(arch, variant, want_arch, want_variant):
    data = {"os": "linux", "architecture": arch}
    if variant:
        data["variant"] = variant
    assert Platform.from_json(data).normalized == _display("linux", want_arch, want_variant)


def test_it_normalizes_x86_64_to_amd64():
    assert Platform.parse("linux/x86_64").normalized == "linux/amd64"


def test_it_normalizes_aarch64_to_arm64():
    assert Platform.parse("linux/aarch64").normalized == "linux/arm64"


def test_it_normalizes_arm64_v8_to_plain_arm64():
    assert Platform.parse("linux/arm64/v8").normalized == "linux/arm64"


def test_it_normalizes_amd64_v1_to_plain_amd64():
    assert Platform.parse("linux/amd64/v1").normalized == "linux/amd64"


def test_it_normalizes_i386_to_386():
    assert Platform.parse("linux/i386").normalized == "linux/386"


def test_it_normalizes_armhf_to_arm_v7_and_armel_to_arm_v6():
    assert Platform.parse("linux/armhf").normalized == "linux/arm/v7"
    assert Platform.parse("linux/armel").normalized == "linux/arm/v6"


def test_it_gives_plain_arm_the_v7_variant():
    assert Platform.parse("linux/arm").normalized == "linux/arm/v7"


def test_it_normalizes_macos_to_darwin():
    assert Platform.parse("macos/arm64").normalized == "darwin/arm64"
    assert Platform.from_json({"os": "macos", "architecture": "x86_64"}).normalized == "darwin/amd64"


@pytest.mark.parametrize(
    ("arch", "variant"),
    [
        ("amd64", ""),
        ("amd64", "v2"),  # x86-64 micro-architecture levels are real, distinct variants
        ("amd64", "v3"),
        ("arm64", ""),
        ("arm64", "v9"),
        ("arm", "v5"),
        ("arm", "v6"),
        ("arm", "v7"),
        ("arm", "v8"),
        ("386", ""),
        ("ppc64le", ""),
        ("s390x", ""),
        ("riscv64", ""),
        ("mips64le", ""),
    ],
)
def test_it_leaves_already_normalized_architectures_alone(arch, variant):
    assert normalize_arch(arch, variant) == (arch, variant)


@pytest.mark.parametrize(
    ("typed", "normalized"),
    [
        ("Linux/AMD64", "linux/amd64"),
        ("linux/X86_64", "linux/amd64"),
        ("LINUX/ARM64/V8", "linux/arm64"),
        ("MacOS/AArch64", "darwin/arm64"),
        ("linux/ARM/7", "linux/arm/v7"),
    ],
)
def test_it_normalizes_regardless_of_case(typed, normalized):
    assert Platform.parse(typed).normalized == normalized


def test_it_normalizes_case_in_json_platforms_too():
    platform = Platform.from_json({"os": "Linux", "architecture": "AArch64", "variant": "V8"})
    assert platform.normalized == "linux/arm64"


def test_it_treats_no_variant_as_empty():
    assert normalize_arch("arm64") == ("arm64", "")
    assert normalize_arch("arm64", None) == ("arm64", "")


# --------------------------------------------------------------------------- parse


def test_it_parses_os_and_architecture():
    platform = Platform.parse("linux/amd64")
    assert (platform.os, platform.architecture, platform.variant) == ("linux", "amd64", "")


def test_it_parses_a_variant():
    platform = Platform.parse("linux/arm/v7")
    assert (platform.os, platform.architecture, platform.variant) == ("linux", "arm", "v7")


def test_it_keeps_the_given_values_and_normalizes_only_for_comparison():
    platform = Platform.parse("linux/aarch64")
    assert platform.architecture == "aarch64"
    assert platform.normalized == "linux/arm64"


def test_it_strips_whitespace_around_a_typed_platform():
    assert Platform.parse("  linux/amd64 \n").normalized == "linux/amd64"


def test_it_carries_os_version_and_features_given_beside_the_text():
    platform = Platform.parse("windows/amd64", os_version="10.0.17763.1234", os_features=["win32k"])
    assert platform.os_version == "10.0.17763.1234"
    assert platform.os_features == ("win32k",)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        None,
        "linux",
        "linux/",
        "/amd64",
        "linux//v7",
        "linux/amd64/",
        "linux/arm/v7/extra",
        "a/b/c/d",
        "linux/amd 64",
        "linux/amd64@sha256",
        "linux/amd64:latest",
        "linux/amd64/v+1",
        "linux/ämd64",
        "linux\\amd64",
        "linux\n/amd64",
        "linux/amd64\n/v7",
    ],
)
def test_it_refuses_text_that_is_not_a_platform(text):
    with pytest.raises(InvalidPlatform):
        Platform.parse(text)


def test_it_raises_invalid_platform_as_a_value_error():
    # Callers catching ValueError (forms, CLI parsing) still work.
    with pytest.raises(ValueError):
        Platform.parse("nope")


# --------------------------------------------------------------------------- from_json / to_json


def test_it_reads_every_field_of_an_index_platform_object():
    platform = Platform.from_json(
        {"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2227", "os.features": ["win32k"]}
    )
    assert platform == Platform(
        os="windows", architecture="amd64", variant="", os_version="10.0.20348.2227", os_features=("win32k",)
    )


def test_it_reads_the_variant_of_a_json_platform():
    platform = Platform.from_json({"os": "linux", "architecture": "arm", "variant": "v6"})
    assert platform.variant == "v6"
    assert platform.normalized == "linux/arm/v6"


def test_it_reads_a_config_blob_ignoring_unrelated_keys():
    config = {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "rootfs": {"type": "layers"},
        "config": {"Env": ["PATH=/bin"]},
    }
    assert Platform.from_json(config).normalized == "linux/arm64"


def test_it_reads_the_attestation_platform_as_unknown():
    platform = Platform.from_json({"os": "unknown", "architecture": "unknown"})
    assert platform.is_unknown
    assert not Platform.parse("linux/amd64").is_unknown


@pytest.mark.parametrize(
    "data",
    [
        None,
        "linux/amd64",
        ["linux", "amd64"],
        42,
        {"os": 1, "architecture": "amd64"},
        {"os": "linux", "architecture": ["amd64"]},
        {"os": "linux", "architecture": "arm", "variant": 7},
        {"os": "windows", "architecture": "amd64", "os.version": 10.0},
        {"os": "windows", "architecture": "amd64", "os.features": "win32k"},
        {"os": "windows", "architecture": "amd64", "os.features": ["win32k", 1]},
        {"os": "windows", "architecture": "amd64", "os.features": {"win32k": True}},
    ],
)
def test_it_refuses_a_json_platform_with_wrong_types(data):
    with pytest.raises(InvalidPlatform):
        Platform.from_json(data)


@pytest.mark.parametrize(
    "platform",
    [
        Platform(os="linux", architecture="amd64"),
        Platform(os="linux", architecture="arm", variant="v7"),
        Platform(os="windows", architecture="amd64", os_version="10.0.17763.5329", os_features=("win32k",)),
    ],
)
def test_it_round_trips_through_json(platform):
    assert Platform.from_json(platform.to_json()) == platform


def test_it_writes_only_the_fields_it_has_to_json():
    assert Platform(os="linux", architecture="amd64").to_json() == {"os": "linux", "architecture": "amd64"}


# --------------------------------------------------------------------------- key (duplicate detection)


def test_it_tells_apart_windows_images_of_different_builds():
    ltsc2019 = Platform.parse("windows/amd64", os_version="10.0.17763.5329")
    ltsc2022 = Platform.parse("windows/amd64", os_version="10.0.20348.2227")
    assert ltsc2019.normalized == ltsc2022.normalized
    assert ltsc2019.key != ltsc2022.key


def test_it_treats_windows_images_of_the_same_build_with_different_revisions_as_duplicates():
    first = Platform.parse("windows/amd64", os_version="10.0.17763.1")
    later = Platform.parse("windows/amd64", os_version="10.0.17763.5329")
    assert first.key == later.key


def test_it_compares_windows_platforms_from_json_by_build():
    a = Platform.from_json({"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2113"})
    b = Platform.from_json({"os": "Windows", "architecture": "x86_64", "os.version": "10.0.20348.2227"})
    c = Platform.from_json({"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.2113"})
    assert a.key == b.key
    assert a.key != c.key


def test_it_ignores_os_version_outside_windows():
    a = Platform.parse("linux/amd64", os_version="5.15")
    b = Platform.parse("linux/amd64", os_version="6.1")
    assert a.key == b.key == Platform.parse("linux/amd64").key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("linux/x86_64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64/v1"),
        ("linux/aarch64", "linux/arm64/v8"),
        ("linux/arm64/v8.0", "linux/arm64"),
        ("linux/arm64/9", "linux/arm64/v9.0"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/arm", "linux/arm/7"),
        ("linux/armel", "linux/arm/6"),
        ("macos/arm64", "darwin/aarch64"),
        ("linux/i386", "linux/386"),
    ],
)
def test_it_treats_aliases_as_duplicates(a, b):
    assert Platform.parse(a).key == Platform.parse(b).key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("linux/arm/v6", "linux/arm/v7"),
        ("linux/arm64", "linux/arm64/v9"),
        ("linux/arm64", "linux/amd64"),
        ("linux/amd64", "linux/amd64/v2"),
        ("linux/amd64", "windows/amd64"),
        ("linux/amd64", "darwin/amd64"),
    ],
)
def test_it_keeps_distinct_platforms_distinct(a, b):
    assert Platform.parse(a).key != Platform.parse(b).key


def test_it_shows_the_os_version_beside_the_platform():
    assert str(Platform.parse("windows/amd64", os_version="10.0.17763.5329")) == "windows/amd64 (10.0.17763.5329)"
    assert str(Platform.parse("linux/x86_64")) == "linux/amd64"


# --------------------------------------------------------------------------- display order


def test_it_sorts_well_known_platforms_in_the_preferred_order():
    shuffled = ["darwin/arm64", "linux/386", "windows/amd64", "linux/arm/v7", "linux/amd64", "linux/arm64"]
    assert sorted(shuffled, key=platform_sort_key) == [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/386",
        "windows/amd64",
        "darwin/arm64",
    ]


def test_it_sorts_unknown_platforms_after_known_ones_alphabetically():
    items = ["linux/zzz", "freebsd/amd64", "linux/amd64", "aix/ppc64", "linux/s390x"]
    assert sorted(items, key=platform_sort_key) == [
        "linux/amd64",
        "linux/s390x",
        "aix/ppc64",
        "freebsd/amd64",
        "linux/zzz",
    ]


def test_it_keeps_the_preferred_order_exactly():
    assert sorted(reversed(PREFERRED_ORDER), key=platform_sort_key) == list(PREFERRED_ORDER)


def test_it_sorts_normalized_platforms_into_the_preferred_order():
    typed = ["linux/armhf", "linux/aarch64", "linux/x86_64"]
    assert sorted((Platform.parse(t).normalized for t in typed), key=platform_sort_key) == [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
    ]
