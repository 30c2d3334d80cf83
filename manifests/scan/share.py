"""What one scan job has fetched, shared by its parts through Redis.

A whole-registry scan runs one part per repository, on several worker
processes (and machines) at once. Repositories share content: mirrors hold
the same manifests, images of several repositories share configs. The
database says what earlier scans stored, but a part writes its repository
only when it ends, so two parts running side by side would both fetch what
neither has stored yet. Here the first part to need a digest claims it
(`SET NX`), fetches it and leaves what it read for the others, who wait for
it instead of asking the registry again.

Entries live a few minutes: long enough for the other parts running now,
after which the database holds what was fetched. Redis down or slow is no
error: the part then fetches for itself, as a single-repository scan does.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable

import redis
from django.conf import settings

from registry.mediatypes import Manifest, parse_manifest
from registry.reference import digest_matches

logger = logging.getLogger(__name__)

TTL_SECONDS = 120  # what one part leaves for the others (its repository is stored by then)
CLAIM_SECONDS = 60  # a fetch that takes longer is taken over
WAIT_SECONDS = 60.0
POLL_SECONDS = 0.02


class ScanShare:
    """Claims and fetched content of one scan job, keyed by digest."""

    def __init__(self, key: str, client: redis.Redis) -> None:
        self._prefix = f"manifests:scan:{key}:"
        self._redis = client
        self._token = f"{os.getpid()}"
        self.enabled = True
        self.hits = 0  # digests read from another part instead of the registry

    @classmethod
    def for_job(cls, job_id: int, key: str) -> ScanShare | None:
        """The share of a scan job (`key`: random, drawn at its fan-out, so that another database's job
        of the same id on the same Redis shares nothing with it), or None when Redis does not answer."""
        try:
            client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5.0,
                                          socket_connect_timeout=1.0)
            client.ping()
        except (redis.RedisError, OSError) as exc:
            logger.info("scan job %s: no shared fetch state (%s); each part fetches for itself", job_id, exc)
            return None
        return cls(key, client)

    def close(self) -> None:
        self._redis.close()

    def _off(self, exc: Exception) -> None:
        if self.enabled:
            logger.info("scan share off after a Redis error: %s", exc)
        self.enabled = False

    def _get_or_fetch(self, kind: str, digest: str, fetch: Callable[[], bytes]) -> bytes:
        if not self.enabled:
            return fetch()
        value_key, claim_key = f"{self._prefix}{kind}:{digest}", f"{self._prefix}{kind}:{digest}:claim"
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            while time.monotonic() < deadline:
                # One round trip: what another part left, and our claim in case it left nothing.
                value, claimed = (self._redis.pipeline(transaction=False).get(value_key)
                                  .set(claim_key, self._token, nx=True, ex=CLAIM_SECONDS).execute())
                if value is not None:
                    self.hits += 1
                    return value
                if claimed:
                    break
                time.sleep(POLL_SECONDS)  # another part is fetching it
        except (redis.RedisError, OSError) as exc:
            self._off(exc)
            return fetch()
        try:
            value = fetch()
        except BaseException:
            self._forget(claim_key)  # the others try for themselves
            raise
        self._put(value_key, value)
        return value

    def _forget(self, key: str) -> None:
        try:
            self._redis.delete(key)
        except (redis.RedisError, OSError) as exc:
            self._off(exc)

    def _put(self, key: str, value: bytes) -> None:
        if not self.enabled:
            return
        try:
            self._redis.set(key, value, ex=TTL_SECONDS)
        except (redis.RedisError, OSError) as exc:
            self._off(exc)

    def manifest(self, digest: str, fetch: Callable[[], Manifest]) -> Manifest:
        """A manifest by digest: from a part that fetched it, else `fetch()` (and left for the others)."""
        fetched: list[Manifest] = []

        def fetch_encoded() -> bytes:
            manifest = fetch()
            fetched.append(manifest)
            return _encode(manifest)

        value = self._get_or_fetch("m", digest, fetch_encoded)
        if fetched:
            return fetched[0]
        content_type, _, raw = value.partition(b"\n")
        if not digest_matches(raw, digest):  # never trust the cache with content: it is addressed by digest
            self._forget(f"{self._prefix}m:{digest}")
            return fetch()
        return parse_manifest(raw, content_type=content_type.decode(), digest=digest)

    def manifest_publish(self, manifest: Manifest) -> None:
        """A manifest read by tag: the other parts may need it by digest (a child, a mirror's list)."""
        self._put(f"{self._prefix}m:{manifest.digest}", _encode(manifest))

    def config(self, digest: str, fetch: Callable[[], dict]) -> dict:
        """An image config by digest, fetched once across the parts."""
        fetched: list[dict] = []

        def fetch_encoded() -> bytes:
            config = fetch()
            fetched.append(config)
            return json.dumps(config).encode()

        value = self._get_or_fetch("c", digest, fetch_encoded)
        return fetched[0] if fetched else json.loads(value)


def _encode(manifest: Manifest) -> bytes:
    return manifest.media_type.encode() + b"\n" + manifest.raw
