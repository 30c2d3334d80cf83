"""API keys: a scope (read or push), an optional expiry, their last use; through the real API and worker."""

from __future__ import annotations

import datetime
import json
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from manifests.jobs import job_create, job_run
from manifests.models import ApiToken, Job, Registry
from registry.images import image_push
from registry.platform import Platform


def _issue(*args: str) -> str:
    out = StringIO()
    call_command("apitoken", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def _lists(client, key: str, body: dict):
    return client.post("/api/v1/lists", data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Token {key}"})


@pytest.fixture
def pusher(db) -> User:
    call_command("role", "ci", "pusher", "--create", stdout=StringIO())
    return User.objects.get(username="ci")


@pytest.mark.django_db(transaction=True)
def test_a_read_key_may_read_but_not_push_and_a_push_key_pushes_on_the_worker(
    client, fresh_registry, celery_worker, wait_job
):
    call_command("role", "ci", "pusher", "--create", stdout=StringIO())
    running = fresh_registry("anonymous")
    with running.client() as rc:
        image_push(rc, repository="team/amd64", tag="v1", platform=Platform("linux", "amd64"))
    registry = Registry.objects.create(name="lab", url=running.url, insecure=True)
    job_run(inline=True, job_id=job_create(kind="scan", registry=registry, target="lab", params={}).pk)
    body = {"registry": "lab", "target": "team/multi:v1", "sources": [{"reference": "team/amd64:v1"}]}

    read_key = _issue("ci", "--scope", "read")
    assert client.get("/api/v1/registries/lab/repositories",
                      headers={"Authorization": f"Token {read_key}"}).status_code == 200
    refused = _lists(client, read_key, body)
    assert refused.status_code == 403 and "scope push" in refused.json()["error"]
    assert not Job.objects.filter(kind=Job.KIND_PUSH).exists()

    push_key = _issue("ci", "--scope", "push", "--expires", "90d")
    accepted = _lists(client, push_key, body)
    assert accepted.status_code == 202, accepted.json()
    job = wait_job(accepted.json()["job"])
    assert job.status == "succeeded", (job.error, celery_worker.log()[-2000:])


def test_a_new_key_reads_only_unless_asked_for_push(pusher):
    _issue("ci")
    assert ApiToken.objects.get().scope == ApiToken.SCOPE_READ


def test_an_expired_or_revoked_key_gets_a_json_401_that_says_why(client, pusher):
    expired, expired_key = ApiToken.issue(pusher, expires_at=timezone.now() - datetime.timedelta(seconds=1))
    revoked, revoked_key = ApiToken.issue(pusher)
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    for key, why in ((expired_key, "expired"), (revoked_key, "revoked")):
        response = client.get("/api/v1/coverage", {"registry": "x"}, headers={"Authorization": f"Token {key}"})
        assert response.status_code == 401 and response["Content-Type"] == "application/json"
        assert why in response.json()["error"]
    expired.refresh_from_db()
    assert expired.last_used_at is None  # a refused key is not "used"


def test_apitoken_expires_sets_the_expiry_and_refuses_a_bad_duration(pusher):
    before = timezone.now()
    _issue("ci", "--expires", "90d")
    token = ApiToken.objects.get()
    assert before + datetime.timedelta(days=90) <= token.expires_at <= timezone.now() + datetime.timedelta(days=90)
    for bad in ("90", "0d", "soon", "-1d"):
        with pytest.raises(CommandError, match="--expires"):
            _issue("ci", "--expires", bad)
    assert ApiToken.objects.count() == 1


def test_apitoken_list_shows_scope_state_expiry_and_last_use(client, pusher):
    key = _issue("ci", "--scope", "push", "--expires", "2w")
    _issue("ci")
    assert "last used never" in _issue("ci", "--list")
    client.get("/api/v1/coverage", {"registry": "x"}, headers={"Authorization": f"Token {key}"})
    used = ApiToken.objects.get(scope="push")
    lines = _issue("ci", "--list").splitlines()
    assert len(lines) == 2 and key not in "\n".join(lines)
    line = next(line for line in lines if line.startswith(used.prefix))
    assert "push" in line and "active" in line and f"last used {used.last_used_at.isoformat(timespec='seconds')}" in line
    assert f"expires {used.expires_at.isoformat(timespec='seconds')}" in line


def test_an_admin_lists_keys_with_their_scope_and_last_use_in_the_admin_site(client, pusher):
    key = _issue("ci", "--scope", "push")
    client.get("/api/v1/coverage", {"registry": "x"}, headers={"Authorization": f"Token {key}"})
    call_command("role", "ada", "admin", "--create", stdout=StringIO())
    client.force_login(User.objects.get(username="ada"))
    page = client.get("/admin/manifests/apitoken/").content.decode()
    assert "Last used at" in page and "Expires at" in page and "Scope" in page
    assert ApiToken.objects.get().prefix in page and key not in page
