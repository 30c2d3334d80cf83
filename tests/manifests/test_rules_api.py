"""/api/v1/rules: create, read, change, delete, dry run and apply, by token, through the real worker."""

from __future__ import annotations

import json

import pytest
import yaml
from django.contrib.auth.models import Permission, User

from manifests.jobs import job_create, job_run
from manifests.models import ApiToken, PushRecord, Registry, Rule
from registry.images import image_push
from registry.platform import Platform

X86 = "username/x8664-test"
ARM = "username/arm64v8-test"


def _user(*, push: bool = True) -> str:
    user = User.objects.create_user("ci" if push else "reader")
    if push:
        user.user_permissions.add(Permission.objects.get(codename="push_registry"))
    return ApiToken.issue(user, scope=ApiToken.SCOPE_PUSH)[1]


def _call(client, method: str, path: str, key: str, body: dict | None = None):
    return getattr(client, method)(path, data=json.dumps(body or {}), content_type="application/json",
                                   HTTP_AUTHORIZATION=f"Token {key}")


@pytest.fixture
def inventory(fresh_registry):
    running = fresh_registry("anonymous")
    with running.client() as client:
        image_push(client, repository=X86, tag="1.0.0", platform=Platform("linux", "amd64"))
        image_push(client, repository=ARM, tag="1.0.0", platform=Platform("linux", "arm64", "v8"))
    registry = Registry.objects.create(name="api", url=running.url, insecure=True)
    job_run(inline=True, job_id=job_create(kind="scan", registry=registry, target="api", params={}).pk)
    return running, registry


BODY = {"name": "seed", "registry": "api", "target": "username/test:{tag}",
        "sources": [{"repository": X86}, {"repository": ARM, "platform": "linux/arm64/v8"}],
        "tags": {"semver": ">=1 <2"}, "annotations": {"org.opencontainers.image.version": "{tag}"},
        "also_tag": ["latest"]}


@pytest.mark.django_db(transaction=True)
def test_a_rule_is_made_dry_run_and_applied_through_the_api(inventory, client, celery_worker, wait_job):
    running, _ = inventory
    key = _user()
    created = _call(client, "post", "/api/v1/rules", key, BODY)
    assert created.status_code == 201, created.json()
    rule_url = f"/api/v1/rules/{created.json()['id']}"
    assert created.json()["url"].endswith(rule_url)
    shown = client.get(rule_url, HTTP_AUTHORIZATION=f"Token {key}").json()
    assert shown["sources"] == [{"repository": X86}, {"repository": ARM, "platform": "linux/arm64"}]
    assert shown["tags"] == {"semver": ">=1 <2"} and shown["require"] == "all" and shown["automatic"] is True

    dry = _call(client, "post", f"{rule_url}/dry-run", key).json()
    assert [(t["tag"], t["status"], t["current"], t["missing"]) for t in dry["tags"]] == [("1.0.0", "new", "", [])]
    assert dry["tags"][0]["digest"].startswith("sha256:")
    assert dry["also"][0]["follows"] == "1.0.0"

    applied = _call(client, "post", f"{rule_url}/apply", key, {"tags": ["1.0.0"]})
    assert applied.status_code == 202, applied.json()
    job = wait_job(applied.json()["job"])
    assert job.status == "succeeded", (job.error, celery_worker.log()[-2000:])
    assert job.result["tags"]["1.0.0"]["digest"] == dry["tags"][0]["digest"]
    assert job.result["tags"]["latest"]["status"] == "pushed"
    assert PushRecord.objects.filter(rule_id=created.json()["id"]).count() == 2
    with running.client() as registry_client:
        assert registry_client.head_manifest("username/test", "1.0.0").digest == dry["tags"][0]["digest"]

    changed = _call(client, "patch", rule_url, key, {"owns_target": True, "automatic": False})
    assert changed.status_code == 200, changed.json()
    assert changed.json()["owns_target"] is True and changed.json()["name"] == "seed"
    assert changed.json()["states"]["1.0.0"]["status"] == "pushed"

    exported = client.get(f"{rule_url}?format=yaml", HTTP_AUTHORIZATION=f"Token {key}")
    assert exported["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(exported.content)["rules"][0]["owns_target"] is True

    assert _call(client, "delete", rule_url, key).status_code == 204
    assert not Rule.objects.exists()
    assert client.get(rule_url, HTTP_AUTHORIZATION=f"Token {key}").status_code == 404


@pytest.mark.django_db
def test_a_bad_rule_gets_a_400_with_a_message_per_field(client):
    Registry.objects.create(name="api", url="http://127.0.0.1:1", insecure=True)
    key = _user()
    response = _call(client, "post", "/api/v1/rules", key, {
        **BODY, "target": "username/test", "sources": [], "tags": {"regex": "(a+)+$"}, "format": "zip",
        "surprise": 1})
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert set(fields) == {"target", "sources", "tags", "format", "non_field_errors"}
    assert "nested quantifiers" in fields["tags"][0]
    response = _call(client, "post", "/api/v1/rules", key, {**BODY, "registry": "nowhere", "tags": 5})
    assert set(response.json()["fields"]) == {"registry", "tags"}


@pytest.mark.django_db
def test_writing_rules_needs_the_push_permission_and_reading_needs_a_login(client):
    Registry.objects.create(name="api", url="http://127.0.0.1:1", insecure=True)
    reader = _user(push=False)
    assert _call(client, "post", "/api/v1/rules", reader, BODY).status_code == 403
    assert client.get("/api/v1/rules").status_code == 401
    assert client.get("/api/v1/rules", HTTP_AUTHORIZATION=f"Token {reader}").json() == {"rules": []}


@pytest.mark.django_db
def test_a_read_only_key_cannot_write_rules(client):
    Registry.objects.create(name="api", url="http://127.0.0.1:1", insecure=True)
    user = User.objects.create_superuser("ro")
    key = ApiToken.issue(user, scope=ApiToken.SCOPE_READ)[1]
    assert _call(client, "post", "/api/v1/rules", key, BODY).status_code == 403
    assert not Rule.objects.exists()
