"""Image references: `[host[:port]/]path[:tag][@digest]`, distribution/reference's grammar.

Pure unit tests: no Django, no network.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from registry.errors import InvalidReference
from registry.reference import (
    MAX_NAME_LENGTH,
    Reference,
    validate_digest,
    validate_repository,
    validate_tag,
)

SHA = "sha256:" + "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
OTHER_SHA = "sha256:" + "0" * 64

# The grammar from the notes, anchored with fullmatch so a trailing newline cannot sneak in.
COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def _is_valid_path(path: str) -> bool:
    return 0 < len(path) <= MAX_NAME_LENGTH and all(COMPONENT_RE.fullmatch(c) for c in path.split("/"))


# --------------------------------------------------------------------------- parsing


def test_it_defaults_the_tag_to_latest():
    ref = Reference.parse("ubuntu")
    assert ref == Reference(repository="ubuntu", tag="latest", digest="", host="")
    assert ref.reference == "latest"


def test_it_keeps_an_explicit_tag():
    ref = Reference.parse("library/ubuntu:22.04")
    assert (ref.host, ref.repository, ref.tag, ref.digest) == ("", "library/ubuntu", "22.04", "")


def test_it_strips_surrounding_whitespace():
    assert Reference.parse("  team/app:v1 \n") == Reference(repository="team/app", tag="v1")


def test_it_adds_library_to_a_one_part_name_on_docker_hub():
    ref = Reference.parse("docker.io/ubuntu")
    assert ref.host == "docker.io"
    assert ref.repository == "library/ubuntu"
    assert ref.tag == "latest"


def test_it_adds_library_on_docker_hub_with_a_tag_and_a_digest():
    ref = Reference.parse(f"docker.io/nginx:1.25@{SHA}")
    assert ref.repository == "library/nginx"
    assert ref.tag == "1.25"
    assert ref.digest == SHA


def test_it_does_not_add_library_to_a_two_part_name_on_docker_hub():
    assert Reference.parse("docker.io/bitnami/redis").repository == "bitnami/redis"


@pytest.mark.parametrize(
    "text",
    ["ubuntu", "quay.io/ubuntu", "ghcr.io/ubuntu", "localhost:5000/ubuntu", "registry-1.docker.io/ubuntu"],
)
def test_it_adds_library_only_when_the_host_is_docker_io(text):
    assert Reference.parse(text).repository == "ubuntu"


@pytest.mark.parametrize(
    ("text", "host", "repository"),
    [
        ("localhost/foo", "localhost", "foo"),
        ("localhost:5000/foo", "localhost:5000", "foo"),
        ("registry.example.com/team/app", "registry.example.com", "team/app"),
        ("myhost:5000/app", "myhost:5000", "app"),
        ("host:5000/a/b", "host:5000", "a/b"),
        ("gcr.io/project/sub/image", "gcr.io", "project/sub/image"),
        ("Registry.Example.com/app", "Registry.Example.com", "app"),
        ("[::1]:5000/app", "[::1]:5000", "app"),
        ("10.0.0.1:5000/app", "10.0.0.1:5000", "app"),
    ],
)
def test_it_detects_the_host_when_the_first_component_has_a_dot_a_colon_or_is_localhost(text, host, repository):
    ref = Reference.parse(text)
    assert ref.host == host
    assert ref.repository == repository
    assert ref.tag == "latest"


@pytest.mark.parametrize(
    ("text", "repository"),
    [
        ("team/app", "team/app"),
        ("localhostx/foo", "localhostx/foo"),
        ("my-registry/foo", "my-registry/foo"),
        ("a/b/c", "a/b/c"),
    ],
)
def test_it_treats_a_plain_first_component_as_part_of_the_path(text, repository):
    ref = Reference.parse(text)
    assert ref.host == ""
    assert ref.repository == repository


def test_it_treats_a_lone_localhost_as_a_repository_name():
    assert Reference.parse("localhost") == Reference(repository="localhost", tag="latest")


def test_it_reads_the_port_of_a_host_as_a_port_and_not_a_tag():
    ref = Reference.parse("host:5000/a/b:v1")
    assert (ref.host, ref.repository, ref.tag) == ("host:5000", "a/b", "v1")


def test_it_reads_a_colon_without_a_slash_as_a_tag():
    # Same as docker: "localhost:5000" alone is repository "localhost", tag "5000".
    ref = Reference.parse("localhost:5000")
    assert (ref.host, ref.repository, ref.tag) == ("", "localhost", "5000")


def test_it_lets_the_digest_win_over_the_tag():
    ref = Reference.parse(f"team/app:v1@{SHA}")
    assert ref.digest == SHA
    assert ref.tag == "v1"  # kept for display only
    assert ref.reference == SHA


def test_it_uses_the_digest_alone_when_there_is_no_tag():
    ref = Reference.parse(f"localhost:5000/team/app@{SHA}")
    assert ref == Reference(repository="team/app", tag="", digest=SHA, host="localhost:5000")
    assert ref.reference == SHA


def test_it_uses_the_tag_as_the_reference_without_a_digest():
    assert Reference.parse("team/app:v2").reference == "v2"


def test_it_refuses_a_host_when_hosts_are_not_allowed():
    with pytest.raises(InvalidReference):
        Reference.parse("registry.example.com/app", allow_host=False)
    with pytest.raises(InvalidReference):
        Reference.parse("localhost:5000/app", allow_host=False)


def test_it_accepts_a_path_when_hosts_are_not_allowed():
    assert Reference.parse("team/app:v1", allow_host=False) == Reference(repository="team/app", tag="v1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ubuntu", "ubuntu:latest"),
        ("docker.io/ubuntu", "docker.io/library/ubuntu:latest"),
        ("host:5000/a/b:v1", "host:5000/a/b:v1"),
        (f"a:v1@{SHA}", f"a:v1@{SHA}"),
        (f"a@{SHA}", f"a@{SHA}"),
    ],
)
def test_it_formats_as_host_path_tag_digest(text, expected):
    assert str(Reference.parse(text)) == expected


# --------------------------------------------------------------------------- invalid references


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Ubuntu",
        "team/App",
        "foo//bar",
        "foo/",
        "/foo",
        "-foo",
        "foo-",
        "foo.",
        ".foo",
        "foo..bar",
        "foo___bar",
        "foo bar",
        "foo:",
        "foo:.bad",
        "foo:-bad",
        "foo:" + "a" * 129,
        "foo:a/b",
        "foo@",
        "foo@sha256:abc",
        "foo@sha256:" + "A" * 64,
        "foo@md5",
        "@" + SHA,
        "exa_mple.com/foo",
        "host:port/foo",
        "-bad.com/foo",
        "bad-.com/foo",
        "host:5000/",
        "host:5000/Foo",
        "a" * (MAX_NAME_LENGTH + 1),
        "a:b:c",
    ],
)
def test_it_refuses_invalid_references(text):
    with pytest.raises(InvalidReference):
        Reference.parse(text)


@pytest.mark.parametrize("value", [None, 42, b"ubuntu", ["ubuntu"]])
def test_it_refuses_a_reference_that_is_not_text(value):
    with pytest.raises(InvalidReference):
        Reference.parse(value)


@pytest.mark.parametrize(
    "text",
    [
        "foo\n:tag",
        "foo\n/bar",
        "foo:tag\n@" + SHA,
        "registry.example.com\n/foo",
    ],
)
def test_it_refuses_a_newline_inside_a_reference(text):
    # `$` in a Python regex also matches just before a trailing newline; a
    # component, tag or host ending in "\n" must still be refused (it would
    # end up in a URL path).
    with pytest.raises(InvalidReference):
        Reference.parse(text)


# --------------------------------------------------------------------------- validators


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "0",
        "a/b/c",
        "foo.bar",
        "foo_bar",
        "foo__bar",
        "foo-bar",
        "foo---bar",
        "a1/b2.c3_d4__e5-f6",
        "a" * MAX_NAME_LENGTH,
    ],
)
def test_it_accepts_valid_repository_names(name):
    assert validate_repository(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "foo/Bar",
        "foo//bar",
        "/foo",
        "foo/",
        "_foo",
        "foo_",
        "foo___bar",
        "foo..bar",
        "foo.-bar",
        "foo bar",
        "foo:bar",
        "foo@bar",
        "é",
        "a" * (MAX_NAME_LENGTH + 1),
        "foo\n",
        "foo\n/bar",
    ],
)
def test_it_refuses_invalid_repository_names(name):
    with pytest.raises(InvalidReference):
        validate_repository(name)


@pytest.mark.parametrize("tag", ["latest", "_", "A", "0", "v1.2.3-rc_1", "a" * 128, "_.-", "1.0--beta"])
def test_it_accepts_valid_tags(tag):
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".a", "-a", "a" * 129, "a/b", "a:b", "a+b", "a b", "é", "v1\n", None])
def test_it_refuses_invalid_tags(tag):
    with pytest.raises(InvalidReference):
        validate_tag(tag)


@pytest.mark.parametrize(
    "digest",
    [
        SHA,
        "sha512:" + "ab" * 64,
    ],
)
def test_it_accepts_valid_digests(digest):
    assert validate_digest(digest) == digest


@pytest.mark.parametrize(
    "digest",
    [
        "",
        None,
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,
        "sha256:" + "g" * 64,
        "SHA256:" + "a" * 64,
        "sha256:abc def",
        "sha256:abc/../x",
        "sha512:abc\n",
        SHA + "\n",
        "sha512:" + "ab" * 100,
        "sha512:" + "AB" * 64,
        # Algorithms the grammar allows but this client cannot or must not verify (issue 9, item 12).
        "md5:" + "a" * 32,
        "sha1:" + "a" * 40,
        "shake_128:" + "a" * 64,
        "blake2b:" + "a" * 128,
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    ],
)
def test_it_refuses_invalid_digests(digest):
    with pytest.raises(InvalidReference):
        validate_digest(digest)


# --------------------------------------------------------------------------- properties

_alnum = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])
components = st.builds(
    lambda first, rest: first + "".join(sep + run for sep, run in rest),
    _alnum,
    st.lists(st.tuples(_separator, _alnum), max_size=3),
)
paths = st.lists(components, min_size=1, max_size=4).map("/".join).filter(_is_valid_path)
tags = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from("ABCXYZabcxyz0189_"),
    st.one_of(st.text(alphabet="Aaz09._-", max_size=12), st.text(alphabet="Aaz09._-", min_size=127, max_size=127)),
)
digests = st.one_of(
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h),
    st.text(alphabet="0123456789abcdef", min_size=128, max_size=128).map(lambda h: "sha512:" + h),
)
_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hosts = st.one_of(
    st.sampled_from(
        [
            "docker.io",
            "localhost",
            "localhost:5000",
            "ghcr.io",
            "quay.io",
            "host:5000",
            "registry.example.com:443",
            "[::1]:5000",
        ]
    ),
    st.builds(
        lambda a, b, port: f"{a}.{b}" + (f":{port}" if port is not None else ""),
        _label,
        _label,
        st.none() | st.integers(1, 65535),
    ),
    st.builds(lambda a, port: f"{a}:{port}", _label, st.integers(1, 65535)),
)


@st.composite
def references(draw):
    host = draw(st.none() | hosts)
    path = draw(paths)
    tag = draw(st.none() | tags)
    digest = draw(st.none() | digests)
    if host is None and "/" in path:
        # Without a host, a first component with a dot (or `localhost`) would be
        # read as a host, by design (§6); such a path needs an explicit host.
        first = path.split("/", 1)[0]
        assume("." not in first and first != "localhost")
    text = (f"{host}/" if host else "") + path
    if tag is not None:
        text += f":{tag}"
    if digest is not None:
        text += f"@{digest}"
    return text, host or "", path, tag, digest


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(references())
def test_it_parses_every_valid_reference_into_its_parts(case):
    text, host, path, tag, digest = case
    ref = Reference.parse(text)
    assert ref.host == host
    if host == "docker.io" and "/" not in path:
        assert ref.repository == f"library/{path}"
    else:
        assert ref.repository == path
    assert ref.digest == (digest or "")
    assert ref.tag == (tag if tag is not None else ("" if digest else "latest"))
    assert ref.reference == (digest or ref.tag)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(references())
def test_it_reparses_its_own_string_to_the_same_reference(case):
    ref = Reference.parse(case[0])
    again = Reference.parse(str(ref))
    assert again == ref
    assert str(again) == str(ref)


# An alphabet dense in the characters the grammar cares about, so odd
# combinations (empty components, stray separators, newlines) come up often.
_REFERENCE_ALPHABET = st.sampled_from(list("aAz09.-_/:@\n \t+=") + ["sha256", "localhost", "docker.io"])
reference_like = st.lists(_REFERENCE_ALPHABET, max_size=30).map("".join)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(), reference_like))
@example("foo\n:tag")
def test_it_raises_only_invalid_reference_for_any_text(text):
    try:
        Reference.parse(text)
    except InvalidReference:
        pass


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(), reference_like))
@example("foo\n:tag")
def test_it_accepts_only_references_that_follow_the_grammar(text):
    try:
        ref = Reference.parse(text)
    except InvalidReference:
        return
    assert _is_valid_path(ref.repository), ref
    assert ref.tag == "" or TAG_RE.fullmatch(ref.tag), ref
    assert ref.digest == "" or DIGEST_RE.fullmatch(ref.digest), ref
    assert "\n" not in ref.host, ref


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), reference_like))
def test_validators_accept_only_strings_matching_the_grammar(text):
    for validate, grammar in ((validate_tag, TAG_RE), (validate_digest, DIGEST_RE)):
        try:
            validate(text)
        except InvalidReference:
            continue
        assert grammar.fullmatch(text), (validate.__name__, text)
    try:
        validate_repository(text)
    except InvalidReference:
        return
    assert _is_valid_path(text), text
