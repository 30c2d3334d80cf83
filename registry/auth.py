"""Registry authentication: challenge parsing and bearer tokens.

Docker token authentication spec ("Token Authentication Specification") and
the OCI distribution spec.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

_PARAM = re.compile(r'([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')

DEFAULT_TOKEN_LIFETIME = 60
# Ask again this many seconds before a token expires.
TOKEN_MARGIN = 5


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lowercased
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        scope = self.params.get("scope", "")
        return tuple(scope.split(" ")) if scope else ()

    @property
    def error(self) -> str:
        return self.params.get("error", "")


_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)(?=\s|,|$)")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate header, which may hold several challenges (RFC 7235 §4.1).

    A challenge is a scheme followed by comma-separated `key=value` or
    `key="quoted"` parameters; a bare word after a comma starts the next one.
    """
    challenges: list[Challenge] = []
    text = header or ""
    pos = 0
    while pos < len(text):
        while pos < len(text) and text[pos] in " ,":
            pos += 1
        match = _SCHEME.match(text, pos)
        if not match:
            break
        scheme, pos = match.group(1).lower(), match.end()
        params: dict[str, str] = {}
        while True:
            probe = pos
            while probe < len(text) and text[probe] in " ,":
                probe += 1
            param = _PARAM.match(text, probe)
            if not param:
                break
            key = param.group(1).lower()
            value = param.group(2) if param.group(2) is not None else param.group(3)
            params[key] = re.sub(r"\\(.)", r"\1", value or "")
            pos = param.end()
        challenges.append(Challenge(scheme=scheme, params=params))
    return challenges


def repository_scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


CATALOG_SCOPE = "registry:catalog:*"


@dataclass
class _Token:
    value: str
    expires_at: float


def challenge_pick(header: str, *, basic: bool) -> Challenge | None:
    """The challenge of a 401's WWW-Authenticate to answer: bearer before basic, and basic only with a
    username to give (`basic`)."""
    challenges = parse_challenges(header)
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return None if scheme == "basic" and not basic else challenge
    return None


class TokenCache:
    """Bearer tokens keyed by the exact set of scopes they were asked for."""

    def __init__(self) -> None:
        self._tokens: dict[frozenset[str], _Token] = {}
        self._lock = threading.Lock()

    def get(self, scopes: frozenset[str]) -> str | None:
        with self._lock:
            token = self._tokens.get(scopes)
            if token and token.expires_at > time.monotonic():
                return token.value
            return None

    def put(self, scopes: frozenset[str], value: str, expires_in: float) -> None:
        lifetime = max(1.0, float(expires_in) - TOKEN_MARGIN) if expires_in > TOKEN_MARGIN * 2 else float(expires_in)
        with self._lock:
            now = time.monotonic()
            if len(self._tokens) >= 256:  # a kept client meets a scope per repository: forget the expired
                self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
            self._tokens[scopes] = _Token(value=value, expires_at=now + lifetime)

    def drop(self, scopes: frozenset[str]) -> None:
        with self._lock:
            self._tokens.pop(scopes, None)
