"""One repository's scan: its tags fetched (fetching.py), stored (storing.py), its lists' children checked."""

from __future__ import annotations

import datetime
import functools
from concurrent.futures import Future
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from registry import RegistryClient, errors
from registry.mediatypes import parse_manifest
from registry.reference import validate_repository, validate_tag

from .. import selectors
from ..models import ListCheck, Registry, Repository, Tag
from ..services import events, signatures
from . import fetching
from .behind import WriteBehind
from .fetching import Known, TagFetch, thread_map
from .share import ScanShare
from .storing import chunks, repository_write


def grammar_split(names: list[str], validate) -> tuple[list[str], dict[str, str]]:
    """Names that follow the grammar, and why each other one does not.

    A name that breaks it is never requested (`../..` would leave /v2/) nor
    stored (no page could link to it, no column may fit it).
    """
    valid: list[str] = []
    invalid: dict[str, str] = {}
    for name in names:
        try:
            valid.append(validate(name))
        except errors.InvalidReference as exc:
            invalid[name] = str(exc)
    return valid, invalid


def skipped_note(skipped: dict[str, str]) -> str:
    if not skipped:
        return ""
    return f"the catalog lists {len(skipped)} names that break the repository grammar, skipped: {_shown(skipped)}"


def _shown(names, *, limit: int = 5) -> str:
    """A few names for a message, each cut short."""
    names = list(names)
    shown = ", ".join(repr(n if len(n) <= 40 else n[:40] + "…") for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")



def repository_scan(*, client: RegistryClient, registry: Registry, name: str, only_tags: list[str] | None = None,
                    concurrency: int = 4, verify_children: bool = False, share: ScanShare | None = None) -> dict:
    """Scan one repository's tags (or only `only_tags`); returns counts.

    `verify_children` also checks that every child of the lists these tags
    hold is still in the repository (children_verify).
    """
    return repository_scan_behind(client=client, registry=registry, name=name, only_tags=only_tags,
                                  concurrency=concurrency, verify_children=verify_children, share=share,
                                  writer=WriteBehind()).result()


def repository_scan_behind(*, client: RegistryClient, registry: Registry, name: str, writer: WriteBehind,
                           only_tags: list[str] | None = None, concurrency: int = 4, verify_children: bool = False,
                           share: ScanShare | None = None) -> Future:
    """repository_scan, its registry I/O here and its database work given to `writer` (behind.py),
    whose `carried` says what the part's batch before fetched. Returns the future of the last step:
    the counts, or what it raised."""
    try:
        validate_repository(name)
    except errors.InvalidReference as exc:
        counts = {"tags": 0, "errors": 1, "note": str(exc)}
        return writer.then(lambda: counts)
    # Rows are made only from what the registry answered, never before asking:
    # a repository it does not know, or a tag asked for by name that it did
    # not serve, leaves no row.
    repository = Repository.objects.filter(registry=registry, name=name).first()
    now = timezone.now()
    try:
        listed = only_tags if only_tags is not None else list(client.tags(name))
    except errors.RegistryError as exc:
        return writer.then(functools.partial(_listing_failed, registry, name, repository, exc, now=now,
                                             listed=only_tags is None))
    names, invalid = grammar_split(listed, validate_tag)
    note = f"skipped {len(invalid)} tag names that break the grammar: {_shown(invalid)}" if invalid else ""
    stored = dict(repository.tags.values_list("name", "digest")) if repository is not None else {}
    if only_tags is None:
        state = _listed_scan(client=client, registry=registry, name=name, names=names, stored=stored, share=share,
                             concurrency=concurrency, now=now, note=note, writer=writer)
    else:
        state = _named_scan(client=client, registry=registry, name=name, names=names, stored=stored, share=share,
                            concurrency=concurrency, now=now, note=note, writer=writer, exists=repository is not None)
        if isinstance(state, dict):
            return writer.then(lambda: state)

    def finish() -> dict:
        repository = state.repository()
        counts = state.counts
        if invalid:
            counts.update(skipped=len(invalid), note=note)
        if verify_children:
            counts.update(children_verify(client=client, repository=repository, names=state.names,
                                          present=state.fetched, concurrency=concurrency))
        elif only_tags is None:
            counts.update(children_check_due(client=client, repository=repository, present=state.fetched,
                                             concurrency=concurrency))
        signatures.scan_referrers(client=client, repository=repository, new_digests=state.fetched)
        return counts

    return writer.then(finish)


# A part holds the manifests and configs of this many tags at most, between a fetch and its write: a
# worker's memory then stays flat for a repository of any size (a few MiB per thousand tags).
TAGS_PER_WRITE = 1000


@dataclass
class _Scanned:
    """A repository's fetch, done; its writes given to the writer (the futures of their repository)."""

    names: list[str]
    counts: dict
    fetched: set[str]
    writes: list[Future] = field(default_factory=list)

    def repository(self) -> Repository:
        """The repository as its last write left it; raises what a write raised (steps run in order:
        each write has ended when a later step runs)."""
        for write in self.writes:
            repository = write.result()
        return repository


def _write_step(writes: list[Future], **kwargs) -> Repository:
    """A write of one batch; none after one of the same repository failed, nor after the write of what
    the batch counted as stored failed (the part records that error)."""
    for write in writes:
        write.result()
    return repository_write(**kwargs)


def _listed_scan(*, client: RegistryClient, registry: Registry, name: str, names: list[str],
                 stored: dict[str, str], share: ScanShare | None, concurrency: int, now: datetime.datetime,
                 note: str, writer: WriteBehind) -> _Scanned:
    """A listed repository's tags fetched and written TAGS_PER_WRITE at a time; the tags gone from the
    listing are deleted by the last write.

    Each batch starts from what the database holds and what the batch before it fetched (`carried`,
    its write perhaps still running): a digest is still fetched once. A list's child that is tagged in
    a later batch is read by digest first (one request the floor saves by reading every tag first),
    which a repository under TAGS_PER_WRITE tags never meets."""
    state = _Scanned(names=names, counts={"tags": len(names), "errors": 0, "changed": 0}, fetched=set())
    batches = list(chunks(names, TAGS_PER_WRITE)) or [[]]
    for index, batch in enumerate(batches):
        known = Known(share, writer.carried)
        counted_on = [writer.carried_write] if writer.carried_write is not None else []
        fetches = fetching.tags_fetch(client=client, repository=name, names=batch, stored=stored, known=known,
                                      concurrency=concurrency)
        writer.carried = known.carry(fetches)
        writer.carried_write = writer.write(functools.partial(
            _write_step, [*counted_on, *state.writes], registry=registry, name=name, fetches=fetches, now=now,
            note=note, missing={digest for fetch in fetches for digest in fetch.missing},
            listed=names if index == len(batches) - 1 else None))
        state.writes.append(writer.carried_write)
        state.counts["errors"] += sum(1 for f in fetches if f.error)
        state.counts["changed"] += sum(1 for f in fetches if not f.unchanged and not f.error)
        state.fetched |= {digest for fetch in fetches if not fetch.error for digest in fetch.learned}
        if any(write.done() and write.exception() is not None for write in state.writes):
            break  # a write failed: the batches after it would not be written (finish says why)
    return state


def _named_scan(*, client: RegistryClient, registry: Registry, name: str, names: list[str], stored: dict[str, str],
                share: ScanShare | None, concurrency: int, now: datetime.datetime, note: str, writer: WriteBehind,
                exists: bool) -> _Scanned | dict:
    """Tags asked for by name, not listed by the registry: one that failed and is not stored yet was
    never confirmed to exist. Returns the counts alone when nothing is to be written (`exists`: the
    repository's row)."""
    fetches = fetching.tags_fetch(client=client, repository=name, names=names, stored=stored, known=Known(share),
                                  concurrency=concurrency)
    errors_unstored = [f for f in fetches if f.error and f.name not in stored]
    fetches = [f for f in fetches if not (f.error and f.name not in stored)]
    if not exists and not fetches:
        return {"tags": 0, "errors": len(errors_unstored), "note": "; ".join(f.error for f in errors_unstored[:3])}
    state = _Scanned(names=[f.name for f in fetches], fetched={
        digest for fetch in fetches if not fetch.error for digest in fetch.learned}, counts={
        "tags": len(fetches), "errors": sum(1 for f in fetches if f.error) + len(errors_unstored),
        "changed": sum(1 for f in fetches if not f.unchanged and not f.error)})
    state.writes.append(writer.write(functools.partial(
        repository_write, registry=registry, name=name, fetches=fetches, now=now, note=note,
        missing={digest for fetch in fetches for digest in fetch.missing}, listed=None)))
    return state


def _listing_failed(registry: Registry, name: str, repository: Repository | None, exc: errors.RegistryError, *,
                    now: datetime.datetime, listed: bool) -> dict:
    """The tag list (or a listed scan) failed: a repository the registry does not know is forgotten;
    else its row carries the error."""
    if isinstance(exc, errors.NameUnknown) and listed:
        if repository is not None:
            repository.delete()
        return {"tags": 0, "errors": 0, "deleted": True}
    if repository is None and listed:
        # The registry answered for this name with something other than
        # "unknown" (a loop, a 5xx): the repository's row carries the error.
        repository, _ = Repository.objects.get_or_create(registry=registry, name=name)
    if repository is not None:
        repository.error, repository.scanned_at = str(exc), now
        repository.save(update_fields=["error", "scanned_at"])
    return {"tags": 0, "errors": 1, "note": str(exc)}


def tag_record(*, client: RegistryClient, registry: Registry, repository: str, tag: str, raw: bytes,
               media_type: str, digest: str) -> None:
    """Record a tag this app has just put, from the bytes it put: no request for what the
    inventory holds (the children and configs of a list assembled from scanned images).

    What it lacks is fetched as a scan would; an error raises (the caller says the
    inventory could not be updated, and the next scan records the tag).
    """
    validate_repository(repository)
    validate_tag(tag)
    manifest = parse_manifest(raw, content_type=media_type, digest=digest)
    known = Known()
    fetch = TagFetch(name=tag, digest=manifest.digest)
    if known.claim(manifest.digest):
        fetching.manifests_learn(client=client, repository=repository, items=[(fetch, manifest, 0)], known=known,
                                 catch=False)
    repository_write(registry=registry, name=repository, fetches=[fetch], now=timezone.now(),
                      missing=set(fetch.missing), note="", listed=None)


def children_check_due(*, client: RegistryClient, repository: Repository, present: set[str],
                       concurrency: int = 4) -> dict:
    """Check the children of the lists not checked for CHILDREN_CHECK_SECONDS (oldest first, at most
    CHILDREN_CHECK_LISTS lists per repository and scan), so a child deleted under a list is noticed by
    the periodic scans.

    A list seen for the first time counts as checked now: its children were
    just fetched, or are known from the inventory. Nothing is requested while
    every list was checked recently, so a re-scan stays at one HEAD per tag.
    """
    now = timezone.now()
    lists = dict(repository.tags.filter(kind="index", error="", manifest__isnull=False).values_list("name", "digest"))
    digests = set(lists.values())
    checked = dict(ListCheck.objects.filter(repository=repository).values_list("digest", "checked_at"))
    ListCheck.objects.filter(repository=repository).exclude(digest__in=digests).delete()
    ListCheck.objects.bulk_create([ListCheck(repository=repository, digest=digest, checked_at=now)
                                   for digest in digests - set(checked)], ignore_conflicts=True)
    cutoff = now - datetime.timedelta(seconds=settings.CHILDREN_CHECK_SECONDS)
    due = sorted((at, digest) for digest, at in checked.items() if digest in digests and at < cutoff)
    due_digests = {digest for _, digest in due[:settings.CHILDREN_CHECK_LISTS]}
    if not due_digests:
        return {}
    return children_verify(client=client, repository=repository, present=present, concurrency=concurrency,
                           names=[name for name, digest in lists.items() if digest in due_digests])


def _child_present(client: RegistryClient, repository: str, digest: str) -> bool | None:
    """Whether the repository serves this manifest; None when the registry would not say."""
    try:
        return client.manifest_exists(repository, digest)
    except errors.RegistryError:
        return None


def children_verify(*, client: RegistryClient, repository: Repository, names: list[str], present: set[str],
                    concurrency: int = 4) -> dict:
    """Check that the children of the lists these tags hold are still in the repository.

    A scan learns a list's children once (its digest never changes), but a
    child can be deleted under it later, by a clean-up of "untagged"
    manifests. One HEAD per distinct child, none for a child this scan has
    just fetched (`present`); each tag records the children that answered 404.
    """
    tags = [tag for chunk in chunks(names)
            for tag in repository.tags.filter(name__in=chunk, kind="index", error="").select_related("manifest")]
    summaries = {digest: summary.child_digests for digest, summary in selectors.manifest_summaries(
        list({tag.manifest.digest: tag.manifest for tag in tags if tag.manifest is not None}.values())).items()}
    to_check = sorted({digest for digests in summaries.values() for digest in digests} - present)
    answers = thread_map(lambda digest: _child_present(client, repository.name, digest), to_check, concurrency)
    missing = {digest for digest, answer in zip(to_check, answers, strict=True) if answer is False}
    before = {tag.pk: set(tag.missing) for tag in tags}
    for tag in tags:
        tag.missing = [d for d in summaries.get(tag.manifest.digest if tag.manifest else "", []) if d in missing]
    Tag.objects.bulk_update(tags, ["missing"], batch_size=500)
    events.children_missing_record(repository=repository, tags=tags, before=before)
    _lists_checked(repository, list(summaries), timezone.now())
    return {"children_checked": len(to_check), "children_missing": len(missing),
            "children_unchecked": sum(1 for answer in answers if answer is None)}


def _lists_checked(repository: Repository, digests: list[str], at: datetime.datetime) -> None:
    for chunk in chunks(digests):
        ListCheck.objects.filter(repository=repository, digest__in=chunk).update(checked_at=at)
        ListCheck.objects.bulk_create([ListCheck(repository=repository, digest=d, checked_at=at) for d in chunk],
                                      ignore_conflicts=True)


def registry_repositories(*, client: RegistryClient, registry: Registry) -> list[str]:
    """The catalog, or the watch list for registries that serve none (Docker Hub, GHCR)."""
    if registry.watch_list:
        return registry.watch_list
    return list(client.catalog())
