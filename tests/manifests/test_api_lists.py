"""POST /api/v1/lists: checked against the inventory at once, pushed by the real worker."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User

from manifests.jobs import job_create, job_run
from manifests.models import ApiToken, Registry
from registry.assemble import SourceSpec, list_plan
from registry.images import attested_index_push, image_push
from registry.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


def _scanned(running, name: str = "api") -> Registry:
    registry = Registry.objects.create(name=name, url=running.url, insecure=True)
    job = job_create(kind="scan", registry=registry, target=name, params={})
    job_run(inline=True, job_id=job.pk)
    return registry


def _pusher() -> tuple[User, str]:
    user = User.objects.create_user("ci")
    user.user_permissions.add(Permission.objects.get(codename="push_registry"))
    _, key = ApiToken.issue(user, scope=ApiToken.SCOPE_PUSH)
    return user, key


def _post(client, key: str, body: dict):
    return client.post("/api/v1/lists", data=json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Token {key}")


@pytest.fixture
def canonical(fresh_registry):
    running = fresh_registry("anonymous")
    with running.client() as client:
        image_push(client, repository="username/x8664-test", tag="latest", platform=AMD64)
        image_push(client, repository="username/arm64v8-test", tag="latest", platform=ARM64)
    return running


@pytest.mark.django_db(transaction=True)
def test_ci_assembles_the_canonical_list_through_the_api(canonical, celery_worker, client, skopeo, wait_job):
    registry = _scanned(canonical)
    _, key = _pusher()
    response = _post(client, key, {"registry": registry.name, "target": "username/test:latest", "format": "auto",
                                   "sources": [{"reference": "username/x8664-test:latest"},
                                               {"reference": "username/arm64v8-test:latest"}],
                                   "expect_digest": ""})
    assert response.status_code == 202, response.json()
    job_id = response.json()["job"]
    wait_job(job_id)
    job = client.get(f"/api/v1/jobs/{job_id}", HTTP_AUTHORIZATION=f"Token {key}").json()
    assert job["status"] == "succeeded", job
    assert job["digest"] == response.json()["digest"]
    raw = skopeo("inspect", "--raw", "--tls-verify=false",
                 f"docker://{canonical.host}/username/test:latest").stdout
    assert {m["platform"]["architecture"] for m in json.loads(raw)["manifests"]} == {"amd64", "arm64"}
    # The inventory shows the new tag at once.
    tag = client.get(f"/api/v1/registries/{registry.name}/repositories/username/test/tags/latest",
                     HTTP_AUTHORIZATION=f"Token {key}").json()
    assert [p["platform"] for p in tag["platforms"]] == ["linux/amd64", "linux/arm64"]


@pytest.mark.django_db
def test_what_the_inventory_can_tell_is_refused_at_once_with_a_message_per_field(canonical, client):
    registry = _scanned(canonical)
    _, key = _pusher()
    response = _post(client, key, {"registry": registry.name, "target": "Username/Test:latest",
                                   "sources": [{"reference": "username/x8664-test:latest"},
                                               {"reference": "username/nope:latest"},
                                               {"reference": "username/arm64v8-test:latest", "platform": "linux/amd64"}],
                                   "format": "docker", "annotations": {"a": "b"}})
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert "target" in fields
    # Sources count from 1, as the builder counts them: the second source is
    # "source 2", and a message about the third names the first as "source 1".
    assert "not in the inventory" in fields["source 2"][0]
    assert "linux/amd64 is already provided by source 1" in fields["source 3"][0]
    assert not any(key.startswith("sources.") for key in fields)
    assert "annotations" in fields
    # For programs: the position in the request's array (from 0) beside the count from 1.
    assert [(e["source"], e["index"]) for e in response.json()["source_errors"]] == [(2, 1), (3, 2)]
    assert response.json()["source_errors"][0]["messages"] == fields["source 2"]


@pytest.mark.django_db
def test_a_source_that_is_not_an_object_is_named_from_1(canonical, client):
    registry = _scanned(canonical)
    _, key = _pusher()
    response = _post(client, key, {"registry": registry.name, "target": "username/test:latest",
                                   "sources": [{"reference": "username/x8664-test:latest"}, "username/nope"]})
    assert response.status_code == 400
    body = response.json()
    assert "must be an object" in body["fields"]["source 2"][0]
    assert body["source_errors"] == [{"source": 2, "index": 1, "messages": body["fields"]["source 2"]}]


@pytest.mark.django_db
def test_an_expect_digest_that_does_not_match_answers_409(canonical, client):
    registry = _scanned(canonical)
    _, key = _pusher()
    response = _post(client, key, {"registry": registry.name, "target": "username/x8664-test:latest",
                                   "sources": [{"reference": "username/arm64v8-test:latest"}],
                                   "expect_digest": "sha256:" + "0" * 64})
    assert response.status_code == 409
    assert response.json()["current"].startswith("sha256:")


@pytest.mark.django_db
def test_the_inventory_plan_has_the_bytes_the_registry_plan_has(fresh_registry, client, redis_server):
    running = fresh_registry("anonymous")
    with running.client() as rc:
        attested_index_push(rc, repository="idx/src", tag="multi", platforms=[AMD64, ARM64])
        image_push(rc, repository="idx/arm", tag="v7", platform=Platform("linux", "arm", "v7"))
    registry = _scanned(running)
    _, key = _pusher()
    sources = [{"reference": "idx/src:multi", "platform": "linux/arm64"}, {"reference": "idx/arm:v7"}]
    response = _post(client, key, {"registry": registry.name, "target": "idx/dst:v1", "sources": sources})
    assert response.status_code == 202, response.json()
    with running.client() as rc:
        plan = list_plan(client=rc, target="idx/dst:v1", sources=[SourceSpec.from_json(s) for s in sources])
    assert response.json()["digest"] == plan.digest
    assert len(plan.entries) == 3  # arm64, arm/v7 and the arm64 attestation


@pytest.mark.django_db
def test_a_viewer_may_not_push_and_a_session_post_needs_csrf(canonical, client):
    registry = _scanned(canonical)
    viewer = User.objects.create_user("viewer")
    _, key = ApiToken.issue(viewer, scope=ApiToken.SCOPE_PUSH)  # the user, not the key, is refused
    body = {"registry": registry.name, "target": "username/test:latest",
            "sources": [{"reference": "username/x8664-test:latest"}]}
    assert _post(client, key, body).status_code == 403
    pusher, _ = _pusher()
    csrf_client = client.__class__(enforce_csrf_checks=True)
    csrf_client.force_login(pusher)
    response = csrf_client.post("/api/v1/lists", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["error"]


@pytest.mark.django_db
def test_a_bad_body_is_a_json_400(client):
    _, key = _pusher()
    response = client.post("/api/v1/lists", data="not json", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 400 and response.json()["error"]
