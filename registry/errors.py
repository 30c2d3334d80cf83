"""Typed errors for registry I/O.

Every error keeps the registry's own `code` and `message` (OCI distribution
spec, "Error Codes") so the UI can show the registry's words to the user.
"""

from __future__ import annotations


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
