"""Fetching: registry I/O for a scan, in threads, at the protocol's request floor.

Content addressed by digest never changes, so a manifest (and what its
config told us) is fetched once and stored forever. Only tag -> digest needs
refreshing: on a re-scan that is one HEAD per tag, and a GET only for a digest
not yet known. A first sight of a tag is one GET (its digest comes in the
answer's header), plus one GET per unknown child manifest and config.

Registry I/O runs in threads (the registry's concurrency setting); the
database is written from the calling thread only (storing.py).
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from registry import RegistryClient, errors
from registry.mediatypes import KIND_IMAGE, Manifest
from registry.platform import Platform

from .. import selectors
from ..models import Manifest as ManifestRow
from .share import ScanShare
from .storing import chunks, columns_check, platform_fits

logger = logging.getLogger(__name__)

@dataclass
class Learned:
    """A manifest fetched in this scan, with what its config told us."""

    manifest: Manifest
    platform: Platform | None = None
    created: datetime.datetime | None = None
    blob_size: int = 0  # config plus layers
    config: dict | None = None  # an image's config, kept for its page


@dataclass
class TagFetch:
    name: str
    digest: str = ""
    unchanged: bool = False
    learned: dict[str, Learned] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    error: str = ""


class Known:
    """What is stored or being fetched, shared by the fetching threads.

    A digest is looked up in the database the first time a thread meets it
    (the inventory may hold millions; none is loaded whole), then remembered.
    The children of a repository's lists are looked up together, in one query.
    """

    def __init__(self, share: ScanShare | None = None) -> None:
        self._digests: set[str] = set()
        self._configs: dict[str, dict] = {}
        self._pending: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        # The scan job's other parts (other repositories, other processes): what they fetched.
        self.share = share

    def manifest(self, digest: str, fetch) -> Manifest:
        """A claimed manifest by digest: from another part of the scan that fetched it, else fetched."""
        if self.share is None:
            return fetch()
        return self.share.manifest(digest, fetch)

    def published(self, manifest: Manifest) -> None:
        """A manifest read by tag, for the other parts that meet its digest."""
        if self.share is not None:
            self.share.manifest_publish(manifest)

    def claim_many(self, digests: list[str]) -> list[str]:
        """Those of `digests` this caller should fetch, in order: not stored, and nobody else is fetching them."""
        with self._lock:
            fresh = [d for d in dict.fromkeys(digests) if d not in self._digests]
        if not fresh:
            return []
        stored = {digest for chunk in chunks(fresh)
                  for digest in ManifestRow.objects.filter(digest__in=chunk).values_list("digest", flat=True)}
        mine: list[str] = []
        with self._lock:
            for digest in fresh:
                if digest in self._digests:
                    continue
                self._digests.add(digest)
                if digest not in stored:
                    mine.append(digest)
        return mine

    def claim(self, digest: str) -> bool:
        return bool(self.claim_many([digest]))

    def config(self, digest: str, fetch) -> dict:
        """A config by digest, read once however many manifests share it (every attestation shares `{}`)."""
        while True:
            with self._lock:
                if digest in self._configs:
                    return self._configs[digest]
                waiting = self._pending.get(digest)
                if waiting is None:
                    self._pending[digest] = threading.Event()
                    break
            waiting.wait(timeout=60)
        try:
            config = selectors.config_known(digest=digest)
            if config is None:
                config = self.share.config(digest, fetch) if self.share is not None else fetch()
            with self._lock:
                self._configs[digest] = config
            return config
        finally:
            with self._lock:
                self._pending.pop(digest).set()


# Configs up to this size are stored whole for the image's page (most are a few KiB).
CONFIG_KEEP_MAX = 256 * 1024


_CONFIG_KEPT = ("os", "architecture", "variant", "os.version", "os.features", "created")


def _config_kept(config: dict, *, size: int) -> dict:
    """What a scan keeps of an image config (held in memory, and shared between parts): the whole
    config when it is small enough to store for the image's page, else the fields the scan uses."""
    if 0 <= size <= CONFIG_KEEP_MAX:
        return config
    return {key: config[key] for key in _CONFIG_KEPT if key in config}


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def _fetch_pool(workers: int) -> ThreadPoolExecutor:
    """This process's fetching threads, kept between repositories: a fan-out worker scans one
    repository after another, and starting threads for each costs more than its requests on a
    busy machine."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid() or _pool._max_workers < workers:
            _pool = ThreadPoolExecutor(max_workers=max(workers, 4), thread_name_prefix="scan-fetch")
            _pool_pid = os.getpid()
        return _pool


def thread_map(function, items: list, workers: int) -> list:
    """`map` over `workers` threads, each closing its database connection when done."""
    from django.db import connections

    results: list = [None] * len(items)
    lock = threading.Lock()
    next_index = 0

    def work() -> None:
        nonlocal next_index
        try:
            while True:
                with lock:
                    if next_index >= len(items):
                        return
                    index = next_index
                    next_index += 1
                results[index] = function(items[index])
        finally:
            connections.close_all()

    count = max(1, min(workers, len(items)))
    if count == 1:
        for index, item in enumerate(items):
            results[index] = function(item)
        return results
    pool = _fetch_pool(count)
    for future in [pool.submit(work) for _ in range(count)]:
        future.result()
    return results



def config_created(value: object) -> datetime.datetime | None:
    """A config's creation time; None for one that is no date ("2024-13-45") or none a database holds."""
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            return None
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=datetime.UTC)
        return parsed.astimezone(datetime.UTC)  # year 1 at +14:00 overflows here, not in the database
    except (ValueError, OverflowError):
        return None


def manifest_learn(*, client: RegistryClient, repository: str, manifest: Manifest, known: Known, fetch: TagFetch,
                   depth: int = 0, deferred: list[tuple[TagFetch, Manifest]] | None = None) -> None:
    """Fetch the config of an image, or the unknown children of an index.

    With `deferred`, an index's children wait there for a second pass, after
    every tag of the repository is read: a child that is also tagged
    (`1.4-arm64`) is then known from its tag, not fetched again by digest.
    """
    columns_check(manifest)
    learned = Learned(manifest=manifest)
    fetch.learned[manifest.digest] = learned
    if manifest.kind == KIND_IMAGE and manifest.config is not None:
        config = known.config(manifest.config.digest,
                              lambda: _config_kept(client.get_json_blob(repository, manifest.config.digest),
                                                   size=manifest.config.size))
        try:
            learned.platform = Platform.from_json(config)
        except ValueError:
            learned.platform = None
        if learned.platform is not None and not platform_fits(learned.platform, ManifestRow):
            learned.platform = None  # as for any platform that is not one: the image is kept, without it
        if learned.platform is not None and (problem := learned.platform.grammar_problem()):
            # Refused, as in an index: a value that is no token would reach pages and CSV headers.
            raise errors.ManifestInvalid(f"config: platform {problem}")
        learned.created = config_created(config.get("created"))
        learned.blob_size = sum(blob.size for blob in manifest.blobs)
        if manifest.config.size <= CONFIG_KEEP_MAX and not config.get(selectors.CONFIG_PARTIAL):
            learned.config = config
    elif manifest.is_index and depth < selectors.MAX_DEPTH:
        if deferred is not None:
            deferred.append((fetch, manifest))
            return
        _learn_children(client, repository, manifest, known, fetch, depth)


def _learn_children(client: RegistryClient, repository: str, manifest: Manifest, known: Known, fetch: TagFetch,
                    depth: int) -> None:
    for digest in known.claim_many([child.digest for child in manifest.children]):
        _learn_child(client, repository, digest, known, fetch, depth + 1)


def _learn_child(client: RegistryClient, repository: str, digest: str, known: Known, fetch: TagFetch,
                 depth: int) -> None:
    """GET one claimed child and learn it; one that answers 404 is recorded as missing."""
    try:
        manifest = known.manifest(digest, lambda: client.get_manifest(repository, digest))
    except errors.NotFound:
        fetch.missing.append(digest)
        return
    manifest_learn(client=client, repository=repository, manifest=manifest, known=known, fetch=fetch, depth=depth)


@contextmanager
def _tag_errors(fetch: TagFetch, repository: str) -> Iterator[None]:
    """Record a registry error on the tag; never raise one (the scan goes on with the other tags)."""
    try:
        yield
    except errors.RegistryError as exc:
        fetch.error = str(exc)
    except Exception as exc:
        # What a hostile registry serves must cost one tag at most, even when it finds a bug here.
        logger.exception("reading %s:%s failed", repository, fetch.name)
        fetch.error = f"internal error reading this tag: {type(exc).__name__}"
    if fetch.error:
        # Store nothing of a tag that failed half-way: an index kept without the child that failed
        # its check would be "known" on the next scan, and the error forgotten.
        fetch.learned.clear()


def tag_fetch(*, client: RegistryClient, repository: str, tag: str, stored_digest: str, known: Known,
              deferred: list[tuple[TagFetch, Manifest]] | None = None) -> TagFetch:
    """Registry I/O for one tag; never raises a registry error (it is recorded)."""
    fetch = TagFetch(name=tag)
    with _tag_errors(fetch, repository):
        claimed = False
        if stored_digest:
            head = client.head_manifest(repository, tag)
            if head.digest == stored_digest:
                fetch.digest, fetch.unchanged = stored_digest, True
                return fetch
            if head.digest:
                claimed = known.claim(head.digest)
                if not claimed:  # stored already, or another tag is fetching it
                    fetch.digest = head.digest
                    return fetch
        manifest = client.get_manifest(repository, tag)
        fetch.digest = manifest.digest
        known.published(manifest)
        # The tag may have moved again between the HEAD and the GET: claim what we got.
        if (claimed and manifest.digest == head.digest) or known.claim(manifest.digest):
            manifest_learn(client=client, repository=repository, manifest=manifest, known=known, fetch=fetch,
                           deferred=deferred)
    return fetch


def child_fetch(*, client: RegistryClient, repository: str, digest: str, fetch: TagFetch, known: Known) -> None:
    """The second pass: one child of a list that `fetch` read, claimed for it."""
    if fetch.error:
        return
    with _tag_errors(fetch, repository):
        _learn_child(client, repository, digest, known, fetch, 1)
