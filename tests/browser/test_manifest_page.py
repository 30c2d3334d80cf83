"""Every manifest has a page by digest within its repository: layers, config, download size; list children link to it."""

from __future__ import annotations

import json

import pytest
from django.template.defaultfilters import filesizeformat
from playwright.sync_api import expect

from registry.images import DOCKER_LAYER, layer
from registry.mediatypes import DOCKER_CONFIG, DOCKER_MANIFEST, sha256_digest

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = '<img src=x onerror="alert(1)">'


@pytest.fixture
def configured_image(demo_registry_server, request):
    """An image whose config sets everything the page shows, pushed before the demo registry is scanned."""
    layers = [layer("first layer\n", path="etc/one"), layer("second layer\n" + "y" * 3000, path="etc/two")]
    config = {
        "architecture": "amd64", "os": "linux", "created": "2026-02-03T04:05:06Z",
        "config": {"Entrypoint": ["/usr/bin/tini", "--"], "Cmd": ["serve", "--port", "8080"],
                   "Env": ["PATH=/usr/local/bin:/usr/bin", "MODE=production"], "User": "app:app",
                   "WorkingDir": "/srv/app", "Labels": {"org.opencontainers.image.source": "https://example.invalid/app",
                                                         "note": HOSTILE},
                   "ExposedPorts": {"8080/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
        "history": [{"created_by": "ADD rootfs /"}, {"created_by": "ENV MODE=production", "empty_layer": True},
                    {"created_by": "COPY app /srv/app"}],
    }
    config_raw = json.dumps(config).encode()
    with demo_registry_server.client() as client:
        for blob in [config_raw, *(data for data, _ in layers)]:
            client.upload_blob("demo/configured", sha256_digest(blob), blob)
        manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                    "config": {"mediaType": DOCKER_CONFIG, "digest": sha256_digest(config_raw), "size": len(config_raw)},
                    "layers": [{"mediaType": DOCKER_LAYER, "digest": sha256_digest(data), "size": len(data)}
                               for data, _ in layers]}
        raw = json.dumps(manifest).encode()
        digest = client.put_manifest("demo/configured", "v1", raw, DOCKER_MANIFEST)
    request.getfixturevalue("demo_registry")
    return {"digest": digest, "config_size": len(config_raw), "layer_sizes": [len(data) for data, _ in layers]}


def test_an_image_page_shows_its_layers_config_and_compressed_size(page, login, live_server, configured_image, screenshot):
    login(page)
    page.goto(f"{live_server.url}/registries/demo/r/demo/configured/t/v1")
    page.get_by_role("link", name="layers and config").click()
    expect(page).to_have_url(f"{live_server.url}/registries/demo/r/demo/configured/m/{configured_image['digest']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("demo/configured@sha256:")
    layers = page.locator("table.layers tbody tr")
    expect(layers).to_have_count(2)
    for i, size in enumerate(configured_image["layer_sizes"]):
        expect(layers.nth(i).locator("td").last).to_have_text(filesizeformat(size).replace("\xa0", " "))
    expect(layers.nth(0)).to_contain_text(DOCKER_LAYER)
    total = configured_image["config_size"] + sum(configured_image["layer_sizes"])
    facts = page.locator("dl.facts").first
    expect(facts).to_contain_text(f"Download size{filesizeformat(total)}".replace("\xa0", " "))
    config = page.locator("dl.config")
    expect(config).to_contain_text("Entrypoint/usr/bin/tini --")
    expect(config).to_contain_text("Cmdserve --port 8080")
    expect(config).to_contain_text("Userapp:app")
    expect(config).to_contain_text("Working dir/srv/app")
    expect(config).to_contain_text("MODE=production")
    expect(config).to_contain_text("2026-02-03T04:05:06Z")
    expect(config).to_contain_text("org.opencontainers.image.source = https://example.invalid/app")
    # A registry's label is text, never markup.
    expect(config).to_contain_text(HOSTILE)
    expect(page.locator("dl.config img")).to_have_count(0)
    steps = page.locator("table.history-steps tbody tr")
    expect(steps).to_have_count(3)
    expect(steps.nth(1)).to_contain_text("no layer")
    first_command = page.locator(".command").first
    assert first_command.locator("code").inner_text().startswith("docker pull ")
    assert first_command.locator("code").inner_text().endswith(f"/demo/configured@{configured_image['digest']}")
    screenshot(page, "manifest-image-configured")


def test_each_list_child_opens_its_own_page_and_the_list_shows_size_per_platform(
    page, login, live_server, demo_registry, screenshot
):
    from manifests.models import Manifest, Tag

    tag = Tag.objects.select_related("manifest").get(repository__name="demo/webapp", name="1.4")
    children = list(tag.manifest.children.filter(is_attestation=False).order_by("position"))
    sizes = {m.digest: m.size for m in Manifest.objects.filter(digest__in=[c.digest for c in children])}
    login(page)
    page.goto(f"{live_server.url}/registries/demo/r/demo/webapp/t/1.4")
    rows = page.locator("table.children tbody tr")
    for i, child in enumerate(children):
        expect(rows.nth(i).locator("td").last).to_have_text(filesizeformat(sizes[child.digest]).replace("\xa0", " "))
    page.get_by_role("link", name="Open linux/arm64").click()
    arm64 = next(c for c in children if c.platform == "linux/arm64")
    expect(page).to_have_url(f"{live_server.url}/registries/demo/r/demo/webapp/m/{arm64.digest}")
    expect(page.locator("dl.facts").first).to_contain_text("linux/arm64")
    expect(page.locator("table.layers tbody tr")).to_have_count(1)
    expect(page.get_by_role("link", name="1.4", exact=True)).to_be_visible()  # "Child of" links back
    screenshot(page, "manifest-child-arm64")

    page.goto(f"{live_server.url}/registries/demo/r/demo/webapp/m/{tag.digest}")
    list_rows = page.locator("table.children tbody tr")
    expect(list_rows).to_have_count(tag.manifest.children.count())
    expect(list_rows.filter(has_text="linux/arm64").locator("td").last).to_have_text(
        filesizeformat(sizes[arm64.digest]).replace("\xa0", " "))


def test_a_digest_that_is_not_in_the_repository_is_a_404_inside_the_layout(page, login, live_server, demo_registry):
    from manifests.models import Tag

    other = Tag.objects.get(repository__name="demo/cli", name="latest")
    login(page)
    response = page.goto(f"{live_server.url}/registries/demo/r/demo/webapp/m/{other.digest}")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_attached()
    expect(page.get_by_label("Search repositories, tags and digests")).to_be_attached()
