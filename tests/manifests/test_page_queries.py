"""Every page runs a constant number of SQL queries, whatever the size of the inventory."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from manifests.models import Manifest, ManifestChild, Registry, Repository, Rule, RuleSource, Tag, TagPlatform

PLATFORMS = [("linux", "amd64", ""), ("linux", "arm64", "v8"), ("linux", "arm", "v7")]


def _inventory(repositories: int, tags: int, *, name: str = "big") -> Registry:
    """A stored inventory made directly in the database: lists of three platforms."""
    registry = Registry.objects.create(name=name, url="https://registry.example.invalid")
    children = []
    salt = 0 if name == "big" else 16  # another registry's manifests have digests of their own
    for i, (os_, arch, variant) in enumerate(PLATFORMS):
        children.append(Manifest.objects.create(
            digest=f"sha256:{salt + i:064x}", media_type="application/vnd.oci.image.manifest.v1+json", kind="image",
            raw=b"{}", os=os_, architecture=arch, variant=variant,
            platform=f"{os_}/{'arm64' if arch == 'arm64' else arch}{'/v7' if variant == 'v7' else ''}"))
    index = Manifest.objects.create(
        digest="sha256:" + ("f" if name == "big" else "e") * 64, media_type="application/vnd.oci.image.index.v1+json",
        kind="index",
        raw=json.dumps({"schemaVersion": 2, "manifests": []}).encode())
    ManifestChild.objects.bulk_create([
        ManifestChild(parent=index, position=i, digest=c.digest, media_type=c.media_type, os=c.os,
                      architecture=c.architecture, variant=c.variant, platform=c.platform)
        for i, c in enumerate(children)])
    platforms = [c.platform for c in children]
    repos = Repository.objects.bulk_create([
        Repository(registry=registry, name=f"team/app{r:04d}", platforms=platforms, tag_count=tags,
                   list_count=tags) for r in range(repositories)])
    tag_rows = Tag.objects.bulk_create([
        Tag(repository=repo, name="latest" if t == 0 else f"1.{t}", digest=index.digest, kind="index",
            media_type=index.media_type, manifest=index, platforms=platforms)
        for repo in repos for t in range(tags)])
    TagPlatform.objects.bulk_create([
        TagPlatform(tag=tag, platform=p, digest=c.digest) for tag in tag_rows for p, c in zip(platforms, children, strict=True)])
    return registry


PAGES = [
    "/",
    "/registries/big/",
    "/registries/big/?platform=linux/arm64",
    "/registries/big/r/team/app0000/",
    "/registries/big/r/team/app0000/t/latest",
    "/coverage?registry=big",
    "/coverage?registry=big&lacking=linux/s390x",
    "/coverage?registry=big&newest=5",
    "/coverage?registry=big&newest=5&lacking=linux/s390x",
    "/coverage?registry=%2A&newest=5&tag=1.*",
    "/coverage?registry=%2A",
    "/coverage?registry=%2A&newest=5",
    "/coverage?registry=%2A&lacking=linux/s390x",
    "/coverage?registry=%2A&unsigned=1",
    "/build/candidates?registry=big&q=app00",
    "/build/candidates?registry=big&q=linux/arm",
    "/build/candidates?registry=big&q=app00+1.",
    "/build/candidates?registry=big&q=nothing-has-this",
    "/build/candidates?registry=big&q=app00+nothing-has-this",
    "/build/?registry=big",
    "/api/v1/registries/big/repositories",
    "/api/v1/registries/big/repositories/team/app0000/tags/latest",
    "/api/v1/coverage?registry=big",
    "/api/v1/coverage?registry=big&newest=5",
]


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(captured)


@pytest.mark.django_db
def test_each_page_costs_the_same_queries_at_two_sizes(client, redis_server):
    client.force_login(User.objects.create_superuser("root"))
    _inventory(repositories=3, tags=4)
    _inventory(repositories=2, tags=3, name="other")  # the matrix across registries reads both
    small = {path: _queries(client, path) for path in PAGES}
    Registry.objects.all().delete()
    Manifest.objects.all().delete()
    _inventory(repositories=40, tags=25)
    _inventory(repositories=30, tags=20, name="other")
    large = {path: _queries(client, path) for path in PAGES}
    assert large == small


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_each_page_stays_under_its_query_budget(client, redis_server, django_assert_max_num_queries, path):
    client.force_login(User.objects.create_superuser("root"))
    _inventory(repositories=8, tags=6)
    with django_assert_max_num_queries(15):
        assert client.get(path).status_code == 200


def _rule_page(registry: Registry) -> str:
    """A rule over every tag of the first repository: its page is the dry run of all of them."""
    rule = Rule.objects.create(name="every-tag", registry=registry, target="team/merged:{tag}", automatic=False)
    RuleSource.objects.create(rule=rule, position=0, repository="team/app0000", tag="{tag}")
    return f"/rules/{rule.pk}/"


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "?page=2", "?status=invalid&page=1"])
def test_a_rules_dry_run_page_costs_the_same_queries_at_two_sizes(client, redis_server,
                                                                   django_assert_max_num_queries, query):
    client.force_login(User.objects.create_superuser("root"))
    small = _queries(client, _rule_page(_inventory(repositories=3, tags=4)) + query)
    Registry.objects.all().delete()
    Manifest.objects.all().delete()
    path = _rule_page(_inventory(repositories=40, tags=25)) + query
    with django_assert_max_num_queries(15):
        large = _queries(client, path)
    assert large == small


@pytest.mark.django_db
def test_the_home_page_counts_tags_per_repository_without_a_join(client, redis_server):
    """COUNT(*) per repository reads the tag.repository_id index alone; the join to repositories made
    PostgreSQL scan the whole tag table (in parallel workers) on every view of the home page."""
    client.force_login(User.objects.create_superuser("root"))
    _inventory(repositories=3, tags=4)
    Registry.objects.create(name="empty", url="https://empty.example.invalid")
    with CaptureQueriesContext(connection) as captured:
        page = client.get("/").content.decode()
    counting = [q["sql"] for q in captured.captured_queries if "COUNT" in q["sql"] and '"manifests_tag"' in q["sql"]]
    assert len(counting) == 1 and "JOIN" not in counting[0] and "COUNT(*)" in counting[0], counting
    assert re.findall(r'<td data-label="Tags">(\d+)</td>', page) == ["12", "0"]


def _images_repository(registry: Registry, name: str, images: int) -> Repository:
    """A repository of `images` tags, each a distinct single-platform image (its own TagPlatform digest)."""
    manifests = Manifest.objects.bulk_create([
        Manifest(digest=f"sha256:{name.encode().hex()[:16]}{i:048x}", media_type="application/vnd.oci.image.manifest.v1+json",
                 kind="image", raw=json.dumps({"schemaVersion": 2, "layers": [
                     {"digest": f"sha256:{i:064x}", "size": 10}]}).encode(),
                 os="linux", architecture="amd64", platform="linux/amd64") for i in range(images)])
    repo = Repository.objects.create(registry=registry, name=name, platforms=["linux/amd64"], tag_count=images)
    tags = Tag.objects.bulk_create([
        Tag(repository=repo, name=f"1.{i}", digest=m.digest, kind="image", media_type=m.media_type, manifest=m,
            platforms=["linux/amd64"]) for i, m in enumerate(manifests)])
    TagPlatform.objects.bulk_create([TagPlatform(tag=t, platform="linux/amd64", digest=t.digest) for t in tags])
    return repo


@pytest.mark.django_db
def test_a_tag_list_costs_the_same_queries_whatever_the_number_of_distinct_images(client, redis_server):
    """The repository's unique bytes read its images' manifests in one query: the digests were sent back in
    chunks of 500, one more query per 500 distinct images (10 queries at 100 tags, 11 at 1,000)."""
    client.force_login(User.objects.create_superuser("root"))
    registry = Registry.objects.create(name="big", url="https://registry.example.invalid")
    _images_repository(registry, "team/few", 3)
    _images_repository(registry, "team/many", 1100)
    assert _queries(client, "/registries/big/r/team/many/") == _queries(client, "/registries/big/r/team/few/")
    # The unique bytes still count every image's blobs once: 1,100 distinct 10-byte layers.
    assert 'data-bytes="11000"' in client.get("/registries/big/r/team/many/").content.decode()


@pytest.mark.django_db
def test_a_list_tag_page_costs_the_same_queries_as_an_image_tag_page(client, redis_server):
    """A list's children carry their download sizes in their own query, not in one more."""
    client.force_login(User.objects.create_superuser("root"))
    _inventory(repositories=1, tags=2)
    registry = Registry.objects.get(name="big")
    _images_repository(registry, "team/single", 2)
    listing = "/registries/big/r/team/app0000/t/latest"
    assert _queries(client, listing) == _queries(client, "/registries/big/r/team/single/t/1.0")
    page = client.get(listing).content.decode()
    assert page.count("linux/arm64") >= 1
