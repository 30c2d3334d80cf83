"""Stored credentials are never rendered back: no page or API answer an admin can open carries them.

Real registries (Basic and token auth), the real worker running a check, a
scan and a push started through the pages and the API, then every page and
API answer about that registry and its jobs, the Django admin's included.
"""

from __future__ import annotations

import base64
import re

import pytest
from django.contrib.auth.models import User

from manifests.models import Job, Registry
from manifests.stack.distribution import ADMIN_PASSWORD, ADMIN_USER
from registry.images import image_push
from registry.platform import Platform

WRONG_SECRET = "wrong-stored-secret-4d1f"


def _job_id(response) -> int:
    assert response.status_code == 302, response.content[:300]
    match = re.fullmatch(r"/jobs/(\d+)/", response["Location"])
    assert match, response["Location"]
    return int(match.group(1))


def _forbidden(registry: Registry, secret: str) -> list[str]:
    """The secret, as stored, and as a Basic header would carry it."""
    row = Registry.objects.get(pk=registry.pk)
    return [secret, row.secret_encrypted, base64.b64encode(f"{row.username}:{secret}".encode()).decode()]


def _urls(registry: Registry, jobs: list[int]) -> list[tuple[str, dict]]:
    name = registry.name
    urls: list[tuple[str, dict]] = [(path, {}) for path in (
        "/", f"/registries/{name}/", f"/registries/{name}/edit", f"/registries/{name}/r/secrets/src/",
        f"/registries/{name}/r/secrets/src/t/amd64", f"/registries/{name}/r/secrets/list/",
        f"/registries/{name}/r/secrets/list/t/v1", f"/coverage?registry={name}",
        f"/coverage?registry={name}&format=csv", f"/coverage?registry={name}&format=json", "/jobs/",
        f"/build/?registry={name}", f"/build/?registry={name}&target=secrets/list:v1",
        f"/build/candidates?registry={name}&q=secrets", f"/api/v1/registries/{name}/repositories",
        f"/api/v1/registries/{name}/repositories/secrets/list/tags/v1", f"/api/v1/coverage?registry={name}",
        "/admin/manifests/registry/", f"/admin/manifests/registry/{registry.pk}/change/", "/admin/manifests/job/",
        "/admin/manifests/pushrecord/")]
    for job_id in jobs:
        urls += [(f"/jobs/{job_id}/", {}), (f"/jobs/{job_id}/", {"HTTP_HX_REQUEST": "true"}),
                 (f"/api/v1/jobs/{job_id}", {}), (f"/admin/manifests/job/{job_id}/change/", {})]
    return urls


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["basic", "token"])
def test_no_page_or_api_answer_an_admin_opens_carries_the_stored_credentials(request, mode, celery_worker, client,
                                                                              wait_job):
    running = request.getfixturevalue(f"registry_{mode}")
    with running.client() as registry_client:
        for platform in (Platform("linux", "amd64"), Platform("linux", "arm64")):
            image_push(registry_client, repository="secrets/src", tag=platform.architecture, platform=platform)
    registry = Registry(name=f"secret-{mode}", url=running.url, auth=mode, username=ADMIN_USER, insecure=True,
                        watch="secrets/src\nsecrets/list")
    registry.set_secret(ADMIN_PASSWORD)
    registry.save()
    wrong = Registry(name=f"wrong-{mode}", url=running.url, auth=mode, username=ADMIN_USER, insecure=True,
                     watch="secrets/src")
    wrong.set_secret(WRONG_SECRET)
    wrong.save()
    client.force_login(User.objects.create_superuser("root", "root@example.invalid", None))

    check = _job_id(client.post(f"/registries/{registry.name}/check"))
    failed_check = _job_id(client.post(f"/registries/{wrong.name}/check"))
    scan = _job_id(client.post(f"/registries/{registry.name}/scan"))
    failed_scan = _job_id(client.post(f"/registries/{wrong.name}/scan"))
    assert wait_job(check).status == "succeeded", Job.objects.get(pk=check).error
    assert wait_job(scan).status == "succeeded", Job.objects.get(pk=scan).error
    for job_id in (failed_check, failed_scan):
        job = wait_job(job_id)
        assert job.status == "failed" or job.result.get("errors"), job.__dict__
    response = client.post("/api/v1/lists", {"registry": registry.name, "target": "secrets/list:v1",
                                             "sources": [{"reference": "secrets/src:amd64"},
                                                         {"reference": "secrets/src:arm64"}], "expect_digest": ""},
                           content_type="application/json")
    assert response.status_code == 202, response.json()
    push = response.json()["job"]
    assert wait_job(push).status == "succeeded", Job.objects.get(pk=push).error

    forbidden = _forbidden(registry, ADMIN_PASSWORD) + _forbidden(wrong, WRONG_SECRET)
    jobs = [check, failed_check, scan, failed_scan, push]
    # The registry whose credentials failed has no inventory: its own pages, not its repositories'.
    urls = _urls(registry, jobs) + [(url, {}) for url in (
        f"/registries/{wrong.name}/", f"/registries/{wrong.name}/edit", f"/coverage?registry={wrong.name}",
        f"/api/v1/registries/{wrong.name}/repositories", f"/admin/manifests/registry/{wrong.pk}/change/")]
    for url, headers in urls:
        answer = client.get(url, **headers)
        assert answer.status_code in (200, 286), (url, answer.status_code)  # 286: htmx, a finished job
        body = answer.content.decode()
        for value in forbidden:
            assert value not in body, f"{url} carries a stored credential"
