"""The builder's palette search, from the stored inventory (no registry I/O)."""

from __future__ import annotations

import pytest

from manifests.models import Manifest, ManifestChild, Registry, Repository, Tag
from manifests.services.builder import candidates_search

IMAGE = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture
def registry(db) -> Registry:
    """One list of two platforms held by three tags in two repositories, and a single image."""
    registry = Registry.objects.create(name="palette", url="https://registry.example.invalid")
    listing = Manifest.objects.create(digest="sha256:" + "f" * 64, media_type=INDEX, kind="index", raw=b"{}")
    for position, (arch, letter) in enumerate((("amd64", "a"), ("arm64", "b"))):
        ManifestChild.objects.create(parent=listing, position=position, digest="sha256:" + letter * 64,
                                     media_type=IMAGE, os="linux", architecture=arch, platform=f"linux/{arch}")
    image = Manifest.objects.create(digest="sha256:" + "c" * 64, media_type=IMAGE, kind="image", raw=b"{}",
                                    os="linux", architecture="s390x", platform="linux/s390x")
    apps = Repository.objects.create(registry=registry, name="team/app")
    tools = Repository.objects.create(registry=registry, name="team/tools")
    for repository, name in ((apps, "1.0"), (tools, "2.0"), (tools, "2.1")):
        Tag.objects.create(repository=repository, name=name, digest=listing.digest, kind="index",
                           media_type=INDEX, manifest=listing)
    Tag.objects.create(repository=tools, name="s390x", digest=image.digest, kind="image", media_type=IMAGE,
                       manifest=image)
    return registry


def _labels(registry: Registry, query: str) -> list[str]:
    return [c.label for c in candidates_search(registry=registry, query=query)]


def test_a_list_child_is_found_under_the_tag_that_matches_only_once(registry):
    """The list is also under team/tools: searching team/app must not list it there, nor twice here.

    The terms used to join the list's tags a second time: a child came back under
    every tag of its list as soon as one of them matched, once per matching tag.
    """
    assert _labels(registry, "app") == ["team/app:1.0 → linux/amd64", "team/app:1.0 → linux/arm64"]
    assert _labels(registry, "2.1") == ["team/tools:2.1 → linux/amd64", "team/tools:2.1 → linux/arm64"]


def test_every_term_matches_a_repository_a_tag_or_a_platform_in_any_case(registry):
    assert _labels(registry, "TOOLS s390") == ["team/tools:s390x"]
    assert _labels(registry, "linux/ARM64") == ["team/app:1.0 → linux/arm64", "team/tools:2.0 → linux/arm64",
                                                "team/tools:2.1 → linux/arm64"]
    assert _labels(registry, "team/tools 2.0") == ["team/tools:2.0 → linux/amd64", "team/tools:2.0 → linux/arm64"]
    assert _labels(registry, "50%") == [] and _labels(registry, "app_") == []  # no wildcards in a term
    assert len(_labels(registry, "")) == 7


def test_a_term_in_no_repository_and_no_tag_name_answers_in_one_query_without_reading_tags(registry):
    """Nothing matches `zzz`: one query of EXISTS says so (each stops at its first match), where the two
    searches read every tag and every list child of the registry to find none."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for query in ("zzz", "app zzz", "ZZZ linux/arm64"):
        with CaptureQueriesContext(connection) as captured:
            assert _labels(registry, query) == []
        assert len(captured) == 1 and "manifests_manifestchild" not in captured[0]["sql"], query
    # A term in a tag name only, in a repository name only, or in a different case still finds its images.
    assert _labels(registry, "S390X") == ["team/tools:s390x"]
    assert _labels(registry, "app 1.0") == ["team/app:1.0 → linux/amd64", "team/app:1.0 → linux/arm64"]
    assert _labels(registry, "linux/s390x") == ["team/tools:s390x"]
