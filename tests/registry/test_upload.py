"""Cross-registry copies: chunked uploads, a broken connection resumed, never the whole blob in memory."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import pytest

from registry import RegistryClient
from registry.images import image_push
from registry.mediatypes import sha256_digest
from registry.platform import Platform
from registry.upload import blob_transfer, manifest_transfer
from tests.harness.cutting import CuttingProxy

CHUNK = 64 * 1024


@pytest.fixture
def two_registries(fresh_registry):
    return fresh_registry("anonymous"), fresh_registry("anonymous")


def _blob(client: RegistryClient, size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    digest = sha256_digest(data)
    client.upload_blob("src/app", digest, data)
    return digest, data


def _target_bytes(running, digest: str) -> bytes:
    with running.client() as client:
        return client.get_blob("dst/app", digest, max_bytes=10 * 1024 * 1024)


def _transfer_cut(two_registries, size: int, *, progress=None, **cut):
    """A random blob of `size` copied through a CuttingProxy(**cut): (stats, proxy, digest, data)."""
    source, target = two_registries
    proxy = CuttingProxy(target.port, **cut).start()
    try:
        with source.client() as src, RegistryClient(proxy.url, insecure=True) as dst:
            digest, data = _blob(src, size)
            stats = blob_transfer(source=src, source_repository="src/app", target=dst, target_repository="dst/app",
                                  digest=digest, size=len(data), chunk_size=CHUNK,
                                  **({"progress": progress} if progress else {}))
    finally:
        proxy.stop()
    return stats, proxy, digest, data


def test_a_blob_larger_than_the_chunk_size_goes_in_chunks(two_registries):
    source, target = two_registries
    with source.client() as src:
        digest, data = _blob(src, 5 * CHUNK + 123)
        with target.client() as dst:
            stats = blob_transfer(source=src, source_repository="src/app", target=dst, target_repository="dst/app",
                                  digest=digest, size=len(data), chunk_size=CHUNK)
            assert dst.counters["PATCH blob"] == 6
            again = blob_transfer(source=src, source_repository="src/app", target=dst,
                                  target_repository="dst/app", digest=digest, size=len(data), chunk_size=CHUNK)
    assert (stats.chunks, stats.bytes_moved, stats.blobs_streamed, stats.resumes) == (6, len(data), 1, 0)
    assert stats.as_dict()["bytes_per_second"] > 0
    assert again.blobs_present == 1 and again.bytes_moved == 0
    assert _target_bytes(target, digest) == data


def test_a_connection_cut_before_a_chunk_is_resumed_from_the_upload_status(two_registries):
    source, target = two_registries
    proxy = CuttingProxy(target.port, cut_patch=3).start()
    events: list[dict] = []
    try:
        with source.client() as src, RegistryClient(proxy.url, insecure=True) as dst:
            digest, data = _blob(src, 5 * CHUNK)
            stats = blob_transfer(source=src, source_repository="src/app", target=dst, target_repository="dst/app",
                                  digest=digest, size=len(data), chunk_size=CHUNK, progress=events.append)
            assert dst.counters["GET upload"] == 1
    finally:
        proxy.stop()
    assert proxy.cuts == 1
    assert (stats.resumes, stats.restarts, stats.chunks) == (1, 0, 5)
    resume = next(e for e in events if e["event"] == "resume")
    assert resume["at"] == 2 * CHUNK
    assert _target_bytes(target, digest) == data


def test_a_connection_cut_in_the_middle_of_a_chunk_starts_a_new_session(two_registries):
    """Distribution drops a session whose bytes do not match its state: the copy starts again."""
    _, target = two_registries
    stats, proxy, digest, _ = _transfer_cut(two_registries, 4 * CHUNK, cut_patch=2, cut_patch_after=20_000)
    assert proxy.cuts == 1 and stats.restarts == 1
    assert hashlib.sha256(_target_bytes(target, digest)).hexdigest() == digest[7:]


def test_a_stale_upload_status_after_a_cut_in_the_middle_of_a_chunk_still_starts_a_new_session(two_registries,
                                                                                               monkeypatch):
    """Asked before Distribution has written the broken PATCH's bytes, the status answers 204 with the Range the
    session had (0-65535), and the resumed PATCH then gets 404 BLOB_UPLOAD_INVALID. The real registry gives that
    order only by timing, so the status answer is pinned to the one it gives in that race; every other request,
    the refused resume included, goes to the real registry."""
    import registry.upload as upload

    asked: list[str] = []

    def stale(client, repository, location):
        asked.append(location)
        return location, CHUNK  # what the session held before the cut chunk

    monkeypatch.setattr(upload, "upload_status", stale)
    _, target = two_registries
    events: list[dict] = []
    stats, proxy, digest, data = _transfer_cut(two_registries, 4 * CHUNK, progress=events.append, cut_patch=2,
                                               cut_patch_after=20_000)
    assert len(asked) == 1 and proxy.cuts == 1
    assert (stats.resumes, stats.restarts) == (1, 1)
    assert [e["event"] for e in events if e["event"] in ("resume", "restart")] == ["resume", "restart"]
    assert _target_bytes(target, digest) == data


def test_a_large_blob_is_never_held_whole_in_memory(two_registries):
    source, target = two_registries
    size, chunk = 12 * 1024 * 1024, 512 * 1024
    with source.client() as src, target.client() as dst:
        digest, _ = _blob(src, size)
        tracemalloc.start()
        try:
            blob_transfer(source=src, source_repository="src/app", target=dst, target_repository="dst/app",
                          digest=digest, size=size, chunk_size=chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 6 * chunk, peak  # a few chunks, not the 12 MiB blob


def test_an_image_is_copied_to_another_registry_by_digest(two_registries):
    source, target = two_registries
    with source.client() as src, target.client() as dst:
        image = image_push(src, repository="src/app", tag="1", platform=Platform("linux", "amd64"),
                           content=os.urandom(100_000).hex())
        manifest = src.get_manifest("src/app", image.digest)
        stats = manifest_transfer(source=src, source_repository="src/app", target=dst, target_repository="dst/app",
                                  manifest=manifest, chunk_size=CHUNK)
        assert dst.get_manifest("dst/app", image.digest).digest == image.digest
    assert stats.manifests_copied == 1 and stats.blobs_streamed == 2 and stats.chunks > 2
