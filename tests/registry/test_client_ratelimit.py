"""Rate limits, 5xx and connection resets: the client's retry rules.

A NARROW TEST DOUBLE, not a registry: a real Docker Distribution cannot be
made to answer 429 (nor 503 or a reset on cue), so a tiny http.server on
127.0.0.1 answers a script of replies per (method, path) and records what it
received. It implements only what each test needs: `GET /v2/` 200, and for
the paths a test scripts, the status, headers and OCI error body given.
Everything else about the protocol is tested against real registries in
test_client.py.

`sleep=` is injected so the waits are recorded instead of slept.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from registry import RegistryClient, errors
from registry.transport import RateLimit

DIGEST = "sha256:" + "ab" * 32
MANIFEST_PATH = "/v2/x/manifests/t"
UPLOADS_PATH = "/v2/x/blobs/uploads/"
SLOW_DOWN = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}).encode()


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str | Callable[[], str]] = field(default_factory=dict)
    body: bytes = b""
    reset: bool = False  # read the request, then drop the connection with a TCP reset


def too_many(retry_after: str | Callable[[], str] | None = "1", **headers: str) -> Reply:
    extra = {"Retry-After": retry_after} if retry_after is not None else {}
    return Reply(429, {"Content-Type": "application/json", **extra, **headers}, SLOW_DOWN)


def manifest_found(**headers: str) -> Reply:
    return Reply(200, {"Docker-Content-Digest": DIGEST,
                       "Content-Type": "application/vnd.oci.image.manifest.v1+json", **headers}, b"{}")


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedRegistry:
    """Answers each (method, path) from its queue of replies; the last reply repeats."""

    def __init__(self) -> None:
        self.script: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self.received: list[Received] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                double.received.append(Received(self.command, self.path, dict(self.headers), body))
                reply = double.next_reply(self.command, path)
                if reply.reset:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value() if callable(value) else value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":  # a HEAD answer has headers only (RFC 9110, 9.3.2)
                    self.wfile.write(reply.body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.on("GET", "/v2/", Reply(200, {"Content-Type": "application/json"}, b"{}"))
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.script[(method, path)] = deque(replies)

    def next_reply(self, method: str, path: str) -> Reply:
        queue = self.script.get((method, path))
        if not queue:
            return Reply(404, {"Content-Type": "application/json"},
                         json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": "not scripted"}]}).encode())
        return queue.popleft() if len(queue) > 1 else queue[0]

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.received if r.method == method and r.path.split("?", 1)[0] == path)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def double():
    server = ScriptedRegistry()
    yield server
    server.stop()


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def client(double, waits):
    with RegistryClient(double.url, insecure=True, timeout=5, sleep=waits.append) as client:
        yield client


def test_it_waits_the_retry_after_seconds_and_then_succeeds(double, waits, client):
    double.on("HEAD", MANIFEST_PATH, too_many("1"), too_many("1"), manifest_found())
    head = client.head_manifest("x", "t")
    assert head.digest == DIGEST
    assert waits == [1.0, 1.0]
    assert double.count("HEAD", MANIFEST_PATH) == 3
    assert client.counters["HEAD manifest"] == 3


def test_429s_that_outlast_max_retries_raise_rate_limited_with_the_registrys_message(double, waits):
    double.on("GET", MANIFEST_PATH, too_many("1"))
    with RegistryClient(double.url, insecure=True, max_retries=2, sleep=waits.append) as client:
        with pytest.raises(errors.RateLimited) as caught:
            client.get_manifest("x", "t")
    assert caught.value.retry_after == 1.0
    assert caught.value.message == "slow down"
    assert caught.value.code == "TOOMANYREQUESTS" and caught.value.status == 429
    assert waits == [1.0, 1.0]
    assert double.count("GET", MANIFEST_PATH) == 3  # the first try and max_retries more


def test_a_head_answered_429_is_rate_limited_even_though_a_head_answer_has_no_body(double, waits):
    # Docker Hub answers a HEAD over the limit with headers only: no registry
    # message to show, but the type and Retry-After must be right.
    double.on("HEAD", MANIFEST_PATH, too_many("7"))
    with RegistryClient(double.url, insecure=True, max_retries=1, sleep=waits.append) as client:
        with pytest.raises(errors.RateLimited) as caught:
            client.head_manifest("x", "t")
    assert caught.value.retry_after == 7.0 and caught.value.status == 429
    assert "429" in caught.value.message
    assert waits == [7.0]


def test_a_retry_after_longer_than_max_retry_wait_raises_at_once_without_sleeping(double, waits):
    double.on("HEAD", MANIFEST_PATH, too_many("120"), manifest_found())
    with RegistryClient(double.url, insecure=True, max_retry_wait=30, sleep=waits.append) as client:
        with pytest.raises(errors.RateLimited) as caught:
            client.head_manifest("x", "t")
    assert caught.value.retry_after == 120.0
    assert waits == []
    assert double.count("HEAD", MANIFEST_PATH) == 1


def test_an_http_date_retry_after_is_understood(double, waits, client):
    # The date is made when the 429 is sent; HTTP-dates have whole seconds.
    double.on("HEAD", MANIFEST_PATH, too_many(lambda: formatdate(time.time() + 5, usegmt=True)), manifest_found())
    assert client.head_manifest("x", "t").digest == DIGEST
    # 4 to 5 s ahead when sent (whole seconds), less the time it took to arrive:
    # understood as a date, neither ignored (0) nor read as a number.
    assert len(waits) == 1 and 2.0 <= waits[0] <= 5.0, waits


def test_an_http_date_retry_after_in_the_past_means_retry_now(double, waits, client):
    double.on("HEAD", MANIFEST_PATH, too_many(formatdate(time.time() - 3600, usegmt=True)), manifest_found())
    assert client.head_manifest("x", "t").digest == DIGEST
    assert waits == [0.0]


def test_a_429_without_retry_after_is_retried_with_backoff(double, waits, client):
    double.on("HEAD", MANIFEST_PATH, too_many(None), too_many(None), manifest_found())
    assert client.head_manifest("x", "t").digest == DIGEST
    assert waits == [0.25, 0.5]


def test_ratelimit_headers_are_recorded_on_the_client(double, waits, client):
    assert client.rate_limit is None
    double.on("HEAD", MANIFEST_PATH,
              manifest_found(**{"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "1;w=21600"}),
              too_many("1", **{"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"}),
              manifest_found(**{"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "99;w=21600"}))
    client.head_manifest("x", "t")
    assert client.rate_limit == RateLimit(limit="100;w=21600", remaining="1;w=21600")
    client.head_manifest("x", "t")  # a 429 (recorded too), then the window resets
    assert waits == [1.0]
    assert client.rate_limit == RateLimit(limit="100;w=21600", remaining="99;w=21600")


def test_the_remaining_count_of_the_429_that_ends_the_retries_is_what_the_client_keeps(double, waits):
    double.on("HEAD", MANIFEST_PATH,
              too_many("1", **{"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"}))
    with RegistryClient(double.url, insecure=True, max_retries=0, sleep=waits.append) as client:
        with pytest.raises(errors.RateLimited):
            client.head_manifest("x", "t")
    assert client.rate_limit == RateLimit(limit="100;w=21600", remaining="0;w=21600")


def test_a_503_on_get_is_retried_with_backoff_and_then_raises_registry_unavailable(double, waits):
    unavailable = Reply(503, {"Content-Type": "application/json"},
                        json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "maintenance"}]}).encode())
    double.on("GET", MANIFEST_PATH, unavailable)
    with RegistryClient(double.url, insecure=True, max_retries=3, sleep=waits.append) as client:
        with pytest.raises(errors.RegistryUnavailable) as caught:
            client.get_manifest("x", "t")
    assert caught.value.status == 503 and caught.value.message == "maintenance"
    assert waits == [0.25, 0.5, 1.0]
    assert double.count("GET", MANIFEST_PATH) == 4


def test_a_503_on_get_that_passes_is_retried_until_it_succeeds(double, waits, client):
    double.on("GET", "/v2/", Reply(503), Reply(502), Reply(200, {}, b"{}"))
    client.ping()
    assert waits == [0.25, 0.5]
    assert double.count("GET", "/v2/") == 3


def test_a_post_with_a_body_is_not_retried_after_a_connection_reset(double, waits, client):
    # The registry may have acted on the body before the connection dropped.
    double.on("POST", UPLOADS_PATH, Reply(reset=True), Reply(202, {"Location": "/v2/x/blobs/uploads/u1"}))
    with pytest.raises(errors.RegistryUnavailable) as caught:
        client.request("POST", UPLOADS_PATH, op="POST upload", data=b"layer bytes", ok=(202,))
    assert caught.value.code == "CONNECTION_FAILED"
    assert waits == []
    assert double.count("POST", UPLOADS_PATH) == 1
    assert double.received[-1].body == b"layer bytes"


def test_a_put_with_a_body_is_not_retried_after_a_connection_reset(double, waits, client):
    double.on("PUT", MANIFEST_PATH, Reply(reset=True), Reply(201, {"Docker-Content-Digest": DIGEST}))
    with pytest.raises(errors.RegistryUnavailable):
        client.put_manifest("x", "t", b"{}", "application/vnd.oci.image.manifest.v1+json")
    assert waits == []
    assert double.count("PUT", MANIFEST_PATH) == 1


def test_a_post_with_a_body_answered_503_is_not_retried(double, waits, client):
    double.on("POST", UPLOADS_PATH, Reply(503), Reply(202, {"Location": "/v2/x/blobs/uploads/u1"}))
    with pytest.raises(errors.RegistryUnavailable) as caught:
        client.request("POST", UPLOADS_PATH, op="POST upload", data=b"layer bytes", ok=(202,))
    assert caught.value.status == 503
    assert waits == [] and double.count("POST", UPLOADS_PATH) == 1


def test_a_post_without_a_body_is_retried_after_a_connection_reset(double, waits, client):
    # What request() promises: a bodiless request counts as idempotent. Opening
    # an upload session twice at worst leaves one unused session behind.
    double.on("POST", UPLOADS_PATH, Reply(reset=True), Reply(202, {"Location": "/v2/x/blobs/uploads/u1"}))
    location = client.start_upload("x")
    assert location == f"{double.url}/v2/x/blobs/uploads/u1"
    assert waits == [0.25]
    assert double.count("POST", UPLOADS_PATH) == 2


def test_a_post_with_a_body_answered_429_is_sent_again_with_the_same_body(double, waits, client):
    # A 429 means the registry did not act on the request: replaying it is safe.
    double.on("POST", UPLOADS_PATH, too_many("2"), Reply(202, {"Location": "/v2/x/blobs/uploads/u1"}))
    response = client.request("POST", UPLOADS_PATH, op="POST upload", data=b"layer bytes", ok=(202,))
    assert response.status_code == 202
    assert waits == [2.0]
    assert [r.body for r in double.received if r.method == "POST"] == [b"layer bytes", b"layer bytes"]


def test_a_streamed_body_answered_429_raises_at_once_as_it_cannot_be_replayed(double, waits, client):
    double.on("PUT", "/v2/x/blobs/uploads/u1", too_many("1"), Reply(201))
    with pytest.raises(errors.RateLimited) as caught:
        client.request("PUT", "/v2/x/blobs/uploads/u1?digest=" + DIGEST, op="PUT blob",
                       data=io.BytesIO(b"streamed layer"), ok=(201,))
    assert caught.value.retry_after == 1.0
    assert waits == []
    assert double.count("PUT", "/v2/x/blobs/uploads/u1") == 1
