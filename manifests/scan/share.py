"""What one scan job has fetched, shared by its parts through Redis.

A whole-registry scan runs one part per repository, on several worker
processes (and machines) at once. Repositories share content: mirrors hold
the same manifests, images of several repositories share configs. The
database says what earlier scans stored, but a part writes its repository
only when it ends, so two parts running side by side would both fetch what
neither has stored yet. Here the first part to need a digest claims it
(`SET NX`), fetches it and leaves what it read for the others, who wait for
it instead of asking the registry again. A part asks once per round of its
scan (fetching.py), for every digest of the round in one round trip, and
leaves what it fetched in one more.

Entries live a few minutes: long enough for the other parts running now,
after which the database holds what was fetched. Redis down or slow is no
error: the part then fetches for itself, as a single-repository scan does.
"""

from __future__ import annotations

import json
import logging
import os
import time

import redis
from django.conf import settings

from registry.mediatypes import parse_manifest
from registry.reference import digest_matches

logger = logging.getLogger(__name__)

TTL_SECONDS = 120  # what one part leaves for the others (its repository is stored by then)
CLAIM_SECONDS = 60  # a fetch that takes longer is taken over
WAIT_SECONDS = 60.0
POLL_SECONDS = 0.02
MANIFESTS, CONFIGS = "m", "c"  # the two kinds of content shared


_clients: dict[tuple[int, str], redis.Redis] = {}


def _redis_client() -> redis.Redis:
    """This process's client (a pool of connections, safe across threads), kept between parts."""
    key = (os.getpid(), settings.CELERY_BROKER_URL)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5.0,
                                                      socket_connect_timeout=1.0)
    return client


class ScanShare:
    """Claims and fetched content of one scan job, keyed by digest; every call is one Redis round trip
    for a whole round of digests (a part's round meets hundreds)."""

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
            client = _redis_client()
            client.ping()
        except (redis.RedisError, OSError) as exc:
            logger.info("scan job %s: no shared fetch state (%s); each part fetches for itself", job_id, exc)
            return None
        return cls(key, client)

    def close(self) -> None:
        """Nothing to close: the connection pool is the process's, for its next part."""

    def _off(self, exc: Exception) -> None:
        if self.enabled:
            logger.info("scan share off after a Redis error: %s", exc)
        self.enabled = False

    def _key(self, kind: str, digest: str) -> str:
        return f"{self._prefix}{kind}:{digest}"

    def claim_many(self, kind: str, digests: list[str]) -> tuple[dict[str, object], list[str]]:
        """What other parts left of `digests` (decoded), and those another part is fetching now; the
        rest are claimed for this part, to fetch and `put_many`. Redis down: everything is ours."""
        if not self.enabled or not digests:
            return {}, []
        pipe = self._redis.pipeline(transaction=False)
        for digest in digests:
            pipe.get(self._key(kind, digest))
            pipe.set(self._key(kind, digest) + ":claim", self._token, nx=True, ex=CLAIM_SECONDS)
        try:
            answers = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._off(exc)
            return {}, []
        found: dict[str, object] = {}
        others: list[str] = []
        for digest, value, claimed in zip(digests, answers[::2], answers[1::2], strict=True):
            if value is not None and (decoded := self._decode(kind, digest, value)) is not None:
                found[digest] = decoded
            elif value is None and not claimed:
                others.append(digest)
        self.hits += len(found)
        return found, others

    def wait_many(self, kind: str, digests: list[str]) -> dict[str, object]:
        """What the parts that claimed `digests` leave, as it arrives; a digest whose claim is given up
        (its fetch failed) or that takes longer than WAIT_SECONDS is left out: the caller fetches it."""
        found: dict[str, object] = {}
        pending = list(digests)
        deadline = time.monotonic() + WAIT_SECONDS
        while pending and self.enabled and time.monotonic() < deadline:
            try:
                values, claims = (self._redis.pipeline(transaction=False)
                                  .mget([self._key(kind, d) for d in pending])
                                  .mget([self._key(kind, d) + ":claim" for d in pending]).execute())
            except (redis.RedisError, OSError) as exc:
                self._off(exc)
                break
            still: list[str] = []
            for digest, value, claim in zip(pending, values, claims, strict=True):
                if value is not None:
                    decoded = self._decode(kind, digest, value)
                    if decoded is not None:
                        found[digest] = decoded
                elif claim is not None:
                    still.append(digest)
            pending = still
            if pending:
                time.sleep(POLL_SECONDS)  # the other parts are fetching them
        self.hits += len(found)
        return found

    def put_many(self, kind: str, values: dict[str, object], *, given_up: list[str] = ()) -> None:
        """Leave what this part fetched for the others; give up the claims of `given_up` (fetches that
        failed), so that the parts waiting for them fetch for themselves."""
        if not self.enabled or not (values or given_up):
            return
        pipe = self._redis.pipeline(transaction=False)
        for digest, value in values.items():
            pipe.set(self._key(kind, digest), self._encode(kind, value), ex=TTL_SECONDS)
        for digest in given_up:
            pipe.delete(self._key(kind, digest) + ":claim")
        try:
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._off(exc)

    @staticmethod
    def _encode(kind: str, value: object) -> bytes:
        if kind == MANIFESTS:
            return value.media_type.encode() + b"\n" + value.raw
        return json.dumps(value).encode()

    def _decode(self, kind: str, digest: str, value: bytes) -> object | None:
        """A value another part left; None (and forgotten) for a manifest that is not what its digest
        names: the cache is never trusted with content, which is addressed by digest."""
        if kind != MANIFESTS:
            return json.loads(value)
        content_type, _, raw = value.partition(b"\n")
        if not digest_matches(raw, digest):
            try:
                self._redis.delete(self._key(kind, digest))
            except (redis.RedisError, OSError) as exc:
                self._off(exc)
            return None
        return parse_manifest(raw, content_type=content_type.decode(), digest=digest)
