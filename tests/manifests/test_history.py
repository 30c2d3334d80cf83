"""Coverage over time: a point per scan, per registry, repository and required platform."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from manifests.jobs import job_create, job_run
from manifests.models import CoverageSnapshot, Registry
from registry.images import image_push, index_push
from registry.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


def _scan(registry: Registry, repository: str = "") -> None:
    job = job_create(kind="scan", registry=registry, target=registry.name, params={"repository": repository})
    job_run(inline=True, job_id=job.pk)


@pytest.fixture
def scanned_twice(fresh_registry, db):
    running = fresh_registry("anonymous")
    with running.client() as client:
        images = [image_push(client, repository="team/app", tag=None, platform=p) for p in (AMD64, ARM64)]
        index_push(client, repository="team/app", tag="v1", children=[i.descriptor() for i in images])
        image_push(client, repository="team/app", tag="v2", platform=AMD64, content="v2")
        image_push(client, repository="team/lib", tag="1.0", platform=ARM64, content="lib")
    registry = Registry.objects.create(name="hist", url=running.url, insecure=True,
                                       required_platforms="linux/amd64,linux/arm64")
    _scan(registry)
    with running.client() as client:  # v2 gains arm64
        index_push(client, repository="team/app", tag="v2", children=[i.descriptor() for i in images])
    _scan(registry)
    return running, registry


def test_each_scan_adds_a_point_per_platform_with_the_tags_lacking_it(scanned_twice):
    running, registry = scanned_twice
    app = CoverageSnapshot.objects.filter(registry=registry, repository="team/app", platform="linux/arm64")
    assert [(s.covered, s.total, s.lacking) for s in app] == [(1, 2, ["v2"]), (2, 2, [])]
    whole = CoverageSnapshot.objects.filter(registry=registry, repository="", platform="linux/amd64")
    assert [(s.covered, s.total, s.lacking) for s in whole] == [(2, 3, ["team/lib:1.0"]), (2, 3, ["team/lib:1.0"])]
    _scan(registry, repository="team/lib")  # a repository scan adds its own point (and the registry's)
    assert CoverageSnapshot.objects.filter(repository="team/lib", platform="linux/amd64").count() == 3
    assert CoverageSnapshot.objects.filter(repository="team/app", platform="linux/amd64").count() == 2


def test_the_api_serves_the_series_since_a_time(scanned_twice, client):
    running, registry = scanned_twice
    client.force_login(User.objects.create_user("vera"))
    body = client.get("/api/v1/coverage/history?registry=hist&repository=team/app").json()
    assert list(body["series"]) == ["linux/amd64", "linux/arm64"]
    assert [(p["covered"], p["total"]) for p in body["series"]["linux/arm64"]] == [(1, 2), (2, 2)]
    second = CoverageSnapshot.objects.filter(repository="team/app").order_by("taken_at").last().taken_at
    since = client.get("/api/v1/coverage/history", {"registry": "hist", "repository": "team/app",
                                                     "since": second.isoformat()}).json()
    assert [(p["covered"], p["total"]) for p in since["series"]["linux/arm64"]] == [(2, 2)]
    bad = client.get("/api/v1/coverage/history?registry=hist&since=yesterday")
    assert bad.status_code == 400 and bad.json()["field"] == "since"
    assert client.get("/api/v1/coverage/history").status_code == 400
    assert client.get("/api/v1/coverage/history?registry=nope").status_code == 404


def test_the_page_plots_a_line_per_platform_and_a_point_per_scan(scanned_twice, client):
    client.force_login(User.objects.create_user("vera"))
    page = client.get("/coverage/history?registry=hist&repository=team/app").content.decode()
    assert page.count('<polyline class="series"') == 2 and 'data-platform="linux/arm64"' in page
    assert page.count('<circle class="point"') == 4
    assert "1 of 2" in page and "2 of 2" in page
    assert 'href="/coverage/history"' in page
