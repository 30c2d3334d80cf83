"""An OCI artifact that is not an image (a Helm chart) has no platforms: the API and pages say what it is."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User

from manifests.models import Registry
from manifests.scan.repository import repository_scan
from manifests.services.registries import registry_client
from registry import RegistryClient
from registry.images import image_push, index_push
from registry.mediatypes import OCI_MANIFEST, Descriptor, sha256_digest
from registry.platform import Platform

pytestmark = pytest.mark.django_db

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def _chart_push(client: RegistryClient, *, repository: str, tag: str) -> str:
    """A chart as `helm push` stores it: an OCI manifest whose config is Helm's, one chart layer."""
    chart = b"apiVersion: v2\nname: demo\nversion: 0.1.0\n"
    config = json.dumps({"apiVersion": "v2", "name": "demo", "version": "0.1.0"}).encode()
    for blob in (chart, config):
        client.upload_blob(repository, sha256_digest(blob), blob)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": HELM_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": HELM_CHART, "digest": sha256_digest(chart), "size": len(chart)}]}).encode()
    return client.put_manifest(repository, tag, manifest, OCI_MANIFEST)


@pytest.fixture
def charts(registry_anonymous) -> Registry:
    with registry_anonymous.client() as client:
        chart = _chart_push(client, repository="artifacts/charts", tag="0.1.0")
        image = image_push(client, repository="artifacts/charts", tag="image", platform=Platform("linux", "amd64"))
        # An index of an image and an artifact, as a referrers index or a bundle holds them.
        chart_size = len(client.get_manifest("artifacts/charts", chart).raw)
        index_push(client, repository="artifacts/charts", tag="bundle", children=[
            image.descriptor(),
            Descriptor(media_type=OCI_MANIFEST, digest=chart, size=chart_size, artifact_type=HELM_CONFIG)])
    registry = Registry.objects.create(name="artifacts", url=registry_anonymous.url, insecure=True)
    with registry_client(registry=registry) as client:
        repository_scan(client=client, registry=registry, name="artifacts/charts")
    return registry


@pytest.fixture
def viewer(client):
    client.force_login(User.objects.create_user("vera"))
    return client


def test_the_api_gives_an_artifact_no_platforms_and_its_artifact_type(charts, viewer):
    body = viewer.get("/api/v1/registries/artifacts/repositories/artifacts/charts/tags/0.1.0").json()
    assert body["kind"] == "artifact" and body["error"] == ""
    assert body["platforms"] == [] and body["artifact_type"] == HELM_CONFIG
    image = viewer.get("/api/v1/registries/artifacts/repositories/artifacts/charts/tags/image").json()
    assert [p["platform"] for p in image["platforms"]] == ["linux/amd64"] and image["artifact_type"] == ""


def test_the_api_lists_an_indexs_artifacts_apart_from_its_platforms(charts, viewer):
    body = viewer.get("/api/v1/registries/artifacts/repositories/artifacts/charts/tags/bundle").json()
    assert body["kind"] == "index" and body["error"] == ""
    assert [p["platform"] for p in body["platforms"]] == ["linux/amd64"]
    chart = viewer.get("/api/v1/registries/artifacts/repositories/artifacts/charts/tags/0.1.0").json()
    assert [(a["digest"], a["artifact_type"]) for a in body["artifacts"]] == [(chart["digest"], HELM_CONFIG)]


def _row(html: str, tag: str) -> str:
    """The tag list's row of `tag`."""
    rows = [row for row in re.findall(r"<tr[^>]*>.*?</tr>", html, flags=re.S) if f"/t/{tag}\"" in row]
    assert len(rows) == 1, html
    return rows[0]


def test_pages_show_an_artifacts_type_where_an_image_shows_its_platforms(charts, viewer):
    tags = viewer.get("/registries/artifacts/r/artifacts/charts/").content.decode()
    chart_row = _row(tags, "0.1.0")
    assert HELM_CONFIG in chart_row and 'class="chip artifact-type"' in chart_row
    assert "—" not in chart_row, "an artifact is not shown as an image without platforms"
    assert "linux/amd64" in _row(tags, "image") and HELM_CONFIG not in _row(tags, "image")
    detail = viewer.get("/registries/artifacts/r/artifacts/charts/t/0.1.0").content.decode()
    facts = detail.split('<dl class="facts">')[1].split("</dl>")[0]
    assert "<dt>Artifact type</dt>" in facts and HELM_CONFIG in facts and "<dt>Platforms</dt>" not in facts
