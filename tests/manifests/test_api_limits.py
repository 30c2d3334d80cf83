"""POST /api/v1/lists reads a bounded body: size, depth and number of sources, each a JSON answer.

Every case is refused before the inventory or a registry is asked, so no registry runs here.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User

from manifests.api.base import MAX_BODY_BYTES, MAX_JSON_DEPTH
from manifests.forms.lists import MAX_SOURCES
from manifests.models import ApiToken, Registry

pytestmark = pytest.mark.django_db


@pytest.fixture
def key() -> str:
    user = User.objects.create_user("ci")
    user.user_permissions.add(Permission.objects.get(codename="push_registry"))
    Registry.objects.create(name="api", url="http://127.0.0.1:9", insecure=True)
    return ApiToken.issue(user, scope=ApiToken.SCOPE_PUSH)[1]


def _post(client, key: str, raw: bytes | str):
    return client.post("/api/v1/lists", data=raw, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Token {key}")


def _fields(response, status: int = 400) -> dict[str, list[str]]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    return response.json()["fields"]


def test_a_body_nested_deeper_than_the_parser_can_go_is_a_400_and_not_an_html_500(client, key):
    # Python's JSON parser raises RecursionError near a thousand levels; this is a hundred times that.
    depth = 100_000
    raw = '{"registry": "api", "target": "a:b", "sources": ' + "[" * depth + "]" * depth + "}"
    assert _fields(_post(client, key, raw)) == {"body": [f"objects and arrays nest at most {MAX_JSON_DEPTH} deep"]}


def test_a_body_nested_deeper_than_any_real_one_is_a_400(client, key):
    nested: object = "x"
    for _ in range(MAX_JSON_DEPTH):
        nested = {"a": nested}
    body = {"registry": "api", "target": "a:b", "sources": [{"reference": "a:b", "annotations": nested}]}
    assert _fields(_post(client, key, json.dumps(body))) == {
        "body": [f"objects and arrays nest at most {MAX_JSON_DEPTH} deep"]}


def test_more_sources_than_the_cap_is_a_400_on_the_sources_field(client, key):
    sources = [{"reference": f"app:v{n}"} for n in range(MAX_SOURCES + 1)]
    fields = _fields(_post(client, key, json.dumps({"registry": "api", "target": "app:all", "sources": sources})))
    assert fields == {"sources": [f"at most {MAX_SOURCES} sources in one list ({MAX_SOURCES + 1} given)"]}


def test_a_body_over_its_cap_is_a_413_read_no_further(client, key):
    raw = json.dumps({"registry": "api", "target": "a:b", "sources": [{"reference": "a:b"}],
                      "annotations": {"pad": "x" * MAX_BODY_BYTES}})
    assert _fields(_post(client, key, raw), status=413) == {"body": [f"at most {MAX_BODY_BYTES} bytes"]}
    # Beyond Django's own upload limit, too: still this JSON answer, not the site's HTML 400.
    assert _fields(_post(client, key, "x" * (3 * MAX_BODY_BYTES)), status=413)


@pytest.mark.parametrize(("raw", "message"), [
    (b"\xff\xfe not json", "not a JSON document"),
    ("[1, 2]", "not a JSON object"),
    ('{"sources": [', "not a JSON document"),
])
def test_a_body_that_is_no_json_object_is_a_400_on_the_body_field(client, key, raw, message):
    assert _fields(_post(client, key, raw)) == {"body": [message]}
