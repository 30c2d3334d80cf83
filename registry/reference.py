"""Image references: `[host[:port]/]path[:tag][@digest]`.

Grammar from distribution/reference (the `reference` package of Docker Distribution).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .errors import InvalidReference

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_LOWER_HEX = re.compile(r"[0-9a-f]*")
# The algorithms the OCI image spec registers and this client verifies; any other (md5, shake_*,
# multihash) is refused wherever a digest is parsed, so nothing unverifiable is ever trusted.
DIGEST_ALGORITHMS = {"sha256": 64, "sha512": 128}
_HOST = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$"
)
MAX_NAME_LENGTH = 255
DOCKER_HUB = "docker.io"


def validate_repository(name: str) -> str:
    """Return `name` if it is a valid repository path, else raise."""
    if not name:
        raise InvalidReference("repository name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidReference(f"repository name is longer than {MAX_NAME_LENGTH} characters")
    for component in name.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise InvalidReference(
                f"{name!r} is not a valid repository name: each part must be lowercase letters and "
                "digits, separated by '.', '_', '__' or '-'"
            )
    return name


def validate_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag or ""):
        raise InvalidReference(
            f"{tag!r} is not a valid tag: up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        )
    return tag


def validate_digest(digest: str) -> str:
    """Return `digest` if it is `sha256:<64 hex>` or `sha512:<128 hex>` (lowercase), else raise."""
    if not _DIGEST.fullmatch(digest or ""):
        raise InvalidReference(f"{digest!r} is not a valid digest")
    algorithm, _, encoded = digest.partition(":")
    length = DIGEST_ALGORITHMS.get(algorithm)
    if length is None:
        raise InvalidReference(f"{digest[:80]!r} uses the digest algorithm {algorithm[:20]!r}: "
                               "only sha256 and sha512 are accepted")
    if len(encoded) != length or not _LOWER_HEX.fullmatch(encoded):
        raise InvalidReference(f"{digest[:160]!r} is not a valid {algorithm} digest "
                               f"({length} lowercase hex digits)")
    return digest


def digest_hasher(digest: str):
    """A fresh hash object for the algorithm of `digest` (validated first)."""
    return hashlib.new(validate_digest(digest).partition(":")[0])


def digest_matches(data: bytes, digest: str) -> bool:
    """Whether `data` has digest `digest`; raises InvalidReference for an unsupported algorithm."""
    hasher = digest_hasher(digest)
    hasher.update(data)
    return hasher.hexdigest() == digest.partition(":")[2]


@dataclass(frozen=True)
class Reference:
    repository: str
    tag: str = ""
    digest: str = ""
    host: str = ""

    @classmethod
    def parse(cls, text: str, *, allow_host: bool = True) -> Reference:
        """Parse a reference. Without tag or digest the tag is `latest`.

        With both a tag and a digest, the digest wins (the tag is kept only for display).
        """
        if not isinstance(text, str) or not text.strip():
            raise InvalidReference("the reference is empty")
        rest = text.strip()
        digest = ""
        if "@" in rest:
            rest, digest = rest.split("@", 1)
            validate_digest(digest)
        host = ""
        first, sep, remainder = rest.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            if not allow_host:
                raise InvalidReference(f"{text!r} names a registry host; give the repository path only")
            if not _HOST.fullmatch(first):
                raise InvalidReference(f"{first!r} is not a valid registry host")
            host, rest = first, remainder
        tag = ""
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            validate_tag(tag)
        validate_repository(rest)
        if host == DOCKER_HUB and "/" not in rest:
            rest = f"library/{rest}"
        if not tag and not digest:
            tag = "latest"
        return cls(repository=rest, tag=tag, digest=digest, host=host)

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when there is one, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}" if self.host else self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text
