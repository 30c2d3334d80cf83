"""The stored inventory: repositories, tags, a tag, a manifest by digest, search (display only)."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from registry.errors import InvalidPlatform, RegistryError
from registry.mediatypes import parse_manifest
from registry.platform import Platform

from ..models import Job, Manifest, ManifestChild, PushRecord, Repository, Tag
from ..services import coverage, signatures
from ._shared import registry_or_404, repository_or_404

PAGE_SIZE = 50
SEARCH_LIMIT = 50
REPOSITORY_SORTS = {"name": "name", "tags": "tag_count", "lists": "list_count", "scanned": "scanned_at"}
TAG_SORTS = {"name": "name", "size": "size", "created": "created", "kind": "kind"}


def _pretty(raw: str) -> str:
    """A manifest's JSON indented for reading; as stored when it does not parse."""
    if not raw:
        return ""
    try:
        return json.dumps(json.loads(raw), indent=2)
    except ValueError:
        return raw


def _inspect_commands(reference: str, *, insecure: bool) -> list[str]:
    """The same tag seen with the usual command-line tools."""
    return [
        f"docker buildx imagetools inspect {reference}",
        f"docker buildx imagetools inspect --raw {reference}",
        f"docker manifest inspect{' --insecure' if insecure else ''} {reference}",
        f"skopeo inspect --raw{' --tls-verify=false' if insecure else ''} docker://{reference}",
        f"regctl manifest get {reference}",
    ]


def _platform_filter(request: HttpRequest) -> tuple[str, str]:
    """A normalized platform from ?platform=, and an error message for the field."""
    value = request.GET.get("platform", "").strip()
    if not value:
        return "", ""
    try:
        return Platform.parse(value).normalized, ""
    except InvalidPlatform as exc:
        return "", str(exc)


def _sort_order(request: HttpRequest, allowed: dict[str, str], default: str) -> list:
    """?sort=key or ?sort=-key, among the allowed columns; anything else sorts by the default."""
    value = request.GET.get("sort", "")
    field = allowed.get(value.lstrip("-"))
    if field is None:
        return [default]
    return [F(field).desc(nulls_last=True) if value.startswith("-") else F(field).asc(nulls_last=True)]


def _manifest_in_repository(repo: Repository, digest: str) -> tuple[Manifest | None, list[ManifestChild]]:
    """The stored manifest, if a tag of `repo` holds it or a list held by one names it as a child.

    The descriptors that name it (as a child of those lists) come along: they
    say what its lists know when the manifest itself was never fetched.
    """
    descriptors = list(ManifestChild.objects.filter(
        digest=digest, parent__tags__repository=repo).select_related("parent").distinct()[:20])
    held = repo.tags.filter(digest=digest).exists()
    if not held and not descriptors:
        raise Http404("No manifest with this digest in this repository.")
    return Manifest.objects.filter(digest=digest).first(), descriptors


def _config_view(config: dict) -> dict:
    """The parts of an image config a person reads, from the stored JSON (untrusted: rendered escaped)."""
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    labels = inner.get("Labels") if isinstance(inner.get("Labels"), dict) else {}
    history = config.get("history") if isinstance(config.get("history"), list) else []
    return {
        "entrypoint": inner.get("Entrypoint") or [], "cmd": inner.get("Cmd") or [],
        "env": [e for e in inner.get("Env") or [] if isinstance(e, str)],
        "labels": sorted((str(k), str(v)) for k, v in labels.items()),
        "user": inner.get("User") or "", "working_dir": inner.get("WorkingDir") or "",
        "exposed_ports": sorted(inner.get("ExposedPorts") or {}) if isinstance(inner.get("ExposedPorts"), dict) else [],
        "created": config.get("created") or "",
        "history": [h for h in history if isinstance(h, dict)],
    }


@require_GET
@login_required
def repository_list(request: HttpRequest, name: str) -> HttpResponse:
    registry = registry_or_404(name)
    query = request.GET.get("q", "").strip()
    platform, platform_error = _platform_filter(request)
    repositories = registry.repositories.all()
    if query:
        repositories = repositories.filter(name__icontains=query)
    if platform:
        repositories = repositories.filter(tags__platform_rows__platform=platform).distinct()
    page = Paginator(repositories.order_by(*_sort_order(request, REPOSITORY_SORTS, "name")), PAGE_SIZE).get_page(
        request.GET.get("page"))
    return render(request, "manifests/repository_list.html", {
        "registry": registry, "page": page, "query": query, "platform": request.GET.get("platform", ""),
        "platform_error": platform_error})


@require_GET
@login_required
def tag_list(request: HttpRequest, name: str, repository: str) -> HttpResponse:
    registry = registry_or_404(name)
    repo = repository_or_404(registry, repository)
    platform, platform_error = _platform_filter(request)
    query = request.GET.get("q", "").strip()
    tags = repo.tags.exclude(name__regex=coverage.REFERRER_TAG_REGEX).annotate(
        artifact_type=F("manifest__artifact_type"))  # shown instead of platforms
    if platform:
        tags = tags.filter(platform_rows__platform=platform).distinct()
    if query:
        tags = tags.filter(name__icontains=query)
    # Group tags sharing a digest: order by digest group, newest first.
    tags = tags.prefetch_related("platform_rows")
    if request.GET.get("sort", "").lstrip("-") in TAG_SORTS:
        ordered = tags.order_by(*_sort_order(request, TAG_SORTS, "name"), "name")
    else:
        ordered = tags.order_by(F("created").desc(nulls_last=True), "digest", "name")
    page = Paginator(ordered, 100).get_page(request.GET.get("page"))
    groups: list[dict] = []
    for tag in page.object_list:
        if groups and groups[-1]["digest"] == tag.digest and tag.digest:
            groups[-1]["tags"].append(tag)
        else:
            groups.append({"digest": tag.digest, "tags": [tag], "first": tag})
    attached = signatures.signed_platforms(repository=repo, digests=[g["digest"] for g in groups])
    for group in groups:
        group["attached"] = sorted({r.kind for r in attached.get(group["digest"], [])})
    return render(request, "manifests/tag_list.html", {
        "registry": registry, "repository": repo, "page": page, "groups": groups, "query": query,
        "platform": request.GET.get("platform", ""), "platform_error": platform_error})


@require_GET
@login_required
def tag_detail(request: HttpRequest, name: str, repository: str, tag: str) -> HttpResponse:
    registry = registry_or_404(name)
    repo = repository_or_404(registry, repository)
    tag_row = get_object_or_404(Tag.objects.select_related("manifest"), repository=repo, name=tag)
    # Each child's download size from its stored manifest (display only), in the children's own query: a
    # list's page costs no more queries than an image's.
    children = list(tag_row.manifest.children.annotate(download_size=Coalesce(Subquery(
        Manifest.objects.filter(digest=OuterRef("digest")).values("size")[:1]), 0))) if tag_row.manifest else []
    missing = set(tag_row.missing)
    for child in children:
        child.is_missing = child.digest in missing
    same_digest = repo.tags.filter(digest=tag_row.digest).exclude(pk=tag_row.pk).order_by("name") \
        if tag_row.digest else Tag.objects.none()
    # Lists in this registry that reference this manifest as a child.
    parents = ManifestChild.objects.filter(digest=tag_row.digest).values("parent_id") if tag_row.digest else []
    referenced_by = Tag.objects.filter(repository__registry=registry, manifest_id__in=parents) \
        .select_related("repository").order_by("repository__name", "name")[:50] if tag_row.digest else []
    history = PushRecord.objects.filter(registry=registry, repository=repo.name, tag=tag_row.name)[:20]
    raw = tag_row.manifest.raw_text if tag_row.manifest else ""
    reference = f"{registry.host}/{repo.name}:{tag_row.name}"
    insecure_flag = " --insecure" if registry.insecure else ""
    # Display only: which push record the tag holds now (the newest one that put its digest there).
    history = list(history.select_related("job", "user"))
    for record in history:
        record.is_rollback = record.job is not None and record.job.kind == Job.KIND_ROLLBACK
    current_record_id = next((r.pk for r in history if r.new_digest == tag_row.digest), None)
    return render(request, "manifests/tag_detail.html", {
        "registry": registry, "repository": repo, "tag": tag_row, "children": children,
        "platform_children": [c for c in children if not c.is_attestation],
        "attestations": [c for c in children if c.is_attestation],
        "same_digest": same_digest, "referenced_by": referenced_by, "history": history,
        "current_record_id": current_record_id,
        "raw": raw, "pretty": _pretty(raw), "reference": reference,
        "commands": _inspect_commands(reference, insecure=registry.insecure),
        "pull_command": f"docker pull {registry.host}/{repo.name}@{tag_row.digest}",
        "insecure_flag": insecure_flag})


@require_GET
@login_required
def manifest_detail(request: HttpRequest, name: str, repository: str, digest: str) -> HttpResponse:
    """One manifest by digest: an image's layers and config, or a list's children with their download sizes."""
    registry = registry_or_404(name)
    repo = repository_or_404(registry, repository)
    manifest, descriptors = _manifest_in_repository(repo, digest)
    parsed = None
    if manifest is not None:
        try:
            parsed = parse_manifest(bytes(manifest.raw), digest=manifest.digest)
        except RegistryError:
            parsed = None
    layers = list(parsed.layers) if parsed else []
    config_descriptor = parsed.config if parsed else None
    compressed = (config_descriptor.size if config_descriptor else 0) + sum(layer.size for layer in layers)
    children: list[dict] = []
    if parsed is not None and parsed.is_index:
        stored = {m.digest: m for m in Manifest.objects.filter(digest__in=[c.digest for c in parsed.children])}
        for child in parsed.children:
            row = stored.get(child.digest)
            children.append({"descriptor": child, "manifest": row, "is_attestation": child.is_attestation,
                             "platform": child.platform.normalized if child.platform else "",
                             "download_size": row.size if row else 0})
    config = manifest.config if manifest is not None else None
    config_view = _config_view(config) if isinstance(config, dict) else None
    tags = list(repo.tags.filter(digest=digest).order_by("name"))
    parents = Tag.objects.filter(repository=repo, manifest_id__in=[d.parent_id for d in descriptors]).order_by("name")
    return render(request, "manifests/manifest_detail.html", {
        "registry": registry, "repository": repo, "digest": digest, "manifest": manifest, "parsed": parsed,
        "layers": layers, "config_descriptor": config_descriptor, "compressed": compressed,
        "children": children, "config": config_view, "tags": tags, "parents": parents,
        "descriptor": descriptors[0] if descriptors else None,
        "platform": (manifest.platform if manifest else "") or (descriptors[0].platform if descriptors else ""),
        "platform_os": (manifest.os if manifest else "") or (descriptors[0].os if descriptors else ""),
        "pull_command": f"docker pull {registry.host}/{repo.name}@{digest}",
        "raw": manifest.raw_text if manifest is not None else ""})


@require_GET
@login_required
def search(request: HttpRequest) -> HttpResponse:
    """The top bar's search: repositories and tags by name, manifests by digest prefix (tags and lists holding it)."""
    query = request.GET.get("q", "").strip()
    context: dict = {"search_query": query, "repositories": [], "tags": [], "holders": [], "children": []}
    if query:
        digest_prefix = query.lower()
        if ":" not in digest_prefix and len(digest_prefix) >= 7 and all(c in "0123456789abcdef" for c in digest_prefix):
            digest_prefix = "sha256:" + digest_prefix
        is_digest = digest_prefix.startswith("sha256:") and len(digest_prefix) >= 11
        if is_digest:
            context["tags"] = list(Tag.objects.filter(digest__startswith=digest_prefix).select_related(
                "repository__registry").order_by("repository__registry__name", "repository__name", "name")[:SEARCH_LIMIT])
            parents = ManifestChild.objects.filter(digest__startswith=digest_prefix).values("parent_id")
            context["holders"] = list(Tag.objects.filter(manifest_id__in=parents).select_related(
                "repository__registry").order_by("repository__registry__name", "repository__name", "name")[:SEARCH_LIMIT])
        else:
            context["repositories"] = list(Repository.objects.filter(name__icontains=query).select_related(
                "registry").order_by("registry__name", "name")[:SEARCH_LIMIT])
            context["tags"] = list(Tag.objects.filter(name__icontains=query).select_related(
                "repository__registry").order_by("repository__registry__name", "repository__name", "name")[:SEARCH_LIMIT])
        context["is_digest"] = is_digest
    return render(request, "manifests/search.html", context)

