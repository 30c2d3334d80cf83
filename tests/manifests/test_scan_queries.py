"""A scan's database work per repository: a few queries whatever its number of tags, all of them from the
scanning thread (the fetching threads get plain data and open no connection)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext

from manifests.models import Registry, Tag
from manifests.scan.repository import repository_scan
from registry.images import attested_index_push, image_push, index_push
from registry.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


def _versions_push(client, repository: str, versions: int) -> None:
    """A buildx list (two images and their attestations); per version a list of two images of its own
    and a single image."""
    attested_index_push(client, repository=repository, tag="attested", platforms=[AMD64, ARM64])
    for version in range(versions):
        images = [image_push(client, repository=repository, tag=None, platform=platform, content=f"{repository} {version} {n}")
                  for n, platform in enumerate((AMD64, ARM64))]
        index_push(client, repository=repository, tag=f"v{version}", children=[i.descriptor() for i in images])
        image_push(client, repository=repository, tag=f"v{version}-solo", platform=AMD64, content=f"{repository} solo {version}")


@pytest.fixture
def connections_opened():
    """The names of the threads that open a database connection."""
    threads: list[str] = []

    def opened(sender, connection, **kwargs) -> None:
        threads.append(threading.current_thread().name)

    connection_created.connect(opened)
    yield threads
    connection_created.disconnect(opened)


def _scan_counted(client, registry: Registry, name: str) -> tuple[int, dict[str, int]]:
    client.counters.clear()
    with CaptureQueriesContext(connection) as queries:
        counts = repository_scan(client=client, registry=registry, name=name, concurrency=4)
    assert counts["errors"] == 0, counts
    return len(queries), dict(client.counters)


def test_a_scan_makes_the_same_queries_for_two_tags_as_for_twelve_and_none_from_its_threads(
        fresh_registry, db, connections_opened):
    running = fresh_registry("anonymous")
    with running.client() as client:
        _versions_push(client, "queries/small", 1)
        _versions_push(client, "queries/large", 6)
    registry = Registry.objects.create(name="queries", url=running.url, insecure=True)
    with running.client() as client:
        small_cold, small_requests = _scan_counted(client, registry, "queries/small")
        large_cold, large_requests = _scan_counted(client, registry, "queries/large")
        # The scans did their work: 13 tags against 3, their children and configs.
        assert (small_requests["GET manifest"], large_requests["GET manifest"]) == (3 + 6, 13 + 16)
        assert large_requests["GET blob"] > 3 * small_requests["GET blob"]
        assert small_cold == large_cold, (small_cold, large_cold)

        for name in ("queries/small", "queries/large"):  # one tag moves in each
            image_push(client, repository=name, tag="v0-solo", platform=ARM64, content=f"{name} moved")
        small_warm, small_requests = _scan_counted(client, registry, "queries/small")
        large_warm, large_requests = _scan_counted(client, registry, "queries/large")
        assert (small_requests["HEAD manifest"], large_requests["HEAD manifest"]) == (3, 13)
        assert small_requests["GET manifest"] == large_requests["GET manifest"] == 1
        assert small_warm == large_warm, (small_warm, large_warm)
    assert Tag.objects.get(repository__name="queries/large", name="v0-solo").platforms == ["linux/arm64"]
    assert not [name for name in connections_opened if name != threading.current_thread().name]
