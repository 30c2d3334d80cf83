from __future__ import annotations

from django import template

from ..models import Event

register = template.Library()


@register.simple_tag
def tag_events(registry, repository: str, tag: str, limit: int = 20) -> list[Event]:
    """The latest events of one tag, for its page (its history of drift and breakage)."""
    return list(Event.objects.filter(registry=registry, repository=repository, tag=tag)
                .select_related("registry")[:limit])


@register.simple_tag
def tag_download_sizes(tag):
    """Per platform download sizes of a tag, and what its platforms share (services.sizes)."""
    from ..services.sizes import tag_sizes

    return tag_sizes(tag=tag)


@register.simple_tag
def repository_unique_bytes(repository) -> int:
    from ..services.sizes import repository_unique_bytes as unique_bytes

    return unique_bytes(repository=repository)


@register.simple_tag
def tag_referrers(tag, sizes=None) -> list[dict]:
    """What is attached to a tag's manifest and to each of its platforms; [] when nothing is.

    `sizes` (from `tag_download_sizes`) already names the platforms' digests: given, they are not read again.
    """
    from ..models import Referrer, TagPlatform

    platforms = ([(entry.platform, entry.digest) for entry in sizes.platforms] if sizes is not None else
                 TagPlatform.objects.filter(tag=tag).values_list("platform", "digest"))
    rows = [("", tag.digest)] + [(p, d) for p, d in platforms if d != tag.digest]
    attached: dict[str, list] = {}
    for referrer in Referrer.objects.filter(repository_id=tag.repository_id, subject__in=[d for _, d in rows]):
        attached.setdefault(referrer.subject, []).append(referrer)
    if not attached:
        return []
    return [{"platform": platform, "digest": digest, "referrers": attached.get(digest, []),
             "signed": any(r.is_signature for r in attached.get(digest, []))} for platform, digest in rows]


@register.simple_tag
def referrers_to_carry(registry, plan) -> list:
    """What a push of `plan` will copy beside its children (signatures, SBOMs, attestations)."""
    from ..services.signatures import referrers_to_carry as to_carry

    if registry is None or plan is None:
        return []
    return to_carry(registry=registry, entries=plan.entries, target=plan.target.repository)
