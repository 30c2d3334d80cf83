"""A client of the OCI Distribution API.

The only module in the project that speaks HTTP. Each public method is one
registry operation, named after the spec's endpoint it implements; every
request has a timeout, every request is counted by kind, and every error is
raised as a typed `RegistryError` keeping the registry's code and message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from . import errors
from .auth import CATALOG_SCOPE, Challenge, TokenCache, parse_challenges, repository_scope
from .mediatypes import MANIFEST_ACCEPT, Manifest, parse_manifest, sha256_digest

logger = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 8 * 1024 * 1024
PAGE_SIZE = 1000  # Distribution 2.8+ refuses more (PAGINATION_NUMBER_INVALID).
MAX_PAGES = 10_000
MAX_REDIRECTS = 5
USER_AGENT = "manifest-dashboard/1.0 (+python-requests)"


@dataclass(frozen=True)
class ManifestHead:
    digest: str  # "" when the registry did not send Docker-Content-Digest
    media_type: str
    size: int


@dataclass(frozen=True)
class RateLimit:
    limit: str
    remaining: str


class _HashingReader:
    """A file-like view of a streamed response that hashes what it hands out.

    `__len__` lets requests send a Content-Length instead of chunked encoding.
    """

    def __init__(self, response: requests.Response, size: int, on_bytes: Callable[[int], None]) -> None:
        self._raw = response.raw
        self._size = size
        self._hash = hashlib.sha256()
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
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _error_from_response(response: requests.Response) -> errors.RegistryError:
    """Turn an error response into the typed error, keeping the registry's words."""
    status = response.status_code
    code, message, detail = "", "", None
    try:
        body = response.json()
        first = (body.get("errors") or [{}])[0] if isinstance(body, dict) else {}
        if isinstance(first, dict):
            code = str(first.get("code") or "")
            message = str(first.get("message") or "")
            detail = first.get("detail")
    except ValueError:
        pass
    if not message:
        message = f"HTTP {status} {response.reason or ''}".strip()
    if detail and not isinstance(detail, (dict, list)):
        message = f"{message}: {detail}"
    if status == 429 or code == "TOOMANYREQUESTS":
        return errors.RateLimited(message, code=code or None, status=status,
                                  retry_after=_retry_after(response), detail=detail)
    cls = errors.CODE_TO_ERROR.get(code)
    if cls is None:
        if status == 401:
            cls = errors.Unauthorized
        elif status == 403:
            cls = errors.Denied
        elif status == 404:
            cls = errors.NotFound
        elif status >= 500:
            cls = errors.RegistryUnavailable
        else:
            cls = errors.RequestInvalid
    error = cls(message, code=code or None, status=status, detail=detail)
    if status == 503:
        # A 503 may say when to come back (RFC 9110 §10.2.3), as a 429 does.
        error.retry_after = _retry_after(response)
    return error


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _next_link(response: requests.Response) -> str | None:
    """The `rel="next"` target of a Link header, verbatim (RFC 8288)."""
    header = response.headers.get("Link", "")
    for part in header.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if start != -1 and end > start:
                return part[start + 1 : end]
    return None


class RegistryClient:
    """One registry, one set of credentials, one connection pool.

    `url` is the registry's base URL (https://ghcr.io, http://127.0.0.1:5000).
    Plain http and unverified TLS are used only when `insecure` is set, as
    `docker manifest --insecure` requires.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str = "",
        password: str = "",
        token: str = "",
        insecure: bool = False,
        ca_bundle: str = "",
        timeout: float = 15.0,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        pool_size: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if "://" not in url:
            url = ("http://" if insecure else "https://") + url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise errors.RequestInvalid(f"{url!r} is not a registry URL", code="URL_INVALID")
        if parts.scheme == "http" and not insecure:
            raise errors.RequestInvalid(
                "plain http is used only for registries marked insecure", code="INSECURE_NOT_ALLOWED"
            )
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        self.username = username
        self._password = password
        self._static_token = token
        self.insecure = insecure
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._tokens = TokenCache()
        self._challenge: Challenge | None = None
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.bytes_streamed = 0
        self.rate_limit: RateLimit | None = None
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or netrc credentials from the environment
        adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        if insecure:
            self.session.verify = False
        elif ca_bundle:
            self.session.verify = ca_bundle

    def __repr__(self) -> str:  # never show credentials
        return f"<RegistryClient {self.base_url}>"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------

    def _count(self, op: str) -> None:
        with self._lock:
            self.counters[op] += 1

    def _add_bytes(self, amount: int) -> None:
        with self._lock:
            self.bytes_streamed += amount

    def _url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path.lstrip("/")) if not path.startswith("http") else path

    def _auth_header(self, scopes: frozenset[str]) -> str | None:
        if self._static_token:
            return f"Bearer {self._static_token}"
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic() if self.username else None
        if challenge.scheme == "bearer":
            token = self._tokens.get(scopes)
            if token is None:
                token = self._fetch_token(challenge, scopes)
            return f"Bearer {token}" if token else None
        return None

    def _basic(self) -> str:
        return requests.auth._basic_auth_str(self.username, self._password)

    def _fetch_token(self, challenge: Challenge, scopes: frozenset[str]) -> str:
        """GET <realm>?service=..&scope=..&scope=.. (token spec, "Requesting a Token")."""
        realm = challenge.realm
        if not realm:
            raise errors.Unauthorized("the registry asked for a bearer token but named no realm")
        realm_parts = urlsplit(realm)
        if realm_parts.scheme != "https" and not self.insecure:
            raise errors.Unauthorized(
                f"the token realm {realm_parts.scheme}://{realm_parts.netloc} is not https; "
                "mark the registry insecure to allow it"
            )
        query: list[tuple[str, str]] = []
        if challenge.service:
            query.append(("service", challenge.service))
        for scope in sorted(scopes):
            query.append(("scope", scope))
        headers = {"Accept": "application/json"}
        if self.username:
            headers["Authorization"] = self._basic()
        separator = "&" if realm_parts.query else "?"
        url = realm + (separator + urlencode(query) if query else "")
        self._count("GET token")
        try:
            response = self.session.get(url, headers=headers, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise errors.RegistryUnavailable(f"token service unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            error = _error_from_response(response)
            if response.status_code in (401, 403):
                raise errors.Unauthorized(f"the token service refused the credentials: {error.message}",
                                          status=response.status_code)
            raise error
        try:
            body = response.json()
        except ValueError:
            raise errors.Unauthorized("the token service answered with something that is not JSON") from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise errors.Unauthorized("the token service answered without a token")
        expires_in = body.get("expires_in") or 60
        try:
            expires_in = float(expires_in)
        except (TypeError, ValueError):
            expires_in = 60.0
        self._tokens.put(scopes, token, expires_in)
        return token

    def request(
        self,
        method: str,
        path: str,
        *,
        op: str,
        scopes: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        data: object = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200,),
        retry_codes: tuple[str, ...] = (),
    ) -> requests.Response:
        """Send one request with auth, retries and typed errors.

        Idempotent methods are retried on connection errors and 5xx; every
        method is retried on 429 after `Retry-After`, within `max_retry_wait`,
        and on the registry error codes in `retry_codes`.
        A 401 is answered once by authenticating for `scopes` and trying again.
        """
        scope_set = frozenset(scopes)
        url = self._url(path)
        idempotent = method in ("GET", "HEAD") or data is None
        attempt = 0
        authenticated_retry = False
        while True:
            attempt += 1
            send_headers = dict(headers or {})
            auth = self._auth_header(scope_set)
            if auth:
                send_headers["Authorization"] = auth
            self._count(op)
            try:
                response = self._send(method, url, headers=send_headers, params=params, data=data, stream=stream)
            except requests.Timeout:
                error: errors.RegistryError = errors.RegistryUnavailable(
                    f"the registry did not answer within {self.timeout:g} s", code="TIMEOUT")
            except requests.ConnectionError as exc:
                problem = _certificate_problem(exc)
                if problem:
                    error = errors.RegistryUnavailable(
                        f"the TLS certificate of {self.host} could not be verified: {problem} "
                        "(give the registry's CA bundle, or mark it insecure)", code="TLS_VERIFY_FAILED")
                else:
                    error = errors.RegistryUnavailable(f"cannot connect to {self.host}: {_short(exc)}",
                                                       code="CONNECTION_FAILED")
            except requests.RequestException as exc:
                error = errors.RegistryUnavailable(f"request to {self.host} failed: {_short(exc)}")
            else:
                self._note_rate_limit(response)
                if response.status_code in ok:
                    return response
                if response.status_code == 401 and not authenticated_retry:
                    challenge = self._pick_challenge(response)
                    response.close()
                    if challenge is not None and not self._static_token:
                        self._challenge = challenge
                        self._tokens.drop(scope_set)
                        authenticated_retry = True
                        if not hasattr(data, "read"):
                            attempt -= 1
                            continue
                error = _error_from_response(response)
                response.close()
                if response.status_code == 401:
                    error = self._explain_unauthorized(response, error, scopes)
            retryable = isinstance(error, errors.RateLimited) or error.code in retry_codes or (
                isinstance(error, errors.RegistryUnavailable) and idempotent
                and error.code != "TLS_VERIFY_FAILED"  # the same certificate fails the same way again
            )
            if not retryable or attempt > self.max_retries or hasattr(data, "read"):
                raise error
            wait = getattr(error, "retry_after", None)
            if wait is None:
                wait = min(2.0 ** (attempt - 1) * 0.25, 4.0)
            if wait > self.max_retry_wait:
                raise error
            logger.info("registry %s: %s, retrying in %.1fs", self.host, error.code, wait)
            self._sleep(wait)

    def _send(self, method: str, url: str, *, headers: dict, params, data, stream: bool) -> requests.Response:
        """One HTTP exchange, following redirects without leaking Authorization."""
        origin = urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            response = self.session.request(method, url, headers=headers, params=params, data=data,
                                            stream=stream, timeout=self.timeout, allow_redirects=False)
            if response.status_code not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
                return response
            url = urljoin(url, response.headers["Location"])
            params = None
            response.close()
            if urlsplit(url).netloc != origin:
                # Blob GETs often go to a CDN: never forward our credentials there.
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if response.status_code == 303:
                method, data = "GET", None
        raise errors.RegistryUnavailable("too many redirects", code="TOO_MANY_REDIRECTS")

    def _pick_challenge(self, response: requests.Response) -> Challenge | None:
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        for scheme in ("bearer", "basic"):
            for challenge in challenges:
                if challenge.scheme == scheme:
                    if scheme == "basic" and not self.username:
                        return None
                    return challenge
        return None

    def _explain_unauthorized(self, response, error: errors.RegistryError, scopes) -> errors.RegistryError:
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        for challenge in challenges:
            if challenge.error == "insufficient_scope" or (challenge.scheme == "bearer" and self._challenge):
                missing = " ".join(challenge.scopes) or " ".join(scopes)
                return errors.Unauthorized(
                    f"{error.message} (the token does not grant {missing})", code=error.code,
                    status=401, detail={"scope": missing})
        return error

    def _note_rate_limit(self, response: requests.Response) -> None:
        limit = response.headers.get("ratelimit-limit")
        if limit:
            self.rate_limit = RateLimit(limit=limit, remaining=response.headers.get("ratelimit-remaining", ""))

    def _paginate(self, path: str, key: str, *, op: str, scopes: tuple[str, ...],
                  page_size: int = PAGE_SIZE) -> Iterator[str]:
        """Follow `Link: <..>; rel="next"` verbatim; fall back to `last=`."""
        url: str | None = f"{path}?{urlencode({'n': page_size})}"
        seen: set[str] = set()
        names: set[str] = set()
        for _ in range(MAX_PAGES):
            if url is None:
                return
            if url in seen:
                raise errors.ContentInvalid(f"pagination loops back to {url}", code="PAGINATION_LOOP")
            seen.add(url)
            response = self.request("GET", url, op=op, scopes=scopes)
            try:
                body = response.json()
            except ValueError:
                raise errors.ContentInvalid(f"{op} answer is not JSON") from None
            items = body.get(key) if isinstance(body, dict) else None
            if items is None:
                items = []
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise errors.ContentInvalid(f"{op} answer has no list of names")
            fresh = [item for item in items if item not in names]
            names.update(fresh)
            yield from fresh
            link = _next_link(response)
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
        if reference.startswith("sha256:") and digest and digest != reference:
            raise errors.DigestMismatch(f"registry answered {digest} for {reference}")
        return ManifestHead(digest=digest,
                            media_type=response.headers.get("Content-Type", "").split(";")[0].strip(),
                            size=int(size) if size.isdigit() else -1)

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """GET /v2/<name>/manifests/<ref>, verified and capped at 4 MiB."""
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}", op="GET manifest",
                                scopes=(repository_scope(repository, "pull"),),
                                headers={"Accept": MANIFEST_ACCEPT}, stream=True)
        raw = self._read_capped(response, MAX_MANIFEST_BYTES, what="manifest")
        actual = sha256_digest(raw)
        expected = reference if ":" in reference else response.headers.get("Docker-Content-Digest", "")
        if expected and expected.startswith("sha256:") and expected != actual:
            raise errors.DigestMismatch(
                f"manifest {repository}@{expected} has bytes whose digest is {actual}")
        if expected and not expected.startswith("sha256:"):
            # Other algorithms (sha512) are allowed by the spec; verify them too.
            algorithm, _, hexdigest = expected.partition(":")
            try:
                computed = hashlib.new(algorithm, raw).hexdigest()
            except ValueError:
                raise errors.DigestMismatch(f"unsupported digest algorithm {algorithm}") from None
            if computed != hexdigest:
                raise errors.DigestMismatch(f"manifest {repository}@{expected} does not match its bytes")
            actual = expected
        return parse_manifest(raw, content_type=response.headers.get("Content-Type", ""), digest=actual)

    def _read_capped(self, response: requests.Response, cap: int, *, what: str) -> bytes:
        try:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > cap:
                raise errors.ContentTooLarge(f"{what} is {int(length)} bytes, over the {cap} byte limit")
            chunks: list[bytes] = []
            total = 0
            try:
                for chunk in response.iter_content(64 * 1024):
                    total += len(chunk)
                    if total > cap:
                        raise errors.ContentTooLarge(f"{what} is over the {cap} byte limit")
                    chunks.append(chunk)
            except requests.RequestException as exc:
                raise errors.RegistryUnavailable(f"reading the {what} failed: {_short(exc)}") from None
            return b"".join(chunks)
        finally:
            response.close()

    def get_blob(self, repository: str, digest: str, *, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
        """GET /v2/<name>/blobs/<digest> into memory (configs), verified and capped."""
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}", op="GET blob",
                                scopes=(repository_scope(repository, "pull"),), stream=True)
        raw = self._read_capped(response, max_bytes, what="blob")
        if digest.startswith("sha256:") and sha256_digest(raw) != digest:
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
        response = self.request("GET", f"/v2/{source}/blobs/{digest}", op="GET blob",
                                scopes=(repository_scope(source, "pull"),), stream=True)
        try:
            length = response.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else size
            location = location or self.start_upload(target)
            reader = _HashingReader(response, total, self._add_bytes)
            self.request("PUT", _with_digest(location, digest), op="PUT blob",
                         scopes=(repository_scope(target, "pull,push"),),
                         headers={"Content-Type": "application/octet-stream"}, data=reader, ok=(201, 204))
            if digest.startswith("sha256:") and reader.digest != digest:
                raise errors.DigestMismatch(f"blob {digest} streamed from {source} does not match its bytes")
            return reader.read_bytes
        finally:
            response.close()

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        """PUT /v2/<name>/manifests/<ref>; checks the digest the registry reports."""
        expected = sha256_digest(raw)
        if reference.startswith("sha256:") and reference != expected:
            raise errors.DigestMismatch(f"refusing to put bytes with digest {expected} as {reference}")
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
        return expected


def _with_digest(location: str, digest: str) -> str:
    """Append digest= to an upload Location, which may already carry a query."""
    separator = "&" if urlsplit(location).query else "?"
    return f"{location}{separator}{urlencode({'digest': digest})}"


def _certificate_problem(exc: BaseException) -> str | None:
    """The verifier's reason when `exc` wraps a failed TLS certificate verification, else None.

    requests wraps urllib3's MaxRetryError, whose `reason` wraps the ssl error.
    """
    for _ in range(8):
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc.verify_message or "certificate verify failed"
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        if inner is None:
            return None
        exc = inner
    return None


def _short(exc: Exception) -> str:
    """A one-line reason, without URLs that might carry query-string secrets.

    requests wraps urllib3, which wraps the socket error: walk the chain for
    the low-level cause a person can act on.
    """
    import http.client
    import socket

    reasons = (
        (ConnectionRefusedError, "connection refused"),
        (ConnectionResetError, "the connection was reset"),
        (http.client.RemoteDisconnected, "the registry closed the connection without answering"),
        (socket.gaierror, "the host name does not resolve"),
        (TimeoutError, "timed out"),
    )
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        for kind, text in reasons:
            if isinstance(current, kind):
                return text
        stack.extend([*getattr(current, "args", ()), getattr(current, "reason", None), current.__cause__,
                      current.__context__])
    return exc.__class__.__name__
