"""The request loop under the registry client: auth, redirects, limits, errors, retries.

Every request has a timeout and a wall-clock deadline, every body read is
capped, credentials go only to the registry's own origin and its token
realm, and every failure is raised as a typed `RegistryError` keeping the
registry's code and message. `RegistryClient` (client.py) builds the
endpoint operations on `Transport.request`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from . import errors
from .auth import Challenge, TokenCache, challenge_pick, parse_challenges
from .deadline import Adapter, Deadline, current, deadline_on_close, watchdog

logger = logging.getLogger(__name__)

# Every body this client reads is capped: what a hostile registry sends past the cap is never read.
MAX_PAGE_BYTES = 8 * 1024 * 1024  # a catalog or tag-list page, or any other JSON answer
MAX_TOKEN_BYTES = 64 * 1024  # a token service's answer
MAX_ERROR_BYTES = 1024 * 1024  # an error body: read this much for the message, drop the rest
MAX_REDIRECTS = 5
# A whole request (connect, headers, body) ends within this, however slowly the server trickles.
DEFAULT_DEADLINE = 300.0
READ_CHUNK = 64 * 1024
USER_AGENT = "manifest-dashboard/1.0 (+python-requests)"
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class RateLimit:
    limit: str
    remaining: str


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


class Transport:
    """One registry's origin, credentials and connection pool, and the loop that sends requests.

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
        self.on_close: list[Callable[[], None]] = []  # called when the client closes (counts to send)
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or netrc credentials from the environment
        self._adapter = Adapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("http://", self._adapter)
        self.session.mount("https://", self._adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        # Compressed bodies would be inflated before any cap could count them.
        self.session.headers["Accept-Encoding"] = "identity"
        if insecure:
            self.session.verify = False
        elif ca_bundle:
            self.session.verify = ca_bundle

    def __repr__(self) -> str:  # never show credentials
        return f"<{type(self).__name__} {self.base_url}>"

    def close(self) -> None:
        for callback in self.on_close:
            callback()
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def counts_reset(self) -> None:
        """Start the counts again (a client kept for several jobs counts each on its own)."""
        with self._lock:
            self.counters.clear()
            self.body_bytes.clear()
            self.largest_body.clear()
            self.bytes_streamed = 0

    def counts_take(self) -> dict[str, int]:
        """The request counts since the last take (or reset); they start again from zero."""
        with self._lock:
            taken, self.counters = self.counters, Counter()
        return dict(taken)

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
        outer, current.deadline = getattr(current, "deadline", None), deadline
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
                error = errors.from_response(response)
                if response.status_code in (401, 403):
                    raise errors.Unauthorized(f"the token service refused the credentials: {error.message}",
                                              status=response.status_code)
                raise error
            raw = self._read_body(response, MAX_TOKEN_BYTES, op="GET token", what="token answer",
                                  deadline=deadline, who="the token service")
        finally:
            deadline.finish()
            current.deadline = outer
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise errors.Unauthorized("the token service answered with something that is not JSON") from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise errors.Unauthorized("the token service answered without a token")
        if not _TOKEN_TEXT.fullmatch(token):  # it goes into a header: no space, no line break
            raise errors.Unauthorized("the token service answered with a token that is not printable ASCII")
        expires_in = body.get("expires_in") or 60
        try:
            expires_in = float(expires_in)
        except (TypeError, ValueError, OverflowError):
            expires_in = 60.0
        self._tokens.put(scopes, token, expires_in)
        return token

    # -- bodies and deadlines ----------------------------------------------

    def _deadline_start(self, seconds: float | None = None) -> Deadline:
        deadline = Deadline(self.deadline if seconds is None else seconds)
        watchdog.add(deadline)
        return deadline

    def _deadline_error(self, deadline: Deadline, who: str = "") -> errors.RegistryUnavailable:
        return errors.RegistryUnavailable(
            f"{who or 'the registry'} did not finish answering within {deadline.seconds:g} s", code="DEADLINE")

    def _read_body(self, response: requests.Response, cap: int, *, op: str, what: str,
                   deadline: Deadline | None = None, truncate: bool = False, who: str = "") -> bytes:
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
                raise errors.RegistryUnavailable(f"reading the {what} failed: {errors.short_reason(exc)}") from None
            if deadline is not None and deadline.expired:
                raise self._deadline_error(deadline, who)
            body = b"".join(chunks)
            response._content = body  # what .json() and .content read from now on
            response._content_consumed = True
            return body
        finally:
            response.close()

    def request(self, method: str, path: str, *, op: str, scopes: tuple[str, ...] = (),
                headers: dict[str, str] | None = None, params: dict[str, str] | None = None, data: object = None,
                stream: bool = False, ok: tuple[int, ...] = (200,), retry_codes: tuple[str, ...] = (),
                max_bytes: int = MAX_PAGE_BYTES) -> requests.Response:
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
            except requests.RequestException as exc:
                deadline.finish()
                error: errors.RegistryError = self._exchange_error(exc, deadline)
            except errors.RegistryError:
                deadline.finish()
                raise
            else:
                self._note_rate_limit(response)
                if response.status_code in ok:
                    if stream:
                        deadline_on_close(response, deadline)
                        return response
                    try:
                        self._read_body(response, max_bytes, op=op, what=f"{op} answer", deadline=deadline)
                    finally:
                        deadline.finish()
                    return response
                self._error_body_read(response, op=op, deadline=deadline)
                if (response.status_code == 401 and not authenticated_retry and own
                        and self._challenge_adopt(response, scope_set)):
                    authenticated_retry = True
                    if not hasattr(data, "read"):
                        attempt -= 1
                        continue
                error = errors.from_response(response)
                if response.status_code == 401:
                    error = self._explain_unauthorized(response, error, scopes)
            wait = self._retry_wait(error, attempt=attempt, retry_codes=retry_codes,
                                    idempotent=idempotent, rereadable=not hasattr(data, "read"))
            if wait is None:
                raise error
            logger.info("registry %s: %s, retrying in %.1fs", self.host, error.code, wait)
            self._sleep(wait)

    def _error_body_read(self, response: requests.Response, *, op: str, deadline: Deadline) -> None:
        """Read enough of an error body for the registry's message; only a passed deadline is raised."""
        try:
            self._read_body(response, MAX_ERROR_BYTES, op=op, what="error body", deadline=deadline, truncate=True)
        except errors.RegistryError as exc:
            if exc.code == "DEADLINE":
                raise
        finally:
            deadline.finish()

    def _challenge_adopt(self, response: requests.Response, scopes: frozenset[str]) -> bool:
        """Take a 401's challenge to authenticate the next try; False when there is nothing to answer it with."""
        challenge = challenge_pick(response.headers.get("WWW-Authenticate", ""), basic=bool(self.username))
        if challenge is None or self._static_token:
            return False
        self._challenge = challenge
        self._tokens.drop(scopes)
        return True

    def _exchange_error(self, exc: requests.RequestException, deadline: Deadline) -> errors.RegistryError:
        """The typed error for a request that got no answer: timed out, refused, or its TLS refused."""
        if isinstance(exc, requests.Timeout):
            return errors.RegistryUnavailable(f"the registry did not answer within {self.timeout:g} s",
                                              code="TIMEOUT")
        if isinstance(exc, requests.ConnectionError):
            problem = errors.certificate_problem(exc)
            if deadline.expired:
                return self._deadline_error(deadline)
            if problem:
                return errors.RegistryUnavailable(
                    f"the TLS certificate of {self.host} could not be verified: {problem} "
                    "(give the registry's CA bundle, or mark it insecure)", code="TLS_VERIFY_FAILED")
            return errors.RegistryUnavailable(f"cannot connect to {self.host}: {errors.short_reason(exc)}",
                                              code="CONNECTION_FAILED")
        if deadline.expired:
            return self._deadline_error(deadline)
        return errors.RegistryUnavailable(f"request to {self.host} failed: {errors.short_reason(exc)}")

    def _retry_wait(self, error: errors.RegistryError, *, attempt: int, retry_codes: tuple[str, ...],
                    idempotent: bool, rereadable: bool) -> float | None:
        """Seconds to wait before sending again, or None when `error` is final."""
        retryable = isinstance(error, errors.RateLimited) or error.code in retry_codes or (
            isinstance(error, errors.RegistryUnavailable) and idempotent
            and error.code not in ("TLS_VERIFY_FAILED", "DEADLINE")  # these fail the same way again
        )
        if not retryable or attempt > self.max_retries or not rereadable:
            return None
        wait = getattr(error, "retry_after", None)
        if wait is None:
            wait = min(2.0 ** (attempt - 1) * 0.25, 4.0)
        return None if wait > self.max_retry_wait else wait

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
              deadline: Deadline) -> requests.Response:
        """One HTTP exchange, following redirects: Authorization never leaves the registry's origin
        (scheme, host and port), and https never turns into http unless the registry is insecure."""
        current.deadline = deadline
        try:
            for _ in range(MAX_REDIRECTS + 1):
                response = self._adapter.exchange(self.session, method, url, headers=headers, params=params,
                                                  data=data, timeout=self.timeout)
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
            current.deadline = None

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
