from __future__ import annotations

import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.filter
def short_digest(digest: str) -> str:
    """sha256:0123456789ab… for display; the full digest stays copyable beside it."""
    if not digest:
        return ""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}…" if value else digest[:19]


@register.filter
def platform_os(platform: str) -> str:
    return platform.split("/", 1)[0]


@register.filter
def get_item(mapping: dict, key: str):
    return mapping.get(key) if mapping else None


def _relative(delta: datetime.timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds < 45:
        return "just now"
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = round(seconds / size) if size >= 86400 else seconds // size
            words = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"{words} ago" if delta.total_seconds() >= 0 else f"in {words}"
    return "just now"


def absolute_time(value: datetime.datetime) -> str:
    """The one absolute format of the site: 2026-12-01 09:28:10 UTC."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


@register.filter
def when(value: datetime.datetime | None, mode: str = "relative") -> SafeString | str:
    """A <time>: relative ("5 minutes ago") with the absolute time and zone on hover, or absolute ("abs")."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            return value
    if timezone.is_naive(value):
        value = timezone.make_aware(value, datetime.UTC)
    full = absolute_time(value)
    if mode == "abs":
        return format_html('<time datetime="{}">{}</time>', value.isoformat(), full)
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), full,
                       _relative(timezone.now() - value))


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds as "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min"."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{int(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.simple_tag(takes_context=True)
def sort_header(context, key: str, label: str) -> SafeString:
    """A sortable column header: a link flipping ?sort=key / -key, with aria-sort on the cell."""
    request = context["request"]
    current = request.GET.get("sort", "")
    params = request.GET.copy()
    params.pop("page", None)
    if current == key:
        state, params["sort"] = "ascending", f"-{key}"
    elif current == f"-{key}":
        state, params["sort"] = "descending", key
    else:
        state, params["sort"] = "none", key
    arrow = {"ascending": "↑", "descending": "↓"}.get(state, "↕")
    return format_html('<th aria-sort="{}"><a class="sort" href="?{}">{}</a><span class="sort-arrow" aria-hidden="true">'
                       ' {}</span></th>', state, params.urlencode(), label, arrow)


@register.filter
def elapsed(job) -> float | None:
    """Seconds a job has run: to its end, or to now while it runs."""
    if not job.started_at:
        return None
    end = job.finished_at or timezone.now()
    return max((end - job.started_at).total_seconds(), 0.0)


@register.filter
def ref_digest(ref: str) -> str:
    """The digest of repository@digest ("" for a tag reference)."""
    return ref.rpartition("@")[2] if "@" in ref else ""
