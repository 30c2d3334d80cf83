"""The JSON API's one decorator and its helpers, for CI and scripts.

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
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from ..models import ApiToken, Registry

# What a write's body may be: the deepest real body (a list's source's
# annotations) is 4 deep.
MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 8

View = Callable[..., JsonResponse]


class ApiError(Exception):
    """An answer other than 200: raised by the helpers, turned into JSON by `api_view`."""

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


def registry_or_404(name: str) -> Registry:
    registry = Registry.objects.filter(name=name).first()
    if registry is None:
        raise ApiError(404, f"no registry named {name}")
    return registry


def _csrf_refusal(request: HttpRequest) -> JsonResponse | None:
    """A session-authenticated write must carry the CSRF token; a Token-authenticated one need not."""
    if request.headers.get("Authorization"):
        return None
    refusal = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
    if refusal is None:
        return None
    return JsonResponse({"error": "CSRF token missing or invalid"}, status=403)


def api_view(view: View | None = None, *, methods: tuple[str, ...] = ("GET",)) -> View:
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
            except ApiError as exc:
                return JsonResponse(exc.payload, status=exc.status)

        wrapper.api_methods = methods  # read by the CSRF test, which walks every route
        return wrapper

    return decorate(view) if view is not None else decorate


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


def json_object(request: HttpRequest) -> dict:
    """The request's body as a JSON object, bounded in size and depth; else a JSON 400 or 413."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    too_big = ApiError(413, f"the body is larger than {MAX_BODY_BYTES // 1024} KiB",
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
        raise ApiError(400, "the body must be JSON", fields={"body": ["not a JSON document"]}) from None
    if too_deep:
        raise ApiError(400, "the body nests too deeply",
                        fields={"body": [f"objects and arrays nest at most {MAX_JSON_DEPTH} deep"]})
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", fields={"body": ["not a JSON object"]})
    return body


@api_view
def unknown(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other path under the API: a JSON 404, not the site's HTML page."""
    raise ApiError(404, f"no API endpoint at {request.path}")
