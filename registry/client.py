"""A client of the OCI Distribution API: one method per registry operation.

Each public method is one registry operation, named after the spec's endpoint
it implements, on top of the transport's request loop (transport.py), which
authenticates, follows redirects, caps bodies and types every error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from . import errors
from .auth import CATALOG_SCOPE, repository_scope
from .deadline import Deadline, current
from .mediatypes import MANIFEST_ACCEPT, Manifest, parse_manifest, sha256_digest
from .reference import digest_hasher, digest_matches, validate_digest
from .transport import MAX_PAGE_BYTES, Transport, origin_text

logger = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 8 * 1024 * 1024
MAX_NAMES = 100_000  # repositories in a catalog, or tags in one repository
PAGE_SIZE = 1000  # Distribution 2.8+ refuses more (PAGINATION_NUMBER_INVALID).
MAX_PAGES = 10_000
# A streamed blob copy may take longer than the deadline, by one second per this many bytes read.
MIN_STREAM_RATE = 64 * 1024


@dataclass(frozen=True)
class ManifestHead:
    digest: str  # "" when the registry did not send Docker-Content-Digest
    media_type: str
    size: int


@dataclass(frozen=True)
class ManifestPut:
    """What a manifest PUT answered: the digest stored, and whether the answer proves it."""

    digest: str
    confirmed: bool



class _HashingReader:
    """A file-like view of a streamed response that hashes what it hands out.

    `__len__` lets requests send a Content-Length instead of chunked encoding.
    """

    def __init__(self, response: requests.Response, size: int, digest: str,
                 on_bytes: Callable[[int], None]) -> None:
        self._raw = response.raw
        self._size = size
        self._expected = digest
        self._hash = digest_hasher(digest)
        self._on_bytes = on_bytes
        self.read_bytes = 0

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int = -1) -> bytes:
        chunk = self._raw.read(amount if amount and amount > 0 else 1024 * 1024, decode_content=True)
        if chunk:
            self._hash.update(chunk)
            self.read_bytes += len(chunk)
            self._on_bytes(len(chunk))
        return chunk

    @property
    def matches(self) -> bool:
        return self._hash.hexdigest() == self._expected.partition(":")[2]


def _next_link(response: requests.Response) -> str | None:
    """The `rel="next"` target of a Link header, verbatim (RFC 8288)."""
    header = response.headers.get("Link", "")
    for part in header.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if start != -1 and end > start:
                return part[start + 1 : end]
    return None


class RegistryClient(Transport):
    """One registry, one set of credentials, one connection pool: the endpoint operations.

    `url` is the registry's base URL (https://ghcr.io, http://127.0.0.1:5000).
    Plain http and unverified TLS are used only when `insecure` is set, as
    `docker manifest --insecure` requires.
    """
    def _paginate(self, path: str, key: str, *, op: str, scopes: tuple[str, ...],
                  page_size: int = PAGE_SIZE) -> Iterator[str]:
        """Follow `Link: <..>; rel="next"` verbatim on the registry's own origin; fall back to `last=`.

        A Link to another origin (scheme, host or port) is not the registry: refused, never sent
        our credentials. Every page is capped (MAX_PAGE_BYTES), and so are the names (MAX_NAMES).
        """
        url: str | None = f"{path}?{urlencode({'n': page_size})}"
        seen: set[str] = set()
        names: set[str] = set()
        for _ in range(MAX_PAGES):
            if url is None:
                return
            if url in seen:
                raise errors.ContentInvalid(f"pagination loops back to {url}", code="PAGINATION_LOOP")
            seen.add(url)
            response = self.request("GET", url, op=op, scopes=scopes, max_bytes=MAX_PAGE_BYTES)
            try:
                body = json.loads(response.content)
            except (ValueError, UnicodeDecodeError, RecursionError):
                raise errors.ContentInvalid(f"{op} answer is not JSON") from None
            items = body.get(key) if isinstance(body, dict) else None
            if items is None:
                items = []
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise errors.ContentInvalid(f"{op} answer has no list of names")
            fresh = [item for item in dict.fromkeys(items) if item not in names]
            if len(names) + len(fresh) > MAX_NAMES:
                raise errors.ContentTooLarge(f"more than {MAX_NAMES} names in {path}: the rest is not read",
                                             code="TOO_MANY_NAMES")
            names.update(fresh)
            yield from fresh
            link = _next_link(response)
            if link:
                target = urljoin(self._url(url), link)
                if not self.is_own_origin(target):
                    raise errors.ContentInvalid(
                        f"the next page of {path} is on {origin_text(target)}, not on the registry's own "
                        f"origin {self.base_url}: not followed", code="PAGINATION_CROSS_ORIGIN")
            if link and not fresh:
                # A Link from a page that brought nothing new: ever-new URLs repeating the
                # same names (a loop that `seen` cannot catch). A real list moves on.
                raise errors.ContentInvalid(f"pagination repeats itself: {link} follows a page with no new names",
                                            code="PAGINATION_LOOP")
            if link:
                url = link
            elif len(items) == page_size and fresh:
                # No Link but a full page: ask for more with `last=`. Some
                # registries ignore `n` and send everything (Distribution's
                # tag list does): a longer page, or one with nothing new, ends it.
                url = f"{path}?{urlencode({'n': page_size, 'last': items[-1]})}"
            else:
                url = None
        raise errors.ContentInvalid(f"more than {MAX_PAGES} pages", code="PAGINATION_LOOP")

    # -- operations -------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/ (distribution spec, "Determining support"); authenticates."""
        self.request("GET", "/v2/", op="GET ping", scopes=())

    def catalog(self, *, page_size: int = PAGE_SIZE) -> Iterator[str]:
        """GET /v2/_catalog, every page."""
        yield from self._paginate("/v2/_catalog", "repositories", op="GET catalog",
                                  scopes=(CATALOG_SCOPE,), page_size=page_size)

    def tags(self, repository: str, *, page_size: int = PAGE_SIZE) -> Iterator[str]:
        """GET /v2/<name>/tags/list, every page (spec, "Listing Tags")."""
        yield from self._paginate(f"/v2/{repository}/tags/list", "tags", op="GET tags",
                                  scopes=(repository_scope(repository, "pull"),), page_size=page_size)

    def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        """HEAD /v2/<name>/manifests/<ref>: digest without a pull on Docker Hub."""
        response = self.request("HEAD", f"/v2/{repository}/manifests/{reference}", op="HEAD manifest",
                                scopes=(repository_scope(repository, "pull"),),
                                headers={"Accept": MANIFEST_ACCEPT})
        size = response.headers.get("Content-Length", "")
        digest = response.headers.get("Docker-Content-Digest", "")
        if ":" in reference and digest and digest != reference:
            raise errors.DigestMismatch(f"registry answered {digest} for {reference}")
        return ManifestHead(digest=digest,
                            media_type=response.headers.get("Content-Type", "").split(";")[0].strip(),
                            size=int(size) if size.isdigit() else -1)

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """GET /v2/<name>/manifests/<ref>, verified and capped at 4 MiB.

        By digest, the bytes must have that digest; by tag, the digest the
        registry reports (Docker-Content-Digest) when it reports one. Only
        sha256 and sha512 are accepted.
        """
        if ":" in reference:
            self._valid_digest(reference)
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}", op="GET manifest",
                                scopes=(repository_scope(repository, "pull"),),
                                headers={"Accept": MANIFEST_ACCEPT}, stream=True)
        content_type = response.headers.get("Content-Type", "")
        reported = response.headers.get("Docker-Content-Digest", "")
        raw = self._read_body(response, MAX_MANIFEST_BYTES, op="GET manifest", what="manifest")
        actual = sha256_digest(raw)
        expected = reference if ":" in reference else reported
        if expected and expected != actual:
            self._valid_digest(expected, what=f"the digest the registry reports for {repository}:{reference}")
            if not digest_matches(raw, expected):
                raise errors.DigestMismatch(
                    f"manifest {repository}@{expected} has bytes whose digest is {actual}")
            actual = expected
        return parse_manifest(raw, content_type=content_type, digest=actual)

    @staticmethod
    def _valid_digest(digest: str, *, what: str = "") -> str:
        try:
            return validate_digest(digest)
        except errors.InvalidReference as exc:
            raise errors.DigestMismatch(f"{what + ': ' if what else ''}{exc}",
                                        code="DIGEST_UNSUPPORTED") from None

    def get_blob(self, repository: str, digest: str, *, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
        """GET /v2/<name>/blobs/<digest> into memory (configs), verified and capped."""
        self._valid_digest(digest)
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}", op="GET blob",
                                scopes=(repository_scope(repository, "pull"),), stream=True)
        raw = self._read_body(response, max_bytes, op="GET blob", what="blob")
        if not digest_matches(raw, digest):
            raise errors.DigestMismatch(f"blob {repository}@{digest} does not match its bytes")
        return raw

    def get_json_blob(self, repository: str, digest: str, *, max_bytes: int = MAX_CONFIG_BYTES) -> dict:
        raw = self.get_blob(repository, digest, max_bytes=max_bytes)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise errors.ContentInvalid(f"blob {digest} is not JSON") from None
        if not isinstance(data, dict):
            raise errors.ContentInvalid(f"blob {digest} is not a JSON object")
        return data

    def blob_exists(self, repository: str, digest: str, *, push: bool = False) -> bool:
        """HEAD /v2/<name>/blobs/<digest>."""
        scopes = (repository_scope(repository, "pull,push" if push else "pull"),)
        try:
            self.request("HEAD", f"/v2/{repository}/blobs/{digest}", op="HEAD blob", scopes=scopes)
        except errors.NotFound:
            return False
        return True

    def manifest_exists(self, repository: str, digest: str, *, push: bool = False) -> bool:
        scopes = (repository_scope(repository, "pull,push" if push else "pull"),)
        try:
            self.request("HEAD", f"/v2/{repository}/manifests/{digest}", op="HEAD manifest", scopes=scopes,
                         headers={"Accept": MANIFEST_ACCEPT})
        except errors.NotFound:
            return False
        return True

    def mount_blob(self, target: str, digest: str, source: str) -> str | None:
        """POST /v2/<target>/blobs/uploads/?mount=&from= (spec, "Mounting a blob").

        Returns None when mounted (201), or the upload `Location` when the
        registry opened an upload session instead (202). The token is asked
        for both repositories in one request.
        """
        response = self.request(
            "POST", f"/v2/{target}/blobs/uploads/", op="POST mount",
            scopes=(repository_scope(target, "pull,push"), repository_scope(source, "pull")),
            params={"mount": digest, "from": source}, ok=(201, 202),
        )
        response.close()
        if response.status_code == 201:
            return None
        return self._upload_location(response)

    def start_upload(self, target: str) -> str:
        """POST /v2/<target>/blobs/uploads/: open an upload session."""
        response = self.request("POST", f"/v2/{target}/blobs/uploads/", op="POST upload",
                                scopes=(repository_scope(target, "pull,push"),), ok=(202,))
        response.close()
        return self._upload_location(response)

    def cancel_upload(self, target: str, location: str) -> None:
        try:
            self.request("DELETE", location, op="DELETE upload",
                         scopes=(repository_scope(target, "pull,push"),), ok=(204, 200, 404))
        except errors.RegistryError:
            logger.info("could not cancel an upload session on %s", self.host)

    def _upload_location(self, response: requests.Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise errors.RequestInvalid("the registry opened an upload without a Location", code="BLOB_UPLOAD_INVALID")
        return urljoin(response.url, location)

    def upload_blob(self, target: str, digest: str, data: bytes, *, location: str | None = None) -> None:
        """Monolithic upload: POST then PUT <location>&digest= (spec, "Pushing a blob monolithically")."""
        location = location or self.start_upload(target)
        self.request("PUT", _with_digest(location, digest), op="PUT blob",
                     scopes=(repository_scope(target, "pull,push"),),
                     headers={"Content-Type": "application/octet-stream"}, data=data, ok=(201, 204))
        self._add_bytes(len(data))

    def stream_blob(self, source: str, target: str, digest: str, size: int, *, location: str | None = None) -> int:
        """Copy a blob by streaming it from `source` into an upload on `target`.

        The bytes pass through this process without being held in memory;
        their digest is checked on the way, and by the registry on PUT.
        """
        self._valid_digest(digest)
        response = self.request("GET", f"/v2/{source}/blobs/{digest}", op="GET blob",
                                scopes=(repository_scope(source, "pull"),), stream=True)
        deadline: Deadline = response.deadline

        def on_bytes(amount: int) -> None:
            # A real copy may outlast the deadline; a trickle adds next to nothing to it. The PUT
            # that sends these bytes (this thread's current request) gets the same extension.
            deadline.extend(amount / MIN_STREAM_RATE)
            putting = getattr(current, "deadline", None)
            if putting is not None and putting is not deadline:
                putting.extend(amount / MIN_STREAM_RATE)
            self._add_bytes(amount)

        try:
            length = response.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else size
            location = location or self.start_upload(target)
            reader = _HashingReader(response, total, digest, on_bytes)
            try:
                self.request("PUT", _with_digest(location, digest), op="PUT blob",
                             scopes=(repository_scope(target, "pull,push"),),
                             headers={"Content-Type": "application/octet-stream"}, data=reader, ok=(201, 204))
            except errors.RegistryError:
                if deadline.expired:
                    raise self._deadline_error(deadline, f"reading {digest} from {source}") from None
                raise
            if not reader.matches:
                raise errors.DigestMismatch(f"blob {digest} streamed from {source} does not match its bytes")
            return reader.read_bytes
        finally:
            response.close()

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        """PUT /v2/<name>/manifests/<ref>; checks the digest the registry reports."""
        return self.put_manifest_answer(repository, reference, raw, media_type).digest

    def put_manifest_answer(self, repository: str, reference: str, raw: bytes, media_type: str) -> ManifestPut:
        """PUT a manifest and say what the answer proves.

        `confirmed` is true when the registry answered 201 (created) with a
        Docker-Content-Digest equal to the digest of the bytes sent: it then
        holds exactly these bytes under `reference`, and (Distribution checks
        before it stores) everything they point at. A registry that reports
        another digest raises DigestMismatch; one that reports none leaves the
        push unconfirmed, to be read back.
        """
        expected = sha256_digest(raw)
        if ":" in reference and reference != expected:
            self._valid_digest(reference)
            if not digest_matches(raw, reference):
                raise errors.DigestMismatch(f"refusing to put bytes with digest {expected} as {reference}")
            expected = reference
        # Our bytes match their digest (checked above), so DIGEST_INVALID is the
        # registry misreading its own storage: Distribution rewrites a blob link
        # in place (truncate, then write) when a blob is mounted again, and a
        # manifest PUT that checks that blob meanwhile reads an empty link. Two
        # pushes into one repository hit it. The same bytes are put again.
        response = self.request("PUT", f"/v2/{repository}/manifests/{reference}", op="PUT manifest",
                                scopes=(repository_scope(repository, "pull,push"),),
                                headers={"Content-Type": media_type}, data=raw, ok=(201, 200, 202),
                                retry_codes=("DIGEST_INVALID",))
        response.close()
        reported = response.headers.get("Docker-Content-Digest", "")
        if reported and reported != expected:
            raise errors.DigestMismatch(f"the registry stored {reported} but we sent {expected}")
        return ManifestPut(digest=expected, confirmed=response.status_code == 201 and reported == expected)


def _with_digest(location: str, digest: str) -> str:
    """Append digest= to an upload Location, which may already carry a query."""
    separator = "&" if urlsplit(location).query else "?"
    return f"{location}{separator}{urlencode({'digest': digest})}"

