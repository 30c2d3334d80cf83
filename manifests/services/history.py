"""Coverage over time: a snapshot after each scan, per registry, repository and required platform."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import Count

from registry.platform import platform_sort_key

from ..models import CoverageSnapshot, Job, Registry, Tag, TagPlatform
from .coverage import REFERRER_TAG_REGEX

LACKING_CAP = 50  # tag names kept per snapshot row: enough to act on, bounded for huge repositories


def coverage_snapshot_take(*, registry: Registry, job: Job | None = None, repositories: list[str] | None = None,
                           ) -> list[CoverageSnapshot]:
    """Rows for each required platform: per repository scanned (`repositories`; all when None) and one for
    the registry as a whole. A handful of queries, whatever the registry's size."""
    required = registry.required_list
    if not required:
        return []
    tags = Tag.objects.filter(repository__registry=registry).exclude(name__regex=REFERRER_TAG_REGEX)
    totals = dict(tags.values_list("repository__name").annotate(n=Count("pk")).values_list("repository__name", "n"))
    covered: dict[tuple[str, str], int] = {}
    for name, platform, n in TagPlatform.objects.filter(
            tag__repository__registry=registry, platform__in=required).exclude(
            tag__name__regex=REFERRER_TAG_REGEX).values_list(
            "tag__repository__name", "platform").annotate(n=Count("tag_id", distinct=True)).values_list(
            "tag__repository__name", "platform", "n"):
        covered[(name, platform)] = n
    lacking: dict[tuple[str, str], list[str]] = {}
    for platform in required:
        without = tags.exclude(pk__in=TagPlatform.objects.filter(platform=platform).values("tag_id"))
        for name, tag in without.order_by("repository__name", "name").values_list("repository__name", "name"):
            names = lacking.setdefault((name, platform), [])
            if len(names) < LACKING_CAP:
                names.append(tag)
    wanted = sorted(totals) if repositories is None else [name for name in repositories if name in totals]
    rows: list[CoverageSnapshot] = []
    for platform in required:
        for name in wanted:
            rows.append(CoverageSnapshot(registry=registry, repository=name, platform=platform, job=job,
                                         covered=covered.get((name, platform), 0), total=totals[name],
                                         lacking=lacking.get((name, platform), [])))
        whole = [f"{name}:{tag}" for name in sorted(totals) for tag in lacking.get((name, platform), [])]
        rows.append(CoverageSnapshot(registry=registry, repository="", platform=platform, job=job,
                                     covered=sum(covered.get((name, platform), 0) for name in totals),
                                     total=sum(totals.values()), lacking=whole[:LACKING_CAP]))
    return CoverageSnapshot.objects.bulk_create(rows, batch_size=500)


@dataclass
class Point:
    at: datetime.datetime
    covered: int
    total: int
    lacking: list[str]

    @property
    def share(self) -> float:
        return self.covered / self.total if self.total else 1.0


def coverage_history(*, registry: Registry, repository: str = "", since: datetime.datetime | None = None,
                     limit: int = 2000) -> dict[str, list[Point]]:
    """{platform: points in time order} for a repository, or the registry as a whole ("")."""
    rows = CoverageSnapshot.objects.filter(registry=registry, repository=repository)
    if since is not None:
        rows = rows.filter(taken_at__gte=since)
    series: dict[str, list[Point]] = {}
    for row in rows.order_by("-taken_at", "-pk")[:limit][::-1]:
        series.setdefault(row.platform, []).append(Point(row.taken_at, row.covered, row.total, row.lacking))
    return dict(sorted(series.items(), key=lambda item: platform_sort_key(item[0])))


_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


@dataclass
class Chart:
    width: int
    height: int
    lines: list[dict]  # {"platform", "colour", "points": "x,y x,y", "dots": [(x, y, title)]}
    start: datetime.datetime | None
    end: datetime.datetime | None


def coverage_chart(series: dict[str, list[Point]], *, width: int = 640, height: int = 240, pad: int = 30) -> Chart:
    """Server-side SVG geometry: share of tags covering each platform (0 to 100 %) over time."""
    times = [point.at for points in series.values() for point in points]
    if not times:
        return Chart(width, height, [], None, None)
    start, end = min(times), max(times)
    span = (end - start).total_seconds() or 1.0

    def x(at: datetime.datetime) -> float:
        return pad + (width - 2 * pad) * ((at - start).total_seconds() / span if end > start else 0.5)

    def y(share: float) -> float:
        return height - pad - (height - 2 * pad) * share

    lines = []
    for index, (platform, points) in enumerate(series.items()):
        coords = [(round(x(p.at), 1), round(y(p.share), 1)) for p in points]
        lines.append({"platform": platform, "colour": _COLOURS[index % len(_COLOURS)],
                      "points": " ".join(f"{a},{b}" for a, b in coords),
                      "dots": [(a, b, f"{platform} {p.at:%Y-%m-%d %H:%M}: {p.covered}/{p.total}")
                               for (a, b), p in zip(coords, points, strict=True)]})
    return Chart(width, height, lines, start, end)


def scan_snapshot(*, job: Job, repository: str = "") -> None:
    """The scan's hook: never fails the scan that calls it."""
    import logging

    try:
        if job.registry is not None:
            coverage_snapshot_take(registry=job.registry, job=job, repositories=[repository] if repository else None)
    except Exception:
        logging.getLogger(__name__).exception("coverage snapshot of job %s failed", job.pk)
