"""Download sizes per platform, shared bytes of a list, unique bytes of a repository: equal to the blobs pushed."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from django.contrib.auth.models import User

from manifests.models import Registry, Repository, Tag
from manifests.scan.repository import repository_scan
from manifests.services.sizes import repository_unique_bytes, tag_sizes
from registry.images import DOCKER_LAYER, index_push
from registry.mediatypes import DOCKER_CONFIG, DOCKER_MANIFEST, Descriptor, sha256_digest
from registry.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


def _image(client, repository: str, platform: Platform, layers: list[bytes], tag: str | None = None):
    """Push an image of exactly these layer bytes; returns its descriptor and its config's bytes."""
    config = json.dumps({"os": platform.os, "architecture": platform.architecture,
                         **({"variant": platform.variant} if platform.variant else {}),
                         "rootfs": {"type": "layers", "diff_ids": [sha256_digest(b) for b in layers]}}).encode()
    for blob in (config, *layers):
        if not client.blob_exists(repository, sha256_digest(blob), push=True):
            client.upload_blob(repository, sha256_digest(blob), blob)
    raw = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                      "config": {"mediaType": DOCKER_CONFIG, "digest": sha256_digest(config), "size": len(config)},
                      "layers": [{"mediaType": DOCKER_LAYER, "digest": sha256_digest(b), "size": len(b)}
                                 for b in layers]}).encode()
    digest = client.put_manifest(repository, tag or sha256_digest(raw), raw, DOCKER_MANIFEST)
    return Descriptor(media_type=DOCKER_MANIFEST, digest=digest, size=len(raw), platform=platform), config


@pytest.fixture
def sized(fresh_registry, db):
    running = fresh_registry("anonymous")
    shared, only_amd64, only_arm64 = os.urandom(30_000), os.urandom(20_000), os.urandom(12_345)
    with running.client() as client:
        amd64, amd64_config = _image(client, "sized/app", AMD64, [shared, only_amd64])
        arm64, arm64_config = _image(client, "sized/app", ARM64, [shared, only_arm64], tag="arm64")
        index_push(client, repository="sized/app", tag="v1", children=[amd64, arm64])
    registry = Registry.objects.create(name="sized", url=running.url, insecure=True,
                                       required_platforms="linux/amd64,linux/arm64")
    with running.client() as client:
        repository_scan(client=client, registry=registry, name="sized/app")
    pushed = {"shared": len(shared), "amd64": len(amd64_config) + len(shared) + len(only_amd64),
              "arm64": len(arm64_config) + len(shared) + len(only_arm64),
              "unique": len(amd64_config) + len(arm64_config) + len(shared) + len(only_amd64) + len(only_arm64)}
    return registry, pushed


def test_each_platform_downloads_its_config_and_layers_and_the_list_shares_the_common_layer(sized):
    registry, pushed = sized
    sizes = tag_sizes(tag=Tag.objects.get(name="v1"))
    assert [(p.platform, p.compressed, p.uncompressed) for p in sizes.platforms] == [
        ("linux/amd64", pushed["amd64"], None), ("linux/arm64", pushed["arm64"], None)]
    assert sizes.shared == pushed["shared"]
    assert sizes.unique_total == pushed["unique"]
    image = tag_sizes(tag=Tag.objects.get(name="arm64"))
    assert [(p.platform, p.compressed) for p in image.platforms] == [("linux/arm64", pushed["arm64"])]
    # Both tags reference the same blobs: the repository holds each once.
    assert repository_unique_bytes(repository=Repository.objects.get(name="sized/app")) == pushed["unique"]


def test_pages_api_and_export_show_the_sizes(sized, client):
    registry, pushed = sized
    client.force_login(User.objects.create_user("vera"))
    tag_page = client.get("/registries/sized/r/sized/app/t/v1").content.decode()
    assert f'data-bytes="{pushed["amd64"]}"' in tag_page and f'data-bytes="{pushed["arm64"]}"' in tag_page
    assert f'class="shared-bytes" data-bytes="{pushed["shared"]}"' in tag_page
    assert "not stated by the image config" in tag_page
    repository_page = client.get("/registries/sized/r/sized/app/").content.decode()
    assert f'data-bytes="{pushed["unique"]}"' in repository_page

    api = client.get("/api/v1/registries/sized/repositories/sized/app/tags/v1").json()
    assert [(p["platform"], p["download_size"], p["uncompressed_size"]) for p in api["platforms"]] == [
        ("linux/amd64", pushed["amd64"], None), ("linux/arm64", pushed["arm64"], None)]
    assert api["sizes"]["shared"] == pushed["shared"] and api["sizes"]["unique"] == pushed["unique"]

    export = client.get("/coverage?registry=sized&tag=v1&format=csv").content.decode()
    rows = list(csv.reader(io.StringIO(export)))
    header = rows[0]
    assert header[-1] == "missing"
    assert rows[1][header.index("linux/amd64 bytes")] == str(pushed["amd64"])
    assert rows[1][header.index("linux/arm64 bytes")] == str(pushed["arm64"])
    as_json = client.get("/coverage?registry=sized&tag=v1&format=json").json()
    assert as_json["rows"][0]["size"] == {"linux/amd64": pushed["amd64"], "linux/arm64": pushed["arm64"]}
