"""The rule pages: list, form with errors at their fields, detail with the dry run, Apply, export."""

from __future__ import annotations

import pytest
import yaml
from django.contrib.auth.models import User

from manifests.jobs import job_create, job_run
from manifests.models import Job, Registry, Rule
from registry.images import image_push
from registry.platform import Platform

FORM = {"name": "seed", "registry": "pages", "target": "username/test:{tag}",
        "sources": "username/x8664-test\nusername/arm64v8-test linux/arm64/v8", "tags_mode": "all",
        "tags_pattern": "", "require": "", "format": "auto", "annotations": "", "also_tag": "", "automatic": "on"}


@pytest.fixture
def admin(client):
    user = User.objects.create_superuser("admin", password="pw")
    client.force_login(user)
    return user


@pytest.mark.django_db
def test_the_form_shows_each_error_at_its_field(client, admin):
    Registry.objects.create(name="pages", url="http://127.0.0.1:1", insecure=True)
    response = client.post("/rules/new", {**FORM, "target": "username/test", "tags_mode": "regex",
                                          "tags_pattern": "(a+)+", "sources": "Bad Repo!"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_target-error"' in html and 'id="id_tags_pattern-error"' in html and 'id="id_sources-error"' in html
    assert 'aria-invalid="true"' in html
    assert "nested quantifiers" in html
    assert not Rule.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rule_made_on_the_page_shows_its_dry_run_and_applies(client, admin, fresh_registry, celery_worker,
                                                               wait_job):
    running = fresh_registry("anonymous")
    with running.client() as registry_client:
        image_push(registry_client, repository="username/x8664-test", tag="7.0.0", platform=Platform("linux", "amd64"))
        image_push(registry_client, repository="username/arm64v8-test", tag="7.0.0",
                   platform=Platform("linux", "arm64", "v8"))
        image_push(registry_client, repository="username/x8664-test", tag="7.1.0", platform=Platform("linux", "amd64"))
    registry = Registry.objects.create(name="pages", url=running.url, insecure=True)
    job_run(inline=True, job_id=job_create(kind="scan", registry=registry, target="pages", params={}).pk)
    assert "/rules/" in client.get("/").content.decode()  # in the nav
    response = client.post("/rules/new", FORM)
    rule = Rule.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/rules/{rule.pk}/"
    page = client.get(f"/rules/{rule.pk}/").content.decode()
    assert 'data-tag="7.0.0" data-status="new"' in page
    assert 'data-tag="7.1.0" data-status="incomplete"' in page and "username/arm64v8-test:7.1.0" in page
    assert 'name="tags" value="7.0.0"' in page and 'name="tags" value="7.1.0"' not in page
    assert "seed" in client.get("/rules/").content.decode()
    response = client.post(f"/rules/{rule.pk}/apply", {"tags": ["7.0.0"]})
    job = Job.objects.get(kind="rule_apply")
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert job.params == {"rule": rule.pk, "tags": ["7.0.0"], "automatic": False}
    job = wait_job(job.pk)
    assert job.status == "succeeded", job.error
    job_page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "1 of 1 tags" in job_page and 'data-tag="7.0.0"' in job_page
    page = client.get(f"/rules/{rule.pk}/").content.decode()
    assert 'data-tag="7.0.0" data-status="unchanged"' in page and "Roll back to this" in page
    exported = yaml.safe_load(client.get(f"/rules/{rule.pk}/rule.yaml").content)
    assert exported["rules"][0]["sources"][1] == {"repository": "username/arm64v8-test", "platform": "linux/arm64"}
    edit = client.get(f"/rules/{rule.pk}/edit").content.decode()
    assert "username/arm64v8-test linux/arm64" in edit
