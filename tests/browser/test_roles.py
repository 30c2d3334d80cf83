"""Roles seen in a real browser, each user logged in through the login page with the role the `role` command gives.

A viewer sees no button that writes and is refused when posting anyway; a
pusher pushes, amends ("Start from what the tag holds") and rolls back; an
admin adds and edits a registry (push groups included), presses Test, Scan
now and Check children. Selectors are roles, labels and URLs only.
"""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from playwright.sync_api import Page, expect

from manifests.jobs import job_create, job_run
from manifests.models import Job, Registry
from registry.images import image_push, index_push
from registry.platform import Platform

PASSWORD = "role-user-password"
DONE = "[data-status=succeeded], [data-status=failed]"


@pytest.fixture
def log_in_as(live_server, settings):
    """`log_in_as(page, "viewer")`: a user with that role, logged in through the login form."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    def log_in(page: Page, role: str) -> User:
        call_command("role", role, role, "--create", stdout=StringIO())
        user = User.objects.get(username=role)
        user.set_password(PASSWORD)
        user.save()
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(role)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")
        return user

    return log_in


@pytest.fixture
def lab(fresh_registry, redis_server):
    """Two single-platform images and a list of both, registered (anonymous) and scanned."""
    running = fresh_registry("anonymous")
    with running.client() as client:
        amd = image_push(client, repository="team/amd64", tag="v1", platform=Platform("linux", "amd64"))
        image_push(client, repository="team/arm64", tag="v1", platform=Platform("linux", "arm64"))
        index_push(client, repository="team/amd64", tag="multi", children=[amd.descriptor()])
    registry = Registry.objects.create(name="lab", url=running.url, insecure=True)
    job_run(inline=True, job_id=job_create(kind="scan", registry=registry, target="lab", params={}).pk)
    return running, registry


def _job_succeeds(page: Page) -> None:
    page.wait_for_selector(DONE, timeout=60_000)
    assert page.locator("[data-status]").get_attribute("data-status") == "succeeded", page.locator("#job").inner_text()


def _csrf(page: Page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")


@pytest.mark.django_db(transaction=True)
def test_a_viewer_sees_no_write_button_and_a_post_with_a_valid_csrf_token_is_still_refused(
    page, log_in_as, live_server, lab
):
    log_in_as(page, "viewer")
    for path in ("/", "/registries/lab/", "/registries/lab/r/team/amd64/", "/registries/lab/r/team/amd64/t/multi"):
        page.goto(f"{live_server.url}{path}")
        for name in ("Scan now", "Test", "Refresh", "Check children", "Edit this list", "Add a registry"):
            expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
            expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
        expect(page.get_by_role("link", name="Build a list")).to_have_count(0)
    before = Job.objects.count()
    for url, form in (("/registries/lab/scan", {}),
                      ("/registries/lab/scan", {"repository": "team/amd64", "tag": "multi", "verify": "1"}),
                      ("/registries/lab/check", {}), ("/build/push", {"registry": "lab", "target": "team/x:v1"})):
        response = page.request.post(f"{live_server.url}{url}", form=form, headers={"X-CSRFToken": _csrf(page)})
        assert response.status == 403, (url, response.status)
    assert Job.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_an_htmx_request_without_the_csrf_token_is_refused(page, log_in_as, live_server, lab):
    log_in_as(page, "pusher")
    page.goto(f"{live_server.url}/build/?registry=lab")
    # Take away both places the token travels in: the header htmx adds from
    # <body hx-headers> and the form's hidden field htmx includes.
    page.evaluate("""() => {
        document.body.removeAttribute('hx-headers');
        document.querySelectorAll('input[name=csrfmiddlewaretoken]').forEach(e => e.remove());
    }""")
    with page.expect_response(lambda r: r.url.endswith("/build/preview")) as answer:
        page.get_by_label("Target (repository:tag)").fill("team/refused:v1")
    assert answer.value.status == 403
    assert answer.value.request.headers.get("hx-request") == "true"
    assert "x-csrftoken" not in answer.value.request.headers


@pytest.mark.django_db(transaction=True)
def test_a_pusher_pushes_amends_from_what_the_tag_holds_and_rolls_back(
    page, log_in_as, live_server, lab, celery_worker
):
    running, _ = lab
    log_in_as(page, "pusher")
    page.goto(f"{live_server.url}/build/?registry=lab")
    page.get_by_label("Target (repository:tag)").fill("team/app:v1")
    page.get_by_role("button", name="Add team/amd64:v1").click()
    page.get_by_role("button", name="Add team/arm64:v1").click()
    page.get_by_role("button", name="Push team/app:v1").click()
    _job_succeeds(page)
    with running.client() as client:
        first = client.head_manifest("team/app", "v1").digest

    # Amend: start from what the tag holds, drop one platform, push.
    page.goto(f"{live_server.url}/build/?registry=lab")
    page.get_by_label("Target (repository:tag)").fill("team/app:v1")
    page.get_by_role("button", name="Start from what the tag holds").click()
    entries = page.locator("#entries li")
    expect(entries).to_have_count(2)
    entries.filter(has_text="arm64").get_by_role("button", name=re.compile("^Remove")).click()
    expect(entries).to_have_count(1)
    page.get_by_role("button", name="Push team/app:v1").click()
    _job_succeeds(page)
    with running.client() as client:
        amended = client.head_manifest("team/app", "v1").digest
    assert amended != first

    # Roll back to the first push, from the tag's history.
    page.goto(f"{live_server.url}/registries/lab/r/team/app/t/v1")
    page.get_by_role("button", name=re.compile("Roll back")).first.click()
    dialog = page.locator("dialog[open]")
    if dialog.count():  # a confirmation that names the tag, where the page asks first
        dialog.get_by_role("button", name=re.compile("Roll back")).click()
    _job_succeeds(page)
    with running.client() as client:
        assert client.head_manifest("team/app", "v1").digest == first


@pytest.mark.django_db(transaction=True)
def test_an_admin_adds_and_edits_a_registry_then_tests_scans_and_checks_children(
    page, log_in_as, live_server, fresh_registry, celery_worker
):
    running = fresh_registry("anonymous")
    with running.client() as client:
        amd = image_push(client, repository="team/amd64", tag="v1", platform=Platform("linux", "amd64"))
        index_push(client, repository="team/amd64", tag="multi",
                   children=[amd.descriptor()])
    Group.objects.create(name="team-a")
    Group.objects.create(name="team-b")
    log_in_as(page, "admin")

    page.get_by_role("link", name="Add a registry").click()
    page.get_by_label("Name", exact=True).fill("lab")
    page.get_by_label("URL", exact=True).fill(running.url)
    page.get_by_label("Insecure").check()
    page.get_by_label("Push groups").select_option(label="team-a")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{live_server.url}/")
    assert [g.name for g in Registry.objects.get(name="lab").push_groups.all()] == ["team-a"]

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Push groups")).to_have_values([str(Group.objects.get(name="team-a").pk)])
    page.get_by_label("Push groups").select_option(label="team-b")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{live_server.url}/")
    assert [g.name for g in Registry.objects.get(name="lab").push_groups.all()] == ["team-b"]

    page.get_by_role("button", name="Test").click()
    _job_succeeds(page)
    expect(page.get_by_text("the registry answers and accepts the credentials; it shows: team/amd64")).to_be_visible()
    page.goto(f"{live_server.url}/")
    page.get_by_role("button", name="Scan now").click()
    _job_succeeds(page)
    page.goto(f"{live_server.url}/registries/lab/r/team/amd64/t/multi")
    page.get_by_role("button", name="Check children").click()
    _job_succeeds(page)
    expect(page.locator(".job-inline")).to_contain_text(re.compile(r"\d+ children checked, 0 missing"))
    page.locator(".job-inline").get_by_role("link", name=re.compile(r"^job \d+$")).click()
    expect(page.get_by_text(re.compile(r"children checked \d+, missing 0"))).to_be_visible()
    assert page.console_errors == [], page.console_errors
