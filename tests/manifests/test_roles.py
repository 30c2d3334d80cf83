"""Roles and push groups through the real pages and API, with a real registry and the real worker.

An admin sets push groups in the registry form; a pusher outside them is
refused on the builder and the API; a viewer starts no registry work; a scan
of something the registry does not hold leaves no row.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command

from manifests.jobs import job_create, job_run
from manifests.models import ApiToken, Job, Registry, Repository, Tag
from manifests.roles import roles_ensure
from registry.images import image_push
from registry.platform import Platform

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")


def _user(name: str, role: str, *groups: Group) -> User:
    roles_ensure()  # a transactional test's flush removed the groups the migrations made
    user = User.objects.create_user(name)
    user.groups.add(Group.objects.get(name=role), *groups)
    return user


def _form(registry_url: str, **extra) -> dict:
    return {"name": "lab", "url": registry_url, "auth": "anonymous", "insecure": "on", "username": "",
            "required_platforms": "linux/amd64,linux/arm64", "concurrency": 4, "watch": "", "ca_bundle": "",
            "secret": "", **extra}


@pytest.fixture
def lab(fresh_registry):
    """A registry holding two single-platform images, registered and scanned."""
    running = fresh_registry("anonymous")
    with running.client() as client:
        image_push(client, repository="team/amd64", tag="v1", platform=AMD64)
        image_push(client, repository="team/arm64", tag="v1", platform=ARM64)
    registry = Registry.objects.create(name="lab", url=running.url, insecure=True)
    job_run(inline=True, job_id=job_create(kind="scan", registry=registry, target="lab", params={}).pk)
    return running, registry


@pytest.mark.django_db
def test_push_groups_chosen_in_the_add_and_edit_forms_are_saved(client, fresh_registry):
    team_a, team_b = Group.objects.create(name="team-a"), Group.objects.create(name="team-b")
    client.force_login(_user("ada", "admin"))
    response = client.post("/registries/new", _form("http://127.0.0.1:9", push_groups=[team_a.pk]))
    assert response.status_code == 302, response.content.decode()
    assert list(Registry.objects.get(name="lab").push_groups.all()) == [team_a]

    page = client.get("/registries/lab/edit").content.decode()
    assert f'value="{team_a.pk}" selected' in page  # what was saved is what the page shows
    response = client.post("/registries/lab/edit", _form("http://127.0.0.1:9", push_groups=[team_b.pk]))
    assert response.status_code == 302
    assert list(Registry.objects.get(name="lab").push_groups.all()) == [team_b]
    client.post("/registries/lab/edit", _form("http://127.0.0.1:9"))
    assert not Registry.objects.get(name="lab").push_groups.exists()


@pytest.mark.django_db(transaction=True)
def test_a_pusher_outside_the_registrys_push_group_cannot_push_there_by_page_or_api(
    client, lab, celery_worker, wait_job
):
    running, registry = lab
    team = Group.objects.create(name="team-a")
    client.force_login(_user("ada", "admin"))
    assert client.post("/registries/lab/edit", _form(running.url, push_groups=[team.pk])).status_code == 302

    body = {"registry": "lab", "target": "team/multi:v1",
            "sources": [{"reference": "team/amd64:v1"}, {"reference": "team/arm64:v1"}]}
    form = {"registry": "lab", "target": "team/multi:v1", "format": "auto",
            "e_ref": ["team/amd64:v1", "team/arm64:v1"]}
    for name, member in (("otto", False), ("ida", True)):
        pusher = _user(name, "pusher", *([team] if member else []))
        _, key = ApiToken.issue(pusher, scope=ApiToken.SCOPE_PUSH)
        client.force_login(pusher)
        builder = client.get("/build/").content.decode()
        assert ('value="lab"' in builder) is member
        page_push = client.post("/build/push", form)
        api_push = client.post("/api/v1/lists", data=json.dumps(body), content_type="application/json",
                               headers={"Authorization": f"Token {key}"})
        if not member:
            assert page_push.status_code == 403 and api_push.status_code == 403, api_push.content
            assert not Job.objects.filter(kind=Job.KIND_PUSH).exists()
    assert api_push.status_code == 202, api_push.json()
    job = wait_job(api_push.json()["job"])
    assert job.status == "succeeded", (job.error, celery_worker.log()[-2000:])
    with running.client() as rc:
        assert rc.head_manifest("team/multi", "v1").digest == job.digest


@pytest.mark.django_db
def test_a_viewer_can_start_no_scan_check_or_child_check_and_sees_no_button_for_them(client, lab):
    _, registry = lab
    client.force_login(_user("vera", "viewer"))
    for path in ("/", "/registries/lab/", "/registries/lab/r/team/amd64/", "/registries/lab/r/team/amd64/t/v1"):
        page = client.get(path).content.decode()
        assert "/registries/lab/scan" not in page and "/registries/lab/check" not in page, path
    before = Job.objects.count()
    assert client.post("/registries/lab/scan").status_code == 403
    assert client.post("/registries/lab/scan", {"repository": "team/amd64", "tag": "v1",
                                                "verify": "1"}).status_code == 403
    assert client.post("/registries/lab/scan", {"repository": "not/there"}).status_code == 403
    assert client.post("/registries/lab/check").status_code == 403
    assert Job.objects.count() == before
    assert not Repository.objects.filter(name="not/there").exists()


@pytest.mark.django_db(transaction=True)
def test_a_pusher_starts_a_scan_a_check_and_a_child_check_on_the_worker(client, lab, celery_worker, wait_job):
    client.force_login(_user("pia", "pusher"))
    assert "/registries/lab/scan" in client.get("/").content.decode()
    for data in ({}, {"repository": "team/amd64", "tag": "v1", "verify": "1"}):
        response = client.post("/registries/lab/scan", data)
        assert response.status_code == 302
        job = wait_job(Job.objects.filter(kind=Job.KIND_SCAN).latest("created_at").pk)
        assert job.status == "succeeded", job.error
    response = client.post("/registries/lab/check")
    job = wait_job(Job.objects.get(kind=Job.KIND_CHECK).pk)
    assert response.status_code == 302 and job.status == "succeeded", job.error


@pytest.mark.django_db(transaction=True)
def test_a_scan_of_what_the_registry_does_not_hold_creates_no_row(client, lab, celery_worker, wait_job):
    client.force_login(_user("pia", "pusher"))
    for data in ({"repository": "not/there", "tag": "v1"}, {"repository": "not/there"},
                 {"repository": "team/amd64", "tag": "nope"}):
        client.post("/registries/lab/scan", data)
        job = wait_job(Job.objects.filter(kind=Job.KIND_SCAN).latest("created_at").pk)
        assert job.is_done, job.error
    assert not Repository.objects.filter(name="not/there").exists()
    assert not Tag.objects.filter(name="nope").exists()
    assert Tag.objects.filter(repository__name="team/amd64", name="v1", error="").exists()


@pytest.mark.django_db
def test_the_role_command_gives_pushers_and_admins_the_scan_permission_and_viewers_none(db):
    scan = Permission.objects.get(codename="scan_registry")
    # A database whose groups lost the permission (changed by hand, or older): the command puts it back.
    Group.objects.get(name="pusher").permissions.remove(scan)
    for name, role in (("v", "viewer"), ("p", "pusher"), ("a", "admin")):
        call_command("role", name, role, "--create", stdout=StringIO())
    assert [User.objects.get(username=n).has_perm("manifests.scan_registry") for n in "vpa"] == [False, True, True]
    assert [User.objects.get(username=n).has_perm("manifests.push_registry") for n in "vpa"] == [False, True, True]
    assert not User.objects.get(username="v").get_all_permissions()


@pytest.mark.django_db
def test_a_refused_scan_goes_back_only_to_a_page_of_this_site(client, lab, monkeypatch):
    from manifests.services import queue

    monkeypatch.setattr(queue, "queue_available", lambda: False)
    client.force_login(_user("pia", "pusher"))
    for target, expected in (("https://evil.example/", "/"), ("//evil.example/x", "/"),
                             ("/registries/lab/", "/registries/lab/")):
        response = client.post("/registries/lab/scan", {"next": target})
        assert response.status_code == 302 and response["Location"] == expected, (target, response["Location"])
