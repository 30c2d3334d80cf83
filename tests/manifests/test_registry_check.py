"""The registry Test button: the worker tries the URL and the stored credentials."""

from __future__ import annotations

import logging

import pytest

from manifests.jobs import job_create, job_run
from manifests.models import Job, Registry
from registry.images import image_push
from registry.platform import Platform


def _check(registry: Registry) -> Job:
    job = job_create(kind=Job.KIND_CHECK, registry=registry, target=registry.name, params={})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


@pytest.mark.django_db
@pytest.mark.parametrize(("password", "ok"), [("admin-secret-password", True), ("wrong", False)])
def test_the_check_reports_good_and_bad_credentials(fresh_registry, password, ok, caplog):
    caplog.set_level(logging.DEBUG)
    # A registry of its own: the check samples the first names of the catalog,
    # which other tests' pushes into a shared registry would push aside.
    registry_token = fresh_registry("token")
    with registry_token.client() as client:
        image_push(client, repository="check/me", tag="v1", platform=Platform("linux", "amd64"))
    registry = Registry(name="chk", url=registry_token.url, insecure=True, auth=Registry.AUTH_BASIC, username="admin")
    registry.set_secret(password)
    registry.save()
    job = _check(registry)
    if ok:
        assert job.status == "succeeded", job.error
        assert "check/me" in job.result["sample"]
    else:
        assert job.status == "failed" and "UNAUTHORIZED" in job.error
        assert password not in job.error and password not in str(job.steps)
    # Credentials never reach a log, at any level.
    assert password not in caplog.text and registry.secret_encrypted not in caplog.text


@pytest.mark.django_db
def test_the_check_of_a_watch_list_registry_reads_a_watched_repositorys_tags(registry_anonymous):
    with registry_anonymous.client() as client:
        image_push(client, repository="watched/one", tag="v1", platform=Platform("linux", "amd64"))
    registry = Registry.objects.create(name="hub", url=registry_anonymous.url, insecure=True, watch="watched/one")
    job = _check(registry)
    assert job.status == "succeeded" and job.result["sample"] == ["v1"]
    assert "GET catalog" not in job.result["requests"]
