"""Read-only JSON API for CI and scripts: the stored inventory, coverage and jobs.

Every answer is JSON, errors included (`{"error": ...}`): a script should never
have to parse an HTML error page. Authenticated by session or by
`Authorization: Token <key>` (see the `apitoken` command).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from registry.errors import InvalidPlatform, InvalidReference
from registry.platform import normalize_platform_string

from .models import ApiToken, Job, Manifest, ManifestChild, Registry, Repository, Tag
from .services.across import list_plan_inventory
from .services.assemble import FORMAT_AUTO, AssemblyInvalid, SourceSpec
from .services.coverage import (
    NewestInvalid,
    PatternInvalid,
    coverage_materialize,
    coverage_rows,
    newest_parse,
    pattern_validate,
    required_parse,
)
from .services.inventory import tag_digest_now
from .services.push import push_job_create
from .services.queue import QueueUnavailable
from .services.scan import MAX_DEPTH
from .services.sizes import UNCOMPRESSED_NOTE, tag_sizes

PAGE_SIZE = 100
# What POST /api/v1/lists reads: a list of 256 sources is far more than any
# registry's platforms; the deepest real body (a source's annotations) is 4 deep.
MAX_BODY_BYTES = 1024 * 1024
MAX_SOURCES = 256
MAX_JSON_DEPTH = 8

View = Callable[..., JsonResponse]


class _ApiError(Exception):
    """An answer other than 200: raised by the helpers, turned into JSON by `_api_view`."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload = {"error": message, **extra}


def _api_auth(request: HttpRequest) -> tuple[Any, ApiToken | None, str]:
    """(user, token, why not): the user of a session or of a valid API token.

    A request that sends an Authorization header is judged by that header alone,
    so a bad key is refused even from a browser that also holds a session.
    Revoked and expired keys are refused, each saying so.
    """
    header = request.headers.get("Authorization", "")
    if not header:
        return (request.user if request.user.is_authenticated else None), None, ""
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "token" or not key:
        return None, None, ""
    token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
    if token is None or not token.user.is_active:
        return None, None, ""
    if token.revoked_at is not None:
        return None, None, "this API key was revoked"
    if token.is_expired:
        return None, None, "this API key has expired"
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user, token, ""


def _registry_or_404(name: str) -> Registry:
    registry = Registry.objects.filter(name=name).first()
    if registry is None:
        raise _ApiError(404, f"no registry named {name}")
    return registry


def _csrf_refusal(request: HttpRequest) -> JsonResponse | None:
    """A session-authenticated write must carry the CSRF token; a Token-authenticated one need not."""
    if request.headers.get("Authorization"):
        return None
    refusal = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
    if refusal is None:
        return None
    return JsonResponse({"error": "CSRF token missing or invalid"}, status=403)


def _api_view(view: View | None = None, *, methods: tuple[str, ...] = ("GET",)) -> View:
    """Authenticated, JSON errors, only `methods` (GET unless said)."""

    def decorate(view: View) -> View:
        # The middleware's CSRF check is replaced by `_csrf_refusal`, so that a
        # wrong method gets a JSON 405 and not the middleware's HTML 403.
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method not in methods:
                response = JsonResponse({"error": f"method {request.method} not allowed here"}, status=405)
                response["Allow"] = ", ".join(methods)
                return response
            user, token, why = _api_auth(request)
            if user is None:
                response = JsonResponse(
                    {"error": why or "authentication required: log in or send Authorization: Token <key>"},
                    status=401)
                response["WWW-Authenticate"] = "Token"
                return response
            request.user = user
            if request.method != "GET" and (refusal := _csrf_refusal(request)) is not None:
                return refusal
            if request.method != "GET" and token is not None and token.scope != ApiToken.SCOPE_PUSH:
                # Every write endpoint, present and future, goes through here.
                return JsonResponse({"error": "this API key may only read: writing needs a key with scope push"},
                                    status=403)
            try:
                return view(request, *args, **kwargs)
            except _ApiError as exc:
                return JsonResponse(exc.payload, status=exc.status)

        wrapper.api_methods = methods  # read by the CSRF test, which walks every route
        return wrapper

    return decorate(view) if view is not None else decorate


def _page_number(request: HttpRequest) -> int:
    text = request.GET.get("page", "1")
    if not text.isdigit() or int(text) < 1:
        raise _ApiError(400, "page must be a positive integer", field="page")
    return int(text)


def _page_url(request: HttpRequest, page: int) -> str:
    query = request.GET.copy()
    query["page"] = str(page)
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def _descriptor_entry(child: ManifestChild) -> dict:
    return {"platform": child.platform, "os": child.os, "architecture": child.architecture,
            "variant": child.variant, "os_version": child.os_version, "os_features": child.os_features,
            "digest": child.digest, "media_type": child.media_type, "size": child.size}


def _index_entries(index: Manifest, *, depth: int = 0) -> tuple[list[dict], list[dict], list[dict]]:
    """(platforms, attestations, artifacts) of an index, nested indexes followed as scan.manifest_summary does.

    An artifact entry (a chart, an SBOM in a referrers index) has no platform:
    it is listed apart, not as a platform named "".
    """
    children = list(index.children.all())
    stored = {row.digest: row for row in Manifest.objects.filter(
        kind__in=("index", "artifact"), digest__in=[c.digest for c in children]).defer("raw")}
    platforms: list[dict] = []
    attestations: list[dict] = []
    artifacts: list[dict] = []
    for child in children:
        row = stored.get(child.digest)
        if child.is_attestation:
            attestations.append({"digest": child.digest, "subject": child.subject})
        elif row is not None and row.kind == "index" and depth < MAX_DEPTH:
            inner_platforms, inner_attestations, inner_artifacts = _index_entries(row, depth=depth + 1)
            platforms += inner_platforms
            attestations += inner_attestations
            artifacts += inner_artifacts
        elif not child.platform and (child.artifact_type or (row is not None and row.kind == "artifact")):
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


def _too_deep(value: object, limit: int) -> bool:
    """Whether objects and arrays nest deeper than `limit` (1: a flat object); without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _json_object(request: HttpRequest) -> dict:
    """The request's body as a JSON object, bounded in size and depth; else a JSON 400 or 413."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    too_big = _ApiError(413, f"the body is larger than {MAX_BODY_BYTES // 1024} KiB",
                        fields={"body": [f"at most {MAX_BODY_BYTES} bytes"]})
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_big
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_big from None
    if len(raw) > MAX_BODY_BYTES:
        raise too_big
    try:
        body = json.loads(raw or b"{}")
        too_deep = _too_deep(body, MAX_JSON_DEPTH)
    except RecursionError:  # deeper than the parser's own limit
        too_deep = True
    except ValueError:
        raise _ApiError(400, "the body must be JSON", fields={"body": ["not a JSON document"]}) from None
    if too_deep:
        raise _ApiError(400, "the body nests too deeply",
                        fields={"body": [f"objects and arrays nest at most {MAX_JSON_DEPTH} deep"]})
    if not isinstance(body, dict):
        raise _ApiError(400, "the body must be a JSON object", fields={"body": ["not a JSON object"]})
    return body


# -- views ---------------------------------------------------------------------


@_api_view
def repository_list(request: HttpRequest, name: str) -> JsonResponse:
    registry = _registry_or_404(name)
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


@_api_view
def tag_detail(request: HttpRequest, name: str, repository: str, tag: str) -> JsonResponse:
    registry = _registry_or_404(name)
    repository_row = Repository.objects.filter(registry=registry, name=repository).first()
    if repository_row is None:
        raise _ApiError(404, f"no repository named {repository} in {registry.name}")
    tag_row = Tag.objects.select_related("manifest").filter(repository=repository_row, name=tag).first()
    if tag_row is None:
        raise _ApiError(404, f"no tag named {tag} in {repository}")
    manifest = tag_row.manifest
    platforms: list[dict] = []
    attestations: list[dict] = []
    artifacts: list[dict] = []
    if manifest is not None and manifest.kind == "index":
        platforms, attestations, artifacts = _index_entries(manifest)
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


@_api_view
def coverage(request: HttpRequest) -> JsonResponse:
    name = request.GET.get("registry", "").strip()
    if not name:
        raise _ApiError(400, "the registry parameter is required", field="registry")
    registry = _registry_or_404(name)
    try:
        required = required_parse(request.GET.get("require"), registry=registry)
    except InvalidPlatform as exc:
        raise _ApiError(400, str(exc), field="require") from None
    lacking = request.GET.get("lacking", "").strip()
    if lacking:
        try:
            lacking = normalize_platform_string(lacking)
        except InvalidPlatform as exc:
            raise _ApiError(400, str(exc), field="lacking") from None
    try:
        pattern = pattern_validate(request.GET.get("tag", ""))
    except PatternInvalid as exc:
        raise _ApiError(400, str(exc), field="tag") from None
    try:
        newest = newest_parse(request.GET.get("newest"))
    except NewestInvalid as exc:
        raise _ApiError(400, str(exc), field="newest") from None
    repositories = list(coverage_rows(registry=registry, pattern=pattern, lacking=lacking, newest=newest,
                                      unsigned=request.GET.get("unsigned") == "1"))
    rows = coverage_materialize(repositories, required=required, newest=newest, pattern=pattern, lacking=lacking)
    return JsonResponse({
        "required": required,
        "rows": [{"repository": row.repository, "tag": row.tag, "digest": row.digest, "platforms": row.platforms,
                  "missing": row.missing, "signed": row.signed} for row in rows],
    })


@_api_view
def job_detail(request: HttpRequest, job_id: int) -> JsonResponse:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise _ApiError(404, f"no job {job_id}")
    return JsonResponse({
        "id": job.pk, "kind": job.kind, "status": job.status, "target": job.target, "digest": job.digest,
        "error": job.error, "steps": job.steps, "result": job.result, "created_at": job.created_at,
        "finished_at": job.finished_at,
    })


def _source_fields(fields: dict[str, list[str]]) -> dict[str, Any]:
    """The 400 answer's problems, sources counted from 1 as the pages count them.

    `fields` names the n-th source "source n" (n from 1); `source_errors` says
    the same for programs: `source` counts from 1, `index` is the position in
    the request's `sources` array (from 0).
    """
    public: dict[str, list[str]] = {}
    source_errors: list[dict[str, Any]] = []
    for key, messages in fields.items():
        prefix, _, rest = key.partition(".")
        if prefix == "sources" and rest.isdigit():
            index = int(rest)
            public[f"source {index + 1}"] = messages
            source_errors.append({"source": index + 1, "index": index, "messages": messages})
        else:
            public[key] = messages
    source_errors.sort(key=lambda e: e["index"])
    return {"fields": public, "source_errors": source_errors}


@_api_view(methods=("POST",))
def list_create(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/lists: check against the inventory at once, then push on the worker."""
    body = _json_object(request)
    fields: dict[str, list[str]] = {}
    registry = Registry.objects.filter(name=str(body.get("registry") or "")).first()
    if registry is None:
        fields["registry"] = [f"no registry named {body.get('registry')!r}"]
    if not request.user.has_perm("manifests.push_registry") or (registry and not registry.can_push(request.user)):
        raise _ApiError(403, "you may not push lists to this registry")
    sources_data = body.get("sources")
    specs: list[SourceSpec] = []
    if not isinstance(sources_data, list) or not sources_data:
        fields["sources"] = ["give a non-empty list of sources"]
    elif len(sources_data) > MAX_SOURCES:
        fields["sources"] = [f"at most {MAX_SOURCES} sources in one list ({len(sources_data)} given)"]
    else:
        for index, item in enumerate(sources_data):
            try:
                if not isinstance(item, dict):
                    raise InvalidReference("each source must be an object with a reference")
                specs.append(SourceSpec.from_json(item))
            except InvalidReference as exc:
                fields.setdefault(f"sources.{index}", []).append(str(exc))
    fmt = body.get("format") or FORMAT_AUTO
    annotations = body.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        fields["annotations"] = ["annotations must be an object of strings"]
        annotations = {}
    target = body.get("target")
    if not isinstance(target, str) or not target:
        fields["target"] = ["give the target as repository:tag"]
    expect_digest = body.get("expect_digest")
    if expect_digest is not None and not isinstance(expect_digest, str):
        fields["expect_digest"] = ["a digest, \"\" for a tag that must not exist yet, or null"]
    if fields:
        raise _ApiError(400, "the request has problems", **_source_fields(fields))
    try:
        plan, _ = list_plan_inventory(registry=registry, target=target, sources=specs, fmt=str(fmt),
                                      annotations=annotations)
    except AssemblyInvalid as exc:
        raise _ApiError(400, "the list cannot be built", **_source_fields(exc.errors)) from None
    if expect_digest is not None:
        current = tag_digest_now(registry=registry, reference=target)
        if current != expect_digest:
            raise _ApiError(409, f"{target} holds {current or 'nothing'}, not {expect_digest or 'nothing'}",
                            current=current)
    try:
        job = push_job_create(registry=registry, target=str(plan.target.repository + ":" + plan.target.tag),
                              sources=specs, fmt=str(fmt), annotations=annotations, expect_digest=expect_digest,
                              user=request.user)
    except QueueUnavailable as exc:
        raise _ApiError(503, str(exc)) from None
    url = reverse("manifests-api-job-detail", args=[job.pk])
    return JsonResponse({"job": job.pk, "url": request.build_absolute_uri(url), "digest": plan.digest}, status=202)


@_api_view
def unknown(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other path under the API: a JSON 404, not the site's HTML page."""
    raise _ApiError(404, f"no API endpoint at {request.path}")
