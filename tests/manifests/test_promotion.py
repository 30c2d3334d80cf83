"""Promotion: a list copied from a Basic-auth registry to a token registry, whole or in part, pulled by skopeo."""

from __future__ import annotations

import hashlib
import json
import re
import uuid

import pytest
from django.contrib.auth.models import User

from manifests.jobs import job_create, job_run
from manifests.models import ApiToken, PushRecord, Registry
from registry.images import attested_index_push
from registry.platform import Platform

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64", "v8")


def _row(running, name: str) -> Registry:
    username, password = running.credentials()
    row = Registry(name=name, url=running.url, insecure=True, auth=Registry.AUTH_BASIC, username=username)
    row.set_secret(password)
    row.save()
    return row


@pytest.fixture
def staging(registry_basic, registry_token):
    repository = f"team/app-{uuid.uuid4().hex[:8]}"
    with registry_basic.client() as client:
        index, images, _ = attested_index_push(client, repository=repository, tag="1.0", platforms=[AMD64, ARM64])
    source, target = _row(registry_basic, "staging"), _row(registry_token, "production")
    job_run(inline=True, job_id=job_create(kind="scan", registry=source, target="staging",
                                   params={"repository": repository}).pk)
    return repository, index, source, target


def _skopeo_raw(skopeo, running, ref: str) -> str:
    return skopeo("inspect", "--raw", "--tls-verify=false", *running.skopeo_creds(),
                  f"docker://{running.host}/{ref}").stdout


@pytest.mark.django_db(transaction=True)
def test_a_whole_list_keeps_its_digest_in_the_token_registry(staging, registry_token, client, celery_worker,
                                                             wait_job, skopeo, tmp_path):
    repository, index, _, _ = staging
    user = User.objects.create_superuser("ops")
    key = ApiToken.issue(user, scope=ApiToken.SCOPE_PUSH)[1]
    response = client.post("/api/v1/promotions", content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}",
                           data=json.dumps({"from": {"registry": "staging", "reference": f"{repository}:1.0"},
                                            "to": {"registry": "production", "target": f"{repository}:1.0"},
                                            "expect_digest": ""}))
    assert response.status_code == 202, response.json()
    assert response.json()["digest_unchanged"] is True and response.json()["digest"] == index.digest
    job = wait_job(response.json()["job"])
    assert job.status == "succeeded", (job.error, celery_worker.log()[-3000:])
    # Two images and two attestations, a config and a layer each; the attestations share their empty config.
    assert (job.result["transfer"]["blobs_streamed"], job.result["transfer"]["blobs_present"]) == (7, 1)
    assert job.result["transfer"]["bytes_moved"] > 0
    raw = _skopeo_raw(skopeo, registry_token, f"{repository}:1.0")
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == index.digest
    creds = [c.replace("--creds", "--src-creds") for c in registry_token.skopeo_creds()]
    skopeo("copy", "--src-tls-verify=false", *creds, "--override-os", "linux", "--override-arch", "arm64",
           "--override-variant", "v8", f"docker://{registry_token.host}/{repository}:1.0", f"dir:{tmp_path / 'arm'}")
    assert (tmp_path / "arm" / "manifest.json").exists()
    assert PushRecord.objects.get(job=job).new_digest == index.digest
    client.force_login(user)
    assert "the digest is unchanged" in client.get(f"/jobs/{job.pk}/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_subset_shows_its_new_digest_before_pushing(staging, registry_token, client, celery_worker, wait_job,
                                                      skopeo):
    repository, index, _, _ = staging
    client.force_login(User.objects.create_superuser("ops"))
    form = {"from_registry": "staging", "reference": f"{repository}:1.0", "to_registry": "production",
            "target": f"{repository}:amd64-only", "platforms": "linux/amd64"}
    page = client.post("/promote/", {**form, "action": "preview"}).content.decode()
    assert "the list is rewritten, and its new digest will be" in page
    new_digest = re.search(r'name="plan_digest" value="([^"]+)"', page)[1]
    assert new_digest != index.digest
    response = client.post("/promote/", {**form, "action": "promote", "plan_digest": new_digest,
                                         "expect_digest": ""})
    assert response.status_code == 302
    job = wait_job(int(response["Location"].rstrip("/").rsplit("/", 1)[1]))
    assert job.status == "succeeded", job.error
    raw = _skopeo_raw(skopeo, registry_token, f"{repository}:amd64-only")
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == new_digest
    entries = json.loads(raw)["manifests"]
    assert [m["platform"]["architecture"] for m in entries] == ["amd64", "unknown"]  # the image and its attestation
    whole = client.post("/promote/", {**form, "platforms": "", "action": "preview"}).content.decode()
    assert "the digest is unchanged" in whole


@pytest.mark.django_db
def test_a_bad_promotion_gets_a_message_per_field(client):
    Registry.objects.create(name="staging", url="http://127.0.0.1:1", insecure=True)
    key = ApiToken.issue(User.objects.create_superuser("ops"), scope=ApiToken.SCOPE_PUSH)[1]
    response = client.post("/api/v1/promotions", content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}",
                           data=json.dumps({"from": {"registry": "staging", "reference": "nope:1"},
                                            "to": {"registry": "staging", "target": "Bad"}}))
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"from.reference", "to.target", "to.registry"}
