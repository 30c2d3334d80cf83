"""A small hostile registry: the read side of the distribution API, misbehaving on cue.

NOT a registry, and not a general double: a real Docker Distribution cannot be
made to lie about digests, stream endless bodies, hang, reset connections, loop
its Link headers or list names that break the grammar. This threaded
http.server on 127.0.0.1 serves exactly:

    GET  /v2/                                  200 {}
    GET  /v2/_catalog                          the repositories (one page)
    GET  /v2/<name>/tags/list                  the tags, with a Link header where a repository loops
    HEAD, GET /v2/<name>/manifests/<ref>       by tag or by digest
    HEAD, GET /v2/<name>/blobs/<digest>        configs and layers
    GET  /token                                a bearer token for USER:PASSWORD
    the writes in `routes` (POST/PUT <path>)   uploads, for the cross-origin cases
    any other write                            405 UNSUPPORTED

Why each case needs this server and not a real Distribution: Distribution
computes digests itself (so it cannot lie about them, nor serve md5, shake or
lying sha512 digests), serves a manifest's `mediaType` as its Content-Type,
refuses unparseable or oversized manifests at push (400 / 413), never hangs,
resets, trickles or sends 5xx and 429 on cue, builds its own `Link` headers
(no loops, never another origin), refuses repository and tag names outside
the grammar (so it cannot list them, nor put script in a tag name or in its
fixed error messages), refuses an index whose child digest breaks the
grammar, and redirects only through its storage middleware (never to plain
http on its own port, never an upload elsewhere). Content a real registry
does serve as readily (script in annotations, impossible config dates,
over-long config fields, a read-only registry) is pushed to one instead:
tests/faults/test_real_registry_content.py.

Each repository misbehaves in one way (its name says how) and also holds a
correct tag `ok`; good repositories sit beside them. What a correct client
must make of each is in `expected_errors` and `good`.

A second origin (same host, another port: the origin is scheme, host and
port) is the place a hostile registry points credentials at: pagination
`Link`s, upload `Location`s, blob redirects and a moved token realm name it.
It answers whatever a careless client would ask of it. Both origins record
every request with its headers (`seen`), so a test can assert that no
`Authorization` reached the second one. With `auth="basic"` or `"bearer"`
the registry asks for credentials (USER, PASSWORD); its token realm is
`realm` (by default `/token` on the registry's own origin). With `tls`, the
registry's port speaks https, and plain http on the same port too (it peeks
at the first byte), so a downgrade redirect to http://same-host:same-port is
recorded if a client follows it.

The server counts requests per path, every fault it actually sent (a fault is
counted when the lying answer, the reset, the hang or the oversize stream
starts), the bytes it managed to write of each streamed body before the
client hung up, and any request whose path escaped /v2/. Every hang and
stream is bounded and `stop()` wakes them, so a broken client cannot make the
suite hang.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from registry.mediatypes import DOCKER_CONFIG, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from tests.harness.tls import TlsFiles

SCRIPT = "<script>alert(1)</script>"
MiB = 1024 * 1024
MAX_HANG_SECONDS = 30.0  # the longest any request is held, whatever a test asks
MAX_STREAM_BYTES = 64 * MiB  # the longest "endless" body; a client that reads it all has failed
STREAM_CHUNK = 64 * 1024
ENDLESS_PAGES = 1000  # the "never-ending" tag list ends here, so a broken client still terminates
UNKNOWN_TYPE = "application/vnd.example.thing+json"
USER = "hostile-user"
PASSWORD = "hostile-password-never-to-leave-its-origin"
TOKEN = "hostile-bearer-token-never-to-leave-its-origin"
TRICKLE_SECONDS = 0.5  # a trickling answer sends one byte this often
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# Catalog entries that break the repository grammar (shared notes, registry-protocol §6).
BAD_NAMES = ("UPPER/Case", "../../etc/passwd", "a//b", "x" * 300, f"html/{SCRIPT}")
# Tag names that break the tag grammar, listed by html/app anyway.
BAD_TAGS = (SCRIPT, "t" * 200, "-starts-with-a-dash")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(data: object) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode()


def _error(code: str, message: str, detail: object = None) -> bytes:
    entry: dict = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return json.dumps({"errors": [entry]}).encode()


@dataclass
class Reply:
    """One answer to a request; `fault` names the misbehaviour (None: a correct answer)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    fault: str | None = None
    hang: float = 0.0  # hold the request this long (bounded, woken by stop), then close without answering
    reset: bool = False  # drop the connection with a TCP reset instead of answering
    stream: int = 0  # instead of `body`, send this many filler bytes (bounded by MAX_STREAM_BYTES)
    declare_length: bool = True  # with `stream`: send Content-Length; else chunked, with no length
    times: int | None = None  # answer only the next `times` requests this way, then the next reply
    trickle: str = ""  # "headers" or "body": send that part one byte every TRICKLE_SECONDS (bounded)


Route = list[Reply] | Callable[[dict[str, list[str]]], Reply]


@dataclass
class StreamRecord:
    path: str
    declared: int | None  # the Content-Length sent, if any
    sent: int = 0  # bytes of body written to the socket
    hung_up: bool = False  # the client closed the connection before the end


@dataclass(frozen=True)
class Seen:
    """One request as it reached a server: which origin, over which scheme, with which headers."""

    origin: str  # "registry" or "other"
    scheme: str
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lowercased

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


@dataclass(frozen=True)
class Good:
    """A tag a correct client must store exactly so."""

    repository: str
    tag: str
    digest: str
    platforms: tuple[str, ...]
    kind: str


class _Image:
    """Bytes of one small single-platform image: manifest, config, one layer."""

    def __init__(self, seed: str, *, os: str = "linux", architecture: str = "amd64", variant: str = "",
                 created: object = "2024-05-01T12:00:00Z", docker: bool = False) -> None:
        self.layer = f"layer of {seed}\n".encode()
        config: dict = {"architecture": architecture, "os": os, "created": created,
                        "config": {"Labels": {"seed": seed}},
                        "rootfs": {"type": "layers", "diff_ids": [sha256(self.layer)]}}
        if variant:
            config["variant"] = variant
        self.config = _json(config)
        self.media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        self.raw = _json({
            "schemaVersion": 2, "mediaType": self.media_type,
            "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, "digest": sha256(self.config),
                       "size": len(self.config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(self.layer), "size": len(self.layer)}],
        })
        self.digest = sha256(self.raw)
        platform = f"{os}/{architecture}" + (f"/{variant}" if variant else "")
        self.platform = {"linux/arm64/v8": "linux/arm64"}.get(platform, platform)

    def descriptor(self, **extra: object) -> dict:
        os_name, architecture, *variant = self.platform.split("/")
        platform = {"os": os_name, "architecture": architecture, **({"variant": variant[0]} if variant else {})}
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.raw), "platform": platform,
                **extra}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.hostile._answer(self)

    do_HEAD = do_GET

    def _write(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.hostile._answer(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = _write


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hostile: HostileRegistry
    origin: str = "registry"
    tls: ssl.SSLContext | None = None

    def finish_request(self, request, client_address) -> None:
        """With TLS: https or plain http on one port, told apart by the first byte (0x16: a handshake)."""
        if self.tls is not None:
            request.settimeout(5)
            try:
                first = request.recv(1, socket.MSG_PEEK)
            except OSError:
                return
            if first == b"\x16":
                try:
                    request = self.tls.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError):
                    return
            request.settimeout(None)
        super().finish_request(request, client_address)


class HostileRegistry:
    """Start with `HostileRegistry().start()`; `stop()` ends every hang and stream at once.

    `catalog` limits the repositories the catalog lists (every route is served
    anyway). `hang_seconds` is how long slow/hang:stuck holds a request;
    `hang_times` makes it hang only the first N requests (None: every one).
    `auth` is "", "basic" or "bearer"; `tls` serves https (and http) on the
    registry's port. `other_routes` are the second origin's (`other_url`).
    """

    def __init__(self, *, catalog: list[str] | None = None, hang_seconds: float = 5.0,
                 hang_times: int | None = None, auth: str = "", tls: TlsFiles | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.other_routes: dict[str, Route] = {}
        self.good: list[Good] = []
        self.expected_errors: dict[tuple[str, str], str] = {}  # (repository, tag or "") -> error code
        self.requests: Counter[str] = Counter()  # "METHOD /path" -> count
        self.faults: Counter[str] = Counter()  # fault -> answers actually sent
        self.streams: list[StreamRecord] = []
        self.escaped: list[str] = []  # paths outside /v2/
        self.seen: list[Seen] = []  # every request on either origin, in order
        self.auth = auth
        self.token_reply: Reply | None = None  # instead of a token: what /token answers
        self._used: Counter[int] = Counter()  # id(reply) -> times used
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._hang_seconds = min(hang_seconds, MAX_HANG_SECONDS)
        self._hang_times = hang_times
        self._tags: dict[str, list[str]] = {}
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.hostile = self
        port = self._httpd.server_address[1]
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_path, tls.key_path)
            self._httpd.tls = context
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.plain_url = f"http://127.0.0.1:{port}"  # the same host and port, without TLS
        self._other = _Server(("127.0.0.1", 0), _Handler)
        self._other.hostile = self
        self._other.origin = "other"
        self.other_url = f"http://127.0.0.1:{self._other.server_address[1]}"
        self.realm = f"{self.url}/token"
        self._build()
        self.catalog = list(catalog) if catalog is not None else list(self._tags) + list(BAD_NAMES)
        self.routes["/v2/"] = [Reply(200, {"Content-Type": "application/json"}, b"{}")]
        self.routes["/v2/_catalog"] = [Reply(
            200, {"Content-Type": "application/json"}, json.dumps({"repositories": self.catalog}).encode(),
            fault="names that break the grammar" if set(BAD_NAMES) & set(self.catalog) else None)]
        self._threads = [threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
                         for server in (self._httpd, self._other)]

    # -- life --------------------------------------------------------------

    def start(self) -> HostileRegistry:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for server, thread in zip((self._httpd, self._other), self._threads, strict=True):
            if thread.is_alive():  # shutdown() waits for a serve_forever that was never started
                server.shutdown()
            server.server_close()

    def __enter__(self) -> HostileRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def seen_by(self, origin: str) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.origin == origin]

    def link_catalog_to_other(self) -> None:
        """The catalog's first page names its next page on the second origin."""
        self.routes["/v2/_catalog"] = [Reply(
            200, {"Content-Type": "application/json",
                  "Link": f'<{self.other_url}/v2/_catalog?n=1000&last=good%2Fapp>; rel="next"'},
            json.dumps({"repositories": ["good/app"]}).encode(), fault="catalog Link to another origin")]

    # -- figures -----------------------------------------------------------

    @property
    def faults_sent(self) -> int:
        return sum(self.faults.values())

    def count(self, method: str, path: str) -> int:
        return self.requests[f"{method} {path}"]

    def stream_for(self, path: str) -> list[StreamRecord]:
        return [record for record in self.streams if record.path == path]

    # -- content -----------------------------------------------------------

    def _repository(self, name: str, tags: list[str]) -> None:
        self._tags[name] = tags
        self.routes[f"/v2/{name}/tags/list"] = [Reply(200, {"Content-Type": "application/json"},
                                                      json.dumps({"name": name, "tags": tags}).encode())]

    def _manifest(self, repository: str, reference: str, *replies: Reply) -> None:
        self.routes[f"/v2/{repository}/manifests/{reference}"] = list(replies)

    def _serve(self, repository: str, raw: bytes, media_type: str, *, tag: str | None = None,
               by_digest: bool = True) -> Reply:
        reply = Reply(200, {"Content-Type": media_type, "Docker-Content-Digest": sha256(raw)}, raw)
        if by_digest:
            self._manifest(repository, sha256(raw), reply)
        if tag is not None:
            self._manifest(repository, tag, reply)
        return reply

    def _blob(self, repository: str, data: bytes, *replies: Reply) -> None:
        self.routes[f"/v2/{repository}/blobs/{sha256(data)}"] = list(replies) or [
            Reply(200, {"Content-Type": "application/octet-stream", "Docker-Content-Digest": sha256(data)}, data)]

    def _image(self, repository: str, image: _Image, *, tag: str | None, good: bool = True) -> _Image:
        self._serve(repository, image.raw, image.media_type, tag=tag)
        self._blob(repository, image.config)
        self._blob(repository, image.layer)
        if good and tag is not None:
            self.good.append(Good(repository, tag, image.digest, (image.platform,), "image"))
        return image

    def _ok(self, repository: str) -> None:
        """The correct tag every misbehaving repository holds beside its faults."""
        self._image(repository, _Image(f"{repository}:ok", architecture="arm64", variant="v8"), tag="ok")

    def _expect(self, repository: str, tag: str, code: str) -> None:
        self.expected_errors[(repository, tag)] = code

    def _build(self) -> None:
        json_type = {"Content-Type": "application/json"}

        # Good repositories: an image, an index of two, a Docker image.
        self._repository("good/app", ["latest", "v1", "v2"])
        v1 = self._image("good/app", _Image("good/app:v1"), tag="v1")
        self._manifest("good/app", "latest", *self.routes[f"/v2/good/app/manifests/{v1.digest}"])
        self.good.append(Good("good/app", "latest", v1.digest, (v1.platform,), "image"))
        amd64 = self._image("good/app", _Image("good/app:v2 amd64"), tag=None)
        arm64 = self._image("good/app", _Image("good/app:v2 arm64", architecture="arm64", variant="v8"), tag=None)
        index = _json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": [amd64.descriptor(), arm64.descriptor()]})
        self._serve("good/app", index, OCI_INDEX, tag="v2")
        self.good.append(Good("good/app", "v2", sha256(index), ("linux/amd64", "linux/arm64"), "index"))
        self._repository("good/other", ["1.0"])
        self._image("good/other", _Image("good/other:1.0", architecture="arm", variant="v7", docker=True), tag="1.0")

        # A manifest whose bytes do not match its digest: by tag (the header lies) and by digest.
        self._repository("bad/digest", ["child-lies", "lying", "ok"])
        self._ok("bad/digest")
        honest = _Image("bad/digest:lying honest")
        other = _Image("bad/digest:lying other")
        self._manifest("bad/digest", "lying", Reply(
            200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": honest.digest}, other.raw,
            fault="digest header does not match the bytes"))
        self._expect("bad/digest", "lying", "DIGEST_MISMATCH")
        child, impostor = _Image("bad/digest child"), _Image("bad/digest impostor")
        parent = _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child.descriptor()]})
        self._serve("bad/digest", parent, OCI_INDEX, tag="child-lies")
        self._manifest("bad/digest", child.digest, Reply(
            200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": child.digest}, impostor.raw,
            fault="bytes fetched by digest are other bytes"))
        self._expect("bad/digest", "child-lies", "DIGEST_MISMATCH")

        # A mediaType that disagrees with Content-Type.
        self._repository("bad/mediatype", ["mismatch", "ok"])
        self._ok("bad/mediatype")
        docker = _Image("bad/mediatype", docker=True)
        self._manifest("bad/mediatype", "mismatch", Reply(
            200, {"Content-Type": OCI_INDEX, "Docker-Content-Digest": docker.digest}, docker.raw,
            fault="mediaType disagrees with Content-Type"))
        self._expect("bad/mediatype", "mismatch", "MEDIA_TYPE_MISMATCH")

        # Malformed JSON: cut short, and nested past any parser's recursion limit.
        self._repository("bad/json", ["broken", "nested", "ok"])
        self._ok("bad/json")
        broken = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {'
        nested = b"[" * 200_000 + b"]" * 200_000
        for tag, raw in (("broken", broken), ("nested", nested)):
            self._manifest("bad/json", tag, Reply(
                200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": sha256(raw)}, raw,
                fault="malformed JSON"))
            self._expect("bad/json", tag, "MANIFEST_INVALID")

        # A manifest over 4 MiB: one says so in Content-Length, one streams without a length.
        self._repository("bad/huge", ["chunked", "declared", "ok"])
        self._ok("bad/huge")
        self._manifest("bad/huge", "declared", Reply(
            200, {"Content-Type": OCI_MANIFEST}, stream=5 * MiB, fault="manifest over 4 MiB, declared"))
        self._manifest("bad/huge", "chunked", Reply(
            200, {"Content-Type": OCI_MANIFEST}, stream=MAX_STREAM_BYTES, declare_length=False,
            fault="manifest over 4 MiB, chunked without a length"))
        self._expect("bad/huge", "declared", "TOO_LARGE")
        self._expect("bad/huge", "chunked", "TOO_LARGE")

        # Configs over their 8 MiB cap (declared, and chunked), one that is not JSON, one with an impossible date.
        self._repository("bad/config", ["big", "big-chunked", "not-json", "ok"])
        self._ok("bad/config")
        for tag, reply in (
            ("big", Reply(200, {"Content-Type": "application/octet-stream"}, stream=9 * MiB,
                          fault="config over its cap, declared")),
            ("big-chunked", Reply(200, {"Content-Type": "application/octet-stream"}, stream=MAX_STREAM_BYTES,
                                  declare_length=False, fault="config over its cap, chunked without a length")),
        ):
            image = self._image("bad/config", _Image(f"bad/config:{tag}"), tag=tag, good=False)
            self._blob("bad/config", image.config, reply)
            self._expect("bad/config", tag, "TOO_LARGE")
        # The manifest names the digest of the bytes served, so the digest check passes and the parse fails.
        garbage = b"\x89PNG not a config"
        not_json = json.loads(_Image("bad/config:not-json").raw)
        not_json["config"].update(digest=sha256(garbage), size=len(garbage))
        self._serve("bad/config", _json(not_json), OCI_MANIFEST, tag="not-json")
        self._blob("bad/config", garbage, Reply(200, {"Content-Type": "application/octet-stream"}, garbage,
                                                fault="config is not JSON"))
        self._expect("bad/config", "not-json", "CONTENT_INVALID")

        # Fields longer than any real one: a platform, a media type, a digest (of a child that is gone), a config.
        self._repository("bad/fields", ["long-digest", "long-platform", "long-type", "ok"])
        self._ok("bad/fields")
        child = self._image("bad/fields", _Image("bad/fields child"), tag=None)
        for tag, descriptor in (
            ("long-platform", child.descriptor(platform={"os": "linux", "architecture": "a" * 100})),
            ("long-type", child.descriptor(mediaType="application/vnd." + "x" * 300 + "+json")),
            ("long-digest", child.descriptor(digest="sha512:" + "ab" * 100)),
        ):
            raw = _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]})
            self._serve("bad/fields", raw, OCI_INDEX, tag=tag).fault = f"{tag.replace('-', ' ')} in an index"
            self._expect("bad/fields", tag, "MANIFEST_INVALID")

        # Unknown media types.
        self._repository("bad/unknown-type", ["ok", "thing"])
        self._ok("bad/unknown-type")
        thing = _json({"schemaVersion": 2, "mediaType": UNKNOWN_TYPE, "payload": {"what": "a thing"}})
        self._manifest("bad/unknown-type", "thing", Reply(
            200, {"Content-Type": UNKNOWN_TYPE, "Docker-Content-Digest": sha256(thing)}, thing,
            fault="unknown media type"))
        self._expect("bad/unknown-type", "thing", "MANIFEST_INVALID")

        # A registry that hangs.
        self._repository("slow/hang", ["ok", "stuck"])
        self._ok("slow/hang")
        stuck = _Image("slow/hang:stuck")
        self._image("slow/hang", stuck, tag=None)
        self._manifest("slow/hang", "stuck",
                       Reply(hang=self._hang_seconds, times=self._hang_times, fault="hang"),
                       *self.routes[f"/v2/slow/hang/manifests/{stuck.digest}"])
        if self._hang_times is None:
            self._expect("slow/hang", "stuck", "TIMEOUT")
        else:
            self.good.append(Good("slow/hang", "stuck", stuck.digest, (stuck.platform,), "image"))

        # Connection resets: twice then fine, and always.
        self._repository("flaky/reset", ["always", "ok", "twice"])
        self._ok("flaky/reset")
        twice = self._image("flaky/reset", _Image("flaky/reset:twice"), tag=None)
        self._manifest("flaky/reset", "twice", Reply(reset=True, times=2, fault="connection reset"),
                       *self.routes[f"/v2/flaky/reset/manifests/{twice.digest}"])
        self.good.append(Good("flaky/reset", "twice", twice.digest, (twice.platform,), "image"))
        self._manifest("flaky/reset", "always", Reply(reset=True, fault="connection reset"))
        self._expect("flaky/reset", "always", "CONNECTION_FAILED")

        # 5xx: 503 twice then fine, and a lasting 500 with the registry's own (hostile) message.
        self._repository("flaky/5xx", ["always", "ok", "twice"])
        self._ok("flaky/5xx")
        twice = self._image("flaky/5xx", _Image("flaky/5xx:twice"), tag=None)
        self._manifest("flaky/5xx", "twice",
                       Reply(503, json_type, _error("UNAVAILABLE", "back soon"), times=2, fault="503"),
                       *self.routes[f"/v2/flaky/5xx/manifests/{twice.digest}"])
        self.good.append(Good("flaky/5xx", "twice", twice.digest, (twice.platform,), "image"))
        self._manifest("flaky/5xx", "always", Reply(
            500, json_type, _error("UNKNOWN", f"storage backend on fire {SCRIPT}"), fault="500"))
        self._expect("flaky/5xx", "always", "UNAVAILABLE")

        # 429 with Retry-After: twice then fine, and one asking for longer than the client waits.
        self._repository("limited/app", ["forever", "ok", "v1"])
        self._ok("limited/app")
        limited = self._image("limited/app", _Image("limited/app:v1"), tag=None)
        self._manifest("limited/app", "v1",
                       Reply(429, {**json_type, "Retry-After": "1"}, _error("TOOMANYREQUESTS", "slow down"),
                             times=2, fault="429"),
                       *self.routes[f"/v2/limited/app/manifests/{limited.digest}"])
        self.good.append(Good("limited/app", "v1", limited.digest, (limited.platform,), "image"))
        self._manifest("limited/app", "forever", Reply(
            429, {**json_type, "Retry-After": "3600"},
            _error("TOOMANYREQUESTS", "pull rate limit exceeded: come back in an hour"), fault="429"))
        self._expect("limited/app", "forever", "TOOMANYREQUESTS")

        # Tag lists that never end: a Link to the same URL, and a Link to ever new URLs repeating the same page.
        self._repository("loop/tags", ["a", "b"])
        self.routes["/v2/loop/tags/tags/list"] = lambda query: Reply(
            200, {**json_type, "Link": '</v2/loop/tags/tags/list?n=1000>; rel="next"'},
            json.dumps({"name": "loop/tags", "tags": ["a", "b"]}).encode(), fault="Link loop")
        self._expect("loop/tags", "", "PAGINATION_LOOP")
        self._repository("loop/pages", ["a", "b"])

        def same_page_forever(query: dict[str, list[str]]) -> Reply:
            page = int((query.get("page") or ["0"])[0])
            link = {"Link": f'</v2/loop/pages/tags/list?n=1000&page={page + 1}>; rel="next"'} \
                if page < ENDLESS_PAGES else {}
            return Reply(200, {**json_type, **link},
                         json.dumps({"name": "loop/pages", "tags": ["a", "b"]}).encode(),
                         fault="Link to a new URL repeating the same page")

        self.routes["/v2/loop/pages/tags/list"] = same_page_forever
        self._expect("loop/pages", "", "PAGINATION_LOOP")

        # A tag list that really never ends: ten new names a page (served, not in the default catalog:
        # only the client's page cap stops it, and a test lowers that cap to see it hold).
        self._repository("loop/endless", [])

        def new_names_forever(query: dict[str, list[str]]) -> Reply:
            page = int((query.get("page") or ["0"])[0])
            link = {"Link": f'</v2/loop/endless/tags/list?n=1000&page={page + 1}>; rel="next"'} \
                if page < ENDLESS_PAGES else {}
            return Reply(200, {**json_type, **link},
                         json.dumps({"name": "loop/endless", "tags": [f"p{page}-{i}" for i in range(10)]}).encode(),
                         fault="a tag list that never ends")

        self.routes["/v2/loop/endless/tags/list"] = new_names_forever
        self._tags.pop("loop/endless")
        self._expect("loop/endless", "", "PAGINATION_LOOP")

        # HTML and script in tag names and error messages (script in annotations is pushed to a real
        # registry instead: tests/faults/test_real_registry_content.py).
        self._repository("html/app", ["err", "ok", *BAD_TAGS])
        self.routes["/v2/html/app/tags/list"][0].fault = "tag names that break the grammar"
        self._ok("html/app")
        self._manifest("html/app", "err", Reply(
            400, json_type, _error("MANIFEST_INVALID", f"{SCRIPT} is not allowed here"), fault="script in an error"))
        self._expect("html/app", "err", "MANIFEST_INVALID")

        # Names that break the grammar: served as if they were fine, so nothing but the client stops them.
        for name in BAD_NAMES:
            self._repository(name, ["v1"])
            self._image(name, _Image(f"{name}:v1"), tag="v1", good=False)
            self._tags.pop(name)  # in the catalog (below), not among the repositories counted as real

        # Digests in algorithms no client should trust: md5 (broken), shake_128 (no fixed length).
        self._repository("bad/algorithm", ["md5", "ok", "shake"])
        self._ok("bad/algorithm")
        for tag, algorithm in (("md5", "md5"), ("shake", "shake_128")):
            image = _Image(f"bad/algorithm:{tag}")
            self._image("bad/algorithm", image, tag=None)
            hexdigest = hashlib.new(algorithm, image.raw)
            claimed = f"{algorithm}:" + (hexdigest.hexdigest(32) if algorithm.startswith("shake") else
                                         hexdigest.hexdigest())
            self._manifest("bad/algorithm", tag, Reply(
                200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": claimed}, image.raw,
                fault=f"{algorithm} digest"))
            self._expect("bad/algorithm", tag, "DIGEST_UNSUPPORTED")
        # Blobs by sha512: one true, one whose bytes are other bytes (served; no manifest names them).
        self.sha512_blob = b"a blob addressed by sha512\n"
        self.sha512_lie = b"bytes that are not the blob\n"
        self.sha512_digest = "sha512:" + hashlib.sha512(self.sha512_blob).hexdigest()
        self.sha512_lying_digest = "sha512:" + hashlib.sha512(b"the blob the registry claims").hexdigest()
        self.routes[f"/v2/bad/algorithm/blobs/{self.sha512_digest}"] = [Reply(
            200, {"Content-Type": "application/octet-stream"}, self.sha512_blob)]
        self.routes[f"/v2/bad/algorithm/blobs/{self.sha512_lying_digest}"] = [Reply(
            200, {"Content-Type": "application/octet-stream"}, self.sha512_lie,
            fault="sha512 blob whose bytes are other bytes")]
        # An upload session on the registry's own origin (relative Location), for blob copies.
        self.routes["POST /v2/sink/app/blobs/uploads/"] = [Reply(
            202, {"Location": "/v2/sink/app/blobs/uploads/session?state=1"})]
        self.routes["PUT /v2/sink/app/blobs/uploads/session"] = [Reply(201, {"Location": "/v2/sink/app/blobs/x"})]

        # -- credentials pointed at another origin (the second server, `other_url`) --
        # A tag list whose next page is on the other origin.
        self._repository("cross/link", ["a"])
        self.routes["/v2/cross/link/tags/list"] = [Reply(
            200, {**json_type, "Link": f'<{self.other_url}/v2/cross/link/tags/list?n=1000&last=a>; rel="next"'},
            json.dumps({"name": "cross/link", "tags": ["a"]}).encode(), fault="tag list Link to another origin")]
        self.other_routes["/v2/cross/link/tags/list"] = [Reply(
            200, json_type, json.dumps({"name": "cross/link", "tags": ["b"]}).encode())]
        self._expect("cross/link", "", "PAGINATION_CROSS_ORIGIN")
        # Blobs redirected to the other origin (a CDN, or a thief): the image is good.
        self._repository("cross/redirect", ["ok"])
        redirected = self._image("cross/redirect", _Image("cross/redirect:ok"), tag="ok")
        for data in (redirected.config, redirected.layer):
            self._blob("cross/redirect", data, Reply(307, {"Location": f"{self.other_url}/cdn/{sha256(data)}"},
                                                     fault="blob redirect to another origin"))
            self.other_routes[f"/cdn/{sha256(data)}"] = [Reply(200, {"Content-Type": "application/octet-stream"},
                                                               data)]
        # An upload whose Location is on the other origin.
        self.routes["POST /v2/cross/upload/blobs/uploads/"] = [Reply(
            202, {"Location": f"{self.other_url}/upload/cross?state=1"}, fault="upload Location on another origin")]
        self.other_routes["PUT /upload/cross"] = [Reply(201, {"Location": "/v2/cross/upload/blobs/x"})]
        # A blob redirected from https to plain http on the same host and port (with `tls`).
        self.downgraded = b"a blob behind a downgrade\n"
        self.routes[f"/v2/cross/downgrade/blobs/{sha256(self.downgraded)}"] = [Reply(
            307, {"Location": f"{self.plain_url}/plain/{sha256(self.downgraded)}"}, fault="redirect to plain http")]
        self.routes[f"/plain/{sha256(self.downgraded)}"] = [Reply(
            200, {"Content-Type": "application/octet-stream"}, self.downgraded)]

        # -- bodies too big or too slow --
        # A tag-list page that never ends, and an error body that never ends (retried as a 5xx is).
        self._repository("huge/page", [])
        self.routes["/v2/huge/page/tags/list"] = [Reply(200, json_type, stream=MAX_STREAM_BYTES, declare_length=False,
                                                        fault="tag-list page over 8 MiB, chunked")]
        self._expect("huge/page", "", "TOO_LARGE")
        self._repository("huge/error", ["err", "ok"])
        self._ok("huge/error")
        self._manifest("huge/error", "err", Reply(500, {"Content-Type": "text/plain"}, stream=MAX_STREAM_BYTES,
                                                  declare_length=False, fault="error body over 1 MiB, chunked"))
        self._expect("huge/error", "err", "UNAVAILABLE")
        # Answers trickled one byte every TRICKLE_SECONDS: the headers, or the body, of a manifest and of a
        # tag list. Not in the default catalog: only a client's total deadline ends them, and the worker's
        # (minutes) would hold a whole-registry scan; the tests use a short one.
        self._repository("slow/trickle", ["body", "headers", "ok"])
        self._ok("slow/trickle")
        trickled = _Image("slow/trickle")
        self._image("slow/trickle", trickled, tag=None)
        for part in ("body", "headers"):
            self._manifest("slow/trickle", part, Reply(
                200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": trickled.digest}, trickled.raw,
                trickle=part, fault=f"manifest {part} trickled"))
            self._expect("slow/trickle", part, "DEADLINE")
        self._tags.pop("slow/trickle")
        self._repository("slow/trickle-list", ["a"])
        self.routes["/v2/slow/trickle-list/tags/list"] = [Reply(
            200, json_type, json.dumps({"name": "slow/trickle-list", "tags": ["a"] * 200}).encode(),
            trickle="body", fault="tag list body trickled")]
        self._expect("slow/trickle-list", "", "DEADLINE")
        self._tags.pop("slow/trickle-list")

    # -- answering ---------------------------------------------------------

    def _count(self, method: str, path: str) -> None:
        with self._lock:
            self.requests[f"{method} {path}"] += 1
            if not path.startswith(("/v2/", "/token", "/plain/")):
                self.escaped.append(path)

    def _pick(self, routes: dict[str, Route], key: str, query: dict[str, list[str]]) -> Reply | None:
        route = routes.get(key)
        if route is None:
            return None
        if callable(route):
            return route(query)
        with self._lock:
            for reply in route:
                if reply.times is None or self._used[id(reply)] < reply.times:
                    self._used[id(reply)] += 1
                    return reply
            return route[-1]

    def _not_found(self, path: str) -> Reply:
        code = ("MANIFEST_UNKNOWN" if "/manifests/" in path else "BLOB_UNKNOWN" if "/blobs/" in path
                else "NAME_UNKNOWN")
        return Reply(404, {"Content-Type": "application/json"}, _error(code, "unknown to this registry"))

    def _challenge(self, headers) -> Reply | None:
        """A 401 unless the request carries the credentials `auth` asks for."""
        given = headers.get("Authorization", "")
        if self.auth == "basic":
            if given == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode():
                return None
            challenge = 'Basic realm="hostile"'
        elif self.auth == "bearer":
            if given == f"Bearer {TOKEN}":
                return None
            challenge = f'Bearer realm="{self.realm}",service="hostile"'
        else:
            return None
        return Reply(401, {"Content-Type": "application/json", "WWW-Authenticate": challenge},
                     _error("UNAUTHORIZED", "authentication required"))

    def _token(self, headers) -> Reply:
        if self.token_reply is not None:
            return self.token_reply
        if headers.get("Authorization", "") != "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode():
            return Reply(401, {"Content-Type": "application/json"}, _error("UNAUTHORIZED", "bad credentials"))
        return Reply(200, {"Content-Type": "application/json"},
                     json.dumps({"token": TOKEN, "expires_in": 300}).encode())

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        origin = handler.server.origin
        scheme = "https" if isinstance(handler.connection, ssl.SSLSocket) else "http"
        with self._lock:
            self.seen.append(Seen(origin, scheme, handler.command, parts.path, parts.query,
                                  {k.lower(): v for k, v in handler.headers.items()}))
        query = parse_qs(parts.query)
        key = parts.path if handler.command in ("GET", "HEAD") else f"{handler.command} {parts.path}"
        if origin == "other":
            reply = (self._token(handler.headers) if parts.path == "/token" else None) \
                or self._pick(self.other_routes, key, query) or self._not_found(parts.path)
            self._send(handler, reply, parts.path)
            return
        self._count(handler.command, parts.path)
        if parts.path == "/token":
            reply = self._token(handler.headers)
        else:
            reply = (self._challenge(handler.headers) if parts.path.startswith("/v2/") else None) \
                or self._pick(self.routes, key, query)
            if reply is None:
                reply = self._not_found(parts.path) if handler.command in ("GET", "HEAD") else Reply(
                    405, {"Content-Type": "application/json"}, _error("UNSUPPORTED", "this registry is read-only"))
        self._send(handler, reply, parts.path)

    def _note_fault(self, reply: Reply) -> None:
        if reply.fault:
            with self._lock:
                self.faults[reply.fault] += 1

    def _send(self, handler: BaseHTTPRequestHandler, reply: Reply, path: str) -> None:
        self._note_fault(reply)
        if reply.hang:
            self._stopping.wait(min(reply.hang, MAX_HANG_SECONDS))
            handler.close_connection = True  # and never answer
            return
        if reply.reset:
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
            handler.close_connection = True
            return
        if reply.trickle:
            self._trickle(handler, reply, path)
            return
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if reply.stream:
            self._stream(handler, reply, path)
            return
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        if handler.command != "HEAD":  # a HEAD answer has headers only (RFC 9110, 9.3.2)
            handler.wfile.write(reply.body)

    def _trickle(self, handler: BaseHTTPRequestHandler, reply: Reply, path: str) -> None:
        """The answer one byte every TRICKLE_SECONDS, its headers or its body, for at most MAX_HANG_SECONDS.

        No single read ever waits longer than TRICKLE_SECONDS, so a client's socket timeout never trips.
        """
        handler.close_connection = True
        head = f"HTTP/1.1 {reply.status} OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
        head += f"X-Padding: {'p' * 200}\r\nContent-Length: {len(reply.body)}\r\n\r\n"
        quick, slow = (head.encode(), reply.body) if reply.trickle == "body" else (b"HTTP/1.1 ", head.encode()[9:])
        record = StreamRecord(path=path, declared=len(reply.body))
        with self._lock:
            self.streams.append(record)
        started = time.monotonic()
        try:
            handler.wfile.write(quick)
            handler.wfile.flush()
            for index in range(len(slow)):
                if self._stopping.wait(TRICKLE_SECONDS) or time.monotonic() - started > MAX_HANG_SECONDS:
                    return
                handler.wfile.write(slow[index : index + 1])
                handler.wfile.flush()
                record.sent += 1
        except OSError:
            record.hung_up = True

    def _stream(self, handler: BaseHTTPRequestHandler, reply: Reply, path: str) -> None:
        """Filler bytes, counted as they leave; stops when the client hangs up, at the bound, or on stop()."""
        total = min(reply.stream, MAX_STREAM_BYTES)
        record = StreamRecord(path=path, declared=total if reply.declare_length else None)
        handler.close_connection = True
        # A small send buffer, so that `sent` is close to what the client took, not what the kernel queued.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_CHUNK)
        if reply.declare_length:
            handler.send_header("Content-Length", str(total))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        if handler.command == "HEAD":
            return
        with self._lock:
            self.streams.append(record)
        chunk = b" " * STREAM_CHUNK
        try:
            while record.sent < total and not self._stopping.is_set():
                piece = chunk[: total - record.sent]
                if reply.declare_length:
                    handler.wfile.write(piece)
                else:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                record.sent += len(piece)
            if not reply.declare_length:
                handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:  # BrokenPipeError, ConnectionResetError: the client hung up
            record.hung_up = True
