"""The token grammar a registry's platform must follow (checked at scan time). Pure unit tests."""

from __future__ import annotations

import pytest

from registry.errors import InvalidPlatform
from registry.platform import Platform


@pytest.mark.parametrize("platform", [
    Platform("linux", "amd64"),
    Platform("linux", "arm64", "v8"),
    Platform("linux", "arm", "v7"),
    Platform("Linux", "x86_64"),                     # normalized later, not refused
    Platform("linux", "ppc64le"), Platform("linux", "s390x"), Platform("linux", "riscv64"),
    Platform("linux", "loong64"), Platform("linux", "mips64le"), Platform("freebsd", "amd64"),
    Platform("windows", "amd64", os_version="10.0.17763.5329"),
    Platform("unknown", "unknown"),                  # attestations
    Platform("", ""),                                # an index entry without a platform
    Platform("linux", "a" * 32),                     # as long as a token may be
])
def test_every_real_platform_follows_the_grammar(platform):
    assert platform.grammar_problem() == ""


@pytest.mark.parametrize(("platform", "problem"), [
    (Platform('=HYPERLINK("http://x")', "amd64"), "os '=HYPERLINK(\"http://x\")' is not a platform token"),
    (Platform("linux", "@SUM(1+1)"), "architecture '@SUM(1+1)' is not a platform token"),
    (Platform("linux", "arm", "<b>v7</b>"), "variant '<b>v7</b>' is not a platform token"),
    (Platform("linux", "-amd64"), "architecture '-amd64' is not a platform token"),
    (Platform("linux", "amd 64"), "architecture 'amd 64' is not a platform token"),
    (Platform("linux", "a" * 33), f"architecture '{'a' * 33}' is not a platform token"),
    (Platform("\u212a", "amd64"), "os '\u212a' is not a platform token"),   # lowercases to "k"
    (Platform("windows", "amd64", os_version="=1+1"), "os.version '=1+1' is not a platform token"),
    (Platform("linux", "x" * 50 + "!"), f"architecture '{'x' * 40}…' is not a platform token"),
])
def test_a_value_outside_the_grammar_is_named_cut_short(platform, problem):
    assert platform.grammar_problem() == problem


@pytest.mark.parametrize("text", ["linux/-amd64", "linux/.arm", "linux/arm/" + "v" * 33, "\u212a/amd64",
                                  "linux/amd 64"])
def test_a_typed_platform_follows_the_same_grammar_so_what_is_pushed_is_scanned_back(text):
    with pytest.raises(InvalidPlatform, match="is not a token"):
        Platform.parse(text)


def test_a_typed_platform_may_use_capitals_and_is_lowered():
    assert Platform.parse("Linux/ARM64/V8").normalized == "linux/arm64"
    assert Platform.parse("linux/" + "a" * 32).grammar_problem() == ""
