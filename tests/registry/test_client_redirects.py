"""Blob GETs redirected to another host, as registries do to a CDN.

A real Docker Distribution with htpasswd auth and the storage `redirect`
middleware answers blob GETs and HEADs with `307 Location: <baseurl scheme
and host> + <storage path>`. Distribution 2.8 keeps only the scheme and host
of `baseurl` (it drops any path), and the storage path is relative to the
filesystem driver's `rootdirectory`: an http.server on 127.0.0.2 (another
host than the registry's 127.0.0.1) serving that folder plays the CDN and
records the headers it receives.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from manifests.stack.distribution import RunningRegistry
from manifests.stack.ports import free_port
from registry import errors
from registry.images import image_push
from registry.mediatypes import sha256_digest
from registry.platform import Platform

AMD64 = Platform("linux", "amd64")
CDN_HOST = "127.0.0.2"


class Cdn:
    """Serves a folder read-only on 127.0.0.2 and records every request's headers."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[dict] = []
        cdn = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def send_head(self):
                cdn.requests.append({"method": self.command, "path": self.path,
                                     "headers": {k.lower(): v for k, v in self.headers.items()}})
                return super().send_head()

        self._httpd = ThreadingHTTPServer((CDN_HOST, 0), functools.partial(Handler, directory=str(folder)))
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://{CDN_HOST}:{self.port}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass
class RedirectingRegistry(RunningRegistry):
    """The harness's registry plus `middleware: storage: - name: redirect`."""

    cdn_url: str = ""

    def write_config(self) -> None:
        super().write_config()
        with self.config_path.open("a") as config:
            config.write("middleware:\n  storage:\n    - name: redirect\n      options:\n"
                         f"        baseurl: {self.cdn_url}\n")


@dataclass
class Sent:
    method: str
    url: str
    status: int
    authorization: bool
    location: str


def _record_requests(client) -> list[Sent]:
    """Every HTTP exchange the client makes, one per redirect hop, as sent on the wire."""
    sent: list[Sent] = []

    def hook(response, *args, **kwargs):
        sent.append(Sent(response.request.method, response.request.url, response.status_code,
                         "Authorization" in response.request.headers, response.headers.get("Location", "")))

    client.session.hooks["response"].append(hook)
    return sent


@pytest.fixture
def redirecting(tmp_path):
    folder = tmp_path / "registry"
    (folder / "data").mkdir(parents=True)
    cdn = Cdn(folder / "data")
    running = RedirectingRegistry(mode="basic", port=free_port(), folder=folder, cdn_url=cdn.base_url).start()
    yield running, cdn
    running.shutdown()
    cdn.stop()


def _storage_path(digest: str) -> str:
    hexdigest = digest.split(":", 1)[1]
    return f"/docker/registry/v2/blobs/sha256/{hexdigest[:2]}/{hexdigest}/data"


def test_a_redirected_blob_get_returns_the_verified_bytes_without_sending_credentials_to_the_cdn(redirecting):
    running, cdn = redirecting
    with running.client() as client:
        pushed = image_push(client, repository="cdn/image", tag="v1", platform=AMD64)
        manifest = client.get_manifest("cdn/image", pushed.digest)
        cdn.requests.clear()
        sent = _record_requests(client)
        blobs = {blob.digest: client.get_blob("cdn/image", blob.digest, max_bytes=1 << 20)
                 for blob in (manifest.config, *manifest.layers)}

    for digest, raw in blobs.items():
        assert sha256_digest(raw) == digest
        assert raw == (running.data_dir / _storage_path(digest).lstrip("/")).read_bytes()
    # What Distribution 2.8 actually sends: baseurl's scheme and host + the storage path.
    to_registry = [s for s in sent if s.url.startswith(running.url)]
    to_cdn = [s for s in sent if s.url.startswith(cdn.base_url)]
    assert [(s.method, s.status) for s in to_registry] == [("GET", 307)] * len(blobs)
    assert [s.location for s in to_registry] == [cdn.base_url.rstrip("/") + _storage_path(d) for d in blobs]
    assert all(s.authorization for s in to_registry), "the registry needs the credentials"
    assert [(s.method, s.status, s.authorization) for s in to_cdn] == [("GET", 200, False)] * len(blobs)
    # And on the CDN side, whatever the client thinks it sent:
    assert [r["path"] for r in cdn.requests] == [_storage_path(d) for d in blobs]
    assert all("authorization" not in r["headers"] for r in cdn.requests), cdn.requests


def test_a_config_blob_read_as_json_follows_the_redirect(redirecting):
    running, cdn = redirecting
    with running.client() as client:
        pushed = image_push(client, repository="cdn/config", tag="v1", platform=AMD64)
        config = client.get_json_blob("cdn/config", client.get_manifest("cdn/config", pushed.digest).config.digest)
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert cdn.requests and all("authorization" not in r["headers"] for r in cdn.requests)


def test_a_redirected_blob_whose_bytes_do_not_match_its_digest_is_rejected(redirecting):
    running, cdn = redirecting
    with running.client() as client:
        pushed = image_push(client, repository="cdn/corrupt", tag="v1", platform=AMD64)
        config = client.get_manifest("cdn/corrupt", pushed.digest).config
        path = running.data_dir / _storage_path(config.digest).lstrip("/")
        path.write_bytes(path.read_bytes().replace(b"amd64", b"arm64"))
        with pytest.raises(errors.DigestMismatch):
            client.get_blob("cdn/corrupt", config.digest)
    assert cdn.requests, "the corrupt bytes came from the CDN"


def test_it_streams_a_blob_across_repositories_through_the_redirect(redirecting):
    running, cdn = redirecting
    with running.client() as client:
        pushed = image_push(client, repository="cdn/src", tag="v1", platform=AMD64)
        manifest = client.get_manifest("cdn/src", pushed.digest)
        cdn.requests.clear()
        sent = _record_requests(client)
        streamed = {blob.digest: client.stream_blob("cdn/src", "cdn/dst", blob.digest, blob.size)
                    for blob in manifest.blobs}
        assert streamed == {blob.digest: blob.size for blob in manifest.blobs}
        client.put_manifest("cdn/dst", "v1", manifest.raw, manifest.media_type)
        assert client.head_manifest("cdn/dst", "v1").digest == pushed.digest
        sent_before_reading_back = list(sent)
        for blob in manifest.blobs:
            assert sha256_digest(client.get_blob("cdn/dst", blob.digest, max_bytes=1 << 20)) == blob.digest

    redirected = [s for s in sent_before_reading_back if s.status == 307]
    assert [s.url for s in redirected] == [f"{running.url}/v2/cdn/src/blobs/{b.digest}" for b in manifest.blobs]
    assert all(s.authorization for s in redirected)
    puts = [s for s in sent_before_reading_back if s.method == "PUT" and "/blobs/uploads/" in s.url]
    assert len(puts) == len(manifest.blobs) and all(s.authorization and s.status == 201 for s in puts)
    assert [r["path"] for r in cdn.requests[: len(manifest.blobs)]] == [_storage_path(b.digest)
                                                                        for b in manifest.blobs]
    assert all("authorization" not in r["headers"] for r in cdn.requests), cdn.requests
    assert all(not s.authorization for s in sent if s.url.startswith(cdn.base_url))
