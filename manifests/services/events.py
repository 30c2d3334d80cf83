"""Events: drift and breakage worth telling people about.

Recorded by listening to `tags_moved` (platform_lost, required_missing), by
the children check (child_missing) and by the rules (rule_conflict). Each
recorded event is handed to the notification channels that subscribe to it
(services.notify), which deliver it on the worker.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from registry.platform import platform_sort_key

from ..models import Event, ManifestChild, Registry, Repository, Tag, TagPlatform
from ..models import Manifest as ManifestRow
from ..signals import TagMove
from .coverage import REFERRER_TAG_REGEX

logger = logging.getLogger(__name__)

KINDS = [kind for kind, _ in Event.KIND_CHOICES]


def event_record(*, kind: str, registry: Registry, repository: str = "", tag: str = "", old_digest: str = "",
                 new_digest: str = "", platforms: Iterable[str] = (), detail: str = "") -> Event:
    """Store one event and queue its notifications (sent once the transaction commits)."""
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    event = Event.objects.create(kind=kind, registry=registry, repository=repository, tag=tag,
                                 old_digest=old_digest, new_digest=new_digest,
                                 platforms=sorted(set(platforms), key=platform_sort_key), detail=detail)
    from . import notify

    notify.deliveries_create(event=event)
    return event


def _platforms_of(digest: str, cache: dict[str, set[str]]) -> set[str] | None:
    """Platforms a stored manifest covers (nested lists followed); None when it is not stored."""
    if digest not in cache:
        from ..selectors import manifest_summary

        row = ManifestRow.objects.filter(digest=digest).first()
        if row is None:
            return None
        cache[digest] = {platform for platform, _, _ in manifest_summary(row).platforms}
    return cache[digest]


def moves_record(*, repository: Repository, moves: list[TagMove]) -> list[Event]:
    """platform_lost for each tag that moved to a digest lacking platforms it had,
    required_missing for each new tag lacking a required platform.

    The first scan of a registry records no required_missing: its tags are the
    inventory being learned, not new tags (the coverage page shows what they lack).
    """
    registry = Registry.objects.get(pk=repository.registry_id)
    required = registry.required_list if registry.last_scan_at is not None else []
    if not required:  # only a tag that moved from a digest can have lost a platform
        moves = [move for move in moves if move.old_digest]
        if not moves:
            return []
    names = [move.tag for move in moves]
    now_platforms: dict[str, set[str]] = {name: set() for name in names}
    for start in range(0, len(names), 500):
        for name, platform in TagPlatform.objects.filter(
                tag__repository=repository, tag__name__in=names[start:start + 500]).values_list("tag__name",
                                                                                                 "platform"):
            now_platforms[name].add(platform)
    cache: dict[str, set[str]] = {}
    recorded: list[Event] = []
    for move in moves:
        if re.match(REFERRER_TAG_REGEX, move.tag):
            continue  # a signature or attestation, not an image: covers no platform
        new = now_platforms.get(move.tag, set())
        if move.old_digest:
            old = _platforms_of(move.old_digest, cache)
            lost = sorted((old or set()) - new, key=platform_sort_key)
            if lost:
                recorded.append(event_record(
                    kind=Event.PLATFORM_LOST, registry=registry, repository=repository.name, tag=move.tag,
                    old_digest=move.old_digest, new_digest=move.new_digest, platforms=lost,
                    detail=f"{repository.name}:{move.tag} moved to a digest without {', '.join(lost)}"))
        else:
            lacking = [platform for platform in required if platform not in new]
            if lacking:
                recorded.append(event_record(
                    kind=Event.REQUIRED_MISSING, registry=registry, repository=repository.name, tag=move.tag,
                    new_digest=move.new_digest, platforms=lacking,
                    detail=f"new tag {repository.name}:{move.tag} lacks {', '.join(lacking)}"))
    return recorded


def children_missing_record(*, repository: Repository, tags: list[Tag], before: dict[int, set[str]]) -> list[Event]:
    """child_missing for each tag whose list has children gone since the last check."""
    recorded: list[Event] = []
    for tag in tags:
        gone = [digest for digest in tag.missing if digest not in before.get(tag.pk, set())]
        if not gone or tag.manifest is None:
            continue
        platforms = set(ManifestChild.objects.filter(parent=tag.manifest, digest__in=gone)
                        .exclude(platform="").values_list("platform", flat=True))
        recorded.append(event_record(
            kind=Event.CHILD_MISSING, registry=repository.registry, repository=repository.name, tag=tag.name,
            old_digest=tag.digest, new_digest=tag.digest, platforms=platforms,
            detail=f"{len(gone)} child manifest{'s' if len(gone) != 1 else ''} of {repository.name}:{tag.name} "
                   f"answer 404: {', '.join(gone)}"))
    return recorded


def on_tags_moved(sender, *, repository: Repository, moves: list[TagMove], **kwargs) -> None:
    """The tags_moved receiver: never lets a failure here fail the scan that sent it."""
    try:
        moves_record(repository=repository, moves=moves)
    except Exception:
        logger.exception("recording events for %s failed", repository)
