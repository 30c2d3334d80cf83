"""CSV export: no cell a spreadsheet would run, and no platform outside the grammar stored at all."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User

from manifests.models import Registry, Repository, Tag
from manifests.scan.repository import repository_scan
from manifests.services.registries import registry_client
from registry.images import image_push, index_push
from registry.platform import Platform

pytestmark = pytest.mark.django_db

FORMULA = '=HYPERLINK("http://x")'
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture
def viewer(client):
    client.force_login(User.objects.create_user("vera"))
    return client


def _csv(client, registry: Registry, **params) -> list[list[str]]:
    response = client.get("/coverage", {"registry": registry.name, "format": "csv", **params})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def _tag(registry: Registry, repository: str, tag: str) -> Tag:
    return Tag.objects.get(repository__registry=registry, repository__name=repository, name=tag)


def test_a_platform_outside_the_grammar_is_refused_at_scan_time_and_never_reaches_the_csv(registry_anonymous,
                                                                                          viewer):
    with registry_anonymous.client() as client:
        image_push(client, repository="formula/app", tag="evil", platform=Platform(FORMULA, "amd64"))
        good = image_push(client, repository="formula/app", tag="good", platform=Platform("linux", "amd64"))
        index_push(client, repository="formula/app", tag="evil-list",
                   children=[good.descriptor(platform=Platform("linux", "@SUM(1+1)"))])
        index_push(client, repository="formula/app", tag="good-list", children=[good.descriptor()])
    registry = Registry.objects.create(name="formula", url=registry_anonymous.url, insecure=True,
                                       required_platforms="linux/amd64")
    with registry_client(registry=registry) as client:
        counts = repository_scan(client=client, registry=registry, name="formula/app")
    assert counts["errors"] == 2
    # Each refused manifest is an error on its own tag, stored without anything it said; the rest is scanned.
    assert _tag(registry, "formula/app", "evil").error == \
        f"MANIFEST_INVALID: config: platform os {FORMULA!r} is not a platform token"
    assert _tag(registry, "formula/app", "evil-list").error == \
        "MANIFEST_INVALID: manifests[0]: platform architecture '@SUM(1+1)' is not a platform token"
    for name in ("evil", "evil-list"):
        assert _tag(registry, "formula/app", name).platforms == []
    for name in ("good", "good-list"):
        tag = _tag(registry, "formula/app", name)
        assert tag.error == "" and tag.platforms == ["linux/amd64"], name
    assert Repository.objects.get(registry=registry, name="formula/app").platforms == ["linux/amd64"]
    # Whichever tag the matrix chooses, no column, row or cell of the export carries the formula.
    for pattern in ("", "evil", "evil-list", "good"):
        lines = _csv(viewer, registry, tag=pattern)
        assert lines[0] == ["repository", "tag", "digest", "linux/amd64", "linux/amd64 bytes", "signed", "missing"], \
            pattern
        assert not any(FORMULA in cell or "@SUM" in cell for line in lines for cell in line), pattern


def test_every_cell_of_the_csv_is_guarded_against_formulas_the_header_too(viewer):
    # Rows as an older version stored them, before platforms were checked at scan time.
    registry = Registry.objects.create(name="old", url="http://127.0.0.1:9", insecure=True,
                                       required_platforms="linux/amd64")
    repository = Repository.objects.create(registry=registry, name="=cmd|' /C calc'!A0")
    Tag.objects.create(repository=repository, name="@tag", digest="+sha256:" + "a" * 64, kind="image",
                       platforms=[f"{FORMULA}/amd64", "-2+3/arm64"])
    lines = _csv(viewer, registry, require="linux/amd64")
    assert lines == [
        ["repository", "tag", "digest", "linux/amd64", "'-2+3/arm64", f"'{FORMULA}/amd64",
         "linux/amd64 bytes", "'-2+3/arm64 bytes", f"'{FORMULA}/amd64 bytes", "signed", "missing"],
        ["'=cmd|' /C calc'!A0", "'@tag", "'+sha256:" + "a" * 64, "", "yes", "yes", "", "", "", "", "linux/amd64"],
    ]
    assert not any(cell.startswith(FORMULA_STARTS) for line in lines for cell in line)


def test_a_list_giving_a_platform_outside_the_grammar_is_refused_before_the_push(registry_anonymous, client):
    """What we push must be what a scan accepts back: an os.version typed as a formula is refused at once."""
    with registry_anonymous.client() as registry_client_:
        image_push(registry_client_, repository="formula/src", tag="amd64", platform=Platform("linux", "amd64"))
    registry = Registry.objects.create(name="formula-push", url=registry_anonymous.url, insecure=True)
    with registry_client(registry=registry) as scanner:
        repository_scan(client=scanner, registry=registry, name="formula/src")
    client.force_login(User.objects.create_superuser("root", "root@example.invalid", None))
    response = client.post("/api/v1/lists", {"registry": registry.name, "target": "formula/list:v1",
                                             "sources": [{"reference": "formula/src:amd64", "os_version": "=1+1"}]},
                           content_type="application/json")
    assert response.status_code == 400, response.json()
    assert response.json()["fields"] == {"source 1": ["the os.version '=1+1' is not a platform token"]}
    assert not Tag.objects.filter(repository__name="formula/list").exists()


def test_an_export_across_registries_names_each_rows_registry(viewer):
    for name in ("alpha", "beta"):
        registry = Registry.objects.create(name=name, url="http://127.0.0.1:9", insecure=True,
                                           required_platforms="linux/amd64")
        repository = Repository.objects.create(registry=registry, name="app")
        Tag.objects.create(repository=repository, name="latest", digest="sha256:" + "a" * 64, kind="image",
                           platforms=["linux/amd64"])
    response = viewer.get("/coverage", {"registry": "*", "format": "csv"})
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    assert lines[0][:3] == ["registry", "repository", "tag"]
    assert sorted(line[:2] for line in lines[1:]) == [["alpha", "app"], ["beta", "app"]]
