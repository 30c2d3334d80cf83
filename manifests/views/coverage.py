"""The coverage matrix and its CSV and JSON downloads."""

from __future__ import annotations

import csv
import html
import re

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from registry.errors import InvalidPlatform
from registry.platform import Platform, platform_sort_key

from ..models import Registry
from ..services import coverage
from ..services.sizes import coverage_sizes

ALL_REGISTRIES = "*"
_TAG_IN_URL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")  # manifests-tag-detail's tag part


def _coverage_context(request: HttpRequest) -> dict:
    registries = list(Registry.objects.all())
    chosen = request.GET.get("registry") or (registries[0].name if registries else "")
    registry = next((r for r in registries if r.name == chosen), None)
    every = chosen == ALL_REGISTRIES and bool(registries)
    context: dict = {"registries": registries, "registry": registry, "errors": {}, "all_registries": every,
                     "pattern": request.GET.get("tag", "").strip(), "search": request.GET.get("q", "").strip(),
                     "require_text": request.GET.get("require", ""), "lacking_text": request.GET.get("lacking", ""),
                     "unsigned": request.GET.get("unsigned") == "1"}
    if registry is None and not every:
        return context
    # All registries: each keeps its own required platforms unless the form names some.
    context["required_by_registry"] = (
        {r.pk: r.required_list for r in registries} if every and not context["require_text"] else None)
    try:
        required = coverage.required_parse(context["require_text"], registry=registry or registries[0]) \
            if registry or context["require_text"] else sorted(
                {p for r in registries for p in r.required_list}, key=platform_sort_key)
    except InvalidPlatform as exc:
        context["errors"]["require"] = str(exc)
        required = (registry or registries[0]).required_list
    lacking = ""
    if context["lacking_text"]:
        try:
            lacking = Platform.parse(context["lacking_text"]).normalized
        except InvalidPlatform as exc:
            context["errors"]["lacking"] = str(exc)
    pattern = context["pattern"]
    try:
        coverage.pattern_validate(pattern)
    except coverage.PatternInvalid as exc:
        context["errors"]["tag"] = str(exc)
        pattern = ""
    context["newest_text"] = request.GET.get("newest", "").strip()
    try:
        newest = coverage.newest_parse(context["newest_text"])
    except coverage.NewestInvalid as exc:
        context["errors"]["newest"] = str(exc)
        newest = 1
    repositories = coverage.coverage_rows(registry=registry, pattern=pattern,
                                          lacking=lacking, search=context["search"], newest=newest,
                                          unsigned=context["unsigned"])
    context.update({"required": required, "lacking": lacking, "repositories": repositories,
                    # what coverage_materialize needs besides the repositories
                    "tag_choice": {"newest": newest, "pattern": pattern, "lacking": lacking}})
    return context


# A cell's markup by state (`tag` and `name` escaped): the text says it; colour only repeats it.
_CELLS = {"yes": '<td class="cell yes" title="{tag} has {name}">✓ yes</td>',
          "no": '<td class="cell no" title="{name} is required and missing">✗ missing</td>',
          "none": '<td class="cell none" title="{tag} has no {name} (not required)">– no</td>'}


def _coverage_line(row: coverage.CoverageRow, *, columns: list[tuple[str, str]], list_url: str, tag_url: str,
                   all_registries: bool) -> SafeString:
    """A row of the matrix, written here with each value escaped once (`columns`: each platform with its
    escaped text): a page is up to 100 x NEWEST_MAX rows of a dozen cells, and the template's three
    variables a cell cost more than the page's queries."""
    e = html.escape
    tag = e(row.tag)
    present, missing = set(row.platforms), set(row.missing)
    parts = ["\n      <tr>\n        "]
    if all_registries:
        parts.append(f"<td>{e(row.registry)}</td>")
    parts.append(f'\n        <td><a href="{e(list_url)}">{e(row.repository)}</a></td>\n'
                 f'        <td><a href="{e(tag_url)}">{tag}</a>')
    if row.error:
        parts.append(f' <span class="error small">error: {e(row.error)}</span>')
    parts.append("</td>\n        ")
    for platform, name in columns:
        state = "yes" if platform in present else "no" if platform in missing else "none"
        parts.append(_CELLS[state].format(tag=tag, name=name))
    parts.append('\n        <td class="signed">')
    if row.signed:
        parts.extend(f'<span class="chip">{e(p)}</span>' for p in row.signed)
        if len(row.signed) < len(row.platforms):
            parts.append(f' <span class="muted small">{len(row.signed)} of {len(row.platforms)}</span>')
    else:
        parts.append('<span class="muted">no</span>')
    parts.append("</td>\n      </tr>\n        ")
    return mark_safe("".join(parts))  # every value in it is escaped above


class _Links:
    """The tag list and tag page URLs of the rows, one reverse() per repository: a tag page is its
    repository's URL plus `t/<tag>` (a tag of the URL's own grammar needs no quoting; any other is reversed)."""

    def __init__(self) -> None:
        self._lists: dict[tuple[str, str], str] = {}

    def tag_list(self, row: coverage.CoverageRow) -> str:
        key = (row.registry, row.repository)
        found = self._lists.get(key)
        if found is None:
            found = self._lists[key] = reverse("manifests-tag-list", args=key)
        return found

    def tag_detail(self, row: coverage.CoverageRow) -> str:
        if _TAG_IN_URL.fullmatch(row.tag):
            return f"{self.tag_list(row)}t/{row.tag}"
        return reverse("manifests-tag-detail", args=(row.registry, row.repository, row.tag))


def _coverage_export(kind: str, rows: list[coverage.CoverageRow], context: dict) -> HttpResponse:
    registry = context["registry"]
    sizes = coverage_sizes(rows=rows)  # compressed download bytes per platform
    if kind == "json":
        response = JsonResponse({"registry": registry.name, "required": context["required"],
                                 "rows": [{**row.__dict__, "size": sizes.get((row.registry, row.repository, row.tag), {})}
                                          for row in rows]})
        response["Content-Disposition"] = f'attachment; filename="coverage-{registry.name}.json"'  # a download
        return response
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="coverage-{registry.name}.csv"'
    csv.writer(response).writerows(coverage.coverage_csv(rows, required=context["required"], sizes=sizes,
                                                         with_registry=bool(context.get("all_registries"))))
    return response



@require_GET
@login_required
@vary_on_headers("HX-Request")
def coverage_matrix(request: HttpRequest) -> HttpResponse:
    context = _coverage_context(request)
    export = request.GET.get("format", "")
    if context.get("registry") is None and not context["all_registries"]:
        return render(request, "manifests/coverage.html", context)
    if export in ("csv", "json"):
        rows = coverage.coverage_materialize(list(context["repositories"]), required=context["required"],
                                             required_by_registry=context["required_by_registry"],
                                             **context["tag_choice"])
        if context["all_registries"]:
            context = {**context, "registry": Registry(name="all")}  # names the download only
        return _coverage_export(export, rows, context)
    page = Paginator(context["repositories"], 100).get_page(request.GET.get("page"))
    rows = coverage.coverage_materialize(list(page.object_list), required=context["required"],
                                         required_by_registry=context["required_by_registry"],
                                         **context["tag_choice"])
    columns = coverage.coverage_columns(rows, context["required"])
    # Each row written once here (_coverage_line), its links one reverse() per repository: a page is up to
    # 100 x NEWEST_MAX rows, where a {% url %} or a template variable per cell costs more than the queries.
    links = _Links()
    escaped = [(c, html.escape(c)) for c in columns]
    table = [_coverage_line(row, columns=escaped, list_url=links.tag_list(row), tag_url=links.tag_detail(row),
                            all_registries=context["all_registries"]) for row in rows]
    context.update({"page": page, "rows": rows, "table": table, "columns": columns})
    template = "manifests/_coverage_table.html" if request.htmx else "manifests/coverage.html"
    return render(request, template, context)
