"""The registry client against real Docker Distribution processes."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from manifests.stack.distribution import NARROW_USER
from manifests.stack.ports import free_port
from registry import RegistryClient, errors
from registry.copy import copy_manifest
from registry.images import attested_index_push, image_push
from registry.mediatypes import OCI_INDEX
from registry.platform import Platform
from tests.harness.throttle import ThrottledProxy

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


def test_it_lists_tags_past_1000_even_when_the_registry_ignores_n(fresh_registry):
    # Distribution 2.8's tag list answers every tag at once whatever `n` says:
    # the client must neither stop at 1000 nor loop on `last=`.
    running = fresh_registry("anonymous")
    with running.client() as client:
        pushed = image_push(client, repository="many/tags", tag="t0000", platform=AMD64)
        raw = client.get_manifest("many/tags", pushed.digest).raw
        for i in range(1, 1205):
            client.put_manifest("many/tags", f"t{i:04d}", raw, pushed.media_type)
        client.counters.clear()
        tags = list(client.tags("many/tags"))
    assert sorted(tags) == [f"t{i:04d}" for i in range(1205)]


def test_it_lists_a_catalog_past_1000_by_following_the_link_header(fresh_registry):
    running = fresh_registry("anonymous")
    names = [f"cat/r{i:04d}" for i in range(1203)]
    with running.client(pool_size=8) as client:
        first = image_push(client, repository=names[0], tag="latest", platform=AMD64)
        manifest = client.get_manifest(names[0], first.digest)

        def copy(name: str) -> None:
            for blob in manifest.blobs:
                assert client.mount_blob(name, blob.digest, names[0]) is None
            client.put_manifest(name, "latest", manifest.raw, manifest.media_type)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(copy, names[1:]))
        client.counters.clear()
        listed = list(client.catalog())
    assert listed == names
    assert client.counters["GET catalog"] == 2


def test_it_lists_the_catalog_in_pages(fresh_registry):
    running = fresh_registry("anonymous")
    with running.client() as client:
        for i in range(7):
            image_push(client, repository=f"cat/r{i}", tag="latest", platform=AMD64)
        client.counters.clear()
        names = list(client.catalog(page_size=3))
    assert names == [f"cat/r{i}" for i in range(7)]
    assert client.counters["GET catalog"] == 3


def test_head_of_a_list_by_tag_gives_the_lists_digest_not_a_childs(any_registry):
    with any_registry.client() as client:
        index, images, _ = attested_index_push(client, repository="head/list", tag="multi", platforms=[AMD64, ARM64])
        head = client.head_manifest("head/list", "multi")
    assert head.digest == index.digest
    assert head.media_type == OCI_INDEX
    assert head.digest not in {image.digest for image in images}


def test_it_mounts_blobs_across_repositories(any_registry):
    with any_registry.client() as client:
        source = image_push(client, repository="mount/src", tag="v1", platform=AMD64)
        manifest = client.get_manifest("mount/src", source.digest)
        report = copy_manifest(client, source="mount/src", target="mount/dst", manifest=manifest)
        assert report.blobs_mounted == 2 and report.blobs_streamed == 0
        assert client.manifest_exists("mount/dst", source.digest)
        again = copy_manifest(client, source="mount/src", target="mount/dst", manifest=manifest)
    assert again.manifests_present == 1 and again.blobs_mounted == 0


def test_a_token_without_the_sources_pull_scope_falls_back_to_streaming(registry_token):
    with registry_token.client() as admin:
        source = image_push(admin, repository="narrow/src", tag="v1", platform=ARM64)
    with registry_token.client(user=NARROW_USER) as client:
        manifest = client.get_manifest("narrow/src", source.digest)
        report = copy_manifest(client, source="narrow/src", target="narrow/dst", manifest=manifest)
        assert report.mount_refusals, "the narrow token should not allow a mount"
        assert report.blobs_streamed == 2 and report.blobs_mounted == 0
        assert report.bytes_streamed > 0
    with registry_token.client() as admin:
        copied = admin.get_manifest("narrow/dst", source.digest)
        for blob in copied.blobs:
            assert admin.get_blob("narrow/dst", blob.digest, max_bytes=1 << 20)


def test_it_reuses_a_token_for_the_same_scopes(registry_token):
    with registry_token.client() as client:
        image_push(client, repository="cache/a", tag="v1", platform=AMD64)
        client.counters.clear()
        for _ in range(3):
            client.head_manifest("cache/a", "v1")
    assert client.counters["GET token"] == 1
    # The challenge is known from the pushes: the token is fetched before the
    # first HEAD, so no request is wasted on a 401.
    assert client.counters["HEAD manifest"] == 3


def test_anonymous_pull_works_on_a_token_registry(registry_token):
    with registry_token.client() as admin:
        image_push(admin, repository="anon/pull", tag="v1", platform=AMD64)
    with RegistryClient(registry_token.url, insecure=True) as anonymous:
        assert anonymous.head_manifest("anon/pull", "v1").digest
        with pytest.raises(errors.Unauthorized):
            anonymous.put_manifest("anon/pull", "v2", b"{}", OCI_INDEX)


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_wrong_credentials_are_a_typed_error(mode, request):
    running = request.getfixturevalue(f"registry_{mode}")
    with RegistryClient(running.url, username="admin", password="wrong", insecure=True) as client:
        with pytest.raises(errors.Unauthorized):
            client.ping()


def test_unknown_manifest_keeps_the_registrys_code_and_message(registry_anonymous):
    with registry_anonymous.client() as client:
        image_push(client, repository="known/repo", tag="v1", platform=AMD64)
        with pytest.raises(errors.ManifestUnknown) as caught:
            client.get_manifest("known/repo", "nope")
        with pytest.raises(errors.NameUnknown) as unknown_name:
            list(client.tags("no/such/repo"))
    assert caught.value.code == "MANIFEST_UNKNOWN" and caught.value.status == 404
    assert "manifest unknown" in caught.value.message
    assert unknown_name.value.code == "NAME_UNKNOWN"


def _blob_file(running, digest: str):
    hexdigest = digest.split(":", 1)[1]
    return running.data_dir / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"


def test_a_blob_whose_bytes_do_not_match_its_digest_is_rejected(fresh_registry):
    running = fresh_registry("anonymous")
    with running.client() as client:
        pushed = image_push(client, repository="corrupt/blob", tag="v1", platform=AMD64)
        config = client.get_manifest("corrupt/blob", pushed.digest).config
        path = _blob_file(running, config.digest)
        path.write_bytes(path.read_bytes().replace(b"amd64", b"arm64"))
        with pytest.raises(errors.DigestMismatch):
            client.get_blob("corrupt/blob", config.digest)


def test_a_manifest_whose_bytes_do_not_match_its_digest_is_rejected(fresh_registry):
    running = fresh_registry("anonymous")
    with running.client() as client:
        pushed = image_push(client, repository="corrupt/manifest", tag="v1", platform=AMD64)
        path = _blob_file(running, pushed.digest)
        path.write_bytes(path.read_bytes().replace(b'"size"', b'"size" '))
        with pytest.raises(errors.DigestMismatch):
            client.get_manifest("corrupt/manifest", pushed.digest)
        with pytest.raises(errors.DigestMismatch):
            client.get_manifest("corrupt/manifest", "v1")


def test_a_manifest_put_while_another_client_mounts_its_blobs_again_is_retried(fresh_registry):
    """Distribution 2.8 rewrites a blob's link in place when the blob is mounted
    again; a manifest PUT checking that blob meanwhile answers DIGEST_INVALID
    though the bytes are right (about 1 PUT in 3 under three remounting
    clients). Two pushes into one repository meet it: CI did. The client
    retries; here the retry's wait stops the remounts, so it must succeed."""
    running = fresh_registry("anonymous")
    with running.client() as seeder:
        pushed = image_push(seeder, repository="relink/src", tag="v1", platform=AMD64)
        manifest = seeder.get_manifest("relink/src", pushed.digest)
        for blob in manifest.blobs:
            seeder.mount_blob("relink/dst", blob.digest, "relink/src")

    calm = threading.Event()

    def remount() -> None:
        with running.client() as other:
            while not calm.is_set():
                for blob in manifest.blobs:
                    other.mount_blob("relink/dst", blob.digest, "relink/src")

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        calm.set()
        for future in remounts:
            future.result()

    puts = 0
    with running.client(sleep=sleep) as client, ThreadPoolExecutor(3) as pool:
        remounts = [pool.submit(remount) for _ in range(3)]
        try:
            while not waits and puts < 3000:
                client.put_manifest("relink/dst", manifest.digest, manifest.raw, manifest.media_type)
                puts += 1
        finally:
            calm.set()
    assert waits, f"{puts} PUTs never met the registry's DIGEST_INVALID race"
    assert client.counters["PUT manifest"] == puts + len(waits)
    assert client.manifest_exists("relink/dst", manifest.digest)


def test_a_manifest_over_the_cap_is_refused_without_reading_it(registry_anonymous, monkeypatch):
    with registry_anonymous.client() as client:
        pushed = image_push(client, repository="cap/manifest", tag="v1", platform=AMD64)
        monkeypatch.setattr("registry.client.MAX_MANIFEST_BYTES", pushed.size - 1)
        with pytest.raises(errors.ContentTooLarge):
            client.get_manifest("cap/manifest", "v1")


def test_a_registry_that_is_down_is_a_typed_error(registry_anonymous):
    with RegistryClient(f"http://127.0.0.1:{free_port()}", insecure=True, timeout=2, max_retries=1) as client:
        with pytest.raises(errors.RegistryUnavailable) as caught:
            client.ping()
    assert caught.value.code == "CONNECTION_FAILED"
    assert client.counters["GET ping"] == 2  # one retry, then the error


def test_a_stopped_registry_is_a_typed_error_and_works_again_after_restart(fresh_registry):
    running = fresh_registry("anonymous")
    with running.client(max_retries=0) as client:
        image_push(client, repository="restart/me", tag="v1", platform=AMD64)
        running.stop()
        with pytest.raises(errors.RegistryUnavailable):
            client.head_manifest("restart/me", "v1")
        running.start()
        assert client.head_manifest("restart/me", "v1").digest


def test_plain_http_needs_the_insecure_flag():
    with pytest.raises(errors.RequestInvalid) as caught:
        RegistryClient("http://127.0.0.1:5999")
    assert caught.value.code == "INSECURE_NOT_ALLOWED"


def test_a_blob_copy_may_outlast_the_request_deadline_while_its_bytes_keep_coming(fresh_registry):
    """The deadline stops a trickle, not a real copy: each byte read extends it a little.

    Through a proxy pacing 1 MiB/s, copying a layer of over 1.5 MiB takes more than the 1 s
    deadline; at the minimum rate (64 KiB/s) its bytes earn over 24 s more.
    """
    running = fresh_registry("anonymous")
    with running.client() as client:
        pushed = image_push(client, repository="slow/src", tag="v1", platform=AMD64,
                            content=os.urandom(2 * 1024 * 1024).hex())  # hex: gzip halves it, no more
    proxy = ThrottledProxy(running.port, bytes_per_second=1024 * 1024).start()
    try:
        with RegistryClient(proxy.url, insecure=True, deadline=1) as client:
            layer = max(client.get_manifest("slow/src", pushed.digest).layers, key=lambda blob: blob.size)
            assert layer.size > 1.5 * 1024 * 1024, layer.size
            started = time.monotonic()
            assert client.stream_blob("slow/src", "slow/dst", layer.digest, layer.size) == layer.size
            assert time.monotonic() - started > 1  # longer than the deadline, and finished
            assert client.blob_exists("slow/dst", layer.digest)
    finally:
        proxy.stop()
