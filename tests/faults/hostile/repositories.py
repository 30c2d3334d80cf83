"""What the hostile registry serves: one misbehaving repository per fault, each beside a correct tag."""

from __future__ import annotations

import hashlib
import json

from registry.mediatypes import OCI_INDEX, OCI_MANIFEST

from .content import (
    BAD_NAMES,
    BAD_TAGS,
    ENDLESS_PAGES,
    MAX_STREAM_BYTES,
    SCRIPT,
    UNKNOWN_TYPE,
    Good,
    Image,
    MiB,
    Reply,
    Route,
    error_body,
    json_bytes,
    sha256,
)


class Content:
    """The routes, good tags and expected errors; HostileRegistry answers from them."""

    routes: dict[str, Route]
    other_routes: dict[str, Route]
    good: list[Good]
    expected_errors: dict[tuple[str, str], str]
    other_url: str
    plain_url: str
    _tags: dict[str, list[str]]
    _hang_seconds: float
    _hang_times: int | None

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

    def _image(self, repository: str, image: Image, *, tag: str | None, good: bool = True) -> Image:
        self._serve(repository, image.raw, image.media_type, tag=tag)
        self._blob(repository, image.config)
        self._blob(repository, image.layer)
        if good and tag is not None:
            self.good.append(Good(repository, tag, image.digest, (image.platform,), "image"))
        return image

    def _ok(self, repository: str) -> None:
        """The correct tag every misbehaving repository holds beside its faults."""
        self._image(repository, Image(f"{repository}:ok", architecture="arm64", variant="v8"), tag="ok")

    def _expect(self, repository: str, tag: str, code: str) -> None:
        self.expected_errors[(repository, tag)] = code

    def _build(self) -> None:
        self._build_good()
        self._build_oversize()
        self._build_unreliable()
        self._build_loops()
        self._build_names()
        self._build_cross()

    def _build_good(self) -> None:
        """Good repositories, and manifests that lie about themselves."""
        # Good repositories: an image, an index of two, a Docker image.
        self._repository("good/app", ["latest", "v1", "v2"])
        v1 = self._image("good/app", Image("good/app:v1"), tag="v1")
        self._manifest("good/app", "latest", *self.routes[f"/v2/good/app/manifests/{v1.digest}"])
        self.good.append(Good("good/app", "latest", v1.digest, (v1.platform,), "image"))
        amd64 = self._image("good/app", Image("good/app:v2 amd64"), tag=None)
        arm64 = self._image("good/app", Image("good/app:v2 arm64", architecture="arm64", variant="v8"), tag=None)
        index = json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": [amd64.descriptor(), arm64.descriptor()]})
        self._serve("good/app", index, OCI_INDEX, tag="v2")
        self.good.append(Good("good/app", "v2", sha256(index), ("linux/amd64", "linux/arm64"), "index"))
        self._repository("good/other", ["1.0"])
        self._image("good/other", Image("good/other:1.0", architecture="arm", variant="v7", docker=True), tag="1.0")

        # A manifest whose bytes do not match its digest: by tag (the header lies) and by digest.
        self._repository("bad/digest", ["child-lies", "lying", "ok"])
        self._ok("bad/digest")
        honest = Image("bad/digest:lying honest")
        other = Image("bad/digest:lying other")
        self._manifest("bad/digest", "lying", Reply(
            200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": honest.digest}, other.raw,
            fault="digest header does not match the bytes"))
        self._expect("bad/digest", "lying", "DIGEST_MISMATCH")
        child, impostor = Image("bad/digest child"), Image("bad/digest impostor")
        parent = json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child.descriptor()]})
        self._serve("bad/digest", parent, OCI_INDEX, tag="child-lies")
        self._manifest("bad/digest", child.digest, Reply(
            200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": child.digest}, impostor.raw,
            fault="bytes fetched by digest are other bytes"))
        self._expect("bad/digest", "child-lies", "DIGEST_MISMATCH")

        # A mediaType that disagrees with Content-Type.
        self._repository("bad/mediatype", ["mismatch", "ok"])
        self._ok("bad/mediatype")
        docker = Image("bad/mediatype", docker=True)
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

    def _build_oversize(self) -> None:
        """Manifests and configs too big, not JSON, with fields too long, of unknown types."""
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
            image = self._image("bad/config", Image(f"bad/config:{tag}"), tag=tag, good=False)
            self._blob("bad/config", image.config, reply)
            self._expect("bad/config", tag, "TOO_LARGE")
        # The manifest names the digest of the bytes served, so the digest check passes and the parse fails.
        garbage = b"\x89PNG not a config"
        not_json = json.loads(Image("bad/config:not-json").raw)
        not_json["config"].update(digest=sha256(garbage), size=len(garbage))
        self._serve("bad/config", json_bytes(not_json), OCI_MANIFEST, tag="not-json")
        self._blob("bad/config", garbage, Reply(200, {"Content-Type": "application/octet-stream"}, garbage,
                                                fault="config is not JSON"))
        self._expect("bad/config", "not-json", "CONTENT_INVALID")

        # Fields longer than any real one: a platform, a media type, a digest (of a child that is gone), a config.
        self._repository("bad/fields", ["long-digest", "long-platform", "long-type", "ok"])
        self._ok("bad/fields")
        child = self._image("bad/fields", Image("bad/fields child"), tag=None)
        for tag, descriptor in (
            ("long-platform", child.descriptor(platform={"os": "linux", "architecture": "a" * 100})),
            ("long-type", child.descriptor(mediaType="application/vnd." + "x" * 300 + "+json")),
            ("long-digest", child.descriptor(digest="sha512:" + "ab" * 100)),
        ):
            raw = json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]})
            self._serve("bad/fields", raw, OCI_INDEX, tag=tag).fault = f"{tag.replace('-', ' ')} in an index"
            self._expect("bad/fields", tag, "MANIFEST_INVALID")

        # Unknown media types.
        self._repository("bad/unknown-type", ["ok", "thing"])
        self._ok("bad/unknown-type")
        thing = json_bytes({"schemaVersion": 2, "mediaType": UNKNOWN_TYPE, "payload": {"what": "a thing"}})
        self._manifest("bad/unknown-type", "thing", Reply(
            200, {"Content-Type": UNKNOWN_TYPE, "Docker-Content-Digest": sha256(thing)}, thing,
            fault="unknown media type"))
        self._expect("bad/unknown-type", "thing", "MANIFEST_INVALID")

    def _build_unreliable(self) -> None:
        """Hangs, resets, 5xx and 429."""
        json_type = {"Content-Type": "application/json"}
        # A registry that hangs.
        self._repository("slow/hang", ["ok", "stuck"])
        self._ok("slow/hang")
        stuck = Image("slow/hang:stuck")
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
        twice = self._image("flaky/reset", Image("flaky/reset:twice"), tag=None)
        self._manifest("flaky/reset", "twice", Reply(reset=True, times=2, fault="connection reset"),
                       *self.routes[f"/v2/flaky/reset/manifests/{twice.digest}"])
        self.good.append(Good("flaky/reset", "twice", twice.digest, (twice.platform,), "image"))
        self._manifest("flaky/reset", "always", Reply(reset=True, fault="connection reset"))
        self._expect("flaky/reset", "always", "CONNECTION_FAILED")

        # 5xx: 503 twice then fine, and a lasting 500 with the registry's own (hostile) message.
        self._repository("flaky/5xx", ["always", "ok", "twice"])
        self._ok("flaky/5xx")
        twice = self._image("flaky/5xx", Image("flaky/5xx:twice"), tag=None)
        self._manifest("flaky/5xx", "twice",
                       Reply(503, json_type, error_body("UNAVAILABLE", "back soon"), times=2, fault="503"),
                       *self.routes[f"/v2/flaky/5xx/manifests/{twice.digest}"])
        self.good.append(Good("flaky/5xx", "twice", twice.digest, (twice.platform,), "image"))
        self._manifest("flaky/5xx", "always", Reply(
            500, json_type, error_body("UNKNOWN", f"storage backend on fire {SCRIPT}"), fault="500"))
        self._expect("flaky/5xx", "always", "UNAVAILABLE")

        # 429 with Retry-After: twice then fine, and one asking for longer than the client waits.
        self._repository("limited/app", ["forever", "ok", "v1"])
        self._ok("limited/app")
        limited = self._image("limited/app", Image("limited/app:v1"), tag=None)
        self._manifest("limited/app", "v1",
                       Reply(429, {**json_type, "Retry-After": "1"}, error_body("TOOMANYREQUESTS", "slow down"),
                             times=2, fault="429"),
                       *self.routes[f"/v2/limited/app/manifests/{limited.digest}"])
        self.good.append(Good("limited/app", "v1", limited.digest, (limited.platform,), "image"))
        self._manifest("limited/app", "forever", Reply(
            429, {**json_type, "Retry-After": "3600"},
            error_body("TOOMANYREQUESTS", "pull rate limit exceeded: come back in an hour"), fault="429"))
        self._expect("limited/app", "forever", "TOOMANYREQUESTS")

    def _build_loops(self) -> None:
        """Tag lists that never end."""
        json_type = {"Content-Type": "application/json"}
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

    def _build_names(self) -> None:
        """Names and digests no client should trust."""
        json_type = {"Content-Type": "application/json"}
        # HTML and script in tag names and error messages (script in annotations is pushed to a real
        # registry instead: tests/faults/test_real_registry_content.py).
        self._repository("html/app", ["err", "ok", *BAD_TAGS])
        self.routes["/v2/html/app/tags/list"][0].fault = "tag names that break the grammar"
        self._ok("html/app")
        self._manifest("html/app", "err", Reply(
            400, json_type, error_body("MANIFEST_INVALID", f"{SCRIPT} is not allowed here"), fault="script in an error"))
        self._expect("html/app", "err", "MANIFEST_INVALID")

        # Names that break the grammar: served as if they were fine, so nothing but the client stops them.
        for name in BAD_NAMES:
            self._repository(name, ["v1"])
            self._image(name, Image(f"{name}:v1"), tag="v1", good=False)
            self._tags.pop(name)  # in the catalog (below), not among the repositories counted as real

        # Digests in algorithms no client should trust: md5 (broken), shake_128 (no fixed length).
        self._repository("bad/algorithm", ["md5", "ok", "shake"])
        self._ok("bad/algorithm")
        for tag, algorithm in (("md5", "md5"), ("shake", "shake_128")):
            image = Image(f"bad/algorithm:{tag}")
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

    def _build_cross(self) -> None:
        """Credentials pointed at another origin, and bodies too big or too slow."""
        json_type = {"Content-Type": "application/json"}
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
        redirected = self._image("cross/redirect", Image("cross/redirect:ok"), tag="ok")
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
        trickled = Image("slow/trickle")
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
