"""Every route refuses a POST without a CSRF token: the routes are read from the URLconf, so none is forgotten.

The only routes that take a POST without one are listed here with the reason:
the webhook (its own bearer token, sent by a registry, not a browser) and the
JSON API (a session-authenticated write is checked by the API itself, with a
JSON 403; a key-authenticated one carries no cookie to forge).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

# A value for every URL keyword of the project and of the admin; a route with
# a keyword missing here fails the test, which then names it.
SAMPLES = {
    "name": "corp", "repository": "team/app", "tag": "v1", "job_id": 1, "record_id": 1, "rule_id": 1,
    "app_label": "manifests", "model_name": "registry", "object_id": "1", "id": 1, "content_type_id": 1,
    "url": "anything", "digest": "sha256:" + "0" * 64, "channel_id": 1,
}
EXEMPT = {"manifests-webhook": "authenticated by the registry's webhook token"}


def _routes(resolver: URLResolver | None = None, namespace: str = "") -> list[tuple[str, str, object]]:
    """(route name, path, view) for every named route of the URLconf, through every include."""
    resolver = resolver or get_resolver()
    found = []
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found += _routes(pattern, inner)
        elif isinstance(pattern, URLPattern):
            if not pattern.name:
                # Only the admin's catch-all has none; ours must all be named to be tested.
                assert namespace == "admin:", f"route {pattern.pattern} has no name"
                continue
            keywords = list(pattern.pattern.regex.groupindex)
            missing = [k for k in keywords if k not in SAMPLES]
            assert not missing, f"route {namespace}{pattern.name} takes {missing}: add a sample to SAMPLES"
            path = reverse(f"{namespace}{pattern.name}", kwargs={k: SAMPLES[k] for k in keywords})
            found.append((f"{namespace}{pattern.name}", path, pattern.callback))
    return found


ROUTES = _routes()


def test_the_route_list_covers_the_forms_and_htmx_posts():
    names = {name for name, _, _ in ROUTES}
    assert {"login", "logout", "manifests-registry-add", "manifests-registry-edit", "manifests-registry-delete",
            "manifests-scan", "manifests-registry-check", "manifests-registry-webhook-token",
            "manifests-builder", "manifests-builder-preview", "manifests-builder-push", "manifests-job-retry",
            "manifests-push-rollback", "manifests-api-list-create", "admin:index"} <= names


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "path", "view"), ROUTES, ids=[name for name, _, _ in ROUTES])
def test_a_post_without_a_csrf_token_is_refused(name, path, view):
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))
    response = client.post(path, {"registry": "corp", "target": "team/app:v1"},
                           headers={"HX-Request": "true"})
    api_methods = getattr(view, "api_methods", None)
    if name in EXEMPT:
        assert response.status_code == 401, EXEMPT[name]
    elif api_methods is not None and "POST" not in api_methods:
        assert response.status_code == 405 and response["Content-Type"] == "application/json"
    else:
        assert response.status_code == 403, (name, response.status_code)
        if api_methods is not None:
            assert "CSRF" in response.json()["error"]
