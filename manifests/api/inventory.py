"""The API's reads: repositories, a tag with its platforms and sizes, coverage, a job."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from registry.errors import InvalidPlatform
from registry.mediatypes import KIND_ARTIFACT, KIND_INDEX
from registry.platform import normalize_platform_string

from ..models import Job, Manifest, ManifestChild, Repository, Tag
from ..selectors import IndexEntry, index_entries
from ..services.coverage import (
    NewestInvalid,
    PatternInvalid,
    coverage_materialize,
    coverage_rows,
    newest_parse,
    pattern_validate,
    required_parse,
)
from ..services.sizes import UNCOMPRESSED_NOTE, tag_sizes
from .base import ApiError, api_view, registry_or_404

PAGE_SIZE = 100


def _page_number(request: HttpRequest) -> int:
    text = request.GET.get("page", "1")
    if not text.isdigit() or int(text) < 1:
        raise ApiError(400, "page must be a positive integer", field="page")
    return int(text)


def _page_url(request: HttpRequest, page: int) -> str:
    query = request.GET.copy()
    query["page"] = str(page)
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def _descriptor_entry(child: ManifestChild) -> dict:
    return {"platform": child.platform, "os": child.os, "architecture": child.architecture,
            "variant": child.variant, "os_version": child.os_version, "os_features": child.os_features,
            "digest": child.digest, "media_type": child.media_type, "size": child.size}


def _index_entries(entries: list[IndexEntry]) -> tuple[list[dict], list[dict], list[dict]]:
    """(platforms, attestations, artifacts) of an index's entries (selectors.index_entries), nested indexes
    in place.

    An artifact entry (a chart, an SBOM in a referrers index) has no platform:
    it is listed apart, not as a platform named "".
    """
    platforms: list[dict] = []
    attestations: list[dict] = []
    artifacts: list[dict] = []
    for entry in entries:
        child, row = entry.child, entry.row
        if child.is_attestation:
            attestations.append({"digest": child.digest, "subject": child.subject})
        elif entry.nested is not None:
            inner_platforms, inner_attestations, inner_artifacts = _index_entries(entry.nested)
            platforms += inner_platforms
            attestations += inner_attestations
            artifacts += inner_artifacts
        elif not child.platform and (child.artifact_type or (row is not None and row.kind == KIND_ARTIFACT)):
            artifacts.append({"digest": child.digest, "media_type": child.media_type, "size": child.size,
                              "artifact_type": child.artifact_type or (row.artifact_type if row else "")})
        else:
            platforms.append(_descriptor_entry(child))
    return platforms, attestations, artifacts


def _image_entry(tag: Tag, manifest: Manifest) -> dict:
    # `size` is the manifest's own byte count, as an index descriptor would give
    # it, so the field means the same for both shapes (Manifest.size adds blobs).
    return {"platform": manifest.platform, "os": manifest.os, "architecture": manifest.architecture,
            "variant": manifest.variant, "os_version": manifest.os_version, "os_features": manifest.os_features,
            "digest": tag.digest, "media_type": manifest.media_type, "size": len(manifest.raw)}


@api_view
def repository_list(request: HttpRequest, name: str) -> JsonResponse:
    registry = registry_or_404(name)
    page = _page_number(request)
    repositories = Repository.objects.filter(registry=registry).order_by("name")
    if search := request.GET.get("q", "").strip():
        repositories = repositories.filter(name__icontains=search)
    # One row beyond the page tells whether there is a next one, without a COUNT.
    start = (page - 1) * PAGE_SIZE
    rows = list(repositories.values("name", "tag_count", "platforms", "error")[start:start + PAGE_SIZE + 1])
    return JsonResponse({
        "repositories": [{"name": row["name"], "tags": row["tag_count"], "platforms": row["platforms"],
                          "error": row["error"]} for row in rows[:PAGE_SIZE]],
        "next": _page_url(request, page + 1) if len(rows) > PAGE_SIZE else None,
    })


@api_view
def tag_detail(request: HttpRequest, name: str, repository: str, tag: str) -> JsonResponse:
    registry = registry_or_404(name)
    repository_row = Repository.objects.filter(registry=registry, name=repository).first()
    if repository_row is None:
        raise ApiError(404, f"no repository named {repository} in {registry.name}")
    tag_row = Tag.objects.select_related("manifest").filter(repository=repository_row, name=tag).first()
    if tag_row is None:
        raise ApiError(404, f"no tag named {tag} in {repository}")
    manifest = tag_row.manifest
    platforms: list[dict] = []
    attestations: list[dict] = []
    artifacts: list[dict] = []
    if manifest is not None and manifest.kind == KIND_INDEX:
        platforms, attestations, artifacts = _index_entries(index_entries(manifest))
    elif manifest is not None and manifest.platform:
        # An artifact (a Helm chart, a signature) has no platform: not one named "".
        platforms = [_image_entry(tag_row, manifest)]
    sizes = tag_sizes(tag=tag_row)
    for entry in platforms:  # `size` stays the descriptor's; the download is config plus layers
        found = next((s for s in sizes.platforms if s.digest == entry["digest"]), None)
        entry["download_size"] = found.compressed if found else None
        entry["uncompressed_size"] = None  # image configs state none (services.sizes)
    return JsonResponse({
        "sizes": {"shared": sizes.shared, "unique": sizes.unique_total, "uncompressed": UNCOMPRESSED_NOTE},
        "repository": repository_row.name, "tag": tag_row.name, "digest": tag_row.digest,
        "media_type": tag_row.media_type, "kind": tag_row.kind,
        "artifact_type": manifest.artifact_type if manifest is not None else "", "platforms": platforms,
        "attestations": attestations, "artifacts": artifacts, "missing": tag_row.missing,
        "scanned_at": tag_row.scanned_at, "error": tag_row.error,
    })


@api_view
def coverage(request: HttpRequest) -> JsonResponse:
    name = request.GET.get("registry", "").strip()
    if not name:
        raise ApiError(400, "the registry parameter is required", field="registry")
    registry = registry_or_404(name)
    try:
        required = required_parse(request.GET.get("require"), registry=registry)
    except InvalidPlatform as exc:
        raise ApiError(400, str(exc), field="require") from None
    lacking = request.GET.get("lacking", "").strip()
    if lacking:
        try:
            lacking = normalize_platform_string(lacking)
        except InvalidPlatform as exc:
            raise ApiError(400, str(exc), field="lacking") from None
    try:
        pattern = pattern_validate(request.GET.get("tag", ""))
    except PatternInvalid as exc:
        raise ApiError(400, str(exc), field="tag") from None
    try:
        newest = newest_parse(request.GET.get("newest"))
    except NewestInvalid as exc:
        raise ApiError(400, str(exc), field="newest") from None
    repositories = list(coverage_rows(registry=registry, pattern=pattern, lacking=lacking, newest=newest,
                                      unsigned=request.GET.get("unsigned") == "1"))
    rows = coverage_materialize(repositories, required=required, newest=newest, pattern=pattern, lacking=lacking)
    return JsonResponse({
        "required": required,
        "rows": [{"repository": row.repository, "tag": row.tag, "digest": row.digest, "platforms": row.platforms,
                  "missing": row.missing, "signed": row.signed} for row in rows],
    })


@api_view
def job_detail(request: HttpRequest, job_id: int) -> JsonResponse:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise ApiError(404, f"no job {job_id}")
    return JsonResponse({
        "id": job.pk, "kind": job.kind, "status": job.status, "target": job.target, "digest": job.digest,
        "error": job.error, "steps": job.steps, "result": job.result, "created_at": job.created_at,
        "finished_at": job.finished_at,
    })
