"""A client of the OCI Distribution API.

The only module in the project that speaks HTTP. Each public method is one
registry operation, named after the spec's endpoint it implements; every
request has a timeout, every request is counted by kind, and every error is
raised as a typed `RegistryError` keeping the registry's code and message.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3

from . import errors
from .auth import CATALOG_SCOPE, Challenge, TokenCache, parse_challenges, repository_scope
from .mediatypes import MANIFEST_ACCEPT, Manifest, parse_manifest, sha256_digest
from .reference import digest_hasher, digest_matches, validate_digest

logger = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 8 * 1024 * 1024
# Every body this client reads is capped: what a hostile registry sends past the cap is never read.
MAX_PAGE_BYTES = 8 * 1024 * 1024  # a catalog or tag-list page, or any other JSON answer
MAX_TOKEN_BYTES = 64 * 1024  # a token service's answer
MAX_ERROR_BYTES = 1024 * 1024  # an error body: read this much for the message, drop the rest
MAX_NAMES = 100_000  # repositories in a catalog, or tags in one repository
PAGE_SIZE = 1000  # Distribution 2.8+ refuses more (PAGINATION_NUMBER_INVALID).
MAX_PAGES = 10_000
MAX_REDIRECTS = 5
# A whole request (connect, headers, body) ends within this, however slowly the server trickles.
DEFAULT_DEADLINE = 300.0
# A streamed blob copy may take longer than the deadline, by one second per this many bytes read.
MIN_STREAM_RATE = 64 * 1024
READ_CHUNK = 64 * 1024
MAX_ERROR_MESSAGE = 2000  # characters of a registry's error message kept
USER_AGENT = "manifest-dashboard/1.0 (+python-requests)"


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


@dataclass(frozen=True)
class RateLimit:
    limit: str
    remaining: str


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


class _Deadline:
    """A wall-clock bound on one request, however slowly its server trickles.

    A socket timeout bounds each read, not their sum: a server sending a
    byte every few seconds never trips it. The watchdog thread shuts down
    the sockets of a request whose deadline has passed, which wakes the
    blocked read; the client then reports the deadline, not the broken read.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.done = False
        self._connections: list[urllib3.connection.HTTPConnection] = []
        self._lock = threading.Lock()

    def watch(self, connection: urllib3.connection.HTTPConnection) -> None:
        with self._lock:
            if connection not in self._connections:
                self._connections.append(connection)
        if self.expired:
            self._shut(connection)

    def extend(self, seconds: float) -> None:
        with self._lock:
            self.at += seconds

    def finish(self) -> None:
        with self._lock:
            self.done = True
            self._connections.clear()

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.expired = True
            connections = list(self._connections)
        for connection in connections:
            self._shut(connection)

    @staticmethod
    def _shut(connection: urllib3.connection.HTTPConnection) -> None:
        sock = getattr(connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Watchdog:
    """One daemon thread for every client in the process: fires deadlines as they pass."""

    def __init__(self) -> None:
        self._deadlines: set[_Deadline] = set()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, deadline: _Deadline) -> None:
        with self._wake:
            self._deadlines.add(deadline)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="registry-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                due = [d for d in self._deadlines if d.done or d.at <= now]
                self._deadlines.difference_update(due)
                pending = [d.at for d in self._deadlines]
                self._wake.wait(min(1.0, max(0.01, min(pending) - now)) if pending else 1.0)
            for deadline in due:
                deadline.fire()


_watchdog = _Watchdog()
_current = threading.local()  # the deadline of the request this thread is sending


class _WatchedConnectionMixin:
    """Registers the connection with the deadline of the request that uses it."""

    def _watched(self) -> None:
        deadline = getattr(_current, "deadline", None)
        if deadline is not None:
            deadline.watch(self)

    def connect(self) -> None:
        self._watched()
        super().connect()

    def request(self, *args, **kwargs):
        self._watched()
        return super().request(*args, **kwargs)


class _HTTPConnection(_WatchedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the port made explicit: what "same origin" compares (RFC 6454)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme, -1)


def origin_text(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2]}"


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
    except (ValueError, RecursionError):
        pass
    if not message:
        message = f"HTTP {status} {response.reason or ''}".strip()
        allowed = response.headers.get("Allow", "")
        if status == 405 and allowed:
            # Distribution in read-only mode answers writes so, in plain text.
            code = code or "UNSUPPORTED"
            message += f": the registry allows only {allowed[:100]} here (it may be read-only)"
    message = message[:MAX_ERROR_MESSAGE]
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
        deadline: float = DEFAULT_DEADLINE,
        expected_realm_origin: str = "",
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
        self._origin = origin_of(self.base_url)
        self.username = username
        self._password = password
        self._static_token = token
        self.insecure = insecure
        self.timeout = timeout
        self.deadline = deadline
        # The token realm's origin recorded when the registry was first checked: a realm on any
        # other origin is refused before it is sent the credentials. `realm_origin` is the one seen.
        self.expected_realm_origin = expected_realm_origin
        self.realm_origin = ""
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._tokens = TokenCache()
        self._challenge: Challenge | None = None
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.body_bytes: Counter[str] = Counter()  # bytes of response bodies read, by operation
        self.largest_body: Counter[str] = Counter()  # the most bytes read of one body, by operation
        self.bytes_streamed = 0
        self.rate_limit: RateLimit | None = None
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or netrc credentials from the environment
        adapter = _Adapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        # Compressed bodies would be inflated before any cap could count them.
        self.session.headers["Accept-Encoding"] = "identity"
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

    def is_own_origin(self, url: str) -> bool:
        """Whether `url` is on the registry's own origin (scheme, host and port), where credentials go."""
        return origin_of(url) == self._origin

    def _check_realm(self, realm: str) -> None:
        """Credentials go to a token realm only over https (unless insecure), and only to the realm
        origin recorded when the registry was first checked."""
        realm_parts = urlsplit(realm)
        if realm_parts.scheme not in ("http", "https") or not realm_parts.hostname:
            raise errors.Unauthorized(f"the token realm {realm[:200]!r} is not an http(s) URL",
                                      code="TOKEN_REALM_INVALID")
        if realm_parts.scheme != "https" and not self.insecure:
            raise errors.Unauthorized(
                f"the token realm {origin_text(realm)} is not https; mark the registry insecure to allow it",
                code="TOKEN_REALM_INSECURE")
        seen = origin_text(realm)
        if self.expected_realm_origin and origin_of(seen) != origin_of(self.expected_realm_origin):
            raise errors.Unauthorized(
                f"the token realm moved from {self.expected_realm_origin} to {seen}: the credentials were not "
                f"sent to {seen}. If the registry really moved its token service, forget the recorded realm "
                "(manage.py registry_forget_realm NAME) and check the registry again", code="TOKEN_REALM_CHANGED")
        with self._lock:
            if self.realm_origin and origin_of(self.realm_origin) != origin_of(seen):
                raise errors.Unauthorized(
                    f"the token realm moved from {self.realm_origin} to {seen} during one job: the credentials "
                    f"were not sent to {seen}", code="TOKEN_REALM_CHANGED")
            self.realm_origin = seen

    def _fetch_token(self, challenge: Challenge, scopes: frozenset[str]) -> str:
        """GET <realm>?service=..&scope=..&scope=.. (token spec, "Requesting a Token")."""
        realm = challenge.realm
        if not realm:
            raise errors.Unauthorized("the registry asked for a bearer token but named no realm")
        self._check_realm(realm)
        query: list[tuple[str, str]] = []
        if challenge.service:
            query.append(("service", challenge.service))
        for scope in sorted(scopes):
            query.append(("scope", scope))
        headers = {"Accept": "application/json"}
        if self.username:
            headers["Authorization"] = self._basic()
        separator = "&" if urlsplit(realm).query else "?"
        url = realm + (separator + urlencode(query) if query else "")
        self._count("GET token")
        deadline = self._deadline_start()
        outer, _current.deadline = getattr(_current, "deadline", None), deadline
        try:
            try:
                response = self.session.get(url, headers=headers, timeout=self.timeout, allow_redirects=False,
                                            stream=True)
            except requests.RequestException as exc:
                if deadline.expired:
                    raise self._deadline_error(deadline, "the token service") from None
                raise errors.RegistryUnavailable(f"token service unreachable: {type(exc).__name__}") from None
            if response.status_code != 200:
                self._read_body(response, MAX_ERROR_BYTES, op="GET token", what="token error", deadline=deadline,
                                truncate=True, who="the token service")
                error = _error_from_response(response)
                if response.status_code in (401, 403):
                    raise errors.Unauthorized(f"the token service refused the credentials: {error.message}",
                                              status=response.status_code)
                raise error
            raw = self._read_body(response, MAX_TOKEN_BYTES, op="GET token", what="token answer",
                                  deadline=deadline, who="the token service")
        finally:
            deadline.finish()
            _current.deadline = outer
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise errors.Unauthorized("the token service answered with something that is not JSON") from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise errors.Unauthorized("the token service answered without a token")
        expires_in = body.get("expires_in") or 60
        try:
            expires_in = float(expires_in)
        except (TypeError, ValueError, OverflowError):
            expires_in = 60.0
        self._tokens.put(scopes, token, expires_in)
        return token

    # -- bodies and deadlines ----------------------------------------------

    def _deadline_start(self, seconds: float | None = None) -> _Deadline:
        deadline = _Deadline(self.deadline if seconds is None else seconds)
        _watchdog.add(deadline)
        return deadline

    def _deadline_error(self, deadline: _Deadline, who: str = "") -> errors.RegistryUnavailable:
        return errors.RegistryUnavailable(
            f"{who or 'the registry'} did not finish answering within {deadline.seconds:g} s", code="DEADLINE")

    def _read_body(self, response: requests.Response, cap: int, *, op: str, what: str,
                   deadline: _Deadline | None = None, truncate: bool = False, who: str = "") -> bytes:
        """Read a streamed body, never more than `cap` bytes of it, then close the response.

        Over the cap: ContentTooLarge, or with `truncate` (error bodies) the first `cap` bytes.
        """
        deadline = deadline or getattr(response, "deadline", None)
        try:
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise errors.ContentInvalid(f"the {what} came {encoding}-encoded though we asked for identity",
                                            code="CONTENT_ENCODING")
            length = response.headers.get("Content-Length", "")
            if not truncate and length.isdigit() and int(length) > cap:
                raise errors.ContentTooLarge(f"{what} is {int(length)} bytes, over the {cap} byte limit")
            chunks: list[bytes] = []
            total = 0
            try:
                for chunk in response.iter_content(READ_CHUNK):
                    with self._lock:
                        self.body_bytes[op] += len(chunk)
                        self.largest_body[op] = max(self.largest_body[op], total + len(chunk))
                    if total + len(chunk) > cap:
                        if truncate:
                            chunks.append(chunk[: cap - total])
                            break
                        raise errors.ContentTooLarge(f"{what} is over the {cap} byte limit")
                    total += len(chunk)
                    chunks.append(chunk)
            except requests.RequestException as exc:
                if deadline is not None and deadline.expired:
                    raise self._deadline_error(deadline, who) from None
                raise errors.RegistryUnavailable(f"reading the {what} failed: {_short(exc)}") from None
            if deadline is not None and deadline.expired:
                raise self._deadline_error(deadline, who)
            body = b"".join(chunks)
            response._content = body  # what .json() and .content read from now on
            response._content_consumed = True
            return body
        finally:
            response.close()

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
        max_bytes: int = MAX_PAGE_BYTES,
    ) -> requests.Response:
        """Send one request with auth, retries, a deadline, capped bodies and typed errors.

        Idempotent methods are retried on connection errors and 5xx; every
        method is retried on 429 after `Retry-After`, within `max_retry_wait`,
        and on the registry error codes in `retry_codes`.
        A 401 is answered once by authenticating for `scopes` and trying again.
        Credentials go only to the registry's own origin: a `path` that is an
        absolute URL elsewhere (an upload `Location` on a storage host) is sent
        without them. Without `stream` the body is read here, up to `max_bytes`;
        with it, the caller reads it, and closing the response ends its deadline.
        """
        scope_set = frozenset(scopes)
        url = self._url(path)
        self._check_scheme(url)
        own = self.is_own_origin(url)
        idempotent = method in ("GET", "HEAD") or data is None
        attempt = 0
        authenticated_retry = False
        while True:
            attempt += 1
            send_headers = dict(headers or {})
            auth = self._auth_header(scope_set) if own else None
            if auth:
                send_headers["Authorization"] = auth
            self._count(op)
            deadline = self._deadline_start()
            try:
                response = self._send(method, url, headers=send_headers, params=params, data=data,
                                      deadline=deadline)
            except requests.Timeout:
                deadline.finish()
                error: errors.RegistryError = errors.RegistryUnavailable(
                    f"the registry did not answer within {self.timeout:g} s", code="TIMEOUT")
            except requests.ConnectionError as exc:
                deadline.finish()
                problem = _certificate_problem(exc)
                if deadline.expired:
                    error = self._deadline_error(deadline)
                elif problem:
                    error = errors.RegistryUnavailable(
                        f"the TLS certificate of {self.host} could not be verified: {problem} "
                        "(give the registry's CA bundle, or mark it insecure)", code="TLS_VERIFY_FAILED")
                else:
                    error = errors.RegistryUnavailable(f"cannot connect to {self.host}: {_short(exc)}",
                                                       code="CONNECTION_FAILED")
            except requests.RequestException as exc:
                deadline.finish()
                error = (self._deadline_error(deadline) if deadline.expired
                         else errors.RegistryUnavailable(f"request to {self.host} failed: {_short(exc)}"))
            except errors.RegistryError:
                deadline.finish()
                raise
            else:
                self._note_rate_limit(response)
                if response.status_code in ok:
                    if stream:
                        self._end_deadline_on_close(response, deadline)
                        return response
                    try:
                        self._read_body(response, max_bytes, op=op, what=f"{op} answer", deadline=deadline)
                    finally:
                        deadline.finish()
                    return response
                try:
                    self._read_body(response, MAX_ERROR_BYTES, op=op, what="error body", deadline=deadline,
                                    truncate=True)
                except errors.RegistryError as exc:
                    if exc.code == "DEADLINE":
                        raise
                finally:
                    deadline.finish()
                if response.status_code == 401 and not authenticated_retry and own:
                    challenge = self._pick_challenge(response)
                    if challenge is not None and not self._static_token:
                        self._challenge = challenge
                        self._tokens.drop(scope_set)
                        authenticated_retry = True
                        if not hasattr(data, "read"):
                            attempt -= 1
                            continue
                error = _error_from_response(response)
                if response.status_code == 401:
                    error = self._explain_unauthorized(response, error, scopes)
            retryable = isinstance(error, errors.RateLimited) or error.code in retry_codes or (
                isinstance(error, errors.RegistryUnavailable) and idempotent
                and error.code not in ("TLS_VERIFY_FAILED", "DEADLINE")  # these fail the same way again
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

    @staticmethod
    def _end_deadline_on_close(response: requests.Response, deadline: _Deadline) -> None:
        response.deadline = deadline
        close = response.close

        def close_and_finish() -> None:
            deadline.finish()
            close()

        response.close = close_and_finish

    def _check_scheme(self, url: str) -> None:
        """Plain http only for a registry marked insecure: never downgrade from https."""
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise errors.ContentInvalid(f"the registry pointed to a {scheme[:20]!r} URL", code="URL_INVALID")
        if scheme == "http" and not self.insecure:
            raise errors.RegistryUnavailable(
                f"the registry redirected or pointed to plain http ({origin_text(url)}): refused, as the "
                "registry is not marked insecure", code="DOWNGRADE_REFUSED")

    def _send(self, method: str, url: str, *, headers: dict, params, data,
              deadline: _Deadline) -> requests.Response:
        """One HTTP exchange, following redirects: Authorization never leaves the registry's origin
        (scheme, host and port), and https never turns into http unless the registry is insecure."""
        _current.deadline = deadline
        try:
            for _ in range(MAX_REDIRECTS + 1):
                response = self.session.request(method, url, headers=headers, params=params, data=data,
                                                stream=True, timeout=self.timeout, allow_redirects=False)
                if response.status_code not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
                    return response
                target = urljoin(url, response.headers["Location"])
                response.close()
                self._check_scheme(target)
                if origin_of(target) != origin_of(url) or not self.is_own_origin(target):
                    # Blob GETs often go to a CDN: never forward our credentials there.
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                url, params = target, None
                if response.status_code == 303:
                    method, data = "GET", None
            raise errors.RegistryUnavailable("too many redirects", code="TOO_MANY_REDIRECTS")
        finally:
            _current.deadline = None

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
        deadline: _Deadline = response.deadline

        def on_bytes(amount: int) -> None:
            # A real copy may outlast the deadline; a trickle adds next to nothing to it. The PUT
            # that sends these bytes (this thread's current request) gets the same extension.
            deadline.extend(amount / MIN_STREAM_RATE)
            putting = getattr(_current, "deadline", None)
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
