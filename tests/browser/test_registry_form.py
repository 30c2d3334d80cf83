"""The registry form: human labels, credential fields that follow the sign-in mode, and
"Test connection" run on the worker before anything is saved."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from manifests.jobs import job_create, job_run
from manifests.models import Job, Registry
from manifests.stack.distribution import ADMIN_PASSWORD, ADMIN_USER
from tests.browser.conftest import PASSWORD, USERNAME
from tests.browser.test_a11y import AXE, AXE_RUN

pytestmark = pytest.mark.django_db(transaction=True)

UNREACHABLE = "http://127.0.0.1:9"


def test_the_form_speaks_in_human_labels(page, login, live_server):
    login(page)
    page.goto(f"{live_server.url}/registries/new")
    for label in ("Name", "URL", "Sign-in", "CA bundle (PEM)", "Repositories to watch", "Required platforms"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()
    body = page.locator("main").inner_text()
    assert "Url" not in body and "Ca bundle" not in body
    # Help in the user's words, tied to the field for screen readers.
    expect(page.get_by_label("URL", exact=True)).to_have_accessible_description(
        "The registry's address, such as https://ghcr.io or http://127.0.0.1:5000.")


def test_credential_fields_follow_the_sign_in_mode(page, login, live_server):
    login(page)
    page.goto(f"{live_server.url}/registries/new")
    expect(page.get_by_label("Sign-in")).to_have_value("anonymous")
    username, secret = page.get_by_label("Username", exact=True), page.get_by_label("Password or token", exact=True)
    expect(username).to_be_hidden()
    expect(secret).to_be_hidden()
    page.get_by_label("Sign-in").select_option(label="Username and password")
    expect(username).to_be_visible()
    expect(secret).to_be_visible()
    page.get_by_label("Sign-in").select_option(label="Anonymous")
    expect(secret).to_be_hidden()


def test_without_javascript_the_fields_show_and_switching_to_anonymous_drops_the_stored_secret(
        browser, live_server, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django_user_model.objects.create_superuser(USERNAME, f"{USERNAME}@example.com", PASSWORD)
    registry = Registry(name="staging", url="https://registry.invalid", auth=Registry.AUTH_BASIC, username="ci")
    registry.set_secret("hunter2-stored")
    registry.save()
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(USERNAME)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{live_server.url}/registries/staging/edit")
        expect(page.get_by_label("Username", exact=True)).to_be_visible()
        expect(page.get_by_text("a username, password or token above is not used")).to_be_visible()
        page.get_by_label("Sign-in").select_option(label="Anonymous")
        page.get_by_label("Password or token", exact=True).fill("typed-but-ignored")
        page.get_by_role("button", name="Save").click()
        page.wait_for_url(f"{live_server.url}/")
    finally:
        context.close()
    registry.refresh_from_db()
    assert (registry.auth, registry.username, registry.secret_encrypted) == ("anonymous", "", "")


def test_test_connection_says_plainly_that_a_registry_cannot_be_reached_and_saves_nothing(
        page, login, live_server, celery_worker):
    page.context.add_init_script(path=str(AXE))  # init scripts pass the CSP; a script tag would not
    login(page)
    page.goto(f"{live_server.url}/registries/new")
    page.get_by_label("Name", exact=True).fill("staging")
    page.get_by_label("URL", exact=True).fill(UNREACHABLE)
    page.get_by_label("Allow plain HTTP").check()
    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#connection-result")
    expect(result.locator("[data-status=failed]")).to_be_visible()
    expect(result).to_contain_text("cannot connect to 127.0.0.1:9: connection refused")
    assert page.url == f"{live_server.url}/registries/new"  # in place: the form, as typed, is still there
    expect(page.get_by_label("Name", exact=True)).to_have_value("staging")
    assert not Registry.objects.exists()
    # The result in place is axe-clean too, on a phone in the dark scheme as on a wide screen.
    for width, height, scheme in ((390, 844, "dark"), (1440, 900, "light")):
        page.set_viewport_size({"width": width, "height": height})
        page.emulate_media(color_scheme=scheme)
        assert page.evaluate(AXE_RUN) == [], (width, scheme)
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_test_connection_checks_typed_credentials_on_the_worker_and_keeps_them_nowhere(
        page, login, live_server, celery_worker, fresh_registry):
    running = fresh_registry("basic")
    login(page)
    page.goto(f"{live_server.url}/registries/new")
    page.get_by_label("Name", exact=True).fill("private")
    page.get_by_label("URL", exact=True).fill(running.url)
    page.get_by_label("Allow plain HTTP").check()
    page.get_by_label("Sign-in").select_option(label="Username and password")
    page.get_by_label("Username", exact=True).fill(ADMIN_USER)
    page.get_by_label("Password or token", exact=True).fill("not-the-password")
    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#connection-result")
    expect(result.locator("[data-status=failed]")).to_be_visible()
    page.get_by_label("Password or token", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Test connection").click()
    expect(result.locator("[data-status=succeeded]")).to_be_visible()
    expect(result).to_contain_text("the registry answers and accepts the credentials")
    assert not Registry.objects.exists()
    for job in Job.objects.filter(kind="check"):
        # The job held the password encrypted while it ran, and forgets it at the end.
        assert ADMIN_PASSWORD not in str(job.params) and "not-the-password" not in str(job.params)
        assert "secret_encrypted" not in job.params["draft"], job.params
        assert job.params["draft"]["username"] == ADMIN_USER
    assert ADMIN_PASSWORD not in page.content()
    # The form still holds what was typed (but the password field is never filled back in).
    expect(page.get_by_label("URL", exact=True)).to_have_value(running.url)


def test_test_connection_on_the_edit_page_uses_the_stored_secret_without_saving(
        page, login, live_server, celery_worker, fresh_registry):
    running = fresh_registry("basic")
    registry = Registry(name="private", url=running.url, insecure=True, auth=Registry.AUTH_BASIC, username=ADMIN_USER)
    registry.set_secret(ADMIN_PASSWORD)
    registry.save()
    login(page)
    page.goto(f"{live_server.url}/registries/private/edit")
    page.get_by_label("Required platforms").fill("linux/riscv64")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#connection-result [data-status=succeeded]")).to_be_visible()
    registry.refresh_from_db()
    assert registry.required_platforms == "linux/amd64,linux/arm64"  # tested, not saved
    assert Job.objects.get(kind="check").registry_id == registry.pk


def test_a_bad_field_is_named_by_test_connection_and_nothing_is_queued(page, login, live_server, redis_server):
    login(page)
    page.goto(f"{live_server.url}/registries/new")
    page.get_by_label("Name", exact=True).fill("staging")
    page.get_by_label("URL", exact=True).fill("http://a b")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#connection-result")).to_contain_text("URL: Give the registry's base URL")
    assert not Job.objects.exists()


def test_after_saving_a_failed_first_scan_is_said_plainly(page, login, live_server, redis_server):
    login(page)
    registry = Registry.objects.create(name="staging", url=UNREACHABLE, insecure=True)
    job_run(inline=True, job_id=job_create(kind="scan", registry=registry, target="staging", params={}).pk)
    page.goto(f"{live_server.url}/registries/staging/")
    expect(page.get_by_text("the last scan failed")).to_contain_text("cannot connect to 127.0.0.1:9: connection refused")
    expect(page.get_by_text("press Refresh")).to_have_count(0)
    page.goto(f"{live_server.url}/registries/staging/edit")
    expect(page.get_by_role("alert")).to_contain_text("The last scan failed")
