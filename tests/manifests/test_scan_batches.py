"""A repository's tags are fetched and written a batch at a time, so a worker's memory stays flat for a
repository of any size; the result is the one a single batch gives."""

from __future__ import annotations

import pytest

from manifests.models import Registry, Tag
from manifests.scan import repository as scan_repository
from manifests.scan.repository import repository_scan
from registry.images import image_push, index_push
from registry.platform import Platform

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64", "v8")


def _scan(running, registry: Registry, name: str) -> tuple[dict, dict[str, int]]:
    with running.client() as client:
        counts = repository_scan(client=client, registry=registry, name=name, concurrency=4)
        return counts, dict(client.counters)


@pytest.mark.django_db
def test_a_repository_larger_than_a_batch_is_stored_as_one_batch_stores_it(fresh_registry, monkeypatch):
    running = fresh_registry("anonymous")
    with running.client() as client:
        for repository in ("batch/one", "batch/two"):
            for version in range(4):  # per version a list of two images of its own, and a single image
                images = [image_push(client, repository=repository, tag=None, platform=platform,
                                     content=f"{repository} {version} {platform.normalized}") for platform in (AMD64, ARM64)]
                index_push(client, repository=repository, tag=f"v{version}", children=[i.descriptor() for i in images])
                image_push(client, repository=repository, tag=f"v{version}-solo", platform=AMD64,
                           content=f"{repository} solo {version}")
    registry = Registry.objects.create(name="batches", url=running.url, insecure=True)
    one_counts, one_requests = _scan(running, registry, "batch/one")
    monkeypatch.setattr(scan_repository, "TAGS_PER_WRITE", 3)
    writes: list[int] = []
    write = scan_repository.repository_write

    def counted(**kwargs):
        writes.append(len(kwargs["fetches"]))
        return write(**kwargs)

    monkeypatch.setattr(scan_repository, "repository_write", counted)
    many_counts, many_requests = _scan(running, registry, "batch/two")
    assert writes == [3, 3, 2]  # no more than a batch of tags held at once
    assert many_counts == one_counts == {"tags": 8, "errors": 0, "changed": 8}, (one_counts, many_counts)
    assert many_requests == one_requests  # each digest fetched once across the batches

    def stored(name: str) -> list[tuple]:  # digests and sizes differ (each repository's content is its own)
        return sorted(Tag.objects.filter(repository__name=name, size__gt=0).values_list("name", "kind", "platforms"))

    assert stored("batch/two") == stored("batch/one")
    repository = registry.repositories.get(name="batch/two")
    assert (repository.tag_count, repository.list_count) == (8, 4)

    with running.client() as client:  # a tag gone from the listing goes with the last batch's write
        digest = Tag.objects.get(repository=repository, name="v3-solo").digest
        client.request("DELETE", f"/v2/batch/two/manifests/{digest}", op="DELETE manifest", ok=(202,))
    gone_counts, _ = _scan(running, registry, "batch/two")
    assert gone_counts["tags"] == 7 and not Tag.objects.filter(repository=repository, name="v3-solo").exists()
    repository.refresh_from_db()
    assert repository.tag_count == 7
