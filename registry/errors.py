"""Typed errors for registry I/O.

Every error keeps the registry's own `code` and `message` (OCI distribution
spec, "Error Codes") so the UI can show the registry's words to the user.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

MAX_ERROR_MESSAGE = 2000  # characters of a registry's error message kept


class RegistryError(Exception):
    """Base of every error raised by the registry client."""

    code: str = "UNKNOWN"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 detail: object = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code != "UNKNOWN" else self.message


class RegistryUnavailable(RegistryError):
    """The registry could not be reached, timed out or answered 5xx."""

    code = "UNAVAILABLE"


class Unauthorized(RegistryError):
    code = "UNAUTHORIZED"


class Denied(RegistryError):
    code = "DENIED"


class NotFound(RegistryError):
    code = "NOT_FOUND"


class ManifestUnknown(NotFound):
    code = "MANIFEST_UNKNOWN"


class BlobUnknown(NotFound):
    code = "BLOB_UNKNOWN"


class NameUnknown(NotFound):
    code = "NAME_UNKNOWN"


class RateLimited(RegistryError):
    code = "TOOMANYREQUESTS"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RequestInvalid(RegistryError):
    """The registry refused what we sent (4xx other than auth and not-found)."""


class ContentInvalid(RegistryError):
    """What the registry served cannot be trusted or understood."""

    code = "CONTENT_INVALID"


class DigestMismatch(ContentInvalid):
    code = "DIGEST_MISMATCH"


class ContentTooLarge(ContentInvalid):
    code = "TOO_LARGE"


class MediaTypeMismatch(ContentInvalid):
    code = "MEDIA_TYPE_MISMATCH"


class ManifestInvalid(ContentInvalid):
    code = "MANIFEST_INVALID"


class InvalidReference(ValueError):
    """An image reference that does not follow the distribution grammar."""


class InvalidPlatform(ValueError):
    """A platform string or object that cannot be understood."""


# Registry error codes mapped to the exception raised for them.
CODE_TO_ERROR: dict[str, type[RegistryError]] = {
    "UNAUTHORIZED": Unauthorized,
    "DENIED": Denied,
    "MANIFEST_UNKNOWN": ManifestUnknown,
    "BLOB_UNKNOWN": BlobUnknown,
    "NAME_UNKNOWN": NameUnknown,
    "TOOMANYREQUESTS": RateLimited,
}


# -- mapping answers and exceptions to typed errors ------------------------


def from_response(response: requests.Response) -> RegistryError:
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
        return RateLimited(message, code=code or None, status=status,
                           retry_after=retry_after(response), detail=detail)
    cls = CODE_TO_ERROR.get(code)
    if cls is None:
        if status == 401:
            cls = Unauthorized
        elif status == 403:
            cls = Denied
        elif status == 404:
            cls = NotFound
        elif status >= 500:
            cls = RegistryUnavailable
        else:
            cls = RequestInvalid
    error = cls(message, code=code or None, status=status, detail=detail)
    if status == 503:
        # A 503 may say when to come back (RFC 9110 §10.2.3), as a 429 does.
        error.retry_after = retry_after(response)
    return error


def retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def certificate_problem(exc: BaseException) -> str | None:
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


def short_reason(exc: Exception) -> str:
    """A one-line reason, without URLs that might carry query-string secrets.

    requests wraps urllib3, which wraps the socket error: walk the chain for
    the low-level cause a person can act on.
    """
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
