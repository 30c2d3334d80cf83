"""Fetching: registry I/O for a scan, in threads, at the protocol's request floor.

Content addressed by digest never changes, so a manifest (and what its
config told us) is fetched once and stored forever. Only tag -> digest needs
refreshing: on a re-scan that is one HEAD per tag, and a GET only for a digest
not yet known. A first sight of a tag is one GET (its digest comes in the
answer's header), plus one GET per unknown child manifest and config.

A repository is fetched in rounds (tags_fetch): every tag first, then what
their manifests name, level by level. Registry I/O runs in threads (the
registry's concurrency setting) and touches no database: before each round
the calling thread asks the database, in one query for the whole round, which
digests and configs are stored (Known), and hands the threads plain data.
The database is written from the calling thread only (storing.py).
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from registry import RegistryClient, errors
from registry.mediatypes import KIND_IMAGE, Manifest
from registry.platform import Platform

from .. import selectors
from ..models import Manifest as ManifestRow
from .share import CONFIGS, MANIFESTS, ScanShare
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
    head: str = ""  # a stored tag's new digest, from its HEAD (the first round)
    got: Manifest | None = None  # what a GET by tag answered, until its round learns it


@dataclass
class Carried:
    """What an earlier batch of the same part fetched, while its write may still be running
    (behind.py): counted as stored, so it is not fetched again."""

    manifests: frozenset[str] = frozenset()
    configs: dict[str, dict] = field(default_factory=dict)


class Known:
    """What is stored or being fetched in one repository's scan, shared by the fetching threads.

    The database is read by the calling thread, in bulk, before each round
    (claim_many, configs_lookup: the inventory may hold millions of digests;
    only those the round meets are asked for); the threads see plain data.
    So is the scan job's share (share.py), what the job's other parts fetched:
    asked before a round (share_claim), told after it (share_flush).
    """

    def __init__(self, share: ScanShare | None = None, carried: Carried | None = None) -> None:
        carried = carried or Carried()
        self._digests: set[str] = set(carried.manifests)
        self._configs: dict[str, dict] = {}
        self._stored_configs: dict[str, dict] = dict(carried.configs)
        self._pending: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        # The scan job's other parts (other repositories, other processes): what they fetched, what
        # this part claimed from them, and what it fetched for them since the last flush.
        self.share = share
        self._shared: dict[str, dict] = {MANIFESTS: {}, CONFIGS: {}}
        self._mine: dict[str, set[str]] = {MANIFESTS: set(), CONFIGS: set()}
        self._fetched: dict[str, dict] = {MANIFESTS: {}, CONFIGS: {}}

    def manifest(self, digest: str, fetch) -> Manifest:
        """A claimed manifest by digest: from another part of the scan that fetched it, else fetched."""
        shared = self._shared[MANIFESTS].pop(digest, None)
        if shared is not None:
            return shared
        manifest = fetch()
        self.published(manifest)
        return manifest

    def published(self, manifest: Manifest) -> None:
        """A manifest fetched here, for the other parts that meet its digest (at the next flush)."""
        if self.share is not None:
            with self._lock:
                self._fetched[MANIFESTS][manifest.digest] = manifest

    def share_claim(self, kind: str, digests: list[str]) -> set[str]:
        """The calling thread's, before a round: what other parts fetched of these digests (then used
        as fetched) and which they are fetching now (returned: for after share_wait); the rest are
        this part's to fetch."""
        if self.share is None or not digests:
            return set()
        found, others = self.share.claim_many(kind, digests)
        self._shared[kind].update(found)
        self._mine[kind].update(d for d in digests if d not in found and d not in others)
        return set(others)

    def share_wait(self, kind: str, digests: set[str]) -> None:
        """What the other parts fetch of `digests`; those they give up on are fetched here."""
        if self.share is not None and digests:
            self._shared[kind].update(self.share.wait_many(kind, sorted(digests)))

    def share_flush(self) -> None:
        """The calling thread's, after a round: leave what it fetched for the other parts, and give up
        the claims it did not fetch (a failed GET), so their waiters fetch for themselves."""
        if self.share is None:
            return
        for kind in (MANIFESTS, CONFIGS):
            fetched = self._fetched[kind]
            self.share.put_many(kind, fetched, given_up=sorted(self._mine[kind] - set(fetched)))
            self._fetched[kind], self._mine[kind] = {}, set()

    def claim_many(self, digests: list[str]) -> list[str]:
        """Those of `digests` this caller should fetch, in order: not stored, and not claimed before.
        The calling thread's: one query (per 500 digests) for the digests not met before."""
        fresh = [d for d in dict.fromkeys(digests) if d not in self._digests]
        if not fresh:
            return []
        stored = {digest for chunk in chunks(fresh)
                  for digest in ManifestRow.objects.filter(digest__in=chunk).values_list("digest", flat=True)}
        with self._lock:
            self._digests.update(fresh)
        return [digest for digest in fresh if digest not in stored]

    def claim(self, digest: str) -> bool:
        return bool(self.claim_many([digest]))

    def carry(self, fetches: list[TagFetch]) -> Carried:
        """What this batch fetched, for the next batch to count as stored while this one is written:
        the manifests of the tags that did not fail, and the configs it read (the stored ones are found
        in the database, as the batch before's are by the time the next batch starts)."""
        return Carried(manifests=frozenset(digest for fetch in fetches if not fetch.error for digest in fetch.learned),
                       configs={digest: config for digest, config in self._configs.items()
                                if digest not in self._stored_configs})

    def configs_lookup(self, digests: list[str]) -> set[str]:
        """The calling thread's, before a round: which of these configs stored manifests already use,
        or other parts of the scan fetched; returns those other parts are fetching now (share_claim)."""
        fresh = [d for d in dict.fromkeys(digests) if d not in self._configs and d not in self._stored_configs]
        if not fresh:
            return set()
        self._stored_configs.update(selectors.configs_known(digests=fresh))
        return self.share_claim(CONFIGS, [d for d in fresh if d not in self._stored_configs])

    def config(self, digest: str, fetch) -> dict:
        """A config by digest, read once however many manifests share it (every attestation shares `{}`);
        one stored already, or fetched by another part (configs_lookup), is not read at all."""
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
            config = self._stored_configs.get(digest)
            if config is None:
                config = self._shared[CONFIGS].get(digest)
            if config is None:
                config = fetch()
                if self.share is not None:
                    with self._lock:
                        self._fetched[CONFIGS][digest] = config
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
    """`map` over `workers` threads (none of which opens a database connection: they get plain data)."""
    results: list = [None] * len(items)
    lock = threading.Lock()
    next_index = 0

    def work() -> None:
        nonlocal next_index
        while True:
            with lock:
                if next_index >= len(items):
                    return
                index = next_index
                next_index += 1
            results[index] = function(items[index])

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


# One manifest to learn: the tag it is learned for, the manifest, and how deep under the tag it is.
Item = tuple[TagFetch, Manifest, int]


def _learn_one(client: RegistryClient, repository: str, known: Known, item: Item, catch: bool) -> None:
    """Check a claimed manifest and, for an image, read its config (unless stored: configs_lookup)."""
    fetch, manifest, _ = item
    if fetch.error:
        return
    with _tag_errors(fetch, repository) if catch else nullcontext():
        columns_check(manifest)
        learned = Learned(manifest=manifest)
        fetch.learned[manifest.digest] = learned
        if manifest.kind != KIND_IMAGE or manifest.config is None:
            return
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


def _child_get(client: RegistryClient, repository: str, known: Known, digest: str, owner: tuple[TagFetch, int],
               catch: bool) -> Item | None:
    """GET one claimed child for the tag that met it first; one that answers 404 is recorded as missing."""
    fetch, depth = owner
    if fetch.error:
        return None
    with _tag_errors(fetch, repository) if catch else nullcontext():
        try:
            manifest = known.manifest(digest, lambda: client.get_manifest(repository, digest))
        except errors.NotFound:
            fetch.missing.append(digest)
            return None
        return fetch, manifest, depth
    return None


def _config_digest(item: Item) -> str:
    manifest = item[1]
    return manifest.config.digest if manifest.kind == KIND_IMAGE and manifest.config is not None else ""


def manifests_learn(*, client: RegistryClient, repository: str, items: list[Item], known: Known,
                    concurrency: int = 1, catch: bool = True) -> None:
    """Learn claimed manifests, level by level: the configs of the images, then the unknown children of
    the indexes (each fetched for the first tag that met it), then theirs.

    Each level starts with one lookup of what the database holds of it, and one of what the scan's other
    parts fetched; what they are fetching now is waited for after this part's own fetches. A registry
    error is recorded on the tag it was met for (`catch`), else raised.
    """
    def learn(batch: list[Item]) -> None:
        thread_map(lambda item: _learn_one(client, repository, known, item, catch), batch, concurrency)

    def child_get(pairs: list) -> list:
        return thread_map(lambda pair: _child_get(client, repository, known, *pair, catch), pairs, concurrency)

    while items:
        elsewhere = known.configs_lookup([digest for item in items if (digest := _config_digest(item))])
        learn([item for item in items if _config_digest(item) not in elsewhere])
        known.share_flush()
        if elsewhere:
            known.share_wait(CONFIGS, elsewhere)
            learn([item for item in items if _config_digest(item) in elsewhere])
            known.share_flush()
        owners: dict[str, tuple[TagFetch, int]] = {}
        for fetch, manifest, depth in items:
            if manifest.is_index and depth < selectors.MAX_DEPTH and not fetch.error:
                for child in manifest.children:
                    owners.setdefault(child.digest, (fetch, depth + 1))
        claimed = [(digest, owners[digest]) for digest in known.claim_many(list(owners))]
        elsewhere = known.share_claim(MANIFESTS, [digest for digest, _ in claimed])
        got = child_get([pair for pair in claimed if pair[0] not in elsewhere])
        known.share_flush()
        if elsewhere:
            known.share_wait(MANIFESTS, elsewhere)
            got += child_get([pair for pair in claimed if pair[0] in elsewhere])
            known.share_flush()
        items = [item for item in got if item is not None]


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


def _tag_get(client: RegistryClient, repository: str, fetch: TagFetch, known: Known) -> None:
    manifest = client.get_manifest(repository, fetch.name)
    fetch.digest, fetch.got = manifest.digest, manifest
    known.published(manifest)


def tag_fetch(*, client: RegistryClient, repository: str, tag: str, stored_digest: str, known: Known) -> TagFetch:
    """The first round for one tag: a HEAD of a stored tag (its digest unchanged: done; moved: `head`,
    for tags_fetch to say whether it must be read), else a GET by tag. Never raises a registry error."""
    fetch = TagFetch(name=tag)
    with _tag_errors(fetch, repository):
        if stored_digest:
            head = client.head_manifest(repository, tag)
            if head.digest == stored_digest:
                fetch.digest, fetch.unchanged = stored_digest, True
                return fetch
            if head.digest:
                fetch.head = head.digest
                return fetch
        _tag_get(client, repository, fetch, known)
    return fetch


def _tags_moved_get(*, client: RegistryClient, repository: str, fetches: list[TagFetch], known: Known,
                    concurrency: int) -> list[TagFetch]:
    """The tags that moved: a GET for the first of each new digest not stored, nothing for the others.
    Returns those read whose digest is still the one claimed (the tag may have moved again meanwhile)."""
    moved = [fetch for fetch in fetches if fetch.head]
    mine = set(known.claim_many([fetch.head for fetch in moved]))
    getters: list[TagFetch] = []
    for fetch in moved:
        if fetch.head in mine:
            mine.discard(fetch.head)
            getters.append(fetch)
        else:  # stored already, or another tag is reading it
            fetch.digest = fetch.head

    def get(fetch: TagFetch) -> None:
        with _tag_errors(fetch, repository):
            _tag_get(client, repository, fetch, known)

    thread_map(get, getters, concurrency)
    known.share_flush()
    return [fetch for fetch in getters if fetch.got is not None and fetch.got.digest == fetch.head]


def tags_fetch(*, client: RegistryClient, repository: str, names: list[str], stored: dict[str, str], known: Known,
               concurrency: int) -> list[TagFetch]:
    """Registry I/O for a repository's tags, in rounds; a registry error is recorded on its tag.

    Every tag is read before any child is fetched: a child that is also tagged
    (`1.4-arm64`) is then known from its tag, not fetched again by digest.
    """
    fetches = thread_map(lambda tag: tag_fetch(client=client, repository=repository, tag=tag,
                                               stored_digest=stored.get(tag, ""), known=known), names, concurrency)
    known.share_flush()  # the manifests read by tag, for the parts that meet them by digest
    owned = _tags_moved_get(client=client, repository=repository, fetches=fetches, known=known,
                            concurrency=concurrency)
    owned_ids = {id(fetch) for fetch in owned}
    rest = [fetch for fetch in fetches if fetch.got is not None and id(fetch) not in owned_ids]
    mine = set(known.claim_many([fetch.got.digest for fetch in rest]))
    for fetch in rest:
        if fetch.got.digest in mine:
            mine.discard(fetch.got.digest)
            owned.append(fetch)
        else:  # another tag learns it, or it is stored: what this tag read is not kept
            fetch.got = None
    manifests_learn(client=client, repository=repository, items=[(fetch, fetch.got, 0) for fetch in owned],
                    known=known, concurrency=concurrency)
    for fetch in fetches:
        fetch.got = None
    return fetches
