"""Coverage with any number of tags per repository: `?newest=N`, newest first, capped, in the page and the API."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from manifests.models import Registry, Repository, Tag, TagPlatform
from manifests.services.coverage import NEWEST_MAX

NOW = timezone.now()


def _tag(repository: Repository, name: str, days_ago: int, platforms: list[str]) -> None:
    tag = Tag.objects.create(repository=repository, name=name, digest=f"sha256:{abs(hash(name + repository.name)):064x}",
                             kind="index", media_type="application/vnd.oci.image.index.v1+json",
                             platforms=platforms, created=NOW - datetime.timedelta(days=days_ago))
    TagPlatform.objects.bulk_create([TagPlatform(tag=tag, platform=p, digest=tag.digest) for p in platforms])


@pytest.fixture
def inventory(client):
    client.force_login(User.objects.create_superuser("root"))
    registry = Registry.objects.create(name="lab", url="https://registry.example.invalid",
                                       required_platforms="linux/amd64,linux/arm64")
    app = Repository.objects.create(registry=registry, name="team/app")
    both, amd = ["linux/amd64", "linux/arm64"], ["linux/amd64"]
    for name, days, platforms in (("1.0", 30, amd), ("1.1", 20, both), ("1.2", 10, amd), ("1.3", 5, both),
                                  ("latest", 40, both)):
        _tag(app, name, days, platforms)
    tool = Repository.objects.create(registry=registry, name="team/tool")
    _tag(tool, "v1", 3, both)
    return registry


def _api(client, query: str):
    return client.get(f"/api/v1/coverage?registry=lab&{query}")


@pytest.mark.django_db
def test_newest_n_gives_each_repository_its_n_newest_tags_latest_first(client, inventory):
    rows = _api(client, "newest=3").json()["rows"]
    assert [(r["repository"], r["tag"]) for r in rows] == [
        ("team/app", "latest"), ("team/app", "1.3"), ("team/app", "1.2"), ("team/tool", "v1")]
    assert rows[2]["missing"] == ["linux/arm64"]
    # One tag a repository, as before, when newest is not given.
    assert [r["tag"] for r in _api(client, "").json()["rows"]] == ["latest", "v1"]


@pytest.mark.django_db
def test_newest_combines_with_the_tag_pattern_and_lacking(client, inventory):
    rows = _api(client, "newest=2&tag=1.*").json()["rows"]
    assert [(r["repository"], r["tag"]) for r in rows] == [("team/app", "1.3"), ("team/app", "1.2")]
    rows = _api(client, "newest=10&lacking=linux/arm64").json()["rows"]
    assert [(r["repository"], r["tag"]) for r in rows] == [("team/app", "1.2"), ("team/app", "1.0")]


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["0", str(NEWEST_MAX + 1), "two", "-1"])
def test_a_newest_outside_the_cap_is_refused_by_the_api_and_marked_on_the_page(client, inventory, value):
    response = _api(client, f"newest={value}")
    assert response.status_code == 400
    assert response.json()["field"] == "newest"
    page = client.get(f"/coverage?registry=lab&newest={value}", HTTP_HX_REQUEST="true").content.decode()
    # The message is inside the swapped region, and the field points at it.
    assert 'id="error-newest"' in page and f"from 1 to {NEWEST_MAX}" in page


@pytest.mark.django_db
def test_the_page_and_its_csv_show_the_newest_tags(client, inventory):
    page = client.get("/coverage?registry=lab&newest=2").content.decode()
    assert ">1.3</a>" in page and ">latest</a>" in page and ">1.2</a>" not in page
    lines = client.get("/coverage?registry=lab&newest=2&format=csv").content.decode().splitlines()
    assert [line.split(",")[:2] for line in lines[1:]] == [["team/app", "latest"], ["team/app", "1.3"],
                                                         ["team/tool", "v1"]]
